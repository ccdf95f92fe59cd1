// Peer protocol codec (see wire.hpp and docs/protocol.md for the layout).
#include "replication/wire.hpp"

#include "engine/txn_record.hpp"

#include <cstring>

namespace hdbrepl::engine::wire {

namespace {

const char* const message_names[] = {"hello",    "subscribe", "txn",   "ack",     "copy_start",   "copy_table",   "copy_rows", "copy_end",
                                     "copy_ack", "error",     "removed", "copy_request", "read_request", "read_reply", "fragment", "fragment_ack"};
static_assert(sizeof(message_names) / sizeof(message_names[0]) == std::variant_size_v<message>);

void put_progress(byte_writer& w, const std::vector<origin_progress>& p) {
    w.put_varint(p.size());
    for (const auto& o : p) {
        w.put_str(o.origin);
        w.put_u64le(o.hlc);
    }
}

void put_resume(byte_writer& w, const copy_resume& r) {
    w.put_str(r.table);
    w.put_u8(r.phase);
    encode_value(w, r.key);
}

void put_subscription(byte_writer& w, const subscription& s) {
    w.put_u64le(s.start_after);
    put_progress(w, s.progress);
    w.put_varint(s.exclude.size());
    for (const auto& e : s.exclude) w.put_str(e);
}

// Every count is checked against the least bytes its elements take on the wire, and what is
// built is charged to `budget` before it is reserved (decoded_bytes_limit, bytes.hpp).
struct reader {
    reader(byte_reader in, std::size_t message_bytes) : r(in), budget(message_bytes) {}
    byte_reader r;
    decode_budget budget;
    bool failed = false;
    std::string reason;
    bool fail(const std::string& why) {
        if (!failed) { failed = true; reason = why; }
        r.fail();
        return false;
    }
    bool over_budget() { return fail("decoded size over the limit"); }
    std::string str(const char* field, std::size_t max_len = max_name_len, bool allow_empty = true) {
        auto s = r.get_str(max_len);
        if (!r.ok()) { fail(std::string("bad ") + field); return {}; }
        if (!allow_empty && s.empty()) { fail(std::string("empty ") + field); return {}; }
        return std::string(s);
    }
    // A list string: its heap payload is charged too.
    std::string list_str(const char* field) {
        auto s = str(field, max_name_len, false);
        if (r.ok() && !budget.take_string(s.size())) { over_budget(); return {}; }
        return s;
    }
    // A count of elements of at least `min_bytes` each, `each` bytes apiece once decoded.
    std::uint64_t count(const char* field, std::size_t max, std::size_t min_bytes, std::size_t each) {
        auto n = r.get_varint();
        if (!r.ok() || n > max || n > r.remaining() / min_bytes) { fail(std::string("bad ") + field + " count"); return 0; }
        if (!budget.take(n, each)) { over_budget(); return 0; }
        return n;
    }
    bool hlc(const char* field, hlc_t& out) {
        out = r.get_u64le();
        if (r.ok() && out > max_hlc) return fail(std::string(field) + " out of range (>= 2^63)");
        return r.ok();
    }
    bool val(value& out, const char* what) {
        if (decode_value(r, out, budget)) return true;
        return budget.spent() ? over_budget() : fail(what);
    }
    bool progress(std::vector<origin_progress>& out) {
        auto n = count("origin", max_origins, 10, sizeof(origin_progress)); // name >= 2, hlc 8
        out.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
            origin_progress p;
            p.origin = list_str("origin name");
            if (!hlc("progress hlc", p.hlc)) break;
            out.push_back(std::move(p));
        }
        return r.ok() || fail("truncated progress list");
    }
    bool resume(copy_resume& out) {
        out.table = str("resume table", max_name_len, false);
        out.phase = r.get_u8();
        if (!r.ok()) return fail("truncated copy resume point");
        if (out.phase > 1) return fail("bad copy resume phase");
        return val(out.key, "bad copy resume key");
    }
    bool sub(subscription& s) {
        s.start_after = r.get_u64le();
        // hlc_nothing: "nothing without a progress entry" (a node whose copy is not done).
        if (r.ok() && s.start_after > max_hlc && s.start_after != hlc_nothing) return fail("start_after out of range (>= 2^63)");
        if (!progress(s.progress)) return false;
        auto n = count("exclude", max_origins, 2, sizeof(std::string));
        s.exclude.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n && r.ok(); ++i) s.exclude.push_back(list_str("excluded origin"));
        return r.ok() || fail("truncated subscription");
    }
};

} // namespace

const char* name_of(const message& m) {
    return message_names[m.index()];
}

bytes encode(const message& m) {
    bytes out;
    byte_writer w(out);
    w.put_u8(static_cast<std::uint8_t>(m.index() + 1));
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, hello>) {
                w.put_raw(hello_magic, 4);
                w.put_u8(static_cast<std::uint8_t>(x.version & 0xff));
                w.put_u8(static_cast<std::uint8_t>(x.version >> 8));
                w.put_str(x.node_name);
                w.put_str(x.node_url);
                w.put_str(x.database);
                w.put_str(x.db_id);
                w.put_u8(static_cast<std::uint8_t>((x.needs_copy ? 1 : 0) | (x.resume ? 2 : 0)));
                put_subscription(w, x.sub);
                if (x.resume) put_resume(w, *x.resume);
            } else if constexpr (std::is_same_v<T, subscribe>) {
                put_subscription(w, x.sub);
            } else if constexpr (std::is_same_v<T, txn>) {
                w.put_varint(x.seq);
                w.put_raw(x.record.data(), x.record.size());
            } else if constexpr (std::is_same_v<T, ack>) {
                w.put_varint(x.seq);
            } else if constexpr (std::is_same_v<T, copy_start>) {
                w.put_varint(x.total_rows);
                put_progress(w, x.progress);
            } else if constexpr (std::is_same_v<T, copy_table>) {
                w.put_str(x.name);
                w.put_str(x.definition);
            } else if constexpr (std::is_same_v<T, copy_rows>) {
                w.put_varint(x.table);
                w.put_varint(x.rows.size());
                for (const auto& row : x.rows) {
                    w.put_u8(row.deleted ? 2 : 1);
                    w.put_u64le(row.hlc);
                    w.put_str(row.origin);
                    if (row.deleted) {
                        encode_value(w, row.values.at(0));
                    } else {
                        w.put_varint(row.values.size());
                        for (const auto& v : row.values) encode_value(w, v);
                    }
                }
            } else if constexpr (std::is_same_v<T, copy_end>) {
                w.put_varint(x.seq);
                put_progress(w, x.progress);
            } else if constexpr (std::is_same_v<T, copy_ack>) {
                w.put_varint(x.chunks);
            } else if constexpr (std::is_same_v<T, error_msg>) {
                w.put_str(x.text);
            } else if constexpr (std::is_same_v<T, removed>) {
                w.put_str(x.by);
            } else if constexpr (std::is_same_v<T, read_request>) {
                w.put_varint(x.id);
                w.put_str(x.table);
                w.put_str(x.key_column);
                encode_value(w, x.key);
            } else if constexpr (std::is_same_v<T, read_reply>) {
                w.put_varint(x.id);
                w.put_u8(static_cast<std::uint8_t>(x.status));
                if (x.status == read_status::found) {
                    w.put_varint(x.row.size());
                    for (const auto& v : x.row) encode_value(w, v);
                }
            } else if constexpr (std::is_same_v<T, copy_request>) {
                if (x.resume) { // none: an empty body (a copy from the start)
                    w.put_u8(1);
                    put_resume(w, *x.resume);
                }
            } else if constexpr (std::is_same_v<T, fragment>) {
                w.put_u64le(x.total);
                w.put_raw(x.data.data(), x.data.size());
            } else if constexpr (std::is_same_v<T, fragment_ack>) {
                w.put_varint(x.received);
            }
        },
        m);
    return out;
}

std::optional<message> decode(bytes&& data, std::string& error) {
    if (data.empty() || static_cast<msg>(data[0]) != msg::txn) return decode(data.data(), data.size(), error);
    byte_reader r(data.data() + 1, data.size() - 1);
    txn t;
    t.seq = r.get_varint();
    if (!r.ok()) return decode(data.data(), data.size(), error); // says what is wrong, as usual
    const std::size_t head = data.size() - r.remaining();
    if (!decode_record(r.position(), r.remaining(), error)) {
        error = "malformed txn message: " + error;
        return std::nullopt;
    }
    data.erase(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(head));
    t.record = std::move(data);
    return std::optional<message>(std::move(t));
}

bytes encode_fragment(std::uint64_t total, const std::uint8_t* data, std::size_t n) {
    bytes out;
    out.reserve(fragment_header_bytes + n);
    byte_writer w(out);
    w.put_u8(static_cast<std::uint8_t>(msg::fragment));
    w.put_u64le(total);
    w.put_raw(data, n);
    return out;
}

std::optional<message> decode(const std::uint8_t* data, std::size_t size, std::string& error) {
    if (size == 0) { error = "empty message"; return std::nullopt; }
    reader rd(byte_reader(data + 1, size - 1), size);
    message result;
    bool have = false;
    switch (static_cast<msg>(data[0])) {
    case msg::hello: {
        hello h;
        auto* magic = rd.r.get_raw(4);
        if (!magic || std::memcmp(magic, hello_magic, 4) != 0) { rd.fail("bad magic (not an hdbrepl peer)"); break; }
        auto lo = rd.r.get_u8(), hi = rd.r.get_u8();
        h.version = static_cast<std::uint16_t>(lo | (hi << 8));
        if (rd.r.ok() && h.version != protocol_version) { rd.fail("unsupported protocol version " + std::to_string(h.version)); break; }
        h.node_name = rd.str("node name", max_name_len, false);
        h.node_url = rd.str("node url");
        h.database = rd.str("database", max_name_len, false);
        h.db_id = rd.str("database id");
        auto flags = rd.r.get_u8();
        if (flags > 3) { rd.fail("unknown flags"); break; }
        h.needs_copy = (flags & 1) != 0;
        if (!rd.sub(h.sub)) break;
        if (flags & 2) {
            if (!h.needs_copy) { rd.fail("copy resume point without needs_copy"); break; }
            h.resume.emplace();
            if (!rd.resume(*h.resume)) break;
        }
        result = std::move(h);
        have = true;
        break;
    }
    case msg::subscribe: {
        subscribe s;
        if (!rd.sub(s.sub)) break;
        result = std::move(s);
        have = true;
        break;
    }
    case msg::txn: {
        txn t;
        t.seq = rd.r.get_varint();
        if (!rd.r.ok()) { rd.fail("bad sequence number"); break; }
        auto n = rd.r.remaining();
        auto* p = rd.r.get_raw(n);
        std::string err;
        if (!decode_record(p, n, err)) { rd.fail(err); break; }
        t.record.assign(p, p + n);
        result = std::move(t);
        have = true;
        break;
    }
    case msg::ack: {
        ack a;
        a.seq = rd.r.get_varint();
        if (rd.r.ok()) { result = a; have = true; }
        break;
    }
    case msg::copy_start: {
        copy_start c;
        c.total_rows = rd.r.get_varint();
        if (!rd.r.ok()) break;
        if (rd.progress(c.progress)) { result = std::move(c); have = true; }
        break;
    }
    case msg::copy_table: {
        copy_table c;
        c.name = rd.str("table name", max_name_len, false);
        c.definition = rd.str("table definition", max_definition_len, false);
        if (rd.r.ok()) { result = std::move(c); have = true; }
        break;
    }
    case msg::copy_rows: {
        copy_rows c;
        c.table = static_cast<std::uint32_t>(rd.r.get_varint());
        // A row takes at least 12 bytes: op, hlc (8), origin (2), one value.
        auto n = rd.count("row", max_rows_per_chunk, 12, sizeof(copy_row));
        c.rows.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n && rd.r.ok(); ++i) {
            copy_row row;
            auto op = rd.r.get_u8();
            if (op != 1 && op != 2) { rd.fail("bad row operation"); break; }
            row.deleted = op == 2;
            if (!rd.hlc("row hlc", row.hlc)) break;
            row.origin = rd.list_str("row origin");
            if (!rd.r.ok()) break;
            if (row.hlc == 0) { rd.fail("zero row version"); break; }
            std::uint64_t ncols = 1;
            if (!row.deleted) ncols = rd.count("column", max_columns, 1, sizeof(value));
            else if (!rd.budget.take(1, sizeof(value))) rd.over_budget();
            if (!rd.r.ok()) break;
            if (ncols == 0) { rd.fail("row without columns"); break; }
            row.values.resize(static_cast<std::size_t>(ncols));
            for (auto& v : row.values)
                if (!rd.val(v, "bad row value")) break;
            c.rows.push_back(std::move(row));
        }
        if (rd.r.ok()) { result = std::move(c); have = true; }
        break;
    }
    case msg::copy_end: {
        copy_end c;
        c.seq = rd.r.get_varint();
        if (rd.progress(c.progress)) { result = std::move(c); have = true; }
        break;
    }
    case msg::copy_ack: {
        copy_ack c;
        c.chunks = rd.r.get_varint();
        if (rd.r.ok()) { result = c; have = true; }
        break;
    }
    case msg::error: {
        error_msg e;
        e.text = rd.str("error text", 4096);
        if (rd.r.ok()) { result = std::move(e); have = true; }
        break;
    }
    case msg::removed: {
        removed x;
        x.by = rd.str("node name", max_name_len, false);
        if (rd.r.ok()) { result = std::move(x); have = true; }
        break;
    }
    case msg::copy_request: {
        copy_request c;
        if (!rd.r.at_end()) {
            if (rd.r.get_u8() != 1) { rd.fail("bad copy request flags"); break; }
            c.resume.emplace();
            if (!rd.resume(*c.resume)) break;
        }
        result = std::move(c);
        have = true;
        break;
    }
    case msg::read_request: {
        read_request q;
        q.id = rd.r.get_varint();
        q.table = rd.str("table name", max_name_len, false);
        q.key_column = rd.str("key column", max_name_len, false);
        if (!rd.r.ok()) break;
        if (!rd.val(q.key, "bad key")) break;
        result = std::move(q);
        have = true;
        break;
    }
    case msg::read_reply: {
        read_reply a;
        a.id = rd.r.get_varint();
        auto status = rd.r.get_u8();
        if (!rd.r.ok()) break;
        if (status > 2) { rd.fail("bad read status"); break; }
        a.status = static_cast<read_status>(status);
        if (a.status == read_status::found) {
            auto n = rd.count("column", max_columns, 1, sizeof(value));
            if (!rd.r.ok()) break;
            if (n == 0) { rd.fail("row without columns"); break; }
            a.row.resize(static_cast<std::size_t>(n));
            for (auto& v : a.row)
                if (!rd.val(v, "bad row value")) break;
            if (!rd.r.ok()) break;
        }
        result = std::move(a);
        have = true;
        break;
    }
    case msg::fragment: {
        // Whether the pieces fit together (sizes, order, nesting) is the assembler's to say
        // (fragments.hpp); one piece on its own is a size and some bytes.
        fragment f;
        f.total = rd.r.get_u64le();
        if (!rd.r.ok()) { rd.fail("truncated total"); break; }
        const auto n = rd.r.remaining();
        if (n == 0) { rd.fail("no data"); break; }
        if (n > f.total) { rd.fail("more data than the declared total"); break; }
        const auto* p = rd.r.get_raw(n);
        f.data.assign(p, p + n);
        result = std::move(f);
        have = true;
        break;
    }
    case msg::fragment_ack: {
        fragment_ack a;
        a.received = rd.r.get_varint();
        if (!rd.r.ok()) break;
        if (a.received == 0) { rd.fail("acknowledges nothing"); break; }
        result = a;
        have = true;
        break;
    }
    default:
        error = "unknown message type " + std::to_string(data[0]);
        return std::nullopt;
    }
    if (have && !rd.r.at_end() && !std::holds_alternative<txn>(result) && !std::holds_alternative<fragment>(result)) {
        rd.fail("trailing bytes");
        have = false;
    }
    if (!have) {
        error = std::string("malformed ") + message_names[data[0] - 1] + " message: " + (rd.failed ? rd.reason : "truncated");
        return std::nullopt;
    }
    return std::optional<message>(std::move(result));
}

} // namespace hdbrepl::engine::wire
