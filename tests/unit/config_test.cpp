// Unit tests for extension/config.hpp: every form of routes and databases, the defaults,
// canonical() as the "same config?" test, file and inline input, and one test per
// rejection checking that the message names the key and the line. At the end, the pieces
// the loader is built from on their own: the value parsers (config_values.hpp), the
// message helpers (config_text.hpp) and the text-or-path rule and file reading
// (config_file.hpp).
#include <catch2/catch.hpp>

#include "extension/config.hpp"
#include "extension/config_file.hpp"
#include "extension/config_keys.hpp"
#include "extension/config_text.hpp"
#include "extension/config_values.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>

using namespace hdbrepl::ext;
namespace fs = std::filesystem;

namespace {

// Raw strings read better starting on their own line; line 1 is the line after R"(.
std::string yaml(std::string s) {
    if (!s.empty() && s.front() == '\n') s.erase(0, 1);
    return s;
}

node_config ok(const std::string& text) {
    auto r = load_node_config(text);
    if (auto* e = std::get_if<config_error>(&r)) FAIL("unexpected config error: " << e->message);
    return std::get<node_config>(r);
}

std::string err(const std::string& text) {
    auto r = load_node_config(text);
    if (std::holds_alternative<node_config>(r)) FAIL("config was accepted:\n" << text);
    return std::get<config_error>(r).message;
}

// The error names `key` at `line` ("key (line N...") and says `what`.
void expect_error(const std::string& text, const std::string& key, int line, const std::string& what) {
    const std::string m = err(text);
    INFO("message: " << m);
    CHECK(m.rfind(key + " (line " + std::to_string(line), 0) == 0);
    CHECK(m.find(what) != std::string::npos);
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "hdbrepl_config_XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& content) const {
        const fs::path p = path / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << content;
        return p.string();
    }
};

const route& find_route(const node_config& c, const std::string& host, int port) {
    for (const auto& r : c.routes)
        if (r.hostname == host && r.port == port) return r;
    FAIL("no route " << host << ":" << port);
    throw 0; // unreachable; FAIL throws
}

} // namespace

TEST_CASE("config: a hostname alone gives every default", "[unit][config]") {
    const node_config c = ok("replication:\n  hostname: node-a.example.com\n");
    CHECK(c.hostname == "node-a.example.com");
    CHECK(c.routes.empty());
    CHECK(c.all_databases);
    CHECK(c.databases.empty());
    CHECK(c.shard == -1);
    CHECK(c.replicate_to == -1);
    CHECK(c.secure_port == 9933);
    CHECK_FALSE(c.has_port);
    CHECK(c.port == 0);
    CHECK(c.bind == "0.0.0.0"); // a DNS name: all interfaces
    CHECK_FALSE(c.enable_root_cas);
    CHECK(c.tls.certificate.empty());
    CHECK(c.tls.certificate_authority.empty());
    CHECK(c.tls.private_key.empty());
    CHECK(c.ping_interval_ms == 1000);
    CHECK(c.ping_timeout_ms == 3000);
    CHECK(c.log_retention_ms == 7 * 24 * 3600 * 1000LL);
    CHECK(c.tombstone_retention_ms == c.log_retention_ms);
    CHECK(c.max_clock_skew_ms == 60000);
    CHECK(c.max_frame_bytes == 16 * 1024 * 1024);
    CHECK(c.max_bytes_in_flight == 8 * 1024 * 1024);
    CHECK(c.reconnect_min_ms == 100);
    CHECK(c.reconnect_max_ms == 10000);
}

TEST_CASE("config: bind defaults to the hostname when it is an IP literal", "[unit][config]") {
    CHECK(ok("replication:\n  hostname: 127.0.0.2\n").bind == "127.0.0.2");
    CHECK(ok("replication:\n  hostname: '::1'\n").bind == "::1");
    CHECK(ok("replication:\n  hostname: '[::1]'\n").hostname == "::1");
    CHECK(ok("replication:\n  hostname: 127.0.0.2\n  bind: 0.0.0.0\n").bind == "0.0.0.0");
    CHECK(ok("replication:\n  hostname: a\n  bind: '[::]'\n").bind == "::");
}

TEST_CASE("config: the HarperDB documentation's example loads field by field", "[unit][config]") {
    temp_dir dir;
    const std::string cert = dir.write("cert.pem", "x"), ca = dir.write("ca.pem", "x"), key = dir.write("key.pem", "x");
    const node_config c = ok(yaml(R"(
replication:
  hostname: 127.0.0.2        # this node's name
  routes:
    - 127.0.0.3
    - wss://127.0.0.4:9933
    - hostname: 127.0.0.5
      port: 9933
  databases: [main]
  shard: 1
  replicateTo: 2
  securePort: 9933
  port: 9934
  bind: 127.0.0.2
  enableRootCAs: false
tls:
  certificate: )" + cert + R"(
  certificateAuthority: )" + ca + R"(
  privateKey: )" + key + "\n"));
    CHECK(c.hostname == "127.0.0.2");
    REQUIRE(c.routes.size() == 3);
    CHECK(c.routes[0].url() == "wss://127.0.0.3:9933"); // securePort is written: secure
    CHECK(c.routes[1].url() == "wss://127.0.0.4:9933");
    CHECK(c.routes[2].url() == "wss://127.0.0.5:9933");
    CHECK_FALSE(c.all_databases);
    REQUIRE(c.databases.size() == 1);
    CHECK(c.databases[0].name == "main");
    CHECK_FALSE(c.databases[0].sharded);
    CHECK(c.shard == 1);
    CHECK(c.replicate_to == 2);
    CHECK(c.secure_port == 9933);
    CHECK(c.has_port);
    CHECK(c.port == 9934);
    CHECK(c.bind == "127.0.0.2");
    CHECK_FALSE(c.enable_root_cas);
    CHECK(c.tls.certificate == cert);
    CHECK(c.tls.certificate_authority == ca);
    CHECK(c.tls.private_key == key);
}

TEST_CASE("config: routes as hostnames or IPs take the default port and scheme", "[unit][config]") {
    SECTION("no ports written: wss on 9933") {
        const node_config c = ok("replication:\n  hostname: a\n  routes: [b, 10.0.0.7, '::1', 'c:9000', '[fe80::1]:9001']\n");
        REQUIRE(c.routes.size() == 5);
        CHECK(c.routes[0].url() == "wss://b:9933");
        CHECK(c.routes[1].url() == "wss://10.0.0.7:9933");
        CHECK(c.routes[2].hostname == "::1");
        CHECK(c.routes[2].url() == "wss://[::1]:9933");
        CHECK(c.routes[3].url() == "wss://c:9000"); // host:port keeps the default scheme
        CHECK(c.routes[4].hostname == "fe80::1");
        CHECK(c.routes[4].url() == "wss://[fe80::1]:9001");
        for (const auto& r : c.routes) {
            CHECK(r.start_time.empty());
            CHECK(r.start_time_ms == -1);
            CHECK(r.shard == -1);
        }
    }
    SECTION("securePort written: wss on it, even with a plain port") {
        const node_config c = ok("replication:\n  hostname: a\n  securePort: 9100\n  port: 9101\n  routes: [b]\n");
        CHECK(c.routes.at(0).url() == "wss://b:9100");
    }
    SECTION("only a plain port written: ws on it") {
        const node_config c = ok("replication:\n  hostname: a\n  port: 9934\n  routes: [b]\n");
        CHECK(c.secure_port == 9933);
        CHECK(c.routes.at(0).url() == "ws://b:9934");
    }
    SECTION("routes: with nothing under it is no routes") {
        CHECK(ok("replication:\n  hostname: a\n  routes:\n").routes.empty());
        CHECK(ok("replication:\n  hostname: a\n  routes: []\n").routes.empty());
    }
}

TEST_CASE("config: routes as URLs", "[unit][config]") {
    const node_config c = ok(yaml(R"(
replication:
  hostname: a
  port: 9934
  routes:
    - wss://b:9000
    - ws://c:9001
    - WSS://d:9002/
    - wss://e
    - ws://f
    - wss://[::1]:9003
    - ws://[2001:db8::7]
)"));
    REQUIRE(c.routes.size() == 7);
    CHECK(c.routes[0].url() == "wss://b:9000");
    CHECK(c.routes[1].url() == "ws://c:9001");
    CHECK(c.routes[2].url() == "wss://d:9002"); // scheme is case-insensitive, "/" is no path
    CHECK(c.routes[3].url() == "wss://e:9933"); // no port: this node's securePort
    CHECK(c.routes[4].url() == "ws://f:9934");  // no port: this node's plain port
    CHECK(c.routes[5].hostname == "::1");
    CHECK(c.routes[5].port == 9003);
    CHECK(c.routes[6].hostname == "2001:db8::7");
    CHECK(c.routes[6].url() == "ws://[2001:db8::7]:9934");
    // IP literals are kept in one spelling.
    CHECK(ok("replication:\n  hostname: a\n  routes: ['wss://[2001:DB8:0::7]:1']\n").routes.at(0).hostname ==
          "2001:db8::7");
}

TEST_CASE("config: routes as mappings", "[unit][config]") {
    const node_config c = ok(yaml(R"(
replication:
  hostname: a
  routes:
    - hostname: b
      port: 9000
    - hostname: c
    - {hostname: d, port: 9001, startTime: 2024-06-01T00:00:00Z, shard: 3}
    - hostname: e
      startTime: 1717200000000
    - hostname: f
      startTime: 2024-06-01T02:30:00.5+02:30
    - hostname: g
      startTime: 2024-06-01
    - hostname: '[::1]'
      port: 9002
)"));
    REQUIRE(c.routes.size() == 7);
    CHECK(c.routes[0].url() == "wss://b:9000");
    CHECK(c.routes[1].url() == "wss://c:9933");
    CHECK(c.routes[2].url() == "wss://d:9001");
    CHECK(c.routes[2].shard == 3);
    CHECK(c.routes[2].start_time == "2024-06-01T00:00:00Z");
    CHECK(c.routes[2].start_time_ms == 1717200000000);
    CHECK(c.routes[3].start_time == "1717200000000");
    CHECK(c.routes[3].start_time_ms == 1717200000000);
    CHECK(c.routes[4].start_time_ms == 1717200000000 + 500);
    CHECK(c.routes[5].start_time_ms == 1717200000000);
    CHECK(c.routes[6].hostname == "::1");
    CHECK(find_route(c, "::1", 9002).scheme == "wss");
}

TEST_CASE("config: databases in every form", "[unit][config]") {
    SECTION("'*' and absent mean all") {
        CHECK(ok("replication:\n  hostname: a\n  databases: '*'\n").all_databases);
        CHECK(ok("replication:\n  hostname: a\n  databases: ['*']\n").all_databases);
        CHECK(ok("replication:\n  hostname: a\n  databases: \"*\"\n").databases.empty());
    }
    SECTION("names, mappings, and a mix") {
        const node_config c = ok(yaml(R"(
replication:
  hostname: a
  shard: 2
  databases:
    - main
    - name: system
    - {name: data, sharded: true}
    - name: logs
      sharded: false
)"));
        CHECK_FALSE(c.all_databases);
        REQUIRE(c.databases.size() == 4);
        CHECK(c.databases[0].name == "main");
        CHECK(c.databases[1].name == "system");
        CHECK_FALSE(c.databases[1].sharded);
        CHECK(c.databases[2].name == "data");
        CHECK(c.databases[2].sharded);
        CHECK(c.databases[3].name == "logs");
        CHECK_FALSE(c.databases[3].sharded);
    }
    SECTION("one database without the list") {
        const node_config c = ok("replication:\n  hostname: a\n  databases: main\n");
        CHECK_FALSE(c.all_databases);
        REQUIRE(c.databases.size() == 1);
        CHECK(c.databases[0].name == "main");
    }
}

TEST_CASE("config: tuning keys, with units", "[unit][config]") {
    const node_config c = ok(yaml(R"(
replication:
  hostname: a
  pingInterval: 5s
  pingTimeout: 20000
  logRetention: 30d
  tombstoneRetention: 60d
  maxClockSkew: 2m
  maxFrameBytes: 32MiB
  maxBytesInFlight: 1048576
  reconnectMinDelay: 250ms
  reconnectMaxDelay: 1h
)"));
    CHECK(c.ping_interval_ms == 5000);
    CHECK(c.ping_timeout_ms == 20000);
    CHECK(c.log_retention_ms == 30LL * 24 * 3600 * 1000);
    CHECK(c.tombstone_retention_ms == 60LL * 24 * 3600 * 1000);
    CHECK(c.max_clock_skew_ms == 120000);
    CHECK(c.max_frame_bytes == 32 * 1024 * 1024);
    CHECK(c.max_bytes_in_flight == 1024 * 1024);
    CHECK(c.reconnect_min_ms == 250);
    CHECK(c.reconnect_max_ms == 3600 * 1000);

    SECTION("defaults that follow other keys") {
        const node_config d = ok(yaml(R"(
replication:
  hostname: a
  pingInterval: 2s
  logRetention: 30d
  reconnectMinDelay: 20s
)"));
        CHECK(d.ping_timeout_ms == 6000);                   // 3 x pingInterval
        CHECK(d.tombstone_retention_ms == d.log_retention_ms); // never shorter than the log
        CHECK(d.reconnect_max_ms == 20000);                 // never below the minimum
    }
}

TEST_CASE("config: the certificate keys may also sit under replication", "[unit][config]") {
    temp_dir dir;
    const std::string cert = dir.write("c.pem", "x"), key = dir.write("k.pem", "x");
    const node_config c = ok("replication:\n  hostname: a\n  certificate: " + cert + "\n  privateKey: " + key + "\n");
    CHECK(c.tls.certificate == cert);
    CHECK(c.tls.private_key == key);
    CHECK(c.tls.certificate_authority.empty());
}

TEST_CASE("config: JSON text", "[unit][config]") {
    const node_config c = ok(R"({"replication": {"hostname": "a", "routes": ["b", "wss://c:9000",
        {"hostname": "d", "port": 9001}], "databases": [{"name": "main", "sharded": true}], "shard": 4,
        "enableRootCAs": true}})");
    REQUIRE(c.routes.size() == 3);
    CHECK(c.routes[1].url() == "wss://c:9000");
    CHECK(c.routes[2].url() == "wss://d:9001");
    CHECK(c.databases.at(0).sharded);
    CHECK(c.shard == 4);
    CHECK(c.enable_root_cas);
    // One line, no leading brace: recognised by "replication" followed by ':'.
    CHECK(ok(R"(  {"replication":{"hostname":"a"}})").hostname == "a");
    CHECK(ok("replication: {hostname: a}").hostname == "a");
}

TEST_CASE("config: a file path, with certificate paths relative to the file", "[unit][config]") {
    temp_dir dir;
    dir.write("certs/cert.pem", "x");
    dir.write("certs/key.pem", "x");
    const std::string path = dir.write("node.yaml", yaml(R"(
replication:
  hostname: a
  routes: [b]
tls:
  certificate: certs/cert.pem
  privateKey: ./certs/../certs/key.pem
)"));
    const node_config c = ok(path);
    CHECK(c.hostname == "a");
    CHECK(c.routes.at(0).url() == "wss://b:9933");
    CHECK(c.tls.certificate == (dir.path / "certs/cert.pem").string());
    CHECK(c.tls.private_key == (dir.path / "certs/key.pem").string());

    SECTION("errors in a file name the file") {
        const std::string bad = dir.write("bad.yaml", "replication:\n  hostname: a\n  port: x\n");
        const std::string m = err(bad);
        CHECK(m == "replication.port (line 3 of '" + bad + "'): must be an integer between 1 and 65535, not 'x'");
    }
}

TEST_CASE("config: a missing or unreadable file", "[unit][config]") {
    temp_dir dir;
    const std::string missing = (dir.path / "nope.yaml").string();
    CHECK(err(missing) == "cannot read config file '" + missing + "': No such file or directory");
    CHECK(err(dir.path.string()) == "cannot read config file '" + dir.path.string() + "': Is a directory");
    // A one-line snippet without "replication:" is taken for a path; the message says so.
    CHECK(err("hostname: a").find("inline YAML must contain a 'replication:' section") != std::string::npos);
    CHECK(err("").find("config is empty") == 0);
    CHECK(err("   ").find("config is empty") == 0);
}

TEST_CASE("config: canonical() ignores form, order and spacing", "[unit][config]") {
    const std::string a = ok(yaml(R"(
replication:
  hostname: a
  port: 9934
  securePort: 9933
  routes:
    - b
    - wss://c:9000
    - hostname: d
      startTime: 2024-06-01T00:00:00Z
  databases: [main, system]
)")).canonical();
    const std::string b = ok(yaml(R"(
# the same node, written differently
replication:
    databases:
      - name: system
      - {name: main, sharded: false}
    routes:
      - {hostname: d, port: 9933, startTime: 1717200000000}
      - WSS://c:9000/
      - b:9933
    securePort:   9933
    port: 9934
    hostname: a
)")).canonical();
    const std::string c = ok(R"({"replication":{"routes":["wss://b:9933",{"hostname":"c","port":9000},
        {"hostname":"d","startTime":"2024-06-01T00:00:00.000+00:00"}],"hostname":"a","databases":["main","system"],
        "port":9934,"securePort":9933}})").canonical();
    CHECK(a == b);
    CHECK(a == c);
    CHECK(a.find("\"hostname\":\"a\"") != std::string::npos);

    const std::string base = "replication:\n  hostname: a\n  routes: [b]\n";
    const std::string same = ok(base).canonical();
    CHECK(ok(base).canonical() == same);
    CHECK(ok("replication:\n  hostname: a2\n  routes: [b]\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [b, c]\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: ['b:9000']\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [ws://b:9933]\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [b]\n  port: 9000\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [b]\n  databases: [main]\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [b]\n  shard: 0\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [b]\n  pingInterval: 2000\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  routes: [{hostname: b, shard: 1}]\n").canonical() != same);
    CHECK(ok("replication:\n  hostname: a\n  shard: 1\n  databases: [main]\n").canonical() !=
          ok("replication:\n  hostname: a\n  shard: 1\n  databases: [{name: main, sharded: true}]\n").canonical());
}

TEST_CASE("config: other harperdb-config.yaml sections are ignored", "[unit][config]") {
    const node_config c = ok(yaml(R"(
http:
  port: 9926
logging:
  level: warn
databases:
  data:
    path: /var/data
replication:
  hostname: a
)"));
    CHECK(c.hostname == "a");
    CHECK(c.all_databases);
}

TEST_CASE("config: errors in the document's structure", "[unit][config]") {
    expect_error("replication:\n  hostname: a\n  securePrt: 9000\n", "replication.securePrt", 3,
                 "unknown key; did you mean 'securePort'?");
    expect_error("replication:\n  hostname: a\n  secure_port: 9000\n", "replication.secure_port", 3,
                 "did you mean 'securePort'?");
    expect_error("replication:\n  hostname: a\n  colour: red\n", "replication.colour", 3,
                 "unknown key (known keys: hostname, routes,");
    expect_error("replication:\n  hostname: a\n  failOver: false\n", "replication.failOver", 3,
                 "is a HarperDB setting that hdbrepl does not implement");
    expect_error("replication:\n  hostname: a\ntls:\n  privateKeys: /k.pem\n", "tls.privateKeys", 4,
                 "did you mean 'privateKey'?");
    expect_error("replication:\n  hostname: a\ntls:\n  ciphers: HIGH\n", "tls.ciphers", 4, "does not implement");
    expect_error("replication:\n  hostname: a\n  routes:\n    - hostname: b\n      prot: 1\n",
                 "replication.routes[0].prot", 5, "did you mean 'port'?");
    expect_error("replication:\n  hostname: a\n  databases:\n    - {name: main, shardd: true}\n",
                 "replication.databases[0].shardd", 4, "did you mean 'sharded'?");
    expect_error("replication:\n  hostname: a\n  hostname: b\n", "replication.hostname", 3,
                 "is given twice (also at line 2)");
    expect_error("replication:\n  hostname: a\nroutes:\n  - b\n", "routes", 3,
                 "belongs under 'replication:' (check its indentation)");
    expect_error("replication:\n  hostname: a\ncertificate: /c.pem\n", "certificate", 3, "belongs under 'tls:'");
    expect_error("replication:\n  port: 9934\nhostname: a\n", "hostname", 3, "belongs under 'replication:'");
    expect_error("replication:\n  hostname: a\ndatabases: [main]\n", "databases", 3, "belongs under 'replication:'");
    expect_error("replication:\n  hostname: a\ntsl:\n  certificate: /c.pem\n", "tsl", 3, "did you mean 'tls'?");
    expect_error("http:\n  port: 1\n", "replication", 1, "is required");
    expect_error("replication:\n", "replication", 1, "is empty");
    expect_error("replication: [a]\n", "replication", 1, "must be a mapping");
    expect_error("replication:\n  port: 9000\n", "replication.hostname", 1, "is required");
    expect_error("- replication\n- tls\n", "config", 1, "must be a mapping with a 'replication:' section");
    expect_error("replication:\n  hostname: a\n---\nreplication:\n  hostname: b\n", "config", 4,
                 "more than one YAML document");
    // Found by fuzzing: yaml-cpp 0.7's LoadAll loops, allocating, on a top-level ','.
    expect_error(",a\n", "config", 1, "a ',' outside a [list] or {mapping}");
    expect_error("'a' ,b\n", "config", 1, "a ',' outside a [list] or {mapping}");
    expect_error("replication:\n  hostname: a\n,\n", "config", 3, "not valid YAML");
}

TEST_CASE("config: errors in scalar values", "[unit][config]") {
    const std::string h = "replication:\n  hostname: a\n";
    expect_error("replication:\n  hostname: ''\n", "replication.hostname", 2, "must not be empty");
    expect_error("replication:\n  hostname:\n", "replication.hostname", 2, "has no value");
    expect_error("replication:\n  hostname: [a]\n", "replication.hostname", 2, "must be a string, not a list");
    expect_error("replication:\n  hostname: 'a b'\n", "replication.hostname", 2, "space");
    expect_error("replication:\n  hostname: a:9000\n", "replication.hostname", 2, "not an IPv6 address");
    expect_error("replication:\n  hostname: wss://a:9000\n", "replication.hostname", 2, "is a URL");
    expect_error("replication:\n  hostname: 10.0.0.256\n", "replication.hostname", 2, "not a valid one");
    expect_error(h + "  port: abc\n", "replication.port", 3,
                 "must be an integer between 1 and 65535, not 'abc'");
    expect_error(h + "  port: -1\n", "replication.port", 3, "between 1 and 65535, not '-1'");
    expect_error(h + "  port: 70000\n", "replication.port", 3, "not '70000'");
    expect_error(h + "  port: 9933\n", "replication.port", 3, "must differ from securePort (9933)");
    expect_error(h + "  securePort: 0\n", "replication.securePort", 3, "between 1 and 65535, not '0'");
    expect_error(h + "  securePort: 99.5\n", "replication.securePort", 3, "not '99.5'");
    expect_error(h + "  shard: 65536\n", "replication.shard", 3, "between 0 and 65535, not '65536'");
    expect_error(h + "  shard: -1\n", "replication.shard", 3, "between 0 and 65535");
    expect_error(h + "  replicateTo: all\n", "replication.replicateTo", 3, "must be an integer");
    expect_error(h + "  enableRootCAs: maybe\n", "replication.enableRootCAs", 3, "must be true or false, not 'maybe'");
    expect_error(h + "  bind: localhost\n", "replication.bind", 3, "must be an IP address");
    expect_error(h + "  pingInterval: fast\n", "replication.pingInterval", 3, "must be a duration");
    expect_error(h + "  pingInterval: 2s\n  pingTimeout: 1s\n", "replication.pingTimeout", 4,
                 "must be longer than pingInterval (2s)");
    expect_error(h + "  logRetention: 7\n", "replication.logRetention", 3, "must be between 1s and 3650d, not '7'");
    expect_error(h + "  logRetention: 10d\n  tombstoneRetention: 5d\n", "replication.tombstoneRetention", 4,
                 "must be at least logRetention (10d)");
    expect_error(h + "  maxFrameBytes: 16MB\n", "replication.maxFrameBytes", 3, "KiB, MiB or GiB");
    expect_error(h + "  maxFrameBytes: 2GiB\n", "replication.maxFrameBytes", 3, "between 64KiB and 1GiB");
    expect_error(h + "  maxBytesInFlight: 99999999999999999999999\n", "replication.maxBytesInFlight", 3,
                 "must be a size");
    expect_error(h + "  reconnectMinDelay: 5s\n  reconnectMaxDelay: 1s\n", "replication.reconnectMaxDelay", 4,
                 "must be at least reconnectMinDelay (5s)");
}

TEST_CASE("config: errors in routes", "[unit][config]") {
    const std::string h = "replication:\n  hostname: a\n  routes:\n    - b\n";
    expect_error("replication:\n  hostname: a\n  routes: b\n", "replication.routes", 3, "must be a list of peers");
    expect_error(h + "    - [c]\n", "replication.routes[1]", 5, "must be a hostname, a ws:// or wss:// URL");
    expect_error(h + "    - http://c:9000\n", "replication.routes[1]", 5, "the scheme must be ws:// or wss://");
    expect_error(h + "    - wss://c:9000/path\n", "replication.routes[1]", 5, "no path, query or fragment");
    expect_error(h + "    - wss://c:9000?x=1\n", "replication.routes[1]", 5, "no path, query or fragment");
    expect_error(h + "    - wss://user:pw@c:9000\n", "replication.routes[1]", 5, "must not carry credentials");
    expect_error(h + "    - wss://c:abc\n", "replication.routes[1]", 5,
                 "the port must be an integer between 1 and 65535, not 'abc'");
    expect_error(h + "    - wss://c:0\n", "replication.routes[1]", 5, "not '0'");
    expect_error(h + "    - wss://c:\n", "replication.routes[1]", 5, "ends with ':', which YAML reads as a mapping key");
    expect_error(h + "    - 'wss://c:'\n", "replication.routes[1]", 5, "the port must be an integer between 1 and 65535, not ''");
    expect_error(h + "    - c:70000\n", "replication.routes[1]", 5, "not '70000'");
    expect_error(h + "    - wss://::1:9933\n", "replication.routes[1]", 5, "must be in brackets");
    expect_error(h + "    - wss://[10.0.0.1]:9933\n", "replication.routes[1]", 5, "only for IPv6");
    expect_error(h + "    - wss://[::1\n", "replication.routes[1]", 5, "without a closing ']'");
    expect_error(h + "    - wss://:9933\n", "replication.routes[1]", 5, "the hostname must not be empty");
    expect_error(h + "    - 'c d'\n", "replication.routes[1]", 5, "space");
    expect_error(h + "    - ws://c\n", "replication.routes[1]", 5, "a ws:// route needs a port");
    expect_error(h + "    - port: 9000\n", "replication.routes[1]", 5, "needs 'hostname'");
    expect_error(h + "    - hostname: c\n      port: 0\n", "replication.routes[1].port", 6,
                 "must be an integer between 1 and 65535, not '0'");
    expect_error(h + "    - hostname: ''\n", "replication.routes[1].hostname", 5, "must not be empty");
    expect_error(h + "    - hostname: c\n      shard: 65536\n", "replication.routes[1].shard", 6,
                 "between 0 and 65535");
    expect_error(h + "    - hostname: c\n      startTime: yesterday\n", "replication.routes[1].startTime", 6,
                 "must be an ISO 8601 UTC time");
    expect_error(h + "    - hostname: c\n      startTime: 2024-06-01T00:00:00\n", "replication.routes[1].startTime",
                 6, "needs 'Z' or an offset");
    expect_error(h + "    - hostname: c\n      startTime: 2024-02-30\n", "replication.routes[1].startTime", 6,
                 "ISO 8601");
    expect_error(h + "    - hostname: c\n      excludeTables: [x]\n", "replication.routes[1].excludeTables", 6,
                 "does not implement");
}

TEST_CASE("config: duplicate routes and routes to this node", "[unit][config]") {
    expect_error("replication:\n  hostname: a\n  routes:\n    - b\n    - wss://B:9933\n", "replication.routes[1]", 5,
                 "repeats routes[0] (line 4)");
    expect_error("replication:\n  hostname: a\n  routes:\n    - '::1'\n    - wss://[0:0::1]:9933\n",
                 "replication.routes[1]", 5, "repeats routes[0]");
    expect_error("replication:\n  hostname: a\n  routes:\n    - b\n    - hostname: b\n", "replication.routes[1]", 5,
                 "the same peer b port 9933");
    expect_error("replication:\n  hostname: node-a\n  routes:\n    - b\n    - NODE-A\n", "replication.routes[1]", 5,
                 "points at this node itself");
    expect_error("replication:\n  hostname: a\n  port: 9934\n  routes:\n    - ws://a:9934\n", "replication.routes[0]",
                 5, "points at this node itself (a port 9934)");
    expect_error("replication:\n  hostname: '::1'\n  routes:\n    - wss://[0::1]\n", "replication.routes[0]", 4,
                 "points at this node itself");
    expect_error("replication:\n  hostname: a\n  bind: 10.0.0.1\n  routes:\n    - 10.0.0.1\n",
                 "replication.routes[0]", 5, "points at this node itself");
    // The same host on another port is another node.
    CHECK(ok("replication:\n  hostname: 127.0.0.1\n  routes: ['127.0.0.1:9943']\n").routes.size() == 1);
    // Different ports of one host are different peers.
    CHECK(ok("replication:\n  hostname: a\n  routes: ['b:1', 'b:2']\n").routes.size() == 2);
}

TEST_CASE("config: errors in databases", "[unit][config]") {
    const std::string h = "replication:\n  hostname: a\n";
    expect_error(h + "  databases: []\n", "replication.databases", 3, "is an empty list");
    expect_error(h + "  databases:\n", "replication.databases", 3, "has no value");
    expect_error(h + "  databases: ['*', main]\n", "replication.databases[0]", 3, "cannot be combined");
    expect_error(h + "  databases:\n    - main\n    - MAIN\n", "replication.databases[1]", 5,
                 "lists database 'MAIN' twice (also at line 4)");
    expect_error(h + "  shard: 1\n  databases:\n    - {name: '*', sharded: true}\n", "replication.databases[0].name", 5,
                 "is written alone");
    expect_error(h + "  databases: [temp]\n", "replication.databases[0]", 3, "cannot be replicated");
    expect_error(h + "  databases: [[main]]\n", "replication.databases[0]", 3, "must be a database name or a mapping");
    expect_error(h + "  databases:\n    - {sharded: true}\n", "replication.databases[0]", 4, "needs 'name'");
    expect_error(h + "  databases:\n    - name: main\n      sharded: yes please\n",
                 "replication.databases[0].sharded", 5, "must be true or false");
    expect_error(h + "  databases:\n    - name: main\n      sharded: true\n", "replication.databases[0].sharded", 5,
                 "needs replication.shard");
}

TEST_CASE("config: errors in tls", "[unit][config]") {
    temp_dir dir;
    const std::string cert = dir.write("c.pem", "x"), key = dir.write("k.pem", "x");
    const std::string h = "replication:\n  hostname: a\n";
    expect_error(h + "tls:\n  certificate: " + cert + "\n", "tls.certificate", 4, "needs privateKey too");
    expect_error(h + "tls:\n  privateKey: " + key + "\n", "tls.privateKey", 4, "needs certificate too");
    expect_error(h + "tls:\n  certificate: " + dir.path.string() + "/missing.pem\n  privateKey: " + key + "\n",
                 "tls.certificate", 4, "missing.pem': No such file or directory");
    expect_error(h + "tls:\n  certificateAuthority: " + dir.path.string() + "\n", "tls.certificateAuthority", 4,
                 "is a directory");
    expect_error(h + "tls:\n  certificate: ''\n", "tls.certificate", 4, "must not be empty");
    expect_error(h + "tls: [a]\n", "tls", 3, "not a list");
    expect_error(h + "tls: yes\n", "tls", 3, "must be a mapping");
    expect_error(h + "  certificate: " + cert + "\ntls:\n  certificate: " + cert + "\n  privateKey: " + key + "\n",
                 "replication.certificate", 3, "is also set as tls.certificate (line 5)");
}

TEST_CASE("config: malformed YAML and JSON report line and column", "[unit][config]") {
    std::string m = err("replication:\n  hostname: a\n  routes: [b, c\n");
    CHECK(m.rfind("config (line ", 0) == 0);
    CHECK(m.find(", column ") != std::string::npos);
    CHECK(m.find("not valid YAML or JSON") != std::string::npos);

    m = err(R"({"replication": {"hostname": "a" "port": 1}})");
    CHECK(m.rfind("config (line 1, column 34): not valid YAML or JSON", 0) == 0);

    m = err(R"({"replication": {"hostname": "a}})");
    CHECK(m.rfind("config (line 1, column ", 0) == 0);

    // yaml-cpp takes ",," as an empty key: still an error that names the place.
    m = err(R"({"replication": {"hostname": "a",, }})");
    CHECK(m.rfind("replication (line 1): has an empty key", 0) == 0);

    m = err("replication:\n  hostname: a\n   port: 1\n  bind: [\n");
    CHECK(m.rfind("config (line ", 0) == 0);

    m = err("replication:\n\thostname: a\n");
    CHECK(m.rfind("config (line 2, column ", 0) == 0);

    m = err("replication:\n  hostname: a\n  - b\n");
    CHECK(m.rfind("config (line 3, column 3): not valid YAML or JSON", 0) == 0);
}

TEST_CASE("config: hostile input never throws", "[unit][config]") {
    const std::string inputs[] = {
        std::string(5000, '['),
        std::string(5000, '{'),
        "replication: &a [*a]\n",
        "replication:\n  hostname: a\n  routes: *nope\n",
        "replication:\n  ? [a, b]\n  : c\n",
        "replication:\n  hostname: !!binary aGVsbG8=\n",
        "replication:\n  hostname: a\n  <<: {port: 1}\n",
        std::string("replication:\n  hostname: a\0b\n", 28),
        "{\"replication\": null}",
        "replication: {hostname: a, routes: [{hostname: {x: 1}}]}",
        "replication: {hostname: a, databases: {name: [1]}}",
    };
    for (const auto& in : inputs) {
        INFO(in.substr(0, 80));
        std::variant<node_config, config_error> r;
        REQUIRE_NOTHROW(r = load_node_config(in));
        if (auto* e = std::get_if<config_error>(&r)) CHECK_FALSE(e->message.empty());
    }
}

// ---------------------------------------------------------------- the pieces on their own

namespace cd = hdbrepl::ext::config_detail;

TEST_CASE("config values: integers are plain decimal", "[unit][config]") {
    CHECK(cd::parse_integer("42") == 42);
    CHECK(cd::parse_integer("+42") == 42);
    CHECK(cd::parse_integer("-7") == -7);
    CHECK(cd::parse_integer("0") == 0);
    CHECK(cd::parse_integer("9223372036854775807") == std::numeric_limits<std::int64_t>::max());
    for (const char* bad : {"", "+", "++1", "0x10", "1e3", "1.0", " 1", "1 ", "12a", "9223372036854775808"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(cd::parse_integer(bad));
    }
}

TEST_CASE("config values: durations in milliseconds or with a unit", "[unit][config]") {
    CHECK(cd::parse_duration_ms("30000") == 30000);
    CHECK(cd::parse_duration_ms("10ms") == 10);
    CHECK(cd::parse_duration_ms("30s") == 30000);
    CHECK(cd::parse_duration_ms("5 m") == 5 * 60000);
    CHECK(cd::parse_duration_ms("2H") == 2 * 3600000);
    CHECK(cd::parse_duration_ms("7d") == 7 * 86400000LL);
    CHECK(cd::parse_duration_ms("-5") == -5); // a number; the loader's bounds refuse it
    for (const char* bad : {"", "s", "1.5s", "-1s", "+1s", "30 sec", "30s ", "1w", "9223372036854775807d"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(cd::parse_duration_ms(bad));
    }
}

TEST_CASE("config values: sizes in bytes or with a binary unit", "[unit][config]") {
    CHECK(cd::parse_bytes("1048576") == 1048576);
    CHECK(cd::parse_bytes("3b") == 3);
    CHECK(cd::parse_bytes("64 kib") == 64 * 1024);
    CHECK(cd::parse_bytes("16MiB") == 16 * 1024 * 1024);
    CHECK(cd::parse_bytes("2GiB") == 2 * cd::gib);
    for (const char* bad : {"", "MiB", "1MB", "1k", "1.5MiB", "-1KiB", "9223372036854775807GiB"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(cd::parse_bytes(bad));
    }
}

TEST_CASE("config values: durations and sizes in messages use the largest whole unit", "[unit][config]") {
    CHECK(cd::format_duration(0) == "0ms");
    CHECK(cd::format_duration(1500) == "1500ms");
    CHECK(cd::format_duration(30000) == "30s");
    CHECK(cd::format_duration(90000) == "90s");
    CHECK(cd::format_duration(60000) == "1m");
    CHECK(cd::format_duration(cd::hour_ms) == "1h");
    CHECK(cd::format_duration(3650 * cd::day_ms) == "3650d");
    CHECK(cd::format_bytes(0) == "0 bytes");
    CHECK(cd::format_bytes(1000) == "1000 bytes");
    CHECK(cd::format_bytes(64 * cd::kib) == "64KiB");
    CHECK(cd::format_bytes(16 * cd::mib) == "16MiB");
    CHECK(cd::format_bytes(std::int64_t{1} << 50) == "1048576GiB");
}

TEST_CASE("config values: ISO 8601 times", "[unit][config]") {
    const std::int64_t june = 1717200000000; // 2024-06-01T00:00:00Z
    CHECK(cd::parse_iso8601_utc("1970-01-01") == 0);
    CHECK(cd::parse_iso8601_utc("2024-06-01") == june);
    CHECK(cd::parse_iso8601_utc("2024-06-01T00:00:00Z") == june);
    CHECK(cd::parse_iso8601_utc("2024-06-01t00:00z") == june);
    CHECK(cd::parse_iso8601_utc("2024-06-01T02:00:00+02:00") == june);
    CHECK(cd::parse_iso8601_utc("2024-06-01T02:00+0200") == june);
    CHECK(cd::parse_iso8601_utc("2024-05-31T23:00:00-01:00") == june);
    CHECK(cd::parse_iso8601_utc("2024-06-01 00:00:00.5Z") == june + 500);
    CHECK(cd::parse_iso8601_utc("2024-06-01T00:00:00,123456Z") == june + 123);
    CHECK(cd::parse_iso8601_utc("2024-02-29"));
    for (const char* bad : {"", "2024-06-01T00:00:00", "2024-06-01T00:00", "2023-02-29", "2024-13-01", "2024-04-31",
                            "2024-6-01", "2024-06-01Z", "2024-06-01T24:00:00Z", "2024-06-01T00:60:00Z",
                            "2024-06-01T00:00:60Z", "2024-06-01T00:00:00.Z", "2024-06-01T00:00:00+2:00",
                            "2024-06-01T00:00:00+24:00", "2024-06-01T00:00:00Z ", "1969-12-31T23:59:59Z",
                            "1970-01-01T00:30:00+01:00"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(cd::parse_iso8601_utc(bad));
    }
}

TEST_CASE("config values: IP literals and hostnames", "[unit][config]") {
    CHECK(cd::ip_text("127.0.0.1") == "127.0.0.1");
    CHECK(cd::ip_text("0:0::1") == "::1");
    CHECK(cd::ip_text("::FFFF:1.2.3.4") == "::ffff:1.2.3.4");
    CHECK_FALSE(cd::ip_text("1.2.3"));
    CHECK_FALSE(cd::ip_text("node-1"));
    CHECK_FALSE(cd::ip_text("[::1]"));

    CHECK(cd::hostname_problem("node-1.example.com").empty());
    CHECK(cd::hostname_problem("under_score").empty());
    CHECK(cd::hostname_problem("::1").empty());
    CHECK(cd::hostname_problem("10.0.0.1").empty());
    CHECK(cd::hostname_problem("") == "must not be empty");
    CHECK(cd::hostname_problem("wss://a").rfind("is a URL", 0) == 0);
    CHECK(cd::hostname_problem("a:9933").rfind("contains ':' but is not an IPv6 address", 0) == 0);
    CHECK(cd::hostname_problem(std::string(254, 'a')) == "is longer than 253 characters");
    CHECK(cd::hostname_problem(std::string(253, 'a')).empty());
    CHECK(cd::hostname_problem("a b") == "contains a space or control character");
    CHECK(cd::hostname_problem("a/b") == "contains '/', which a hostname cannot contain");
    for (const char* h : {".a", "a.", "a..b"})
        CHECK(cd::hostname_problem(h) == "has an empty label (a leading, trailing or doubled '.')");
    CHECK(cd::hostname_problem("300.1.1.1") == "looks like an IPv4 address but is not a valid one");

    CHECK(cd::host_key("Node.Example") == "node.example");
    CHECK(cd::host_key("0:0::1") == "::1");
    CHECK(cd::strip_ipv6_brackets("[::1]") == "::1");
    CHECK(cd::strip_ipv6_brackets("[host]") == "[host]");
    CHECK(cd::strip_ipv6_brackets("::1") == "::1");
}

TEST_CASE("config text: suggestions and quoting", "[unit][config]") {
    CHECK(cd::edit_distance("tsl", "tls") == 1);
    CHECK(cd::edit_distance("", "abc") == 3);
    CHECK(cd::closest("tsl", {"replication", "tls"}) == "tls");
    CHECK(cd::closest("secure_port", cd::replication_keys) == "securePort");
    CHECK(cd::closest("PingIntervall", cd::replication_keys) == "pingInterval");
    CHECK(cd::closest("abc", {"tls"}).empty()); // short names need a near match
    CHECK(cd::closest("completelyDifferent", cd::replication_keys).empty());
    CHECK(cd::join({"a", "b", "c"}) == "a, b, c");
    CHECK(cd::quote("a\nb\tc") == "'a b c'");
    CHECK(cd::quote(std::string(70, 'x')) == "'" + std::string(60, 'x') + "...'");
}

TEST_CASE("config file: text or path, and the size cap", "[unit][config]") {
    CHECK(cd::looks_like_text("replication:\n  hostname: a"));
    CHECK(cd::looks_like_text("  {\"replication\": {}}"));
    CHECK(cd::looks_like_text("replication: {hostname: a}"));
    CHECK(cd::looks_like_text("'replication' : {hostname: a}"));
    CHECK_FALSE(cd::looks_like_text("/etc/hdbrepl/harperdb-config.yaml"));
    CHECK_FALSE(cd::looks_like_text("replication_node.yaml"));

    temp_dir d;
    std::string text;
    CHECK_FALSE(cd::read_config_file(d.write("ok.yaml", "replication:\n  hostname: a\n"), text));
    CHECK(text == "replication:\n  hostname: a\n");
    text.clear();
    const auto big = cd::read_config_file(d.write("big.yaml", std::string(cd::max_config_bytes + 1, '#')), text);
    REQUIRE(big);
    CHECK(big->find("larger than 1 MiB") != std::string::npos);
    text.clear();
    const auto missing = cd::read_config_file((d.path / "none.yaml").string(), text);
    REQUIRE(missing);
    CHECK(missing->rfind("cannot read config file '", 0) == 0);
}
