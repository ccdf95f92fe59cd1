// The YAML walker's core (see config_loader.hpp): parsing the document, the top-level
// keys, the replication section with its defaults, and the typed getters that turn one
// scalar into a value or into a message naming its key path and line. The sections with
// more structure (routes, databases, tls, tuning) are in config_sections.cpp.
#include "extension/config_loader.hpp"

#include "extension/config_text.hpp"
#include "extension/config_values.hpp"

#include <yaml-cpp/eventhandler.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace hdbrepl::ext::config_detail {

namespace fs = std::filesystem;

std::string describe(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Scalar: return quote(n.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "an empty value";
    }
}

entries loader::read_map(const field& f, const std::vector<std::string_view>& known,
                         const hint_table& harper_only) const {
    entries out;
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
        const YAML::Node k = it->first;
        if (k.IsNull()) fail_at(f.path, k, "has an empty key (a stray ',' or ':'?)");
        if (!k.IsScalar()) fail_at(f.path, k, "has a key that is " + describe(k) + "; keys must be plain names");
        const std::string name = k.Scalar();
        const std::string path = f.path + "." + name;
        if (auto prev = out.find(name); prev != out.end())
            fail_at(path, k, "is given twice (also at " + where(prev->second.key.Mark()) + ")");
        if (!contains(known, name)) {
            for (const auto& [h, hint] : harper_only)
                if (h == name)
                    fail_at(path, k,
                            "is a HarperDB setting that hdbrepl does not implement" +
                                (hint.empty() ? std::string() : " (" + std::string(hint) + ")") + "; remove it");
            const std::string_view guess = closest(name, known);
            fail_at(path, k,
                    "unknown key" + (guess.empty() ? std::string() : "; did you mean '" + std::string(guess) + "'?") +
                        " (known keys: " + join(known) + ")");
        }
        out.emplace(name, field{path, k, it->second});
    }
    return out;
}

std::string loader::get_string(const field& f) const {
    if (f.value.IsNull()) fail(f, "has no value; it must be a string");
    if (!f.value.IsScalar()) fail(f, "must be a string, not " + describe(f.value));
    return f.value.Scalar();
}

std::int64_t loader::get_integer(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "an integer between " + std::to_string(lo) + " and " + std::to_string(hi);
    if (!f.value.IsScalar()) fail(f, "must be " + range + ", not " + describe(f.value));
    const auto v = parse_integer(f.value.Scalar());
    if (!v || *v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

bool loader::get_bool(const field& f) const {
    if (f.value.IsScalar()) {
        const std::string s = lower(f.value.Scalar());
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(f, "must be true or false, not " + describe(f.value));
}

std::int64_t loader::get_duration(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "between " + format_duration(lo) + " and " + format_duration(hi);
    std::optional<std::int64_t> v;
    if (f.value.IsScalar()) v = parse_duration_ms(f.value.Scalar());
    if (!v)
        fail(f, "must be a duration " + range +
                    ": milliseconds (e.g. 30000) or a number with a unit ms, s, m, h or d (e.g. 30s), not " +
                    describe(f.value));
    if (*v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

std::int64_t loader::get_bytes(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "between " + format_bytes(lo) + " and " + format_bytes(hi);
    std::optional<std::int64_t> v;
    if (f.value.IsScalar()) v = parse_bytes(f.value.Scalar());
    if (!v)
        fail(f, "must be a size " + range + ": bytes (e.g. 1048576) or a number with a unit KiB, MiB or GiB "
                "(e.g. 16MiB), not " + describe(f.value));
    if (*v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

std::string loader::get_hostname(const field& f) const {
    const std::string h = strip_ipv6_brackets(get_string(f));
    if (const std::string p = hostname_problem(h); !p.empty()) fail(f, p);
    return h;
}

// Certificate paths are checked now rather than when TLS starts: at that point the error
// could no longer name the key and line, and the node would already be half up.
std::string loader::get_path(const field& f) const {
    const std::string text = get_string(f);
    if (text.empty()) fail(f, "must not be empty (leave the key out instead)");
    fs::path p(text);
    if (p.is_relative()) p = base_dir_ / p;
    p = p.lexically_normal();
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(f, "cannot read " + quote(p.string()) + ": " + std::strerror(errno));
    struct stat st {};
    const bool is_dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    ::close(fd);
    if (is_dir) fail(f, quote(p.string()) + " is a directory, not a PEM file");
    return p.string();
}

namespace {

// Counts the documents of a YAML stream without building them, stopping at the second.
// YAML::LoadAll cannot be used: yaml-cpp 0.7 never consumes a ',' at the top level of a
// document (",a" or "'a' ,b"), so LoadAll adds empty documents until memory runs out.
class document_counter : public YAML::EventHandler {
public:
    int documents = 0;
    YAML::Mark second;      // where the second document starts ('---' or its first token)
    YAML::Mark second_root; // its root node, the line an error names
    void OnDocumentStart(const YAML::Mark& m) override {
        if (++documents == 2) second = second_root = m;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(m);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(m);
    }
    void OnMapEnd() override {}

private:
    bool root_seen_ = false;
    void node(const YAML::Mark& m) {
        if (documents == 2 && !root_seen_) second_root = m;
        if (documents == 2) root_seen_ = true;
    }
};

} // namespace

node_config loader::load(const std::string& text) {
    YAML::Node root_doc;
    std::optional<YAML::Mark> second_document;
    try {
        std::istringstream in(text);
        YAML::Parser parser(in);
        document_counter counter;
        while (counter.documents < 2 && parser.HandleNextDocument(counter)) {}
        if (counter.documents >= 2 && counter.second.pos >= 0 &&
            static_cast<std::size_t>(counter.second.pos) < text.size() && text[counter.second.pos] == ',')
            throw load_failure{"config (" + where(counter.second) +
                               "): not valid YAML or JSON: a ',' outside a [list] or {mapping}"};
        root_doc = YAML::Load(text);
        if (counter.documents >= 2) second_document = counter.second_root;
    } catch (const YAML::ParserException& e) {
        std::string w;
        if (!e.mark.is_null())
            w = "line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1);
        if (!source_.empty()) w += (w.empty() ? "in " : " of ") + quote(source_);
        throw load_failure{"config" + (w.empty() ? std::string() : " (" + w + ")") +
                           ": not valid YAML or JSON: " + e.msg};
    }
    const std::string need = "it needs a 'replication:' section with at least 'hostname'";
    if (root_doc.IsNull()) {
        const std::string w = where(YAML::Mark::null_mark());
        throw load_failure{"config" + (w.empty() ? std::string() : " (" + w + ")") + ": is empty; " + need};
    }
    if (second_document)
        throw load_failure{at("config", *second_document) +
                           ": holds more than one YAML document ('---'); put replication and tls in one"};
    const YAML::Node root = root_doc;
    if (!root.IsMap()) fail_at("config", root, "must be a mapping with a 'replication:' section, not " + describe(root));

    // Other top-level keys are ignored so the loader can read a whole harperdb-config.yaml
    // (http:, logging:, components, ...). Two mistakes would then go unnoticed, so they
    // are caught: replication keys that lost their indentation, and misspelt section names.
    std::optional<field> repl_field, tls_field;
    for (auto it = root.begin(); it != root.end(); ++it) {
        const YAML::Node k = it->first;
        if (!k.IsScalar()) fail_at("config", k, "has a top-level key that is " + describe(k));
        const std::string name = k.Scalar();
        if (name == "replication" || name == "tls") {
            auto& slot = name == "tls" ? tls_field : repl_field;
            if (slot) fail_at(name, k, "is given twice (also at " + where(slot->key.Mark()) + ")");
            slot.emplace(field{name, k, it->second});
            continue;
        }
        // HarperDB's own top-level `databases:` is a mapping (storage paths per database).
        const bool harper_databases = name == "databases" && it->second.IsMap();
        if (contains(replication_keys, name) && !contains(tls_keys, name) && !harper_databases)
            fail_at(name, k, "belongs under 'replication:' (check its indentation)");
        if (contains(tls_keys, name)) fail_at(name, k, "belongs under 'tls:' (check its indentation)");
        if (const auto guess = closest(name, {"replication", "tls"}); !guess.empty())
            fail_at(name, k, "unknown section; did you mean '" + std::string(guess) + "'?");
    }
    if (!repl_field) fail_at("replication", root, "is required: " + need);
    if (repl_field->value.IsNull()) fail(*repl_field, "is empty; it needs at least 'hostname'");
    if (!repl_field->value.IsMap())
        fail(*repl_field, "must be a mapping with at least 'hostname', not " + describe(repl_field->value));
    const entries repl = read_map(*repl_field, replication_keys, replication_harper_only);
    auto find = [&](std::string_view k) -> const field* {
        auto it = repl.find(k);
        return it == repl.end() ? nullptr : &it->second;
    };

    node_config cfg;
    const field* hostname = find("hostname");
    if (!hostname)
        fail_at("replication.hostname", repl_field->key,
                "is required: this node's name, which peers see and its TLS certificate must carry");
    cfg.hostname = get_hostname(*hostname);

    if (auto f = find("securePort")) cfg.secure_port = static_cast<int>(get_integer(*f, 1, 65535));
    // The TLS listener runs unless the config asks for the plain port alone (port written,
    // securePort not): that is the development setup of the reference's IP-based mode.
    cfg.serve_secure = find("securePort") || !find("port");
    if (auto f = find("port")) {
        cfg.port = static_cast<int>(get_integer(*f, 1, 65535));
        cfg.has_port = true;
        if (cfg.port == cfg.secure_port)
            fail(*f, "must differ from securePort (" + std::to_string(cfg.secure_port) +
                         "): one port cannot serve both plain and TLS WebSockets");
    }
    if (auto f = find("shard")) cfg.shard = static_cast<int>(get_integer(*f, 0, 65535));
    if (auto f = find("replicateTo")) cfg.replicate_to = static_cast<int>(get_integer(*f, 0, 65535));
    if (auto f = find("enableRootCAs")) cfg.enable_root_cas = get_bool(*f);

    if (auto f = find("bind")) {
        const std::string b = strip_ipv6_brackets(get_string(*f));
        if (!ip_text(b))
            fail(*f, "must be an IP address to listen on and send from (e.g. 0.0.0.0, 127.0.0.2 or ::), not " +
                         describe(f->value));
        cfg.bind = *ip_text(b);
    } else {
        cfg.bind = ip_text(cfg.hostname) ? cfg.hostname : "0.0.0.0";
    }

    load_tls(tls_field, repl, cfg);
    load_tuning(repl, cfg);
    if (auto f = find("databases")) load_databases(*f, cfg, repl);

    // As in HarperDB, a bare hostname route goes to the secure port, or to `port` when there
    // is no securePort. securePort always has a default, so "no securePort" means it is
    // not written while `port` is.
    route_defaults d;
    d.secure_port = cfg.secure_port;
    d.plain_port = cfg.has_port ? cfg.port : 0;
    if (cfg.has_port && !find("securePort")) {
        d.scheme = "ws";
        d.port = cfg.port;
    } else {
        d.scheme = "wss";
        d.port = cfg.secure_port;
    }
    if (auto f = find("routes")) load_routes(*f, cfg, d);
    return cfg;
}

} // namespace hdbrepl::ext::config_detail
