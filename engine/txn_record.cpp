// Change-log record codec (format described in txn_record.hpp).
#include "engine/txn_record.hpp"

#include <set>

namespace hdbrepl::engine {

namespace {
std::uint8_t base_of(std::uint8_t f) { return f & 0x0f; }
bool known_format(std::uint8_t f) {
    if (f & ~(0x0f | record_flag_part | record_flag_last)) return false;
    if ((f & record_flag_last) && !(f & record_flag_part)) return false;
    return base_of(f) >= record_format && base_of(f) <= record_format_placed_trimmed;
}
bool format_trimmed(std::uint8_t f) { return base_of(f) == record_format_trimmed || base_of(f) == record_format_placed_trimmed; }
bool format_placed(std::uint8_t f) { return base_of(f) == record_format_placed || base_of(f) == record_format_placed_trimmed; }
std::uint8_t format_of(bool trimmed, bool placed, part_info part) {
    std::uint8_t f = placed ? (trimmed ? record_format_placed_trimmed : record_format_placed) : (trimmed ? record_format_trimmed : record_format);
    if (part.part) f |= record_flag_part | (part.last ? record_flag_last : 0);
    return f;
}
// decode_record() charging what it builds to `budget`.
std::optional<txn_record> decode_within(const std::uint8_t* data, std::size_t size, std::string& error, decode_budget& budget);
} // namespace

void encode_record_head(byte_writer& w, hlc_t hlc, std::string_view origin, const std::vector<record_table>& tables, bool trimmed,
                        bool placed, part_info part) {
    w.put_u8(record_magic);
    w.put_u8(format_of(trimmed, placed, part));
    w.put_u64le(hlc);
    w.put_str(origin);
    if (part.part) w.put_varint(part.index);
    w.put_varint(tables.size());
    for (const auto& t : tables) {
        w.put_str(t.name);
        w.put_str(t.definition);
    }
}

void encode_placements(byte_writer& w, const std::vector<std::vector<std::string>>& lists, const std::vector<std::int32_t>& per_change) {
    w.put_varint(lists.size());
    for (const auto& l : lists) {
        w.put_varint(l.size());
        for (const auto& n : l) w.put_str(n);
    }
    for (auto i : per_change) w.put_varint(static_cast<std::uint64_t>(i + 1));
}

bytes encode_record(const txn_record& rec) {
    bytes out;
    byte_writer w(out);
    const bool placed = !rec.placements.empty();
    encode_record_head(w, rec.hlc, rec.origin, rec.tables, rec.trimmed, placed, {rec.part, rec.part_index, rec.part_last});
    w.put_varint(rec.changes.size());
    for (const auto& c : rec.changes) {
        w.put_varint(c.table);
        w.put_u8(static_cast<std::uint8_t>(c.op));
        switch (c.op) {
        case change_op::put:
            w.put_varint(c.values.size());
            for (const auto& v : c.values) encode_value(w, v);
            break;
        case change_op::del: encode_value(w, c.values.at(0)); break;
        case change_op::rename_table: w.put_str(c.values.at(0).s); break;
        case change_op::create_table:
        case change_op::drop_table: break;
        }
    }
    if (placed) {
        std::vector<std::int32_t> per_change;
        per_change.reserve(rec.changes.size());
        for (const auto& c : rec.changes) per_change.push_back(c.placement);
        encode_placements(w, rec.placements, per_change);
    }
    return out;
}

bytes filter_record(const std::uint8_t* data, std::size_t size, const std::function<bool(const std::string& table)>& keep) {
    return filter_changes(data, size, [&](const record_table& t, const change&) { return keep(t.name); });
}

bytes filter_changes(const std::uint8_t* data, std::size_t size, const std::function<bool(const record_table& table, const change& c)>& keep,
                     bool keep_empty) {
    // The records filtered are this node's own log: made here, or received and validated
    // (within the decode limit) before they were logged. One made here past the limit is
    // still sent whole, so its receiver refuses it loudly rather than a filter dropping it.
    std::string err;
    decode_budget unbounded(SIZE_MAX);
    auto rec = decode_within(data, size, err, unbounded);
    if (!rec) return {};
    txn_record out;
    out.hlc = rec->hlc;
    out.origin = rec->origin;
    out.trimmed = rec->trimmed;
    out.placements = std::move(rec->placements);
    out.part = rec->part;
    out.part_index = rec->part_index;
    out.part_last = rec->part_last;
    std::vector<std::int64_t> remap(rec->tables.size(), -1);
    for (auto& c : rec->changes) {
        if (!keep(rec->tables[c.table], c)) {
            out.trimmed = true;
            continue;
        }
        if (remap[c.table] < 0) {
            remap[c.table] = static_cast<std::int64_t>(out.tables.size());
            out.tables.push_back(rec->tables[c.table]);
        }
        c.table = static_cast<std::uint32_t>(remap[c.table]);
        out.changes.push_back(std::move(c));
    }
    // A part stays, emptied: its receiver checks that a transaction's parts are contiguous.
    if (out.changes.empty() && !keep_empty && !out.part) return {};
    return encode_record(out);
}

bool record_is_trimmed(const std::uint8_t* data, std::size_t size) {
    return size >= 2 && data[0] == record_magic && format_trimmed(data[1]);
}

bool record_is_placed(const std::uint8_t* data, std::size_t size) {
    return size >= 2 && data[0] == record_magic && format_placed(data[1]);
}

part_info record_part(const std::uint8_t* data, std::size_t size) {
    part_info p;
    byte_reader r(data, size);
    if (r.get_u8() != record_magic) return p;
    auto fmt = r.get_u8();
    if (!r.ok() || !known_format(fmt) || !(fmt & record_flag_part)) return p;
    r.get_u64le();
    r.get_str(max_name_len);
    auto index = r.get_varint();
    if (!r.ok() || index >= max_record_parts) return p;
    return {true, static_cast<std::uint32_t>(index), (fmt & record_flag_last) != 0};
}

bytes empty_part_like(const std::uint8_t* data, std::size_t size) {
    auto part = record_part(data, size);
    hlc_t hlc = 0;
    std::string origin;
    if (!part.part || !peek_record_head(data, size, hlc, origin)) return {};
    txn_record out;
    out.hlc = hlc;
    out.origin = std::move(origin);
    out.trimmed = true;
    out.part = true;
    out.part_index = part.index;
    out.part_last = part.last;
    return encode_record(out);
}

bool peek_record_head(const std::uint8_t* data, std::size_t size, hlc_t& hlc, std::string& origin) {
    byte_reader r(data, size);
    if (r.get_u8() != record_magic || !known_format(r.get_u8())) return false;
    hlc = r.get_u64le();
    origin.assign(r.get_str(max_name_len));
    return r.ok() && hlc <= max_hlc;
}

namespace {

std::optional<txn_record> decode_within(const std::uint8_t* data, std::size_t size, std::string& error, decode_budget& budget) {
    byte_reader r(data, size);
    auto fail = [&](const std::string& what) {
        error = "malformed change record: " + what + " at byte " + std::to_string(size - r.remaining());
        return std::nullopt;
    };
    const char* const too_big = "decoded size over the limit";
    if (r.get_u8() != record_magic) return fail("bad magic");
    auto fmt = r.get_u8();
    if (!r.ok()) return fail("truncated header");
    if (!known_format(fmt)) return fail("unsupported format " + std::to_string(fmt));
    txn_record rec;
    rec.trimmed = format_trimmed(fmt);
    rec.hlc = r.get_u64le();
    rec.origin.assign(r.get_str(max_name_len));
    if (!r.ok()) return fail("truncated header");
    if (rec.origin.empty()) return fail("empty origin");
    if (rec.hlc == 0) return fail("zero timestamp");
    if (rec.hlc > max_hlc) return fail("timestamp out of range (>= 2^63)");
    if (fmt & record_flag_part) {
        auto index = r.get_varint();
        if (!r.ok() || index >= max_record_parts) return fail("bad part index");
        rec.part = true;
        rec.part_index = static_cast<std::uint32_t>(index);
        rec.part_last = (fmt & record_flag_last) != 0;
    }
    // Every count is checked against the least its elements take on the wire, and charged to
    // the budget, before anything is reserved for it.
    auto ntables = r.get_varint();
    if (!r.ok() || ntables > r.remaining() / 3) return fail("bad table count"); // name >= 2, definition >= 1
    // Each table: its entry, and its name's copy in `names` (a set node: ~4 pointers + string).
    if (!budget.take(ntables, sizeof(record_table) + sizeof(std::string) + 4 * sizeof(void*))) return fail(too_big);
    rec.tables.reserve(static_cast<std::size_t>(ntables));
    std::set<std::string> names;
    for (std::uint64_t i = 0; i < ntables; ++i) {
        record_table t;
        t.name.assign(r.get_str(max_name_len));
        t.definition.assign(r.get_str(max_definition_len));
        if (!r.ok()) return fail("truncated table list");
        if (t.name.empty()) return fail("empty table name");
        if (!budget.take_string(t.name.size()) || !budget.take_string(t.name.size()) || !budget.take_string(t.definition.size()))
            return fail(too_big);
        if (!names.insert(t.name).second) return fail("table '" + t.name + "' listed twice");
        rec.tables.push_back(std::move(t));
    }
    auto nchanges = r.get_varint();
    if (!r.ok() || nchanges > r.remaining() / 2) return fail("bad change count"); // table index + op
    if (!budget.take(nchanges, sizeof(change))) return fail(too_big);
    rec.changes.reserve(static_cast<std::size_t>(nchanges));
    for (std::uint64_t i = 0; i < nchanges; ++i) {
        change c;
        auto t = r.get_varint();
        auto op = r.get_u8();
        if (!r.ok()) return fail("truncated change");
        if (t >= rec.tables.size()) return fail("change refers to table " + std::to_string(t) + " of " + std::to_string(rec.tables.size()));
        c.table = static_cast<std::uint32_t>(t);
        c.op = static_cast<change_op>(op);
        switch (c.op) {
        case change_op::put: {
            auto n = r.get_varint();
            if (!r.ok() || n == 0 || n > max_columns || n > r.remaining()) return fail("bad column count");
            if (!budget.take(n, sizeof(value))) return fail(too_big);
            c.values.resize(static_cast<std::size_t>(n));
            for (auto& v : c.values)
                if (!decode_value(r, v, budget)) return fail(budget.spent() ? too_big : "bad value");
            break;
        }
        case change_op::del:
            if (!budget.take(1, sizeof(value))) return fail(too_big);
            c.values.resize(1);
            if (!decode_value(r, c.values[0], budget)) return fail(budget.spent() ? too_big : "bad key");
            break;
        case change_op::rename_table: {
            auto s = r.get_str(max_name_len);
            if (!r.ok() || s.empty()) return fail("bad new table name");
            if (!budget.take(1, sizeof(value)) || !budget.take_string(s.size())) return fail(too_big);
            c.values.push_back(value::of_text(std::string(s)));
            break;
        }
        case change_op::create_table:
        case change_op::drop_table: break;
        default: return fail("unknown operation " + std::to_string(op));
        }
        rec.changes.push_back(std::move(c));
    }
    if (format_placed(fmt)) {
        auto nlists = r.get_varint();
        // A list takes at least its node count and one name (length + 1 byte).
        if (!r.ok() || nlists == 0 || nlists > r.remaining() / 3) return fail("bad placement count");
        if (!budget.take(nlists, sizeof(std::vector<std::string>))) return fail(too_big);
        rec.placements.resize(static_cast<std::size_t>(nlists));
        for (auto& l : rec.placements) {
            auto n = r.get_varint();
            if (!r.ok() || n == 0 || n > max_placement_nodes || n > r.remaining() / 2) return fail("bad placement node count");
            if (!budget.take(n, sizeof(std::string))) return fail(too_big);
            l.reserve(static_cast<std::size_t>(n));
            for (std::uint64_t i = 0; i < n; ++i) {
                auto name = r.get_str(max_name_len);
                if (!r.ok() || name.empty()) return fail("bad placement node name");
                if (!l.empty() && !(l.back() < name)) return fail("placement nodes not sorted and unique");
                if (!budget.take_string(name.size())) return fail(too_big);
                l.emplace_back(name);
            }
        }
        for (auto& c : rec.changes) {
            auto i = r.get_varint();
            if (!r.ok() || i > nlists) return fail("bad placement index");
            if (i && c.op != change_op::put && c.op != change_op::del) return fail("placement on a table change");
            c.placement = static_cast<std::int32_t>(i) - 1;
        }
    }
    if (!r.at_end()) return fail("trailing bytes");
    return rec;
}

} // namespace

std::optional<txn_record> decode_record(const std::uint8_t* data, std::size_t size, std::string& error) {
    decode_budget budget(size);
    return decode_within(data, size, error, budget);
}

} // namespace hdbrepl::engine
