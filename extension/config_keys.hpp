// Which keys the node configuration has: the keys hdbrepl understands in each mapping,
// and the HarperDB keys it knows but does not implement, with what to do instead. Apart
// from the walker so the whole set of accepted keys reads as one list (docs/config.md
// describes the same set).
#pragma once
#include <string_view>
#include <utility>
#include <vector>

namespace hdbrepl::ext::config_detail {

// Keys this loader understands under `replication:`. The three certificate keys are the
// same as under `tls:`; HarperDB's documentation says certificate paths may be given in
// the replication section too.
inline const std::vector<std::string_view> replication_keys = {
    "hostname",       "routes",         "databases",          "shard",          "replicateTo",
    "securePort",     "port",           "bind",               "enableRootCAs",  "certificate",
    "certificateAuthority", "privateKey", "pingInterval",     "pingTimeout",    "logRetention",
    "tombstoneRetention", "maxClockSkew", "maxFrameBytes",    "maxBytesInFlight", "maxDatabaseSize", "readTimeout",
    "reconnectMinDelay", "reconnectMaxDelay"};
inline const std::vector<std::string_view> tls_keys = {"certificate", "certificateAuthority", "privateKey"};
inline const std::vector<std::string_view> route_keys = {"hostname", "port", "startTime", "shard"};
inline const std::vector<std::string_view> database_keys = {"name", "sharded"};

// Keys HarperDB accepts that hdbrepl does not implement, with what to do instead. They
// are errors like any unknown key (silently ignoring `failOver: false` would change
// behaviour behind the user's back), but with a message that does not call them typos.
using hint_table = std::vector<std::pair<std::string_view, std::string_view>>;
inline const hint_table replication_harper_only = {
    {"url", "set hostname (and securePort) instead"},
    {"mtls", "peer certificates are always verified, against tls.certificateAuthority and, with enableRootCAs, "
             "the system roots"},
    {"blobTimeout", "hdbrepl has no blobs"},
    {"failOver", ""},
    {"logging", "hdbrepl logs through the host's logging"},
    {"copyTimeout", ""},
    {"blobConcurrency", "hdbrepl has no blobs"},
    {"recordConcurrency", ""},
    {"receiveQueueHighWaterMark", "use maxBytesInFlight"},
    {"leadingDuplicateSkip", ""},
    {"blobGapReconnectMs", "hdbrepl has no blobs"}};
inline const hint_table route_harper_only = {{"revokedCertificates", "use repl_remove_certificate"},
                                             {"replicates", "use repl_add_node subscriptions"},
                                             {"sendsTo", "use repl_add_node subscriptions"},
                                             {"receivesFrom", "use repl_add_node subscriptions"},
                                             {"excludeTables", "declare the table with replicate=false"}};
inline const hint_table tls_harper_only = {{"ciphers", "hdbrepl uses OpenSSL's defaults for TLS 1.2 and 1.3"}};

} // namespace hdbrepl::ext::config_detail
