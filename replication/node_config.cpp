// The node configuration's own behaviour: a route's URL and the canonical text that tells two
// configurations apart (see node_config.hpp).
#include "replication/node_config.hpp"

#include "engine/json.hpp"

#include <algorithm>
#include <tuple>

namespace hdbrepl::ext {

std::string route::url() const {
    const bool v6 = hostname.find(':') != std::string::npos;
    return (scheme.empty() ? std::string("wss") : scheme) + "://" + (v6 ? "[" + hostname + "]" : hostname) + ":" +
           std::to_string(port);
}

std::string node_config::canonical() const {
    auto opt = [](std::int64_t v) { return v < 0 ? std::string("null") : std::to_string(v); };
    std::vector<const route*> rs;
    for (const auto& r : routes) rs.push_back(&r);
    std::sort(rs.begin(), rs.end(), [](const route* a, const route* b) {
        return std::tie(a->hostname, a->port, a->scheme) < std::tie(b->hostname, b->port, b->scheme);
    });
    std::vector<const database_entry*> dbs;
    for (const auto& d : databases) dbs.push_back(&d);
    std::sort(dbs.begin(), dbs.end(), [](auto* a, auto* b) { return a->name < b->name; });

    std::string s = "{\"hostname\":" + json::quoted(hostname);
    s += ",\"bind\":" + json::quoted(bind);
    s += ",\"securePort\":" + (serve_secure ? std::to_string(secure_port) : std::string("null"));
    s += ",\"port\":" + (has_port ? std::to_string(port) : std::string("null"));
    s += ",\"shard\":" + opt(shard);
    s += ",\"replicateTo\":" + opt(replicate_to);
    s += ",\"enableRootCAs\":" + std::string(enable_root_cas ? "true" : "false");
    s += ",\"databases\":";
    if (all_databases) {
        s += "\"*\"";
    } else {
        s += "[";
        for (std::size_t i = 0; i < dbs.size(); ++i)
            s += (i ? "," : "") + std::string("{\"name\":") + json::quoted(dbs[i]->name) +
                 ",\"sharded\":" + (dbs[i]->sharded ? "true" : "false") + "}";
        s += "]";
    }
    s += ",\"routes\":[";
    for (std::size_t i = 0; i < rs.size(); ++i) {
        const route& r = *rs[i];
        // The start time as a number: "2024-01-01T00:00:00Z" and 1704067200000 are the same.
        s += (i ? "," : "") + std::string("{\"hostname\":") + json::quoted(r.hostname) +
             ",\"port\":" + std::to_string(r.port) + ",\"scheme\":" + json::quoted(r.scheme) +
             ",\"startTime\":" + opt(r.start_time_ms) + ",\"shard\":" + opt(r.shard) + "}";
    }
    s += "]";
    s += ",\"tls\":{\"certificate\":" + json::quoted(tls.certificate) +
         ",\"certificateAuthority\":" + json::quoted(tls.certificate_authority) +
         ",\"privateKey\":" + json::quoted(tls.private_key) + "}";
    s += ",\"pingInterval\":" + std::to_string(ping_interval_ms);
    s += ",\"pingTimeout\":" + std::to_string(ping_timeout_ms);
    s += ",\"logRetention\":" + std::to_string(log_retention_ms);
    s += ",\"tombstoneRetention\":" + std::to_string(tombstone_retention_ms);
    s += ",\"maxClockSkew\":" + std::to_string(max_clock_skew_ms);
    s += ",\"readTimeout\":" + std::to_string(read_timeout_ms);
    s += ",\"maxFrameBytes\":" + std::to_string(max_frame_bytes);
    s += ",\"maxBytesInFlight\":" + std::to_string(max_bytes_in_flight);
    s += ",\"maxDatabaseSize\":" + std::to_string(max_database_size);
    s += ",\"reconnectMinDelay\":" + std::to_string(reconnect_min_ms);
    s += ",\"reconnectMaxDelay\":" + std::to_string(reconnect_max_ms);
    return s + "}";
}

} // namespace hdbrepl::ext
