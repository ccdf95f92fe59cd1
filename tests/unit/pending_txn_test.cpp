// Unit tests for engine/pending_txn.hpp: the in-memory change list of an open
// transaction, its savepoints, per-key compaction and per-schema records.
#include <catch2/catch.hpp>

#include "tests/unit/test_printers.hpp"

#include "engine/pending_txn.hpp"

#include <string>
#include <vector>

using namespace hdbrepl::engine;

namespace {

// Appends a put of `row` (key at column `pk`) the way the vtab does.
void put(pending_txn& p, std::uint32_t slot, const std::vector<value>& row, std::size_t pk = 0) {
    auto& buf = p.buffer();
    std::size_t start = buf.size(), ks = 0, ke = 0;
    byte_writer w(buf);
    w.put_varint(row.size());
    for (std::size_t i = 0; i < row.size(); ++i) {
        if (i == pk) ks = buf.size();
        encode_value(w, row[i]);
        if (i == pk) ke = buf.size();
    }
    p.add(slot, change_op::put, start, ks, ke);
}

void del(pending_txn& p, std::uint32_t slot, const value& key) {
    auto& buf = p.buffer();
    std::size_t start = buf.size();
    byte_writer w(buf);
    encode_value(w, key);
    p.add(slot, change_op::del, start, start, buf.size());
    p.note_overwrite();
}

const std::string def_t = "\"id\" INTEGER PRIMARY KEY, \"v\"";
const std::string def_u = "\"k\" TEXT PRIMARY KEY, \"w\"";
constexpr hlc_t H = (1'795'687'405'123ull << 16) | 3;

txn_record record(const pending_txn& p, const std::string& schema = "main") {
    bytes b = p.build_record(schema, H, "me");
    REQUIRE_FALSE(b.empty());
    std::string err;
    auto r = decode_record(b.data(), b.size(), err);
    INFO(err);
    REQUIRE(r.has_value());
    CHECK(r->hlc == H);
    CHECK(r->origin == "me");
    return *r;
}

// "table:op:key" for each change, e.g. "t:put:1", "u:del:'a'".
std::vector<std::string> summary(const txn_record& r) {
    std::vector<std::string> out;
    for (const auto& c : r.changes) {
        std::string s = r.tables[c.table].name + ":";
        if (c.op == change_op::put) s += "put:" + c.values[0].to_string() + "=" + c.values[1].to_string();
        else if (c.op == change_op::del) s += "del:" + c.values[0].to_string();
        else s += "other";
        out.push_back(s);
    }
    return out;
}

std::vector<std::string> keys(const pending_txn& p) {
    if (p.empty()) return {};
    return summary(record(p));
}

using strs = std::vector<std::string>;

} // namespace

TEST_CASE("pending_txn: build_record after puts and deletes", "[unit][pending_txn]") {
    pending_txn p;
    CHECK(p.empty());
    CHECK(p.build_record("main", H, "me").empty());
    auto t = p.table_slot("main", "t", def_t);
    auto u = p.table_slot("main", "u", def_u);
    CHECK(p.table_slot("main", "t", def_t) == t); // same table, same slot
    CHECK(t != u);
    put(p, t, {value::of_int(1), value::of_text("a")});
    put(p, u, {value::of_text("x"), value::of_blob("b")});
    del(p, t, value::of_int(2));
    put(p, t, {value::of_int(3), value::null()});
    CHECK(p.size() == 4);
    CHECK_FALSE(p.empty());

    auto r = record(p);
    REQUIRE(r.tables.size() == 2);
    CHECK(r.tables[0].name == "t");
    CHECK(r.tables[0].definition == def_t);
    CHECK(r.tables[1].name == "u");
    CHECK(r.tables[1].definition == def_u);
    CHECK(summary(r) == strs{"t:put:1='a'", "u:put:'x'=x'<1 bytes>'", "t:del:2", "t:put:3=NULL"});
    CHECK(r.changes[1].values[1] == value::of_blob("b"));

    p.clear();
    CHECK(p.empty());
    CHECK(p.build_record("main", H, "me").empty());
}

TEST_CASE("pending_txn: a table that registered but has no changes is not in the record", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    auto u = p.table_slot("main", "u", def_u);
    (void)t;
    put(p, u, {value::of_text("x"), value::of_int(1)});
    auto r = record(p);
    REQUIRE(r.tables.size() == 1);
    CHECK(r.tables[0].name == "u");
    CHECK(r.changes[0].table == 0);
}

TEST_CASE("pending_txn: savepoints, nested, with the repeated calls SQLite makes per table", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    // Two tables take part: every call arrives twice.
    p.savepoint(0);
    p.savepoint(0);
    put(p, t, {value::of_int(1), value::of_int(10)});
    p.savepoint(1);
    p.savepoint(1);
    put(p, t, {value::of_int(2), value::of_int(20)});
    p.savepoint(2);
    p.savepoint(2);
    put(p, t, {value::of_int(3), value::of_int(30)});
    CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20", "t:put:3=30"});

    SECTION("rollback_to the innermost level") {
        p.rollback_to(2);
        p.rollback_to(2);
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20"});
        // The savepoint stays open after ROLLBACK TO: new changes, then roll back again.
        put(p, t, {value::of_int(4), value::of_int(40)});
        CHECK(p.size() == 3);
        p.rollback_to(2);
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20"});
    }
    SECTION("rollback_to an outer level discards the inner ones") {
        p.rollback_to(1);
        p.rollback_to(1);
        CHECK(keys(p) == strs{"t:put:1=10"});
        put(p, t, {value::of_int(5), value::of_int(50)});
        p.savepoint(2); // a new inner level after the rollback
        put(p, t, {value::of_int(6), value::of_int(60)});
        p.rollback_to(2);
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:5=50"});
        p.rollback_to(1);
        CHECK(keys(p) == strs{"t:put:1=10"});
    }
    SECTION("release keeps the changes, merged into the enclosing level") {
        p.release(2);
        p.release(2);
        CHECK(p.size() == 3);
        p.rollback_to(1); // level 1 still covers what level 2 had
        CHECK(keys(p) == strs{"t:put:1=10"});
    }
    SECTION("release of an outer level releases the inner ones too") {
        p.release(1);
        p.release(1);
        CHECK(p.size() == 3);
        // Level 1 reopened now marks the current state.
        p.savepoint(1);
        put(p, t, {value::of_int(7), value::of_int(70)});
        p.rollback_to(1);
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20", "t:put:3=30"});
        p.rollback_to(0);
        CHECK(p.empty());
    }
    SECTION("rollback_to level 0 empties the transaction") {
        p.rollback_to(0);
        p.rollback_to(0);
        CHECK(p.empty());
        CHECK(p.build_record("main", H, "me").empty());
        put(p, t, {value::of_int(8), value::of_int(80)});
        CHECK(keys(p) == strs{"t:put:8=80"});
    }
    SECTION("a repeated savepoint call after changes does not move the mark") {
        put(p, t, {value::of_int(9), value::of_int(90)});
        p.savepoint(2); // level 2 is open already: ignored
        p.rollback_to(2);
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20"});
    }
    SECTION("savepoint and release of level -1 change nothing") {
        p.savepoint(-1);
        p.release(-1);
        CHECK(p.size() == 3);
    }
    SECTION("rollback to level -1 (the savepoint that opened the transaction) drops everything") {
        // SQLite calls xRollbackTo(-1) for ROLLBACK TO of a SAVEPOINT that began the transaction.
        p.rollback_to(-1);
        CHECK(p.size() == 0);
        CHECK(p.empty());
        p.rollback_to(-1); // repeated once per table: still empty, no crash
        CHECK(p.size() == 0);
    }
}

TEST_CASE("pending_txn: rollback to a level opened before any change", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    // The table joins the transaction with savepoints 0 and 1 already open (SQLite calls
    // xSavepoint(1) only): levels 0 and 1 both mark the empty state.
    p.savepoint(1);
    put(p, t, {value::of_int(1), value::of_int(10)});
    p.savepoint(2);
    put(p, t, {value::of_int(2), value::of_int(20)});
    p.rollback_to(2);
    CHECK(keys(p) == strs{"t:put:1=10"});
    p.rollback_to(0);
    CHECK(p.empty());

    // And with level 0 announced before any change.
    put(p, t, {value::of_int(3), value::of_int(30)});
    p.release(0);
    CHECK(p.size() == 1);
    p.savepoint(0);
    p.rollback_to(0);
    CHECK(p.size() == 1); // level 0 reopened after the change: the change stays
}

TEST_CASE("pending_txn: a rollback frees the rolled-back bytes", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    put(p, t, {value::of_int(1), value::of_text("keep")});
    std::size_t used = p.buffer().size();
    p.savepoint(0);
    put(p, t, {value::of_int(2), value::of_text(std::string(1000, 'x'))});
    p.rollback_to(0);
    CHECK(p.buffer().size() == used);
    put(p, t, {value::of_int(3), value::of_text("after")});
    CHECK(keys(p) == strs{"t:put:1='keep'", "t:put:3='after'"});
}

TEST_CASE("pending_txn: compaction to each key's last change only after note_overwrite", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    auto u = p.table_slot("main", "u", def_u);
    put(p, t, {value::of_int(1), value::of_int(10)});
    put(p, t, {value::of_int(2), value::of_int(20)});
    put(p, u, {value::of_text("1"), value::of_int(100)}); // same "key" text in another table
    put(p, t, {value::of_int(1), value::of_int(11)});

    SECTION("without note_overwrite every change is kept") {
        CHECK(keys(p) == strs{"t:put:1=10", "t:put:2=20", "u:put:'1'=100", "t:put:1=11"});
    }
    SECTION("with note_overwrite only the last change of each (table, key)") {
        p.note_overwrite();
        CHECK(keys(p) == strs{"t:put:2=20", "u:put:'1'=100", "t:put:1=11"});
    }
    SECTION("a delete replaces an earlier put of the same key, and a put an earlier delete") {
        del(p, t, value::of_int(2)); // calls note_overwrite
        put(p, u, {value::of_text("zz"), value::of_int(1)});
        del(p, u, value::of_text("zz"));
        put(p, u, {value::of_text("zz"), value::of_int(2)});
        CHECK(keys(p) == strs{"u:put:'1'=100", "t:put:1=11", "t:del:2", "u:put:'zz'=2"});
    }
    SECTION("keys compare as SQLite compares them: 1.0 is the key 1, '1' is another key") {
        put(p, t, {value::of_real(1.0), value::of_int(12)});
        put(p, t, {value::of_text("1"), value::of_int(13)});
        p.note_overwrite();
        CHECK(keys(p) == strs{"t:put:2=20", "u:put:'1'=100", "t:put:1=12", "t:put:'1'=13"});
    }
    SECTION("a REAL key without an exact integer value stays its own key") {
        put(p, t, {value::of_real(1.5), value::of_int(14)});
        p.note_overwrite();
        CHECK(keys(p) == strs{"t:put:2=20", "u:put:'1'=100", "t:put:1=11", "t:put:1.5=14"});
    }
    SECTION("the key need not be the first column") {
        pending_txn q;
        auto s = q.table_slot("main", "s", "\"v\", \"id\" INTEGER PRIMARY KEY");
        put(q, s, {value::of_int(1), value::of_int(7)}, 1);
        put(q, s, {value::of_int(2), value::of_int(7)}, 1);
        put(q, s, {value::of_int(3), value::of_int(8)}, 1);
        q.note_overwrite();
        auto r = record(q);
        REQUIRE(r.changes.size() == 2);
        CHECK(r.changes[0].values[0] == value::of_int(2));
        CHECK(r.changes[1].values[0] == value::of_int(3));
    }
}

TEST_CASE("pending_txn: schemas() and one record per schema", "[unit][pending_txn]") {
    pending_txn p;
    auto m = p.table_slot("main", "t", def_t);
    auto a = p.table_slot("aux", "t", def_u); // same table name in another schema
    auto a2 = p.table_slot("aux", "other", def_t);
    CHECK(p.schemas().empty());
    CHECK(p.tables_in("aux") == strs{"t", "other"});
    CHECK(p.tables_in("main") == strs{"t"});
    CHECK(p.tables_in("temp").empty());

    put(p, a, {value::of_text("k"), value::of_int(1)});
    CHECK(p.schemas() == strs{"aux"}); // first-use order, only schemas with changes
    CHECK(p.build_record("main", H, "me").empty());
    put(p, m, {value::of_int(1), value::of_int(2)});
    put(p, a2, {value::of_int(5), value::of_int(6)});
    put(p, m, {value::of_int(1), value::of_int(3)});
    p.note_overwrite();
    CHECK(p.schemas() == strs{"aux", "main"});

    auto rm = record(p, "main");
    REQUIRE(rm.tables.size() == 1);
    CHECK(rm.tables[0].definition == def_t);
    CHECK(summary(rm) == strs{"t:put:1=3"});

    auto ra = record(p, "aux");
    REQUIRE(ra.tables.size() == 2);
    CHECK(ra.tables[0].name == "t");
    CHECK(ra.tables[0].definition == def_u);
    CHECK(ra.tables[1].name == "other");
    CHECK(summary(ra) == strs{"t:put:'k'=1", "other:put:5=6"});

    // Rolling back the only change of a schema removes the schema.
    pending_txn q;
    auto qm = q.table_slot("main", "t", def_t);
    auto qa = q.table_slot("aux", "t", def_t);
    put(q, qm, {value::of_int(1), value::of_int(1)});
    q.savepoint(0);
    put(q, qa, {value::of_int(1), value::of_int(1)});
    CHECK(q.schemas() == strs{"main", "aux"});
    q.rollback_to(0);
    CHECK(q.schemas() == strs{"main"});
    CHECK(q.build_record("aux", H, "me").empty());
}

TEST_CASE("pending_txn: a table's definition is the latest registered", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    put(p, t, {value::of_int(1), value::of_int(1)});
    CHECK(p.table_slot("main", "t", "\"id\" INTEGER PRIMARY KEY, \"v\", \"w\"") == t);
    auto r = record(p);
    CHECK(r.tables[0].definition == "\"id\" INTEGER PRIMARY KEY, \"v\", \"w\"");
}

namespace {
// Places key 1 on {me, b}, key 2 on {me, c}, anything else nowhere; remembers what it saw.
struct test_placer final : record_placer {
    std::vector<std::vector<std::string>> l{{"b", "me"}, {"c", "me"}};
    std::vector<std::string> seen;
    std::int32_t place(const std::string& table, change_op op, std::string_view key) override {
        std::string k(key);
        byte_reader r(reinterpret_cast<const std::uint8_t*>(k.data()), k.size());
        value v;
        REQUIRE(decode_value(r, v));
        seen.push_back(table + (op == change_op::del ? ":del:" : ":put:") + v.to_string());
        return v == value::of_int(1) ? 0 : v == value::of_int(2) ? 1 : -1;
    }
    const std::vector<std::vector<std::string>>& lists() const override { return l; }
};
} // namespace

TEST_CASE("pending_txn: a placer places each kept put and delete once, by its key", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    put(p, t, {value::of_int(1), value::of_text("a")});
    put(p, t, {value::of_int(1), value::of_text("b")}); // overwritten: placed once, as the last change
    p.note_overwrite();
    del(p, t, value::of_int(2));
    put(p, t, {value::of_int(3), value::null()});
    test_placer placer;
    bytes b = p.build_record("main", H, "me", {}, &placer);
    CHECK(placer.seen == strs{"t:put:1", "t:del:2", "t:put:3"});
    REQUIRE(record_is_placed(b.data(), b.size()));
    std::string err;
    auto r = decode_record(b.data(), b.size(), err);
    INFO(err);
    REQUIRE(r.has_value());
    CHECK(summary(*r) == strs{"t:put:1='b'", "t:del:2", "t:put:3=NULL"});
    CHECK(r->changes[0].placement == 0);
    CHECK(r->changes[1].placement == 1);
    CHECK(r->changes[2].placement == -1);
    CHECK(r->placements == placer.l);

    // A placer that places nothing leaves the record unplaced (the plain format).
    pending_txn q;
    auto u = q.table_slot("main", "t", def_t);
    put(q, u, {value::of_int(9), value::null()});
    bytes plain = q.build_record("main", H, "me", {}, &placer);
    CHECK_FALSE(record_is_placed(plain.data(), plain.size()));
    CHECK(plain == q.build_record("main", H, "me"));
}

namespace {
// Decodes each part, checking what every part of one transaction shares.
std::vector<txn_record> decode_parts(const std::vector<bytes>& parts) {
    std::vector<txn_record> out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        std::string err;
        auto r = decode_record(parts[i].data(), parts[i].size(), err);
        INFO(err);
        REQUIRE(r.has_value());
        CHECK(r->hlc == H);
        CHECK(r->origin == "me");
        CHECK(r->part == (parts.size() > 1));
        CHECK(r->part_index == (parts.size() > 1 ? i : 0));
        CHECK(r->part_last == (parts.size() > 1 && i + 1 == parts.size()));
        auto head = record_part(parts[i].data(), parts[i].size());
        CHECK(head.part == r->part);
        CHECK(head.index == r->part_index);
        CHECK(head.last == r->part_last);
        out.push_back(std::move(*r));
    }
    return out;
}
} // namespace

TEST_CASE("pending_txn: a large transaction is written as parts within the part size", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    auto u = p.table_slot("main", "u", def_u);
    const std::string filler(100, 'x');
    for (int i = 0; i < 3000; ++i) {
        put(p, t, {value::of_int(i), value::of_text(filler)});
        if (i % 3 == 0) put(p, u, {value::of_text("k" + std::to_string(i)), value::of_int(i)});
    }
    const std::size_t limit = 16 * 1024;
    auto parts = p.build_records("main", H, "me", {}, nullptr, limit);
    REQUIRE(parts.size() > 10);
    for (const auto& b : parts) CHECK(b.size() <= limit);
    auto recs = decode_parts(parts);
    // Together, the parts hold exactly the whole record's changes, in order.
    std::vector<std::string> all;
    for (const auto& r : recs) {
        CHECK_FALSE(r.changes.empty());
        for (const auto& c : r.changes) CHECK(c.table < r.tables.size()); // each part lists its own tables
        auto s = summary(r);
        all.insert(all.end(), s.begin(), s.end());
    }
    CHECK(all == summary(record(p)));
    // Under the limit, one record, as build_record makes it.
    auto one = p.build_records("main", H, "me", {}, nullptr, SIZE_MAX);
    REQUIRE(one.size() == 1);
    CHECK(one[0] == p.build_record("main", H, "me"));
    CHECK_FALSE(record_part(one[0].data(), one[0].size()).part);
}

TEST_CASE("pending_txn: a change larger than the part size is a part of its own", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    put(p, t, {value::of_int(1), value::of_text("small")});
    put(p, t, {value::of_int(2), value::of_blob(std::string(50'000, '\x07'))});
    put(p, t, {value::of_int(3), value::of_text("small")});
    auto parts = p.build_records("main", H, "me", {}, nullptr, 4096);
    REQUIRE(parts.size() == 3);
    auto recs = decode_parts(parts);
    CHECK(summary(recs[0]) == strs{"t:put:1='small'"});
    REQUIRE(recs[1].changes.size() == 1);
    CHECK(recs[1].changes[0].values[1].s.size() == 50'000);
    CHECK(summary(recs[2]) == strs{"t:put:3='small'"});
}

TEST_CASE("pending_txn: parts carry only the placement lists their rows use", "[unit][pending_txn]") {
    pending_txn p;
    auto t = p.table_slot("main", "t", def_t);
    put(p, t, {value::of_int(1), value::of_blob(std::string(3000, '1'))}); // list 0
    put(p, t, {value::of_int(3), value::of_blob(std::string(3000, '3'))}); // unplaced
    put(p, t, {value::of_int(2), value::of_blob(std::string(3000, '2'))}); // list 1
    test_placer placer;
    auto parts = p.build_records("main", H, "me", {}, &placer, 4096);
    REQUIRE(parts.size() == 3);
    auto recs = decode_parts(parts);
    CHECK(record_is_placed(parts[0].data(), parts[0].size()));
    CHECK(recs[0].placements == std::vector<std::vector<std::string>>{placer.l[0]});
    CHECK(recs[0].changes[0].placement == 0);
    CHECK_FALSE(record_is_placed(parts[1].data(), parts[1].size()));
    CHECK(recs[2].placements == std::vector<std::vector<std::string>>{placer.l[1]});
    CHECK(recs[2].changes[0].placement == 0);
}
