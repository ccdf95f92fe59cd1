// libFuzzer target: the PEM/DER surfaces of security/pki.cpp that read what peers and users
// hand over: certificates and bundles (parse_certificate, split_pem_certificates, the name
// check), CSRs (csr_common_name) and the private-key sniffing (looks_like_private_key).
// The first byte chooses the input form: 0 = PEM text as given; 1, 2, 3 = the rest is DER,
// wrapped here as a CERTIFICATE, CERTIFICATE REQUEST or PRIVATE KEY PEM block (so the
// fuzzer mutates ASN.1, not base64).
// Invariants: nothing crashes or leaks; every certificate split out of a bundle parses and
// splits to itself; a parsed certificate's names include its common name.
#include "security/credentials.hpp"
#include "security/pki.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace hdbrepl::net;

namespace {

std::string pem(const std::string& der, const char* label) {
    const std::string b64 = cred::base64_encode(der);
    std::string s = std::string("-----BEGIN ") + label + "-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) s += b64.substr(i, 64) + "\n";
    return s + "-----END " + label + "-----\n";
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string rest = fuzz_text(data + 1, size - 1);
    std::string text;
    switch (data[0]) {
    case 0: text = rest; break;
    case 1: text = pem(rest, "CERTIFICATE"); break;
    case 2: text = pem(rest, "CERTIFICATE REQUEST"); break;
    case 3: text = pem(rest, "PRIVATE KEY"); break;
    default: return 0;
    }

    pki::cert_details d;
    if (pki::parse_certificate(text, d).empty()) {
        if (!d.common_name.empty()) {
            bool listed = false;
            for (const auto& n : d.names) listed = listed || n == d.common_name;
            FUZZ_CHECK(listed);
        }
        FUZZ_CHECK(!d.sha256_fingerprint.empty());
        for (const auto& n : d.names) pki::certificate_matches_name(text, n);
    }
    pki::certificate_matches_name(text, "127.0.0.2");
    pki::certificate_matches_name(text, "node-a.example.com");

    for (const auto& one : pki::split_pem_certificates(text)) {
        pki::cert_details d1;
        const std::string e = pki::parse_certificate(one, d1);
        if (!e.empty()) std::fprintf(stderr, "split out, does not parse: %s\n", e.c_str());
        FUZZ_CHECK(e.empty());
        const auto again = pki::split_pem_certificates(one);
        FUZZ_CHECK(again.size() == 1 && again[0] == one);
    }

    const auto cn = pki::csr_common_name(text);
    if (cn.ok()) FUZZ_CHECK(!cn.value.empty());
    pki::looks_like_private_key(text);
    return 0;
}
