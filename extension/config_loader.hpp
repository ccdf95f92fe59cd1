// The YAML walker of the node configuration, shared by the files that implement it:
// config_loader.cpp (the document, the top level, the replication section and the typed
// getters) and config_sections.cpp (routes, databases, tls and the tuning keys). It walks
// the yaml-cpp tree by hand rather than with Node::as<T>() so that every rejection can
// name the key path and the line, and so that nothing the user wrote is silently ignored.
#pragma once
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "extension/config_keys.hpp"
#include "extension/config_text.hpp"
#include "replication/node_config.hpp"

namespace hdbrepl::ext::config_detail {

// Thrown inside the loader only; load_node_config turns it into a config_error, so a
// failure deep in the tree needs no error plumbing on the way up.
struct load_failure {
    std::string message;
};

// A node as a message names it: a quoted scalar, "a list", "a mapping" or "an empty value".
std::string describe(const YAML::Node& n);

// One value in the tree, with the path that names it in messages and the node whose
// line a message quotes (the key for mapping entries, the item for list entries).
// Copy-construct only, never assign: YAML::Node::operator= writes into the document tree.
struct field {
    std::string path;
    YAML::Node key;
    YAML::Node value;
};
using entries = std::map<std::string, field, std::less<>>;

struct route_defaults {
    std::string scheme; // for routes that give no scheme
    int port = 0;       // for routes that give no port
    int secure_port = 0;
    int plain_port = 0; // 0 = none
};

// One load of one document. `source` is the file path ("" for inline text), named in
// every message; `base_dir` is where relative certificate paths are resolved.
class loader {
public:
    loader(std::string source, std::filesystem::path base_dir)
        : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

    node_config load(const std::string& text);

private:
    std::string source_;             // the file path, or "" for inline text
    std::filesystem::path base_dir_; // where relative certificate paths are resolved

    std::string where(const YAML::Mark& m) const {
        std::string s;
        if (!m.is_null()) s = "line " + std::to_string(m.line + 1);
        if (!source_.empty()) s += (s.empty() ? "in " : " of ") + quote(source_);
        return s;
    }
    std::string at(const std::string& path, const YAML::Node& n) const { return at(path, n.Mark()); }
    std::string at(const std::string& path, const YAML::Mark& m) const {
        const std::string w = where(m);
        return w.empty() ? path : path + " (" + w + ")";
    }
    [[noreturn]] void fail_at(const std::string& path, const YAML::Node& n, const std::string& what) const {
        throw load_failure{at(path, n) + ": " + what};
    }
    // An empty value has no useful position of its own; its key's line is what the user
    // looks for.
    [[noreturn]] void fail(const field& f, const std::string& what) const {
        const YAML::Node& n = f.value.IsDefined() && !f.value.IsNull() ? f.value : f.key;
        fail_at(f.path, n, what);
    }

    entries read_map(const field& f, const std::vector<std::string_view>& known, const hint_table& harper_only) const;

    std::string get_string(const field& f) const;
    std::int64_t get_integer(const field& f, std::int64_t lo, std::int64_t hi) const;
    bool get_bool(const field& f) const;
    std::int64_t get_duration(const field& f, std::int64_t lo, std::int64_t hi) const;
    std::int64_t get_bytes(const field& f, std::int64_t lo, std::int64_t hi) const;
    std::string get_hostname(const field& f) const;
    std::string get_path(const field& f) const;

    std::tuple<std::string, std::string, bool> split_host_port(const field& f, const std::string& text,
                                                               bool allow_bare_ipv6) const;
    int route_port(const field& f, const std::string& text, const std::string& port) const;
    route string_route(const field& f, const route_defaults& d) const;
    route mapping_route(const field& f, const route_defaults& d) const;
    void load_routes(const field& f, node_config& cfg, const route_defaults& d) const;
    void load_databases(const field& f, node_config& cfg, const entries& repl) const;
    void load_tls(const std::optional<field>& tls, const entries& repl, node_config& cfg) const;
    void load_tuning(const entries& repl, node_config& cfg) const;
};

} // namespace hdbrepl::ext::config_detail
