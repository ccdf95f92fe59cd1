// Writes the encoder-made seed inputs of the fuzz targets (valid frames, records, tokens,
// certificates) into <corpus dir>/<target>/. Run once after a format change and commit the
// output; the hand-written seeds (configs, JSON bodies, regressions) sit beside these.
//   cmake --build build-fuzz --target fuzz_seeds && build-fuzz/tests/fuzz/fuzz_seeds tests/fuzz/corpus
#include "engine/txn_record.hpp"
#include "replication/wire.hpp"
#include "security/credentials.hpp"
#include "security/pki.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

using namespace hdbrepl;
using namespace hdbrepl::engine;

namespace {

std::filesystem::path root;

void write(const std::string& target, const std::string& name, const std::string& content) {
    auto dir = root / target;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary) << content;
}
void write(const std::string& target, const std::string& name, const bytes& b) {
    write(target, name, std::string(b.begin(), b.end()));
}

txn_record sample_record() {
    txn_record r;
    r.hlc = hlc_from_ms(1764151200000) + 3;
    r.origin = "127.0.0.2";
    r.tables = {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT, \"breed\" TEXT INDEXED"},
                {"cat", "\"k\" TEXT PRIMARY KEY, \"w\" REAL NOT NULL, \"b\" BLOB"}};
    r.changes.push_back({0, change_op::put, {value::of_int(1), value::of_text("Rex"), value::null()}});
    r.changes.push_back({0, change_op::del, {value::of_int(-7)}});
    r.changes.push_back({1, change_op::put, {value::of_text("tom"), value::of_real(4.5), value::of_blob(std::string("\0\x01\xff", 3))}});
    r.changes.push_back({1, change_op::del, {value::of_real(2.0)}});
    return r;
}

// The sample with row placements (record format 3): two lists, one row unplaced.
txn_record placed_record() {
    txn_record r = sample_record();
    r.placements = {{"127.0.0.2", "127.0.0.3"}, {"127.0.0.2", "127.0.0.4", "127.0.0.5"}};
    r.changes[0].placement = 0;
    r.changes[1].placement = 1;
    r.changes[3].placement = 0;
    return r;
}

txn_record ddl_record() {
    txn_record r;
    r.hlc = 1;
    r.origin = "node-a";
    r.tables = {{"t", "\"id\" INTEGER PRIMARY KEY"}, {"u", "\"x\" NUMERIC PRIMARY KEY, \"y\" VARCHAR(20)"}};
    r.changes.push_back({0, change_op::create_table, {}});
    r.changes.push_back({1, change_op::rename_table, {value::of_text("u2")}});
    r.changes.push_back({0, change_op::drop_table, {}});
    return r;
}

std::string der_of(const std::string& pem_text) {
    std::string b64;
    std::size_t start = pem_text.find('\n') + 1, end = pem_text.find("-----END");
    for (std::size_t i = start; i < end; ++i)
        if (pem_text[i] != '\n') b64 += pem_text[i];
    std::string der;
    net::cred::base64_decode(b64, der);
    return der;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: fuzz_seeds <corpus dir>\n";
        return 2;
    }
    root = argv[1];

    // fuzz_record: records, plus definitions on their own (a leading 0 byte).
    write("record", "put_del", encode_record(sample_record()));
    write("record", "ddl", encode_record(ddl_record()));
    write("record", "placed", encode_record(placed_record()));
    write("record", "def_simple", std::string(1, '\0') + "id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED");
    write("record", "def_quoted", std::string(1, '\0') + "\"a b\" VARCHAR(10, 2) PRIMARY KEY DESC, [c] NOT NULL, `d`, replicate=false");

    // fuzz_wire: one of each message.
    wire::subscription sub;
    sub.start_after = 42;
    sub.progress = {{"127.0.0.3", hlc_from_ms(1764151200000)}, {"node-b", 9}};
    sub.exclude = {"127.0.0.4"};
    wire::hello h;
    h.node_name = "127.0.0.2";
    h.node_url = "wss://127.0.0.2:9933";
    h.database = "main";
    h.db_id = "3f2a9c1e";
    h.needs_copy = true;
    h.sub = sub;
    write("wire", "hello", wire::encode(h));
    write("wire", "subscribe", wire::encode(wire::subscribe{sub}));
    write("wire", "txn", wire::encode(wire::txn{17, encode_record(sample_record())}));
    write("wire", "txn_ddl", wire::encode(wire::txn{18, encode_record(ddl_record())}));
    write("wire", "txn_placed", wire::encode(wire::txn{19, encode_record(placed_record())}));
    write("wire", "ack", wire::encode(wire::ack{300}));
    write("wire", "copy_start", wire::encode(wire::copy_start{12, sub.progress}));
    write("wire", "copy_table", wire::encode(wire::copy_table{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT"}));
    wire::copy_rows rows;
    rows.table = 0;
    rows.rows.push_back({false, 5, "127.0.0.2", {value::of_int(1), value::of_text("Rex")}});
    rows.rows.push_back({true, 6, "127.0.0.3", {value::of_int(2)}});
    write("wire", "copy_rows", wire::encode(rows));
    write("wire", "copy_end", wire::encode(wire::copy_end{99, sub.progress}));
    write("wire", "copy_ack", wire::encode(wire::copy_ack{3}));
    write("wire", "error", wire::encode(wire::error_msg{"table 'dog' differs"}));
    write("wire", "removed", wire::encode(wire::removed{"127.0.0.3"}));
    write("wire", "copy_request", wire::encode(wire::copy_request{}));
    write("wire", "copy_request_resume", wire::encode(wire::copy_request{wire::copy_resume{"dog", 1, value::of_int(41)}}));
    h.resume = wire::copy_resume{"dog", 0, value::of_text("k")};
    write("wire", "hello_resume", wire::encode(h));
    write("wire", "fragment", wire::encode(wire::fragment{100000, {3, 1, 2, 3}}));
    write("wire", "fragment_ack", wire::encode(wire::fragment_ack{70000}));

    // fuzz_credentials: headers and tokens.
    const std::string jwt = net::cred::sign_jwt("fuzz-secret", R"({"sub":"admin","exp":1764151200})");
    write("credentials", "bearer", "Bearer " + jwt);
    write("credentials", "basic", "Basic " + net::cred::base64_encode("admin:pa:ss"));
    write("credentials", "jwt", jwt);
    write("credentials", "jwt_unsigned", jwt.substr(0, jwt.rfind('.')));
    write("credentials", "jwt_none", net::cred::base64url_encode(R"({"alg":"none"})") + "." +
                                          net::cred::base64url_encode(R"({"a":[1,2.5e3,true,null,"\u00e9\ud83d\ude00"]})") + ".");

    // fuzz_pki: a CA, a CSR, a leaf, a bundle, a key; PEM (first byte 0) and DER (1, 2, 3).
    auto key = net::pki::generate_private_key();
    auto ca = net::pki::make_ca_certificate(key.value, "hdbrepl fuzz CA", 3650);
    auto leaf_key = net::pki::generate_private_key();
    auto csr = net::pki::make_csr(leaf_key.value, "127.0.0.2");
    auto csr_dns = net::pki::make_csr(leaf_key.value, "node-a.example.com");
    auto leaf = net::pki::sign_csr(csr.value, ca.value, key.value, 365);
    auto leaf_dns = net::pki::sign_csr(csr_dns.value, ca.value, key.value, 365);
    if (!ca.ok() || !csr.ok() || !leaf.ok() || !leaf_dns.ok()) {
        std::cerr << "pki: " << ca.error << csr.error << leaf.error << leaf_dns.error << "\n";
        return 1;
    }
    write("pki", "pem_bundle", std::string(1, '\0') + leaf.value + ca.value);
    write("pki", "pem_csr", std::string(1, '\0') + csr_dns.value);
    write("pki", "der_ca", std::string(1, '\1') + der_of(ca.value));
    write("pki", "der_leaf_ip", std::string(1, '\1') + der_of(leaf.value));
    write("pki", "der_leaf_dns", std::string(1, '\1') + der_of(leaf_dns.value));
    write("pki", "der_csr", std::string(1, '\2') + der_of(csr.value));
    write("pki", "der_key", std::string(1, '\3') + der_of(leaf_key.value));
    return 0;
}
