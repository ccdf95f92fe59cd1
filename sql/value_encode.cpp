// Affinity-aware encoding of SQL values (see value_encode.hpp). The rules follow
// https://sqlite.org/datatype3.html section 3 and were checked against SQLite 3.40 in
// tests/sql (the differential test compares typeof() of every stored value).
#include "sql/value_encode.hpp"

#include "engine/value.hpp"

#include <cstdint>
#include <cstring>

namespace hdbrepl::sql {

using engine::affinity;
using engine::byte_writer;
using engine::value_type;

namespace {

void put_int(byte_writer& w, std::int64_t i) {
    w.put_u8(static_cast<std::uint8_t>(value_type::integer));
    w.put_svarint(i);
}

void put_real(byte_writer& w, double r) {
    w.put_u8(static_cast<std::uint8_t>(value_type::real));
    std::uint64_t u;
    std::memcpy(&u, &r, 8);
    w.put_u64le(u);
}

void put_bytes(byte_writer& w, value_type t, const void* p, int n) {
    w.put_u8(static_cast<std::uint8_t>(t));
    w.put_varint(static_cast<std::uint64_t>(n));
    w.put_raw(p, static_cast<std::size_t>(n));
}

// A REAL stored with INTEGER or NUMERIC affinity becomes an INTEGER when that is exact
// (SQLite's sqlite3VdbeIntegerAffinity: strictly inside the int64 range).
void put_numeric_real(byte_writer& w, double r) {
    if (r > -9223372036854775808.0 && r < 9223372036854775808.0) {
        auto i = static_cast<std::int64_t>(r);
        if (static_cast<double>(i) == r && i > INT64_MIN && i < INT64_MAX) return put_int(w, i);
    }
    put_real(w, r);
}

void put_as_is(byte_writer& w, sqlite3_value* v) {
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return put_int(w, sqlite3_value_int64(v));
    case SQLITE_FLOAT: return put_real(w, sqlite3_value_double(v));
    case SQLITE_TEXT: {
        const unsigned char* t = sqlite3_value_text(v);
        return put_bytes(w, value_type::text, t, sqlite3_value_bytes(v));
    }
    case SQLITE_BLOB: return put_bytes(w, value_type::blob, sqlite3_value_blob(v), sqlite3_value_bytes(v));
    default: w.put_u8(static_cast<std::uint8_t>(value_type::null));
    }
}

// Text under numeric affinity: converted when it is a well-formed number.
void put_text_numeric(byte_writer& w, sqlite3_value* v, affinity aff) {
    sqlite3_value* d = sqlite3_value_dup(v);
    if (!d) return put_as_is(w, v);
    int t = sqlite3_value_numeric_type(d);
    if (t == SQLITE_INTEGER) {
        if (aff == affinity::real) put_real(w, static_cast<double>(sqlite3_value_int64(d)));
        else put_int(w, sqlite3_value_int64(d));
    } else if (t == SQLITE_FLOAT) {
        if (aff == affinity::real) put_real(w, sqlite3_value_double(d));
        else put_numeric_real(w, sqlite3_value_double(d));
    } else {
        put_as_is(w, v);
    }
    sqlite3_value_free(d);
}

} // namespace

void encode_with_affinity(byte_writer& w, sqlite3_value* v, affinity aff) {
    int type = sqlite3_value_type(v);
    switch (aff) {
    case affinity::blob: return put_as_is(w, v);
    case affinity::text:
        if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
            char* s = type == SQLITE_INTEGER ? sqlite3_mprintf("%lld", static_cast<long long>(sqlite3_value_int64(v)))
                                             : sqlite3_mprintf("%!.15g", sqlite3_value_double(v));
            if (s) put_bytes(w, value_type::text, s, static_cast<int>(std::strlen(s)));
            else put_as_is(w, v);
            sqlite3_free(s);
            return;
        }
        return put_as_is(w, v);
    case affinity::integer:
    case affinity::numeric:
        if (type == SQLITE_FLOAT) return put_numeric_real(w, sqlite3_value_double(v));
        if (type == SQLITE_TEXT) return put_text_numeric(w, v, aff);
        return put_as_is(w, v);
    case affinity::real:
        if (type == SQLITE_INTEGER) return put_real(w, static_cast<double>(sqlite3_value_int64(v)));
        if (type == SQLITE_TEXT) return put_text_numeric(w, v, aff);
        return put_as_is(w, v);
    }
    put_as_is(w, v);
}

} // namespace hdbrepl::sql
