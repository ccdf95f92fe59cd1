// One hdbrepl node process for the cluster tests, in C++: the same program as node_proc.py,
// for hosts that must be instrumented (ThreadSanitizer cannot run inside Debian's python3).
//
//     node_host <db_path>          (harness.py runs it when HDBREPL_NODE_HOST names it)
//
// Opens <db_path>, loads the extension named by HDBREPL_SO (the library path without .so)
// with sqlite3_load_extension and its default entry point, sets a 5 s busy timeout, prints
// {"ready": <pid>} and answers one JSON request per line on stdin with one JSON object per
// line on stdout:
//
//     {"sql": "SELECT ?", "params": [1]}            -> {"rows": [[1]]}
//     {"batch": [["INSERT ...", [1]], ...]}         -> {"rows": <rows of the last statement>}
//                                                      (stops at the first error)
//     anything that fails                           -> {"error": "message"}
//
// A parameter {"$hex": "00ff"} is bound as a blob; blobs in results come back as hex
// strings. The connection stays in autocommit mode: BEGIN/COMMIT are sent explicitly. As in
// Python's sqlite3, a request holds one statement ("You can only execute one statement at a
// time." otherwise). End of stdin closes the connection (which stops the node if it is the
// file's last connection) and exits 0. The node logs to stderr. The process dies with its
// parent (PR_SET_PDEATHSIG).
#include <boost/json/src.hpp>
#include <sqlite3.h>

#include <sys/prctl.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace json = boost::json;

namespace {

// A failure that becomes {"error": what()}; the process carries on.
struct request_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One result cell: what Python's sqlite3 would return for it.
struct cell {
    enum kind_t { null, integer, real, text } kind = null;  // blobs become hex text
    std::int64_t i = 0;
    double d = 0;
    std::string s;
};
using row = std::vector<cell>;

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// bytes.fromhex: pairs of hex digits, spaces allowed between pairs.
std::string from_hex(std::string_view h) {
    std::string out;
    out.reserve(h.size() / 2);
    std::size_t i = 0;
    while (i < h.size()) {
        if (h[i] == ' ') {
            ++i;
            continue;
        }
        int hi = hex_digit(h[i]);
        int lo = i + 1 < h.size() ? hex_digit(h[i + 1]) : -1;
        if (hi < 0 || lo < 0) {
            std::size_t at = hi < 0 ? i : i + 1;
            throw request_error("non-hexadecimal number found in fromhex() arg at position " + std::to_string(at));
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::string to_hex(const unsigned char* p, int n) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(static_cast<std::size_t>(n) * 2);
    for (int i = 0; i < n; ++i) {
        out.push_back(digits[p[i] >> 4]);
        out.push_back(digits[p[i] & 15]);
    }
    return out;
}

// Strict UTF-8 (what Python's decode accepts): no overlongs, surrogates or > U+10FFFF.
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int n;
        std::uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + static_cast<std::size_t>(n) >= s.size()) return false;  // truncated sequence
        for (int k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += static_cast<std::size_t>(n) + 1;
    }
    return true;
}

// True when `tail` holds only whitespace and SQL comments (Python's one-statement check).
bool only_comments(const char* tail) {
    const char* p = tail;
    while (*p) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v') {
            ++p;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') ++p;
        } else if (p[0] == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/')) ++p;
            if (!*p) return true;  // an unterminated comment runs to the end
            p += 2;
        } else {
            return false;
        }
    }
    return true;
}

struct stmt_deleter {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;

const char* type_name(const json::value& v) {
    switch (v.kind()) {
    case json::kind::array: return "list";
    case json::kind::object: return "dict";
    default: return "object";
    }
}

void bind_param(sqlite3* db, sqlite3_stmt* st, int pos, const json::value& p) {
    int rc = SQLITE_OK;
    switch (p.kind()) {
    case json::kind::null: rc = sqlite3_bind_null(st, pos); break;
    case json::kind::bool_: rc = sqlite3_bind_int64(st, pos, p.get_bool() ? 1 : 0); break;
    case json::kind::int64: rc = sqlite3_bind_int64(st, pos, p.get_int64()); break;
    case json::kind::uint64:
        if (p.get_uint64() > static_cast<std::uint64_t>(INT64_MAX))
            throw request_error("Python int too large to convert to SQLite INTEGER");
        rc = sqlite3_bind_int64(st, pos, static_cast<std::int64_t>(p.get_uint64()));
        break;
    case json::kind::double_: rc = sqlite3_bind_double(st, pos, p.get_double()); break;
    case json::kind::string: {
        const json::string& s = p.get_string();
        rc = sqlite3_bind_text64(st, pos, s.data(), s.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
    }
    case json::kind::object: {
        const json::object& o = p.get_object();
        auto it = o.find("$hex");
        if (it != o.end()) {
            if (!it->value().is_string()) throw request_error("fromhex() argument must be str, not " + std::string(type_name(it->value())));
            std::string blob = from_hex(it->value().get_string());
            // An empty blob is a zero-length blob, never NULL (as Python binds b"").
            rc = blob.empty() ? sqlite3_bind_zeroblob(st, pos, 0)
                              : sqlite3_bind_blob64(st, pos, blob.data(), blob.size(), SQLITE_TRANSIENT);
            break;
        }
        [[fallthrough]];
    }
    default:
        throw request_error("Error binding parameter " + std::to_string(pos) + ": type '" + type_name(p) +
                            "' is not supported");
    }
    if (rc != SQLITE_OK) throw request_error(sqlite3_errmsg(db));
}

// Runs one statement with its parameters and returns all its rows.
std::vector<row> run(sqlite3* db, std::string_view sql, const json::value* params) {
    static const json::array no_params;
    const json::array* ps = &no_params;
    if (params && !params->is_null()) {
        if (!params->is_array()) throw request_error("parameters are of unsupported type");
        ps = &params->get_array();
    }
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    std::string text(sql);
    if (text.find('\0') != std::string::npos) throw request_error("the query contains a null character");
    int rc = sqlite3_prepare_v2(db, text.c_str(), static_cast<int>(text.size()) + 1, &raw, &tail);
    stmt_ptr st(raw);
    if (rc != SQLITE_OK) throw request_error(sqlite3_errmsg(db));
    if (tail && !only_comments(tail)) throw request_error("You can only execute one statement at a time.");
    std::vector<row> rows;
    if (!st) return rows;  // only whitespace or comments
    int want = sqlite3_bind_parameter_count(st.get());
    if (static_cast<std::size_t>(want) != ps->size())
        throw request_error("Incorrect number of bindings supplied. The current statement uses " + std::to_string(want) +
                            ", and there are " + std::to_string(ps->size()) + " supplied.");
    for (int i = 0; i < want; ++i) bind_param(db, st.get(), i + 1, (*ps)[static_cast<std::size_t>(i)]);
    // Bounded by the statement itself (SQLite returns DONE or an error eventually).
    for (;;) {
        rc = sqlite3_step(st.get());
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) throw request_error(sqlite3_errmsg(db));
        int n = sqlite3_column_count(st.get());
        row r(static_cast<std::size_t>(n));
        for (int c = 0; c < n; ++c) {
            cell& v = r[static_cast<std::size_t>(c)];
            switch (sqlite3_column_type(st.get(), c)) {
            case SQLITE_INTEGER:
                v.kind = cell::integer;
                v.i = sqlite3_column_int64(st.get(), c);
                break;
            case SQLITE_FLOAT:
                v.kind = cell::real;
                v.d = sqlite3_column_double(st.get(), c);
                break;
            case SQLITE_TEXT: {
                auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), c));
                int len = sqlite3_column_bytes(st.get(), c);
                v.kind = cell::text;
                v.s.assign(p ? p : "", static_cast<std::size_t>(len));
                if (!valid_utf8(v.s)) {
                    const char* name = sqlite3_column_name(st.get(), c);
                    throw request_error(std::string("Could not decode to UTF-8 column '") + (name ? name : "?") +
                                        "' with text '" + v.s + "'");
                }
                break;
            }
            case SQLITE_BLOB: {
                auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st.get(), c));
                int len = sqlite3_column_bytes(st.get(), c);
                v.kind = cell::text;
                v.s = to_hex(p, p ? len : 0);
                break;
            }
            default: v.kind = cell::null; break;
            }
        }
        rows.push_back(std::move(r));
    }
    return rows;
}

// JSON text of a double the way Python's json.dumps writes it (always a float to a reader).
void write_double(std::string& out, double d) {
    if (std::isnan(d)) {
        out += "NaN";
        return;
    }
    if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
        return;
    }
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, d);
    std::string_view s(buf, static_cast<std::size_t>(res.ptr - buf));
    out += s;
    if (s.find_first_of(".e") == std::string_view::npos) out += ".0";
}

void write_string(std::string& out, std::string_view s) {
    out += json::serialize(json::string_view(s.data(), s.size()));
}

std::string rows_reply(const std::vector<row>& rows) {
    std::string out = "{\"rows\": [";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        if (r) out += ", ";
        out += '[';
        for (std::size_t c = 0; c < rows[r].size(); ++c) {
            if (c) out += ", ";
            const cell& v = rows[r][c];
            switch (v.kind) {
            case cell::null: out += "null"; break;
            case cell::integer: out += std::to_string(v.i); break;
            case cell::real: write_double(out, v.d); break;
            case cell::text: write_string(out, v.s); break;
            }
        }
        out += ']';
    }
    out += "]}";
    return out;
}

std::string error_reply(std::string_view msg) {
    std::string out = "{\"error\": ";
    // Messages may quote bytes that are not UTF-8; keep the reply valid JSON text.
    if (valid_utf8(msg)) {
        write_string(out, msg);
    } else {
        std::string clean;
        for (char c : msg) clean.push_back(static_cast<unsigned char>(c) < 0x80 ? c : '?');
        write_string(out, clean);
    }
    out += '}';
    return out;
}

std::string answer(sqlite3* db, std::string_view line) {
    try {
        json::error_code ec;
        json::value req = json::parse(line, ec);
        if (ec) throw request_error("Expecting value: " + ec.message());
        if (!req.is_object()) throw request_error(std::string(type_name(req)) + " indices must be integers or slices, not str");
        const json::object& o = req.get_object();
        std::vector<row> rows;
        if (auto it = o.find("batch"); it != o.end()) {
            if (!it->value().is_array()) throw request_error("'batch' is not a list");
            for (const json::value& item : it->value().get_array()) {
                if (!item.is_array() || item.get_array().empty() || !item.get_array()[0].is_string())
                    throw request_error("a batch item is [sql, params]");
                const json::array& a = item.get_array();
                rows = run(db, a[0].get_string(), a.size() > 1 ? &a[1] : nullptr);
            }
        } else {
            auto sql = o.find("sql");
            if (sql == o.end()) throw request_error("'sql'");
            if (!sql->value().is_string()) throw request_error("execute() argument 1 must be str");
            auto params = o.find("params");
            rows = run(db, sql->value().get_string(), params == o.end() ? nullptr : &params->value());
        }
        return rows_reply(rows);
    } catch (const std::exception& e) {  // every failure is an answer, never the end of the process
        return error_reply(*e.what() ? e.what() : "error");
    }
}

void die_with_parent() {
    // The harness starts nodes from its main thread; if it dies, so do we (Linux).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() == 1) _exit(1);
}

}  // namespace

int main(int argc, char** argv) {
    die_with_parent();
    if (argc != 2) {
        std::fputs("usage: node_host <db_path>\n", stderr);
        return 2;
    }
    const char* so = std::getenv("HDBREPL_SO");
    if (!so || !*so) {
        std::fputs("node_host: set HDBREPL_SO to the built library path without .so\n", stderr);
        return 2;
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
        std::fprintf(stderr, "node_host: cannot open %s: %s\n", argv[1], db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close_v2(db);
        return 1;
    }
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    sqlite3_enable_load_extension(db, 1);
    if (sqlite3_load_extension(db, so, nullptr, &err) != SQLITE_OK) {
        std::fprintf(stderr, "node_host: cannot load %s: %s\n", so, err ? err : "?");
        sqlite3_free(err);
        sqlite3_close_v2(db);
        return 1;
    }
    sqlite3_enable_load_extension(db, 0);
    char* exec_err = nullptr;
    if (sqlite3_exec(db, "PRAGMA busy_timeout=5000", nullptr, nullptr, &exec_err) != SQLITE_OK) {
        std::fprintf(stderr, "node_host: %s\n", exec_err ? exec_err : "PRAGMA busy_timeout failed");
        sqlite3_free(exec_err);
        sqlite3_close_v2(db);
        return 1;
    }
    std::signal(SIGPIPE, SIG_IGN);  // a closed stdout ends us through the write error, as in Python
    std::cout << "{\"ready\": " << getpid() << "}\n" << std::flush;
    std::string line;
    // One request per line until end of stdin (the harness bounds every exchange).
    while (std::getline(std::cin, line)) {
        std::size_t b = line.find_first_not_of(" \t\r\n\f\v");
        if (b == std::string::npos) continue;
        std::size_t e = line.find_last_not_of(" \t\r\n\f\v");
        std::string reply = answer(db, std::string_view(line).substr(b, e - b + 1));
        std::cout << reply << '\n' << std::flush;
        if (!std::cout) break;
    }
    sqlite3_close_v2(db);
    return 0;
}
