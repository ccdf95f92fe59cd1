// Initial-copy chunks budgeted in bytes (replication/copy_chunk.hpp, snapshot_reader::next_chunk):
// on a real database, every chunk keeps within its budget unless one row alone is larger,
// every row comes once and in key order, and a resume point still continues after its key.
#include <catch2/catch.hpp>

#include "tests/support/test_db.hpp"

#include "replication/copy_chunk.hpp"
#include "replication/replication_store.hpp"
#include "replication/wire.hpp"

#include <string>
#include <vector>

using namespace hdbrepl;
using namespace hdbrepl::test;
namespace w = hdbrepl::engine::wire;

namespace {

constexpr std::size_t kib = 1024, mib = 1024 * 1024;

struct chunk_seen {
    std::uint32_t table = 0;
    std::vector<std::int64_t> keys;
    std::vector<bool> deleted;
    std::size_t encoded = 0, charge = 0;
};

// Reads the whole snapshot (after `resume`, if any) on a connection of its own.
std::vector<chunk_seen> read_all(const std::string& path, const engine::copy_chunk_budget& budget, const w::copy_resume* resume = nullptr) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    std::vector<chunk_seen> out;
    {
        engine::snapshot_reader r(db, "main");
        std::string err;
        REQUIRE(r.begin(err) == SQLITE_OK);
        if (resume) r.resume_after(resume->table, resume->phase, resume->key);
        std::uint32_t table = 0;
        std::vector<engine::snapshot_row> rows;
        int rc = SQLITE_OK;
        for (int guard = 0; guard < 100'000 && r.next_chunk(budget, table, rows, rc); ++guard) {
            REQUIRE(!rows.empty());
            chunk_seen c;
            c.table = table;
            w::copy_rows m;
            m.table = table;
            for (const auto& row : rows) {
                c.keys.push_back(row.values.at(0).i);
                c.deleted.push_back(row.deleted);
                m.rows.push_back({row.deleted, row.hlc, row.origin, row.values});
            }
            c.encoded = w::encode(m).size();
            c.charge = engine::copy_rows_charge(m);
            out.push_back(std::move(c));
        }
        REQUIRE(rc == SQLITE_OK);
        r.end();
    }
    sqlite3_close_v2(db);
    return out;
}

std::vector<std::int64_t> live_keys(const std::vector<chunk_seen>& chunks) {
    std::vector<std::int64_t> k;
    for (const auto& c : chunks)
        for (std::size_t i = 0; i < c.keys.size(); ++i)
            if (!c.deleted[i]) k.push_back(c.keys[i]);
    return k;
}

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> v;
    for (auto i = from; i < to; ++i) v.push_back(i);
    return v;
}

} // namespace

TEST_CASE("copy chunks: rows of 100 KiB fill chunks within the byte budget", "[sql][copy]") {
    temp_dir dir;
    const auto path = dir.file("big.db");
    test_db db(path);
    db.exec("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, pad BLOB)");
    db.exec("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < 39) INSERT INTO big SELECT x, randomblob(102400) FROM s");
    const auto budget = engine::copy_chunk_budget_for(4 * mib, 8 * mib);
    REQUIRE(budget.wire_bytes == 512 * kib);
    const auto chunks = read_all(path, budget);
    CHECK(live_keys(chunks) == range(0, 40));
    for (const auto& c : chunks) {
        CHECK(c.encoded <= budget.wire_bytes);
        CHECK(c.charge <= budget.charge_bytes);
    }
    // Five 100 KiB rows fit in 512 KiB, six do not: the budget is used, not just kept.
    REQUIRE(chunks.size() == 8);
    for (const auto& c : chunks) CHECK(c.keys.size() == 5);
}

TEST_CASE("copy chunks: a row larger than the budget comes alone", "[sql][copy]") {
    temp_dir dir;
    const auto path = dir.file("one.db");
    test_db db(path);
    db.exec("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, pad BLOB)");
    db.exec("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < 199) INSERT INTO t SELECT x, randomblob(1000) FROM s");
    db.exec("UPDATE t SET pad = randomblob(100000) WHERE id = 57");
    const auto budget = engine::copy_chunk_budget_for(64 * kib, 64 * kib); // 16 KiB chunks
    REQUIRE(budget.wire_bytes == 16 * kib);
    const auto chunks = read_all(path, budget);
    CHECK(live_keys(chunks) == range(0, 200));
    int alone = 0;
    for (const auto& c : chunks) {
        if (c.keys == std::vector<std::int64_t>{57}) {
            ++alone;
            CHECK(c.encoded > budget.wire_bytes);
        } else {
            CHECK(c.encoded <= budget.wire_bytes);
            // ~1 KiB rows: 16 a chunk, but for the one the large row cut short and the last.
            if (c.keys.back() != 56 && &c != &chunks.back()) CHECK(c.keys.size() >= 14);
        }
    }
    CHECK(alone == 1);
}

TEST_CASE("copy chunks: tiny values are bounded by the receiver's count", "[sql][copy]") {
    temp_dir dir;
    const auto path = dir.file("nulls.db");
    test_db db(path);
    db.exec("CREATE VIRTUAL TABLE n USING hdbrepl(id INTEGER PRIMARY KEY, a, b, c, d, e, f, g, h, i, j)");
    db.exec("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < 2999) INSERT INTO n(id) SELECT x FROM s");
    const auto budget = engine::copy_chunk_budget_for(64 * kib, 64 * kib);
    const auto chunks = read_all(path, budget);
    CHECK(live_keys(chunks) == range(0, 3000));
    for (const auto& c : chunks) {
        CHECK(c.charge <= budget.charge_bytes);
        CHECK(c.encoded <= budget.wire_bytes);
    }
    // ~30 bytes on the wire, ~650 counted: the count decides.
    CHECK(chunks.size() >= 3000 * 600 / budget.charge_bytes);
}

TEST_CASE("copy chunks: a resume point continues after its key, in live rows and tombstones", "[sql][copy]") {
    temp_dir dir;
    const auto path = dir.file("resume.db");
    test_db db(path);
    db.exec("CREATE VIRTUAL TABLE a USING hdbrepl(id INTEGER PRIMARY KEY, pad TEXT)");
    db.exec("CREATE VIRTUAL TABLE b USING hdbrepl(id INTEGER PRIMARY KEY, pad TEXT)");
    for (const char* t : {"a", "b"})
        db.exec(std::string("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < 299) INSERT INTO ") + t +
                " SELECT x, hex(randomblob(500)) FROM s");
    db.exec("DELETE FROM a WHERE id % 3 = 0"); // tombstones: a's second phase
    const auto budget = engine::copy_chunk_budget_for(64 * kib, 64 * kib);
    const auto whole = read_all(path, budget);
    REQUIRE(whole.size() > 6);
    // Cut after each chunk in turn: the rest is exactly what the whole read had after it.
    for (std::size_t cut = 0; cut + 1 < whole.size(); ++cut) {
        const auto& last = whole[cut];
        w::copy_resume at;
        at.table = last.table == 0 ? "a" : "b";
        at.phase = last.deleted.back() ? 1 : 0;
        at.key = engine::value::of_int(last.keys.back());
        const auto rest = read_all(path, budget, &at);
        std::vector<std::pair<std::uint32_t, std::int64_t>> want, got;
        for (std::size_t i = cut + 1; i < whole.size(); ++i)
            for (auto k : whole[i].keys) want.emplace_back(whole[i].table, k);
        for (const auto& c : rest)
            for (auto k : c.keys) got.emplace_back(c.table, k);
        INFO("cut after chunk " << cut);
        CHECK(got == want);
    }
}
