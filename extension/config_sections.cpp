// The YAML walker's structured sections (see config_loader.hpp): routes (bare hosts,
// ws:// and wss:// URLs, mappings; defaults for scheme and port; duplicates and routes to
// the node itself), databases, tls (with the certificate keys also accepted under
// replication:) and the tuning durations and sizes with their cross-checks.
#include "extension/config_loader.hpp"

#include "extension/config_text.hpp"
#include "extension/config_values.hpp"
#include "replication/fragments.hpp"

#include <algorithm>
#include <utility>

namespace hdbrepl::ext::config_detail {

// Splits "host", "host:port", "[v6]", "[v6]:port" (and, outside URLs, a bare IPv6
// literal, whose colons cannot carry a port). Returns host, port text, has_port.
std::tuple<std::string, std::string, bool> loader::split_host_port(const field& f, const std::string& text,
                                                                   bool allow_bare_ipv6) const {
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos) fail(f, quote(text) + ": '[' without a closing ']'");
        const std::string host = text.substr(1, close - 1);
        if (!ip_text(host) || host.find(':') == std::string::npos)
            fail(f, quote(text) + ": brackets are only for IPv6 addresses, and " + quote(host) + " is not one");
        const std::string rest = text.substr(close + 1);
        if (rest.empty()) return {host, "", false};
        if (rest.front() != ':') fail(f, quote(text) + ": expected ':port' after ']'");
        return {host, rest.substr(1), true};
    }
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 0) return {text, "", false};
    if (colons == 1) {
        const auto c = text.find(':');
        return {text.substr(0, c), text.substr(c + 1), true};
    }
    if (!allow_bare_ipv6)
        fail(f, quote(text) + ": an IPv6 address in a URL must be in brackets, e.g. wss://[::1]:9933");
    return {text, "", false};
}

int loader::route_port(const field& f, const std::string& text, const std::string& port) const {
    const auto v = parse_integer(port);
    if (!v || *v < 1 || *v > 65535)
        fail(f, quote(text) + ": the port must be an integer between 1 and 65535, not " + quote(port));
    return static_cast<int>(*v);
}

route loader::string_route(const field& f, const route_defaults& d) const {
    const std::string s = get_string(f);
    route r;
    std::string authority = s;
    bool url = false;
    if (const auto p = s.find("://"); p != std::string::npos) {
        url = true;
        r.scheme = lower(s.substr(0, p));
        if (r.scheme != "ws" && r.scheme != "wss")
            fail(f, quote(s) + ": the scheme must be ws:// or wss://, not " + quote(r.scheme + "://"));
        authority = s.substr(p + 3);
        if (const auto end = authority.find_first_of("/?#"); end != std::string::npos) {
            if (authority.substr(end) != "/")
                fail(f, quote(s) + ": a route URL has no path, query or fragment (only ws[s]://host:port)");
            authority.resize(end);
        }
        if (authority.find('@') != std::string::npos)
            fail(f, quote(s) + ": a route URL must not carry credentials; pass them to repl_add_node's "
                               "authorization, which never stores them");
    }
    auto [host, port, has_port] = split_host_port(f, authority, !url);
    if (const std::string problem = hostname_problem(host); !problem.empty())
        fail(f, quote(s) + ": the hostname " + problem);
    r.hostname = host;
    if (has_port) {
        r.port = route_port(f, s, port);
    } else if (!url) {
        r.port = d.port;
    } else if (r.scheme == "wss") {
        r.port = d.secure_port;
    } else if (d.plain_port != 0) {
        r.port = d.plain_port;
    } else {
        fail(f, quote(s) + ": a ws:// route needs a port, and this node has no 'port' to default to");
    }
    if (!url) r.scheme = d.scheme;
    return r;
}

route loader::mapping_route(const field& f, const route_defaults& d) const {
    // `- wss://host:` or `- host:` is a one-key mapping to YAML; say what happened rather
    // than report an unknown key named after the URL.
    if (f.value.size() == 1) {
        const auto only = f.value.begin();
        if (only->first.IsScalar() && only->second.IsNull() && !contains(route_keys, only->first.Scalar()))
            fail(f, quote(only->first.Scalar() + ":") + " ends with ':', which YAML reads as a mapping key; "
                    "write the port after the ':' (or leave the ':' out)");
    }
    const entries e = read_map(f, route_keys, route_harper_only);
    route r;
    const auto host = e.find("hostname");
    if (host == e.end()) fail(f, "a route mapping needs 'hostname' (it takes hostname, port, startTime, shard)");
    r.hostname = get_hostname(host->second);
    r.scheme = d.scheme;
    r.port = d.port;
    if (auto it = e.find("port"); it != e.end()) r.port = static_cast<int>(get_integer(it->second, 1, 65535));
    if (auto it = e.find("shard"); it != e.end()) r.shard = static_cast<int>(get_integer(it->second, 0, 65535));
    if (auto it = e.find("startTime"); it != e.end()) {
        const field& st = it->second;
        r.start_time = get_string(st);
        std::optional<std::int64_t> ms = parse_integer(r.start_time);
        if (!ms) ms = parse_iso8601_utc(r.start_time);
        if (!ms || *ms < 0)
            fail(st, "must be an ISO 8601 UTC time such as 2024-06-01T00:00:00Z (a time of day needs 'Z' or an "
                     "offset) or epoch milliseconds, not " + describe(st.value));
        r.start_time_ms = *ms;
    }
    return r;
}

void loader::load_routes(const field& f, node_config& cfg, const route_defaults& d) const {
    if (f.value.IsNull()) return; // `routes:` with nothing under it: no peers
    if (!f.value.IsSequence())
        fail(f, "must be a list of peers (one '- host', '- wss://host:port' or '- hostname: ...' per line), not " +
                    describe(f.value));
    // Where each peer was first listed, by comparison key, to report duplicates.
    std::map<std::string, std::pair<std::size_t, std::string>> seen;
    const std::string self = host_key(cfg.hostname);
    const std::string bind = host_key(cfg.bind);
    const bool specific_bind = cfg.bind != "0.0.0.0" && cfg.bind != "::";
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
        const YAML::Node item = *it;
        const field rf{f.path + "[" + std::to_string(i) + "]", item, item};
        route r;
        if (item.IsScalar()) {
            r = string_route(rf, d);
        } else if (item.IsMap()) {
            r = mapping_route(rf, d);
        } else {
            fail(rf, "must be a hostname, a ws:// or wss:// URL, or a mapping with hostname and port, not " +
                         describe(item));
        }
        // IP literals in one spelling, so canonical() and the peer's URL do not depend on
        // how the address was written (`0:0::1` is `::1`).
        if (auto ip = ip_text(r.hostname)) r.hostname = *ip;
        const std::string key = host_key(r.hostname);
        const bool own_port = r.port == cfg.secure_port || (cfg.has_port && r.port == cfg.port);
        if (own_port && (key == self || (specific_bind && key == bind)))
            fail(rf, "points at this node itself (" + r.hostname + " port " + std::to_string(r.port) +
                         "); a node does not dial itself, remove the route");
        const std::string id = key + "|" + std::to_string(r.port);
        if (auto prev = seen.find(id); prev != seen.end())
            fail(rf, "repeats routes[" + std::to_string(prev->second.first) + "] (" + prev->second.second +
                         "): the same peer " + r.hostname + " port " + std::to_string(r.port));
        seen.emplace(id, std::make_pair(i, where(item.Mark())));
        cfg.routes.push_back(std::move(r));
    }
}

void loader::load_databases(const field& f, node_config& cfg, const entries& repl) const {
    if (f.value.IsScalar() && f.value.Scalar() == "*") return; // all, the default
    if (f.value.IsNull()) fail(f, "has no value; leave the key out (or write '*') for all databases, or list them");
    std::vector<field> items;
    if (f.value.IsSequence()) {
        std::size_t i = 0;
        for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i)
            items.push_back(field{f.path + "[" + std::to_string(i) + "]", *it, *it});
        if (items.empty()) fail(f, "is an empty list; list the databases to replicate, or leave the key out for all");
    } else if (f.value.IsScalar() || f.value.IsMap()) {
        items.push_back(f); // one database, written without the list
    } else {
        fail(f, "must be '*' or a list of database names, not " + describe(f.value));
    }
    std::map<std::string, std::string> seen; // lower-case name -> where
    for (const field& item : items) {
        database_entry db;
        // A pointer, not a copy to reassign: YAML::Node::operator= rebinds the node inside
        // the document tree rather than the handle.
        const field* name = &item;
        std::optional<entries> e;
        if (item.value.IsMap()) {
            e.emplace(read_map(item, database_keys, {}));
            const auto n = e->find("name");
            if (n == e->end()) fail(item, "a database mapping needs 'name' (it takes name and sharded)");
            name = &n->second;
            if (auto s = e->find("sharded"); s != e->end()) {
                db.sharded = get_bool(s->second);
                if (db.sharded && !repl.contains("shard"))
                    fail(s->second, "needs replication.shard (this node's shard number) to be set");
            }
        } else if (!item.value.IsScalar()) {
            fail(item, "must be a database name or a mapping {name, sharded}, not " + describe(item.value));
        }
        db.name = get_string(*name);
        if (db.name == "*") {
            // '*' is all databases with no options; in a mapping `sharded` would be lost.
            if (item.value.IsMap()) fail(*name, "'*' (all databases) is written alone, not as a name");
            if (items.size() > 1) fail(*name, "'*' (all databases) cannot be combined with other entries");
            return;
        }
        if (db.name.empty() || db.name.find_first_of(std::string_view("\0\n\r\t", 4)) != std::string::npos ||
            db.name.front() == ' ' || db.name.back() == ' ')
            fail(*name, "must be a database (SQLite schema) name such as main, not " + describe(name->value));
        if (lower(db.name) == "temp")
            fail(*name, "the temp database belongs to one connection and cannot be replicated");
        // SQLite schema names are case-insensitive.
        if (auto prev = seen.find(lower(db.name)); prev != seen.end())
            fail(*name, "lists database " + quote(db.name) + " twice (also at " + prev->second + ")");
        seen.emplace(lower(db.name), where(name->value.Mark()));
        cfg.databases.push_back(std::move(db));
    }
    cfg.all_databases = false;
}

void loader::load_tls(const std::optional<field>& tls, const entries& repl, node_config& cfg) const {
    entries t;
    if (tls) {
        if (tls->value.IsSequence())
            fail(*tls, "must be a mapping with certificate, certificateAuthority and privateKey; hdbrepl takes one "
                       "certificate, not a list");
        if (!tls->value.IsMap()) fail(*tls, "must be a mapping with certificate, certificateAuthority and privateKey, "
                                            "not " + describe(tls->value));
        t = read_map(*tls, tls_keys, tls_harper_only);
    }
    for (auto key : tls_keys) {
        const auto in_repl = repl.find(key);
        if (in_repl == repl.end()) continue;
        if (auto in_tls = t.find(key); in_tls != t.end())
            fail(in_repl->second, "is also set as tls." + std::string(key) + " (" + where(in_tls->second.key.Mark()) +
                                      "); set it in one place");
        t.emplace(std::string(key), in_repl->second);
    }
    std::string* targets[] = {&cfg.tls.certificate, &cfg.tls.certificate_authority, &cfg.tls.private_key};
    for (std::size_t i = 0; i < tls_keys.size(); ++i)
        if (auto it = t.find(tls_keys[i]); it != t.end()) *targets[i] = get_path(it->second);
    // A certificate is useless without its key and a key without its certificate; finding
    // out at the first handshake would leave the node up but unreachable.
    if (auto c = t.find("certificate"); c != t.end() && !t.contains("privateKey"))
        fail(c->second, "needs privateKey too (the key of this certificate)");
    if (auto k = t.find("privateKey"); k != t.end() && !t.contains("certificate"))
        fail(k->second, "needs certificate too (the certificate of this key)");
}

void loader::load_tuning(const entries& repl, node_config& cfg) const {
    auto find = [&](std::string_view k) -> const field* {
        auto it = repl.find(k);
        return it == repl.end() ? nullptr : &it->second;
    };
    if (auto f = find("pingInterval")) cfg.ping_interval_ms = static_cast<int>(get_duration(*f, 10, hour_ms));
    cfg.ping_timeout_ms = 3 * cfg.ping_interval_ms;
    if (auto f = find("pingTimeout")) {
        cfg.ping_timeout_ms = static_cast<int>(get_duration(*f, 20, day_ms));
        if (cfg.ping_timeout_ms <= cfg.ping_interval_ms)
            fail(*f, "must be longer than pingInterval (" + format_duration(cfg.ping_interval_ms) +
                         "), or every link would time out between two pings");
    }
    if (auto f = find("logRetention")) cfg.log_retention_ms = get_duration(*f, second_ms, 3650 * day_ms);
    cfg.tombstone_retention_ms = cfg.log_retention_ms;
    if (auto f = find("tombstoneRetention")) {
        cfg.tombstone_retention_ms = get_duration(*f, second_ms, 3650 * day_ms);
        if (cfg.tombstone_retention_ms < cfg.log_retention_ms)
            fail(*f, "must be at least logRetention (" + format_duration(cfg.log_retention_ms) +
                         "): a tombstone purged while the log still holds older changes of its row would let a "
                         "late stale update resurrect the row");
    }
    if (auto f = find("maxClockSkew")) cfg.max_clock_skew_ms = get_duration(*f, 1, day_ms);
    if (auto f = find("readTimeout")) cfg.read_timeout_ms = get_duration(*f, 10, 10 * minute_ms);
    if (auto f = find("maxFrameBytes")) cfg.max_frame_bytes = get_bytes(*f, static_cast<std::int64_t>(engine::min_frame_bytes), gib);
    if (auto f = find("maxBytesInFlight")) cfg.max_bytes_in_flight = get_bytes(*f, 64 * kib, 16 * gib);
    if (auto f = find("maxDatabaseSize")) cfg.max_database_size = get_bytes(*f, 64 * kib, std::int64_t{1} << 50);
    if (auto f = find("reconnectMinDelay")) cfg.reconnect_min_ms = static_cast<int>(get_duration(*f, 1, hour_ms));
    cfg.reconnect_max_ms = std::max(cfg.reconnect_max_ms, cfg.reconnect_min_ms);
    if (auto f = find("reconnectMaxDelay")) {
        cfg.reconnect_max_ms = static_cast<int>(get_duration(*f, 1, day_ms));
        if (cfg.reconnect_max_ms < cfg.reconnect_min_ms)
            fail(*f, "must be at least reconnectMinDelay (" + format_duration(cfg.reconnect_min_ms) + ")");
    }
}

} // namespace hdbrepl::ext::config_detail
