// libFuzzer target: the node configuration loader: load_node_config (extension/config.cpp),
// yaml-cpp and the hand-written tree walk (extension/config_loader.cpp, config_sections.cpp,
// config_values.cpp, config_file.cpp), and the values it builds (replication/node_config.cpp).
// Invariants: load_node_config never throws or crashes and an error always has a message;
// a config that loads, written back out as JSON (which YAML reads) with every field
// explicit, loads again to the same canonical() text.
// The loader opens certificate paths. So that the fuzzer cannot open devices or FIFOs
// (an open of a FIFO blocks), the target is linked with -Wl,--wrap=open: while the loader
// runs, only files under /tmp/hdbrepl-fuzz-config/ open; every other path is ENOENT.
#include "extension/config.hpp"
#include "tests/fuzz/fuzz_common.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <variant>

using namespace hdbrepl::ext;

namespace {

constexpr const char* sandbox = "/tmp/hdbrepl-fuzz-config/";
bool in_loader = false;

std::string q(std::string_view s) {
    std::string r = "\"";
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            r += '\\';
            r += c;
        } else if (u < 0x20 || u == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            r += "\\u00";
            r += hex[u >> 4];
            r += hex[u & 0xf];
        } else {
            r += c;
        }
    }
    return r + "\"";
}

// The config as a document that sets every field explicitly.
std::string write_back(const node_config& c) {
    std::string s = "{\"replication\": {\"hostname\": " + q(c.hostname);
    const std::string scheme = c.serve_secure ? "wss" : "ws";
    s += ", \"routes\": [";
    for (std::size_t i = 0; i < c.routes.size(); ++i) {
        const route& r = c.routes[i];
        if (i) s += ", ";
        if (r.start_time_ms >= 0 || r.shard >= 0) {
            FUZZ_CHECK(r.scheme == scheme); // a mapping route always takes the default scheme
            s += "{\"hostname\": " + q(r.hostname) + ", \"port\": " + std::to_string(r.port);
            if (r.start_time_ms >= 0) s += ", \"startTime\": " + std::to_string(r.start_time_ms);
            if (r.shard >= 0) s += ", \"shard\": " + std::to_string(r.shard);
            s += "}";
        } else {
            s += q(r.url());
        }
    }
    s += "]";
    if (!c.all_databases) {
        s += ", \"databases\": [";
        for (std::size_t i = 0; i < c.databases.size(); ++i)
            s += (i ? ", " : "") + std::string("{\"name\": ") + q(c.databases[i].name) +
                 ", \"sharded\": " + (c.databases[i].sharded ? "true" : "false") + "}";
        s += "]";
    }
    if (c.shard >= 0) s += ", \"shard\": " + std::to_string(c.shard);
    if (c.replicate_to >= 0) s += ", \"replicateTo\": " + std::to_string(c.replicate_to);
    if (c.serve_secure) s += ", \"securePort\": " + std::to_string(c.secure_port);
    if (c.has_port) s += ", \"port\": " + std::to_string(c.port);
    s += ", \"bind\": " + q(c.bind);
    s += std::string(", \"enableRootCAs\": ") + (c.enable_root_cas ? "true" : "false");
    s += ", \"pingInterval\": " + std::to_string(c.ping_interval_ms);
    s += ", \"pingTimeout\": " + std::to_string(c.ping_timeout_ms);
    s += ", \"logRetention\": " + std::to_string(c.log_retention_ms);
    s += ", \"tombstoneRetention\": " + std::to_string(c.tombstone_retention_ms);
    s += ", \"maxClockSkew\": " + std::to_string(c.max_clock_skew_ms);
    s += ", \"maxFrameBytes\": " + std::to_string(c.max_frame_bytes);
    s += ", \"maxBytesInFlight\": " + std::to_string(c.max_bytes_in_flight);
    s += ", \"reconnectMinDelay\": " + std::to_string(c.reconnect_min_ms);
    s += ", \"reconnectMaxDelay\": " + std::to_string(c.reconnect_max_ms);
    s += "}, \"tls\": {";
    std::string t;
    auto add = [&](const char* k, const std::string& v) {
        if (!v.empty()) t += (t.empty() ? "" : ", ") + std::string("\"") + k + "\": " + q(v);
    };
    add("certificate", c.tls.certificate);
    add("certificateAuthority", c.tls.certificate_authority);
    add("privateKey", c.tls.private_key);
    return s + t + "}}\n";
}

std::variant<node_config, config_error> load(const std::string& text) {
    in_loader = true;
    auto r = load_node_config(text);
    in_loader = false;
    return r;
}

} // namespace

extern "C" int __real_open(const char* path, int flags, ...);

extern "C" int __wrap_open(const char* path, int flags, ...) {
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = static_cast<mode_t>(va_arg(ap, int));
        va_end(ap);
    }
    if (in_loader && std::strncmp(path, sandbox, std::strlen(sandbox)) != 0) {
        errno = ENOENT;
        return -1;
    }
    return __real_open(path, flags, mode);
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    ::mkdir(sandbox, 0700);
    for (const char* f : {"cert.pem", "ca.pem", "key.pem"}) {
        const std::string p = std::string(sandbox) + f;
        const int fd = __real_open(p.c_str(), O_WRONLY | O_CREAT, 0600);
        if (fd >= 0) ::close(fd);
    }
    ::mkdir((std::string(sandbox) + "dir").c_str(), 0700);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text = fuzz_text(data, size);
    if (text.find('\n') == std::string::npos) text += '\n'; // text, never a path to read
    auto r = load(text);
    static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr; // to check seeds by hand
    if (auto* e = std::get_if<config_error>(&r)) {
        if (verbose) std::fprintf(stderr, "error: %s\n", e->message.c_str());
        FUZZ_CHECK(!e->message.empty());
        return 0;
    }
    const node_config& cfg = std::get<node_config>(r);
    if (verbose) std::fprintf(stderr, "loaded: %s\n", cfg.canonical().c_str());
    FUZZ_CHECK(!cfg.hostname.empty());
    for (const auto& rt : cfg.routes) FUZZ_CHECK(rt.port >= 1 && rt.port <= 65535 && !rt.scheme.empty());
    const std::string canon = cfg.canonical();
    const std::string back = write_back(cfg);
    auto r2 = load(back);
    if (auto* e = std::get_if<config_error>(&r2)) {
        std::fprintf(stderr, "written back:\n%s\nfails: %s\n", back.c_str(), e->message.c_str());
        FUZZ_CHECK(!"a loaded config, written back, loads again");
    }
    const std::string canon2 = std::get<node_config>(r2).canonical();
    if (canon2 != canon) std::fprintf(stderr, "first:  %s\nsecond: %s\n", canon.c_str(), canon2.c_str());
    FUZZ_CHECK(canon2 == canon);
    return 0;
}
