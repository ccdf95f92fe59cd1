// Unit tests for engine/txn_record.hpp: the change-record codec, its validation, and its
// robustness against truncated and mutated input.
#include <catch2/catch.hpp>

#include "tests/unit/test_printers.hpp"

#include "engine/txn_record.hpp"

#include <cstdlib>
#include <limits>
#include <random>
#include <string>

using namespace hdbrepl::engine;

namespace {

txn_record sample_record() {
    txn_record r;
    r.hlc = hlc_from_ms(1'795'687'405'123) | 42;
    r.origin = "node-a";
    r.tables = {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT, \"breed\" TEXT INDEXED"},
                {"cat", "\"k\" TEXT PRIMARY KEY, \"v\""},
                {"old", "\"id\" PRIMARY KEY"},
                {"gone", "\"id\" PRIMARY KEY"},
                {"fresh", "\"id\" PRIMARY KEY"}};
    r.changes = {
        {0, change_op::put, {value::of_int(1), value::of_text("Rex"), value::of_text("collie")}},
        {0, change_op::put, {value::of_int(2), value::null(), value::of_blob(std::string("\x00\x01", 2))}},
        {0, change_op::del, {value::of_int(3)}},
        {1, change_op::put, {value::of_text("k"), value::of_real(-0.5)}},
        {1, change_op::del, {value::of_text("")}},
        {2, change_op::rename_table, {value::of_text("new")}},
        {3, change_op::drop_table, {}},
        {4, change_op::create_table, {}},
        {0, change_op::put, {value::of_int(std::numeric_limits<std::int64_t>::min()), value::of_text(""), value::of_blob("")}},
    };
    return r;
}

void check_equal(const txn_record& a, const txn_record& b) {
    CHECK(a.hlc == b.hlc);
    CHECK(a.origin == b.origin);
    CHECK(a.trimmed == b.trimmed);
    REQUIRE(a.tables.size() == b.tables.size());
    for (std::size_t i = 0; i < a.tables.size(); ++i) {
        CHECK(a.tables[i].name == b.tables[i].name);
        CHECK(a.tables[i].definition == b.tables[i].definition);
    }
    REQUIRE(a.changes.size() == b.changes.size());
    for (std::size_t i = 0; i < a.changes.size(); ++i) {
        INFO("change " << i);
        CHECK(a.changes[i].table == b.changes[i].table);
        CHECK(a.changes[i].op == b.changes[i].op);
        REQUIRE(a.changes[i].values.size() == b.changes[i].values.size());
        for (std::size_t j = 0; j < a.changes[i].values.size(); ++j) {
            CHECK(a.changes[i].values[j].type == b.changes[i].values[j].type);
            CHECK(a.changes[i].values[j] == b.changes[i].values[j]);
        }
    }
}

std::string expect_fail(const bytes& b, const std::string& needle = "") {
    std::string err;
    auto rec = decode_record(b.data(), b.size(), err);
    CHECK_FALSE(rec.has_value());
    INFO("error: " << err);
    CHECK(err.find("at byte ") != std::string::npos);
    if (!needle.empty()) CHECK(err.find(needle) != std::string::npos);
    return err;
}

std::uint64_t test_seed() {
    if (const char* s = std::getenv("HDBREPL_SEED")) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

} // namespace

TEST_CASE("txn_record: round trip with every operation", "[unit][txn_record]") {
    txn_record r = sample_record();
    bytes b = encode_record(r);
    CHECK(b[0] == 'H');
    CHECK(b[1] == record_format);
    std::string err;
    auto back = decode_record(b.data(), b.size(), err);
    INFO(err);
    REQUIRE(back.has_value());
    check_equal(r, *back);
    CHECK(encode_record(*back) == b);

    hlc_t hlc = 0;
    std::string origin;
    CHECK(peek_record_head(b.data(), b.size(), hlc, origin));
    CHECK(hlc == r.hlc);
    CHECK(origin == "node-a");
}

TEST_CASE("txn_record: minimal records", "[unit][txn_record]") {
    txn_record r;
    r.hlc = 1;
    r.origin = "n";
    bytes b = encode_record(r); // no tables, no changes: legal
    std::string err;
    auto back = decode_record(b.data(), b.size(), err);
    REQUIRE(back.has_value());
    CHECK(back->tables.empty());
    CHECK(back->changes.empty());

    r.tables = {{"t", "\"id\" PRIMARY KEY"}}; // a table listed without changes
    b = encode_record(r);
    back = decode_record(b.data(), b.size(), err);
    REQUIRE(back.has_value());
    CHECK(back->tables.size() == 1);
}

TEST_CASE("txn_record: encode_record_head is the start of encode_record", "[unit][txn_record]") {
    txn_record r = sample_record();
    bytes full = encode_record(r);
    bytes head;
    byte_writer w(head);
    encode_record_head(w, r.hlc, r.origin, r.tables);
    REQUIRE(head.size() < full.size());
    CHECK(std::equal(head.begin(), head.end(), full.begin()));
}

TEST_CASE("txn_record: every truncation fails cleanly with a byte offset", "[unit][txn_record]") {
    bytes b = encode_record(sample_record());
    for (std::size_t n = 0; n < b.size(); ++n) {
        INFO("truncated to " << n << " of " << b.size() << " bytes");
        bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
        std::string err = expect_fail(cut);
        // The offset named is inside the input.
        auto pos = err.find("at byte ");
        REQUIRE(pos != std::string::npos);
        CHECK(std::stoull(err.substr(pos + 8)) <= n);
    }
    // The header reader fails too on a short header.
    hlc_t hlc;
    std::string origin;
    CHECK_FALSE(peek_record_head(b.data(), 5, hlc, origin));
    CHECK_FALSE(peek_record_head(b.data(), 0, hlc, origin));
}

TEST_CASE("txn_record: random mutations never crash", "[unit][txn_record]") {
    const std::uint64_t seed = test_seed();
    std::printf("txn_record mutation test: HDBREPL_SEED=%llu\n", static_cast<unsigned long long>(seed));
    INFO("HDBREPL_SEED=" << seed);
    std::mt19937_64 rng(seed);
    const bytes orig = encode_record(sample_record());
    int decoded = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        bytes b = orig;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            switch (rng() % 5) {
            case 0: b[rng() % b.size()] = static_cast<std::uint8_t>(rng()); break;           // overwrite
            case 1: b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break; // bit flip
            case 2: b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng() % (b.size() + 1)), static_cast<std::uint8_t>(rng())); break;
            case 3: if (b.size() > 1) b.erase(b.begin() + static_cast<std::ptrdiff_t>(rng() % b.size())); break;
            case 4: b[rng() % b.size()] = (rng() & 1) ? 0xff : 0x7f; break; // huge lengths and counts
            }
        }
        std::string err;
        auto rec = decode_record(b.data(), b.size(), err);
        if (rec) {
            ++decoded;
            // Whatever decodes re-encodes to a record that decodes to the same thing.
            bytes again = encode_record(*rec);
            std::string err2;
            auto rec2 = decode_record(again.data(), again.size(), err2);
            INFO("iteration " << iter << ": " << err2);
            REQUIRE(rec2.has_value());
            check_equal(*rec, *rec2);
            for (const auto& c : rec->changes) REQUIRE(c.table < rec->tables.size());
        } else {
            INFO("iteration " << iter);
            REQUIRE(err.find("malformed change record") != std::string::npos);
            REQUIRE(err.find("at byte ") != std::string::npos);
        }
        hlc_t h;
        std::string o;
        (void)peek_record_head(b.data(), b.size(), h, o);
    }
    // Fully random input, too.
    for (int iter = 0; iter < 2000; ++iter) {
        bytes b(rng() % 64);
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        if (!b.empty() && (rng() & 1)) b[0] = 'H';
        if (b.size() > 1 && (rng() & 1)) b[1] = 1;
        std::string err;
        (void)decode_record(b.data(), b.size(), err);
    }
    CHECK(decoded < 4000); // most mutations must be caught
}

TEST_CASE("txn_record: invalid records are rejected", "[unit][txn_record]") {
    auto base = [] {
        txn_record r;
        r.hlc = 100;
        r.origin = "n1";
        r.tables = {{"t", "\"id\" PRIMARY KEY, \"v\""}};
        r.changes = {{0, change_op::put, {value::of_int(1), value::of_int(2)}}};
        return r;
    };
    bytes good = encode_record(base());
    {
        std::string err;
        REQUIRE(decode_record(good.data(), good.size(), err).has_value());
    }
    // Offsets in `good`: 0 magic, 1 format, 2..9 hlc, 10 origin length, 11..12 "n1",
    // 13 ntables, 14 name length, 15 "t", 16 definition length, 17.. definition, then
    // nchanges, table index, op, ncols, values.
    const std::size_t def_len = base().tables[0].definition.size();
    const std::size_t changes_at = 17 + def_len;
    REQUIRE(good[changes_at] == 1);     // nchanges
    REQUIRE(good[changes_at + 1] == 0); // table index
    REQUIRE(good[changes_at + 2] == 1); // op put
    REQUIRE(good[changes_at + 3] == 2); // ncols

    SECTION("bad magic") {
        bytes b = good;
        b[0] = 'X';
        expect_fail(b, "bad magic");
        hlc_t h;
        std::string o;
        CHECK_FALSE(peek_record_head(b.data(), b.size(), h, o));
    }
    SECTION("bad format") {
        bytes b = good;
        b[1] = 9;
        expect_fail(b, "format 9");
        hlc_t h;
        std::string o;
        CHECK_FALSE(peek_record_head(b.data(), b.size(), h, o));
    }
    SECTION("zero timestamp") {
        auto r = base();
        r.hlc = 0;
        expect_fail(encode_record(r), "timestamp");
    }
    SECTION("empty origin") {
        auto r = base();
        r.origin = "";
        expect_fail(encode_record(r), "origin");
    }
    SECTION("overlong origin") {
        auto r = base();
        r.origin = std::string(max_name_len + 1, 'o');
        expect_fail(encode_record(r));
        r.origin = std::string(max_name_len, 'o');
        bytes b = encode_record(r);
        std::string err;
        CHECK(decode_record(b.data(), b.size(), err).has_value());
    }
    SECTION("empty or duplicate table names") {
        auto r = base();
        r.tables[0].name = "";
        expect_fail(encode_record(r), "empty table name");
        r = base();
        r.tables.push_back(r.tables[0]);
        expect_fail(encode_record(r), "listed twice");
    }
    SECTION("table index out of range") {
        bytes b = good;
        b[changes_at + 1] = 1;
        expect_fail(b, "table 1 of 1");
        auto r = base();
        r.changes[0].table = 7;
        expect_fail(encode_record(r), "table 7");
    }
    SECTION("unknown operation") {
        for (std::uint8_t op : {0, 6, 0x7f, 0xff}) {
            bytes b = good;
            b[changes_at + 2] = op;
            expect_fail(b, "unknown operation " + std::to_string(op));
        }
    }
    SECTION("bad column count") {
        bytes b = good;
        b[changes_at + 3] = 0;
        expect_fail(b, "column count");
        b[changes_at + 3] = 3; // more values than present
        expect_fail(b);
        b[changes_at + 3] = 1; // fewer: the rest is left over
        expect_fail(b);
        auto r = base();
        r.changes[0].values.assign(max_columns + 1, value::of_int(0));
        expect_fail(encode_record(r), "column count");
    }
    SECTION("bad counts") {
        bytes b = good;
        b[13] = 0x7f; // ntables larger than the input
        expect_fail(b, "table count");
        b = good;
        b[changes_at] = 0x7f;
        expect_fail(b, "change count");
    }
    SECTION("empty new name in a rename") {
        auto r = base();
        r.changes = {{0, change_op::rename_table, {value::of_text("")}}};
        expect_fail(encode_record(r), "new table name");
    }
    SECTION("trailing bytes") {
        bytes b = good;
        b.push_back(0);
        expect_fail(b, "trailing bytes");
        // peek only reads the header, so it still works.
        hlc_t h;
        std::string o;
        CHECK(peek_record_head(b.data(), b.size(), h, o));
        CHECK(h == 100);
        CHECK(o == "n1");
    }
}

TEST_CASE("txn_record: a record that loses changes to a filter is marked trimmed, and the mark travels", "[unit][txn_record]") {
    txn_record r;
    r.hlc = 7;
    r.origin = "n1";
    r.tables = {{"a", "id INTEGER"}, {"b", "id INTEGER"}};
    r.changes = {{0, change_op::put, {value::of_int(1)}}, {1, change_op::put, {value::of_int(2)}}};
    const bytes whole = encode_record(r);
    CHECK_FALSE(record_is_trimmed(whole.data(), whole.size()));

    // Keeping everything is not trimming.
    bytes all = filter_changes(whole.data(), whole.size(), [](const record_table&, const change&) { return true; });
    CHECK_FALSE(record_is_trimmed(all.data(), all.size()));

    bytes some = filter_record(whole.data(), whole.size(), [](const std::string& t) { return t == "a"; });
    REQUIRE(record_is_trimmed(some.data(), some.size()));
    std::string err;
    auto dec = decode_record(some.data(), some.size(), err);
    REQUIRE(dec.has_value());
    CHECK(dec->trimmed);
    CHECK(dec->changes.size() == 1);
    hlc_t h = 0;
    std::string o;
    CHECK(peek_record_head(some.data(), some.size(), h, o));
    CHECK(h == 7);

    // Once trimmed, always trimmed: a later filter that keeps everything keeps the mark.
    bytes again = filter_changes(some.data(), some.size(), [](const record_table&, const change&) { return true; });
    CHECK(record_is_trimmed(again.data(), again.size()));
    CHECK(encode_record(*dec) == some);

    // Any other format byte is refused.
    bytes bad = whole;
    bad[1] = 5;
    CHECK_FALSE(decode_record(bad.data(), bad.size(), err).has_value());
    CHECK(err.find("unsupported format 5") != std::string::npos);
    CHECK_FALSE(record_is_trimmed(bad.data(), bad.size()));
    // A placed format without its placement section is malformed.
    bad[1] = 3;
    CHECK_FALSE(decode_record(bad.data(), bad.size(), err).has_value());
    CHECK(err.find("placement") != std::string::npos);
}

TEST_CASE("txn_record: placed records carry each row's nodes, through filters and validation", "[unit]") {
    txn_record rec;
    rec.hlc = 42;
    rec.origin = "a";
    rec.tables = {{"dog", "id INTEGER PRIMARY KEY, name TEXT"}};
    rec.changes = {{0, change_op::put, {value::of_int(1), value::of_text("x")}},
                   {0, change_op::put, {value::of_int(2), value::of_text("y")}},
                   {0, change_op::del, {value::of_int(3)}}};
    rec.changes[0].placement = 0;
    rec.changes[1].placement = 1;
    rec.placements = {{"a", "b"}, {"a", "c"}};
    bytes b = encode_record(rec);
    CHECK(record_is_placed(b.data(), b.size()));
    CHECK_FALSE(record_is_trimmed(b.data(), b.size()));
    std::string err;
    auto dec = decode_record(b.data(), b.size(), err);
    REQUIRE(dec.has_value());
    CHECK(dec->placements == rec.placements);
    CHECK(dec->changes[0].placement == 0);
    CHECK(dec->changes[1].placement == 1);
    CHECK(dec->changes[2].placement == -1);
    CHECK(encode_record(*dec) == b);

    // A filter keeps the lists and each kept row's index; the result is placed and trimmed.
    bytes for_b = filter_changes(b.data(), b.size(), [](const record_table&, const change& c) { return c.placement != 1; });
    CHECK(record_is_placed(for_b.data(), for_b.size()));
    CHECK(record_is_trimmed(for_b.data(), for_b.size()));
    auto fb = decode_record(for_b.data(), for_b.size(), err);
    REQUIRE(fb.has_value());
    REQUIRE(fb->changes.size() == 2);
    CHECK(fb->placements[static_cast<std::size_t>(fb->changes[0].placement)] == std::vector<std::string>{"a", "b"});
    CHECK(fb->changes[1].placement == -1);

    // Nothing left: nothing, or (keep_empty) a header that is still placed and trimmed.
    auto none = [](const record_table&, const change&) { return false; };
    CHECK(filter_changes(b.data(), b.size(), none).empty());
    bytes head = filter_changes(b.data(), b.size(), none, true);
    auto hd = decode_record(head.data(), head.size(), err);
    REQUIRE(hd.has_value());
    CHECK(hd->changes.empty());
    CHECK(hd->hlc == 42);
    CHECK(record_is_trimmed(head.data(), head.size()));
    CHECK(record_is_placed(head.data(), head.size()));

    // Hostile placement sections are refused with a reason.
    auto refused = [&](txn_record r, const std::string& want) {
        bytes x = encode_record(r);
        std::string e;
        CHECK_FALSE(decode_record(x.data(), x.size(), e).has_value());
        INFO(e);
        CHECK(e.find(want) != std::string::npos);
    };
    txn_record unsorted = rec;
    unsorted.placements[0] = {"b", "a"};
    refused(unsorted, "not sorted");
    txn_record dup = rec;
    dup.placements[0] = {"a", "a"};
    refused(dup, "not sorted");
    txn_record empty_name = rec;
    empty_name.placements[0] = {""};
    refused(empty_name, "node name");
    txn_record bad_index = rec;
    bad_index.changes[0].placement = 7;
    refused(bad_index, "placement index");
    txn_record on_ddl = rec;
    on_ddl.changes.push_back({0, change_op::drop_table, {}});
    on_ddl.changes.back().placement = 0;
    refused(on_ddl, "placement on a table change");
    // Every truncation of a placed record is refused, never read past its end.
    for (std::size_t n = 0; n < b.size(); ++n) CHECK_FALSE(decode_record(b.data(), n, err).has_value());
}

TEST_CASE("txn_record: parts round-trip their index and last flag, and only valid flag sets decode", "[unit][txn_record]") {
    txn_record r = sample_record();
    r.part = true;
    r.part_index = 41;
    r.part_last = true;
    bytes b = encode_record(r);
    CHECK((b[1] & record_flag_part) != 0);
    CHECK((b[1] & record_flag_last) != 0);
    std::string err;
    auto d = decode_record(b.data(), b.size(), err);
    INFO(err);
    REQUIRE(d.has_value());
    CHECK(d->part);
    CHECK(d->part_index == 41);
    CHECK(d->part_last);
    auto head = record_part(b.data(), b.size());
    CHECK(head.part);
    CHECK(head.index == 41);
    CHECK(head.last);
    hlc_t hlc = 0;
    std::string origin;
    CHECK(peek_record_head(b.data(), b.size(), hlc, origin));
    CHECK(hlc == r.hlc);
    CHECK(origin == r.origin);
    // A whole record is no part.
    bytes whole = encode_record(sample_record());
    CHECK_FALSE(record_part(whole.data(), whole.size()).part);
    // "Last" without "part", and unknown flag bits, are refused.
    bytes bad = whole;
    bad[1] |= record_flag_last;
    CHECK_FALSE(decode_record(bad.data(), bad.size(), err).has_value());
    CHECK_FALSE(record_part(bad.data(), bad.size()).part);
    bad = whole;
    bad[1] |= 0x40;
    CHECK_FALSE(decode_record(bad.data(), bad.size(), err).has_value());
    // A part index past the limit is refused.
    txn_record big = sample_record();
    big.part = true;
    big.part_index = max_record_parts;
    bytes over = encode_record(big);
    CHECK_FALSE(decode_record(over.data(), over.size(), err).has_value());
    CHECK_THAT(err, Catch::Contains("part index"));
}

TEST_CASE("txn_record: a part that a filter empties stays, as an empty trimmed part", "[unit][txn_record]") {
    txn_record r = sample_record();
    r.part = true;
    r.part_index = 2;
    bytes b = encode_record(r);
    bytes f = filter_record(b.data(), b.size(), [](const std::string&) { return false; });
    REQUIRE_FALSE(f.empty());
    std::string err;
    auto d = decode_record(f.data(), f.size(), err);
    INFO(err);
    REQUIRE(d.has_value());
    CHECK(d->changes.empty());
    CHECK(d->trimmed);
    CHECK(d->part);
    CHECK(d->part_index == 2);
    CHECK_FALSE(d->part_last);
    // The same record whole is dropped by that filter, as before.
    bytes whole = encode_record(sample_record());
    CHECK(filter_record(whole.data(), whole.size(), [](const std::string&) { return false; }).empty());
    // empty_part_like keeps the head and the part, nothing else.
    bytes e = empty_part_like(b.data(), b.size());
    auto ed = decode_record(e.data(), e.size(), err);
    REQUIRE(ed.has_value());
    CHECK(ed->changes.empty());
    CHECK(ed->tables.empty());
    CHECK(ed->hlc == r.hlc);
    CHECK(ed->part_index == 2);
    CHECK(empty_part_like(whole.data(), whole.size()).empty());
}
