// libFuzzer target: the change-record codec (engine/txn_record.cpp, engine/value.cpp) and
// the table-definition parser that reads the definitions records carry (engine/table_def.cpp).
// Invariants: decode_record never crashes; a decoded record re-encodes to bytes that
// decode to the same record (no longer than the input); peek_record_head agrees with the
// full decode, and record_part() with it on a part's header; filter_record keeping every
// table keeps every change, keeping none gives nothing (a part: the same part, empty), a
// malformed record filters to nothing, and any filtered record decodes; a definition that parses reaches a fixed
// point in canonical form (what peers receive must parse to the same table there).
#include "engine/table_def.hpp"
#include "engine/txn_record.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace hdbrepl::engine;

namespace {

bool same_change(const change& a, const std::string& a_table, const change& b, const std::string& b_table) {
    return a_table == b_table && a.op == b.op && a.values == b.values;
}

void check_definition(const std::string& text) {
    std::string err;
    auto def = parse_table_def(std::string_view(text), err);
    if (!def) {
        FUZZ_CHECK(!err.empty());
        return;
    }
    FUZZ_CHECK(def->pk < def->columns.size());
    const std::string canon = def->canonical();
    std::string err2;
    auto again = parse_table_def(std::string_view(canon), err2);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(again->canonical() == canon);
    FUZZ_CHECK(again->pk == def->pk && again->columns.size() == def->columns.size());
    for (std::size_t i = 0; i < def->columns.size(); ++i) {
        FUZZ_CHECK(again->columns[i].name == def->columns[i].name);
        FUZZ_CHECK(again->columns[i].aff == def->columns[i].aff);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hlc_t peek_hlc = 0;
    std::string peek_origin;
    const bool peeked = peek_record_head(data, size, peek_hlc, peek_origin);

    std::string err;
    auto rec = decode_record(data, size, err);
    if (!rec) {
        FUZZ_CHECK(!err.empty());
        // (A filter decodes this node's own log without the decode limit: only a record
        // refused for its decoded size may still filter to something.)
        if (err.find("decoded size over the limit") == std::string::npos)
            FUZZ_CHECK(filter_record(data, size, [](const std::string&) { return true; }).empty());
        // A definition is also fuzzed on its own (the bytes after a first '\0' byte).
        if (size > 1 && data[0] == 0) check_definition(fuzz_text(data + 1, size - 1));
        return 0;
    }
    FUZZ_CHECK(peeked && peek_hlc == rec->hlc && peek_origin == rec->origin);

    const bytes once = encode_record(*rec);
    FUZZ_CHECK(once.size() <= size);
    std::string err2;
    auto again = decode_record(once.data(), once.size(), err2);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(encode_record(*again) == once);
    FUZZ_CHECK(again->hlc == rec->hlc && again->origin == rec->origin && again->trimmed == rec->trimmed);
    FUZZ_CHECK(record_is_trimmed(data, size) == rec->trimmed);
    FUZZ_CHECK(again->tables.size() == rec->tables.size() && again->changes.size() == rec->changes.size());
    for (std::size_t i = 0; i < rec->changes.size(); ++i)
        FUZZ_CHECK(again->changes[i].values == rec->changes[i].values);

    // The part header reads the same through record_part().
    const part_info head = record_part(data, size);
    FUZZ_CHECK(head.part == rec->part && head.index == rec->part_index && head.last == rec->part_last);
    FUZZ_CHECK(again->part == rec->part && again->part_index == rec->part_index && again->part_last == rec->part_last);

    // Filtering. A part filtered down to nothing stays, empty and trimmed, with its header.
    const bytes none = filter_record(data, size, [](const std::string&) { return false; });
    if (!rec->part) {
        FUZZ_CHECK(none.empty());
    } else {
        auto e = decode_record(none.data(), none.size(), err2);
        FUZZ_CHECK(e.has_value() && e->changes.empty() && e->part && e->part_index == rec->part_index && e->part_last == rec->part_last);
        FUZZ_CHECK(e->trimmed == (rec->trimmed || !rec->changes.empty()));
    }
    const bytes all = filter_record(data, size, [](const std::string&) { return true; });
    if (rec->changes.empty() && !rec->part) {
        FUZZ_CHECK(all.empty());
    } else if (rec->changes.empty()) {
        auto f = decode_record(all.data(), all.size(), err2);
        FUZZ_CHECK(f.has_value() && f->changes.empty() && f->part);
    } else {
        auto f = decode_record(all.data(), all.size(), err2);
        FUZZ_CHECK(f.has_value());
        FUZZ_CHECK(f->hlc == rec->hlc && f->origin == rec->origin);
        FUZZ_CHECK(f->changes.size() == rec->changes.size());
        for (std::size_t i = 0; i < rec->changes.size(); ++i)
            FUZZ_CHECK(same_change(f->changes[i], f->tables[f->changes[i].table].name, rec->changes[i],
                                   rec->tables[rec->changes[i].table].name));
    }
    std::size_t kept_expected = 0;
    auto odd = [](const std::string& t) { return t.size() % 2 == 1; };
    for (const auto& c : rec->changes) kept_expected += odd(rec->tables[c.table].name) ? 1 : 0;
    const bytes some = filter_record(data, size, odd);
    if (kept_expected == 0 && !rec->part) {
        FUZZ_CHECK(some.empty());
    } else if (kept_expected == 0) {
        auto f = decode_record(some.data(), some.size(), err2);
        FUZZ_CHECK(f.has_value() && f->changes.empty() && f->part && f->tables.empty());
    } else {
        auto f = decode_record(some.data(), some.size(), err2);
        FUZZ_CHECK(f.has_value() && f->changes.size() == kept_expected);
        FUZZ_CHECK(f->trimmed == (rec->trimmed || kept_expected < rec->changes.size()));
        for (const auto& t : f->tables) FUZZ_CHECK(odd(t.name));
    }

    // The value codec's other readers agree with decode_value.
    for (const auto& c : rec->changes)
        for (const auto& v : c.values) {
            bytes b;
            byte_writer w(b);
            encode_value(w, v);
            byte_reader r(b);
            FUZZ_CHECK(skip_value(r) && r.at_end());
            const std::string key(b.begin(), b.end());
            const std::string norm = normalized_key(key);
            FUZZ_CHECK(normalized_key(norm) == norm);
            byte_reader nr(reinterpret_cast<const std::uint8_t*>(norm.data()), norm.size());
            value nv;
            FUZZ_CHECK(decode_value(nr, nv) && nr.at_end());
            FUZZ_CHECK((nv <=> v) == 0); // 1.0 and 1 are the same key
        }

    for (const auto& t : rec->tables) check_definition(t.definition);
    return 0;
}
