// Names in the PKI's certificates (see pki_internal.hpp): which node names are allowed, the
// CN and subjectAltName structures built for them, reading names back out of certificates
// and CSRs, and the name check TLS peers do.
//
// A subjectAltName is always built as a structure, never from OpenSSL config text, so no
// name can inject extra entries.
#include "security/pki_internal.hpp"

#include <openssl/objects.h>

#include <arpa/inet.h>

#include <cstring>

namespace hdbrepl::net::pki::detail {
namespace {

// True for an IPv4/IPv6 literal; its 4 or 16 bytes in `bytes`.
bool parse_ip(const std::string& text, std::string& bytes) {
    unsigned char buf[16];
    if (text.find('\0') != std::string::npos) return false;
    if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
        bytes.assign(reinterpret_cast<char*>(buf), 4);
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
        bytes.assign(reinterpret_cast<char*>(buf), 16);
        return true;
    }
    return false;
}

bool valid_dns_name(const std::string& s) {
    if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
    for (unsigned char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok) return false;
    }
    return s.find("..") == std::string::npos;
}

std::string ip_text(const ASN1_OCTET_STRING* ip) {
    char buf[INET6_ADDRSTRLEN] = {};
    int len = ASN1_STRING_length(ip);
    const unsigned char* d = ASN1_STRING_get0_data(ip);
    if (len == 4 && inet_ntop(AF_INET, d, buf, sizeof buf)) return buf;
    if (len == 16 && inet_ntop(AF_INET6, d, buf, sizeof buf)) return buf;
    return "<invalid IP address>";
}

std::string asn1_utf8(const ASN1_STRING* s) {
    unsigned char* out = nullptr;
    int n = ASN1_STRING_to_UTF8(&out, s);
    if (n < 0 || !out) return {};
    ossl_bytes hold(out);
    return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
    if (s.empty()) return;
    for (const auto& e : v)
        if (e == s) return;
    v.push_back(s);
}

} // namespace

// The first CN of a name as UTF-8 ("" when absent or unreadable).
std::string common_name_of(const X509_NAME* name) {
    if (!name) return {};
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0) return {};
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    return e ? asn1_utf8(X509_NAME_ENTRY_get_data(e)) : std::string();
}

std::string one_line(const X509_NAME* name) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || !name) return {};
    // RFC 2253 but with UTF-8 left readable instead of escaped as \XX.
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) return {};
    return bio_text(bio.get());
}

bool has_control_chars(const std::string& s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return true;
    return false;
}

name_ptr cn_name(const std::string& cn) {
    name_ptr name(X509_NAME_new());
    if (!name) return nullptr;
    if (X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.data()),
                                   static_cast<int>(cn.size()), -1, 0) != 1)
        return nullptr;
    return name;
}

// The DNS and IP subjectAltName entries of an extension list (nullptr stack: none).
gens_ptr dns_and_ip_sans(const STACK_OF(X509_EXTENSION)* exts, std::string& error) {
    gens_ptr out(GENERAL_NAMES_new());
    if (!out) { error = "out of memory"; return nullptr; }
    if (!exts) return out;
    int crit = 0;
    gens_ptr all(static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, &crit, nullptr)));
    if (!all) {
        if (crit == -1) return out; // not present
        error = crit == -2 ? "more than one subjectAltName" : "unreadable subjectAltName";
        return nullptr;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(all.get()); ++i) {
        GENERAL_NAME* g = sk_GENERAL_NAME_value(all.get(), i);
        if (g->type != GEN_DNS && g->type != GEN_IPADD) continue;
        gen_ptr copy(GENERAL_NAME_dup(g));
        if (!copy || !sk_GENERAL_NAME_push(out.get(), copy.get())) { error = "out of memory"; return nullptr; }
        copy.release();
    }
    return out;
}

// "" when the name can be a certificate's one name (an IP literal or a host name).
std::string check_node_name(const std::string& name) {
    std::string ip;
    if (parse_ip(name, ip) || valid_dns_name(name)) return "";
    return "node name '" + name + "' is neither an IP address nor a host name (1..64 letters, digits, '-', '_', '.')";
}

// A subjectAltName of exactly one entry: IP:<name> for an IP literal, else DNS:<name>. Built
// as a structure, not from config text, so no name can inject entries. nullptr: no memory.
gens_ptr single_name_san(const std::string& name) {
    gens_ptr sans(GENERAL_NAMES_new());
    gen_ptr gen(GENERAL_NAME_new());
    if (!sans || !gen) return nullptr;
    std::string ip;
    if (parse_ip(name, ip)) {
        octets_ptr octets(ASN1_OCTET_STRING_new());
        if (!octets || ASN1_OCTET_STRING_set(octets.get(), reinterpret_cast<const unsigned char*>(ip.data()),
                                             static_cast<int>(ip.size())) != 1)
            return nullptr;
        GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, octets.release());
    } else {
        ia5_ptr ia5(ASN1_IA5STRING_new());
        if (!ia5 || ASN1_STRING_set(ia5.get(), name.data(), static_cast<int>(name.size())) != 1) return nullptr;
        GENERAL_NAME_set0_value(gen.get(), GEN_DNS, ia5.release());
    }
    if (!sk_GENERAL_NAME_push(sans.get(), gen.get())) return nullptr;
    gen.release();
    return sans;
}

bool matches_name(X509* cert, const std::string& name) {
    if (name.empty() || name.find('\0') != std::string::npos) return false;
    std::string ip;
    if (parse_ip(name, ip)) {
        int crit = 0;
        gens_ptr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
        if (!sans) return crit == -1 && common_name_of(X509_get_subject_name(cert)) == name;
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
            if (g->type != GEN_IPADD) continue;
            const ASN1_OCTET_STRING* a = g->d.iPAddress;
            if (static_cast<std::size_t>(ASN1_STRING_length(a)) == ip.size() &&
                std::memcmp(ASN1_STRING_get0_data(a), ip.data(), ip.size()) == 0)
                return true;
        }
        // No CN fallback once there is a SAN: TLS clients do not fall back for IP addresses.
        return false;
    }
    // DNS: OpenSSL's host check: DNS SANs, case-insensitive, whole leftmost-label wildcard;
    // the CN only when there is no DNS SAN.
    return X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) == 1;
}

std::string read_names(X509* cert, cert_details& out) {
    out.subject = one_line(X509_get_subject_name(cert));
    out.issuer = one_line(X509_get_issuer_name(cert));
    out.common_name = common_name_of(X509_get_subject_name(cert));
    add_unique(out.names, out.common_name);

    int crit = 0;
    gens_ptr sans(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, nullptr)));
    if (!sans && crit != -1) return "invalid certificate: unreadable subjectAltName";
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), i);
        std::string item;
        switch (g->type) {
        case GEN_DNS: {
            std::string dns = asn1_utf8(g->d.dNSName);
            item = "DNS:" + dns;
            add_unique(out.names, dns);
            break;
        }
        case GEN_IPADD: {
            std::string ip = ip_text(g->d.iPAddress);
            item = "IP Address:" + ip;
            add_unique(out.names, ip);
            break;
        }
        case GEN_EMAIL: item = "email:" + asn1_utf8(g->d.rfc822Name); break;
        case GEN_URI: item = "URI:" + asn1_utf8(g->d.uniformResourceIdentifier); break;
        case GEN_DIRNAME: item = "DirName:" + one_line(g->d.directoryName); break;
        default: item = "<unsupported>"; break;
        }
        if (!out.subject_alt_name.empty()) out.subject_alt_name += ", ";
        out.subject_alt_name += item;
    }
    return {};
}

} // namespace hdbrepl::net::pki::detail
