// The PKI's shared internals, used by pki.cpp (building, signing and verifying certificates),
// pem_io.cpp (PEM in and out, OpenSSL error texts) and x509_names.cpp (node names, CNs,
// subjectAltNames and the name check). Not part of the pki.hpp interface: this header
// includes OpenSSL headers.
//
// Every OpenSSL object is held by a unique_ptr with its free function as the deleter (the
// aliases below), so each early `return` frees what was built. Thread: any; no shared state.
#pragma once
#include "security/pki.hpp"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::net::pki::detail {

// ---- RAII for OpenSSL objects ------------------------------------------------------------

template <auto Free>
struct free_with {
    template <class T>
    void operator()(T* p) const { Free(p); }
};
template <class T, auto Free>
using owned = std::unique_ptr<T, free_with<Free>>;

inline void free_ossl_mem(void* p) { OPENSSL_free(p); }
inline void free_cert_stack(STACK_OF(X509)* s) { sk_X509_pop_free(s, X509_free); }
inline void free_ext_stack(STACK_OF(X509_EXTENSION)* s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }

using bio_ptr = owned<BIO, BIO_free_all>;
using pkey_ptr = owned<EVP_PKEY, EVP_PKEY_free>;
using x509_ptr = owned<X509, X509_free>;
using req_ptr = owned<X509_REQ, X509_REQ_free>;
using name_ptr = owned<X509_NAME, X509_NAME_free>;
using ext_ptr = owned<X509_EXTENSION, X509_EXTENSION_free>;
using ext_stack_ptr = owned<STACK_OF(X509_EXTENSION), free_ext_stack>;
using cert_stack_ptr = owned<STACK_OF(X509), free_cert_stack>;
using gens_ptr = owned<GENERAL_NAMES, GENERAL_NAMES_free>;
using gen_ptr = owned<GENERAL_NAME, GENERAL_NAME_free>;
using octets_ptr = owned<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using ia5_ptr = owned<ASN1_IA5STRING, ASN1_IA5STRING_free>;
using bn_ptr = owned<BIGNUM, BN_free>;
using store_ptr = owned<X509_STORE, X509_STORE_free>;
using store_ctx_ptr = owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using ossl_chars = owned<char, free_ossl_mem>;
using ossl_bytes = owned<unsigned char, free_ossl_mem>;

inline result fail(std::string e) { return result{{}, std::move(e)}; }
inline result success(std::string v) { return result{std::move(v), {}}; }

// ---- errors and PEM (pem_io.cpp) -----------------------------------------------------------

// "what: <OpenSSL's reason>" for the last queued error, or just "what".
std::string ossl_error(const std::string& what);

// Why a PEM text did not read: no PEM at all, an encrypted key, or OpenSSL's reason.
std::string unreadable(const std::string& text, const std::string& what);

// A read-only memory BIO over `text` (nullptr when it is too long for OpenSSL).
bio_ptr read_bio(const std::string& text);

// The first key, certificate or CSR of a PEM text; nullptr when there is none, it does not
// parse, or it is encrypted (no passphrase is ever asked for).
pkey_ptr read_key(const std::string& pem);
x509_ptr read_cert(const std::string& pem);
req_ptr read_req(const std::string& pem);

// Every certificate of a PEM text, in order; stops at the first block that does not parse.
std::vector<x509_ptr> read_certs(const std::string& pem);

// What a memory BIO holds, as text.
std::string bio_text(BIO* bio);

// `obj` as PEM text, written by `write` (e.g. PEM_write_bio_X509) into a memory BIO.
template <class T, class Write>
result write_pem(T* obj, Write write, const char* what) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get(), obj) != 1) return fail(ossl_error(std::string("cannot encode ") + what));
    return success(bio_text(bio.get()));
}

// ---- names and subjectAltNames (x509_names.cpp) --------------------------------------------

// The first CN of a name as UTF-8 ("" when absent or unreadable).
std::string common_name_of(const X509_NAME* name);

// A name as one line, RFC 2253 style with UTF-8 left readable ("" when unprintable).
std::string one_line(const X509_NAME* name);

bool has_control_chars(const std::string& s);

// The name CN=<cn>; nullptr when OpenSSL refuses it.
name_ptr cn_name(const std::string& cn);

// The DNS and IP subjectAltName entries of an extension list (nullptr stack: none); nullptr
// and `error` set when the list's subjectAltName is unreadable or there is no memory.
gens_ptr dns_and_ip_sans(const STACK_OF(X509_EXTENSION)* exts, std::string& error);

// "" when the name can be a certificate's one name (an IP literal or a host name).
std::string check_node_name(const std::string& name);

// A subjectAltName of exactly one entry: IP:<name> for an IP literal, else DNS:<name>.
// nullptr: no memory.
gens_ptr single_name_san(const std::string& name);

// The TLS name check of pki.hpp's certificate_matches_name, on a parsed certificate.
bool matches_name(X509* cert, const std::string& name);

// Fills the name fields of `out` (subject, issuer, common_name, subject_alt_name, names);
// returns "" or an error text when the subjectAltName is unreadable.
std::string read_names(X509* cert, cert_details& out);

} // namespace hdbrepl::net::pki::detail
