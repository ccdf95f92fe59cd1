// Peer protocol codec (see wire.hpp and docs/protocol.md for the layout).
#include "engine/wire.hpp"

#include "engine/txn_record.hpp"

#include <cstring>

namespace hdbrepl::engine::wire {

namespace {

const char* const message_names[] = {"hello",    "subscribe", "txn",   "ack",     "copy_start",   "copy_table",  "copy_rows",
                                     "copy_end", "copy_ack",  "error", "removed", "copy_request", "read_request", "read_reply"};

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

struct reader {
    explicit reader(byte_reader in) : r(in) {}
    byte_reader r;
    bool failed = false;
    std::string reason;
    bool fail(const std::string& why) {
        if (!failed) { failed = true; reason = why; }
        r.fail();
        return false;
    }
    std::string str(const char* field, std::size_t max_len = max_name_len, bool allow_empty = true) {
        auto s = r.get_str(max_len);
        if (!r.ok()) { fail(std::string("bad ") + field); return {}; }
        if (!allow_empty && s.empty()) { fail(std::string("empty ") + field); return {}; }
        return std::string(s);
    }
    std::uint64_t count(const char* field, std::size_t max) {
        auto n = r.get_varint();
        // Each element takes at least one byte, so a count beyond what remains is a lie.
        if (!r.ok() || n > max || n > r.remaining()) { fail(std::string("bad ") + field + " count"); return 0; }
        return n;
    }
    bool progress(std::vector<origin_progress>& out) {
        auto n = count("origin", max_origins);
        for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
            origin_progress p;
            p.origin = str("origin name", max_name_len, false);
            p.hlc = r.get_u64le();
            out.push_back(std::move(p));
        }
        return r.ok() || fail("truncated progress list");
    }
    bool resume(copy_resume& out) {
        out.table = str("resume table", max_name_len, false);
        out.phase = r.get_u8();
        if (!r.ok()) return fail("truncated copy resume point");
        if (out.phase > 1) return fail("bad copy resume phase");
        if (!decode_value(r, out.key)) return fail("bad copy resume key");
        return true;
    }
    bool sub(subscription& s) {
        s.start_after = r.get_u64le();
        if (!progress(s.progress)) return false;
        auto n = count("exclude", max_origins);
        for (std::uint64_t i = 0; i < n && r.ok(); ++i) s.exclude.push_back(str("excluded origin", max_name_len, false));
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
            }
        },
        m);
    return out;
}

std::optional<message> decode(const std::uint8_t* data, std::size_t size, std::string& error) {
    if (size == 0) { error = "empty message"; return std::nullopt; }
    reader rd(byte_reader(data + 1, size - 1));
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
        auto n = rd.count("row", max_rows_per_chunk);
        for (std::uint64_t i = 0; i < n && rd.r.ok(); ++i) {
            copy_row row;
            auto op = rd.r.get_u8();
            if (op != 1 && op != 2) { rd.fail("bad row operation"); break; }
            row.deleted = op == 2;
            row.hlc = rd.r.get_u64le();
            row.origin = rd.str("row origin", max_name_len, false);
            if (!rd.r.ok()) break;
            if (row.hlc == 0) { rd.fail("zero row version"); break; }
            std::uint64_t ncols = 1;
            if (!row.deleted) ncols = rd.count("column", max_columns);
            if (!rd.r.ok()) break;
            if (ncols == 0) { rd.fail("row without columns"); break; }
            row.values.resize(static_cast<std::size_t>(ncols));
            for (auto& v : row.values)
                if (!decode_value(rd.r, v)) { rd.fail("bad row value"); break; }
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
        if (!decode_value(rd.r, q.key)) { rd.fail("bad key"); break; }
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
            auto n = rd.count("column", max_columns);
            if (!rd.r.ok()) break;
            if (n == 0) { rd.fail("row without columns"); break; }
            a.row.resize(static_cast<std::size_t>(n));
            bool ok = true;
            for (auto& v : a.row)
                if (!decode_value(rd.r, v)) { ok = false; break; }
            if (!ok) { rd.fail("bad row value"); break; }
        }
        result = std::move(a);
        have = true;
        break;
    }
    default:
        error = "unknown message type " + std::to_string(data[0]);
        return std::nullopt;
    }
    if (have && !rd.r.at_end() && !std::holds_alternative<txn>(result)) {
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
