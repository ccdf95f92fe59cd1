// The apply path (engine/apply.hpp) against SQLite: a seeded property test of
// convergence under every delivery order, checked against an independent in-memory model
// of last-writer-wins with tombstones, plus targeted cases (stale writes, clock skew,
// corrupt and mismatched records, drop, rename, local writes after remote ones).
//
// Run alone: ./tests/sql_tests "[apply]". Reproduce a run: HDBREPL_SEED=<seed printed>.
#include <catch2/catch.hpp>

#include "tests/support/test_db.hpp"

#include "engine/apply.hpp"
#include "engine/row_store.hpp"
#include "engine/txn_record.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace hdbrepl::engine;
using hdbrepl::test::temp_dir;
using hdbrepl::test::test_db;

// ---- helpers ----------------------------------------------------------------------------

constexpr std::uint64_t base_ms = 1'700'000'000'000ull;
const hlc_t H0 = hlc_from_ms(base_ms);

// Virtual time an hour after the records' clock: nothing is too far ahead.
apply_options later_opts() {
    apply_options o;
    o.now_ms = base_ms + 3'600'000;
    return o;
}

std::uint64_t test_seed() {
    if (const char* s = std::getenv("HDBREPL_SEED")) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

const std::string T1_DEF = "\"id\" INTEGER PRIMARY KEY, \"a\" TEXT, \"b\"";
const std::string T2_DEF = "\"k\" TEXT PRIMARY KEY, \"v\" REAL, \"w\" INDEXED";

value I(std::int64_t v) { return value::of_int(v); }
value T(std::string v) { return value::of_text(std::move(v)); }
value B(std::string v) { return value::of_blob(std::move(v)); }
value R(double v) { return value::of_real(v); }
value N() { return value::null(); }

change put_c(std::uint32_t t, std::vector<value> row) { return {t, change_op::put, std::move(row)}; }
change del_c(std::uint32_t t, value key) { return {t, change_op::del, {std::move(key)}}; }
change drop_c(std::uint32_t t) { return {t, change_op::drop_table, {}}; }
change create_c(std::uint32_t t) { return {t, change_op::create_table, {}}; }
change rename_c(std::uint32_t t, std::string to) { return {t, change_op::rename_table, {T(std::move(to))}}; }

bytes make_record(hlc_t hlc, std::string origin, std::vector<record_table> tables, std::vector<change> changes) {
    txn_record r{hlc, std::move(origin), std::move(tables), std::move(changes)};
    return encode_record(r);
}

// A one-table record on table `name` (definition T1_DEF unless given).
bytes rec1(hlc_t hlc, std::string origin, std::string name, std::vector<change> changes, std::string def = T1_DEF) {
    return make_record(hlc, std::move(origin), {{std::move(name), std::move(def)}}, std::move(changes));
}

// Exact text for a value: storage class and full content (for dumps and messages).
std::string show(const value& v) {
    char buf[64];
    switch (v.type) {
    case value_type::null: return "NULL";
    case value_type::integer: return "i:" + std::to_string(v.i);
    case value_type::real: std::snprintf(buf, sizeof buf, "r:%.17g", v.r); return buf;
    case value_type::text: {
        std::string s = "t:'";
        for (unsigned char c : v.s) {
            if (c < 0x20 || c == '\'') { std::snprintf(buf, sizeof buf, "\\x%02x", c); s += buf; }
            else s += static_cast<char>(c);
        }
        return s + "'";
    }
    case value_type::blob: {
        std::string s = "b:";
        for (unsigned char c : v.s) { std::snprintf(buf, sizeof buf, "%02x", c); s += buf; }
        return s;
    }
    }
    return "?";
}

// Runs a query and returns every row as values.
std::vector<std::vector<value>> query(sqlite3* db, const std::string& sql) {
    std::vector<std::vector<value>> out;
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
    if (rc != SQLITE_OK) {
        std::string err = sqlite3_errmsg(db);
        sqlite3_finalize(s);
        FAIL("prepare failed: " << sql << "\n  " << err);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::vector<value> row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) row.push_back(column_value(s, i));
        out.push_back(std::move(row));
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_finalize(s);
    if (!err.empty()) FAIL("query failed: " << sql << "\n  " << err);
    return out;
}

bool table_exists(test_db& db, const std::string& name) {
    return db.count("SELECT count(*) FROM sqlite_schema WHERE name='" + name + "'") > 0;
}

std::int64_t log_rows(test_db& db) {
    if (!table_exists(db, "hdbrepl_log")) return 0;
    return db.count("SELECT count(*) FROM hdbrepl_log");
}

// Rows of a replicated table's shadow table as "key|col|...|@hlc/origin" strings, ordered by key.
std::vector<std::string> dump_data(test_db& db, const std::string& table, const std::string& def_text) {
    if (!table_exists(db, table + "_data")) return {"<no table>"};
    std::string err;
    auto def = parse_table_def(std::string_view(def_text), err);
    REQUIRE(def.has_value());
    std::string cols;
    for (const auto& c : def->columns) cols += "d." + quote_ident(c.name) + ", ";
    auto rows = query(db.handle(), "SELECT " + cols + "d.hdbrepl_v, (SELECT o.name FROM hdbrepl_origins o WHERE o.id = d.hdbrepl_o) FROM " +
                                       quote_ident(table + "_data") + " d ORDER BY d." + quote_ident(def->columns[def->pk].name));
    std::vector<std::string> out;
    for (const auto& r : rows) {
        std::string s;
        for (std::size_t i = 0; i + 2 < r.size(); ++i) s += show(r[i]) + "|";
        s += "@" + std::to_string(r[r.size() - 2].i) + "/" + r.back().s;
        out.push_back(s);
    }
    return out;
}

// The live keys of a table as read through the virtual table itself.
std::vector<std::string> vtab_keys(test_db& db, const std::string& table, const std::string& key) {
    std::vector<std::string> out;
    for (const auto& r : query(db.handle(), "SELECT " + quote_ident(key) + " FROM " + quote_ident(table) + " ORDER BY 1")) out.push_back(show(r[0]));
    return out;
}

// ---- the model: last writer wins with tombstones ------------------------------------------

struct model_version {
    hlc_t hlc = 0;
    std::string origin;
};

struct model_entry {
    model_version v;
    bool live = false;
    std::vector<value> row;
};

// table -> encoded key -> entry
using model = std::map<std::string, std::map<std::string, model_entry>>;

std::string key_of(const value& v) {
    bytes b;
    byte_writer w(b);
    encode_value(w, v);
    return std::string(b.begin(), b.end());
}

value key_value(const std::string& enc) {
    byte_reader r(reinterpret_cast<const std::uint8_t*>(enc.data()), enc.size());
    value v;
    decode_value(r, v);
    return v;
}

struct table_shape {
    std::string name, def;
    std::size_t pk;
    std::size_t ncols;
};
const table_shape shapes[] = {{"t1", T1_DEF, 0, 3}, {"t2", T2_DEF, 0, 3}};

// Applies a record to the model; returns how many of its changes win.
std::size_t model_apply(model& m, const txn_record& r) {
    std::size_t won = 0;
    for (const auto& c : r.changes) {
        const auto& t = r.tables[c.table];
        const value& key = c.values[0]; // both tables have their key first
        auto& slot = m[t.name];
        auto it = slot.find(key_of(key));
        if (it != slot.end() && compare_versions({r.hlc, r.origin}, {it->second.v.hlc, it->second.v.origin}) <= 0) continue;
        model_entry e;
        e.v = {r.hlc, r.origin};
        e.live = c.op == change_op::put;
        if (e.live) e.row = c.values;
        slot[key_of(key)] = std::move(e);
        ++won;
    }
    return won;
}

// The model's live rows of a table in the dump format of dump_data.
std::vector<std::string> model_dump(const model& m, const table_shape& shape) {
    auto it = m.find(shape.name);
    if (it == m.end()) return {"<no table>"};
    // Order by key as SQLite does (INTEGER keys numerically, TEXT keys by memcmp).
    std::vector<const model_entry*> live;
    for (const auto& [k, e] : it->second)
        if (e.live) live.push_back(&e);
    std::sort(live.begin(), live.end(), [&](const model_entry* a, const model_entry* b) { return a->row[shape.pk] < b->row[shape.pk]; });
    std::vector<std::string> out;
    for (const auto* e : live) {
        std::string s;
        for (const auto& v : e->row) s += show(v) + "|";
        s += "@" + std::to_string(static_cast<std::int64_t>(e->v.hlc)) + "/" + e->v.origin;
        out.push_back(s);
    }
    return out;
}

// ---- random records ----------------------------------------------------------------------

struct generated {
    txn_record rec;
    bytes body;
};

value random_any(std::mt19937_64& rng) {
    switch (rng() % 9) {
    case 0: return N();
    case 1: return I(static_cast<std::int64_t>(rng() % 100) - 50);
    case 2: return I((rng() & 1) ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min());
    case 3: return R(static_cast<double>(static_cast<std::int64_t>(rng() % 2000) - 1000) / 8.0);
    case 4: return R((rng() & 1) ? 1e300 : -2.5e-300);
    case 5: return T("");
    case 6: return T("s" + std::to_string(rng() % 50) + ((rng() & 3) == 0 ? std::string("\0x", 2) : std::string()));
    case 7: return B("");
    default: {
        std::string s(1 + rng() % 5, '\0');
        for (auto& c : s) c = static_cast<char>(rng());
        return B(s);
    }
    }
}

value random_value_for(std::mt19937_64& rng, const std::string& table, std::size_t col) {
    if (table == "t1" && col == 1) return (rng() % 5 == 0) ? N() : T("name" + std::to_string(rng() % 20)); // a TEXT
    if (table == "t2" && col == 1) return (rng() % 5 == 0) ? N() : R(static_cast<double>(rng() % 4000) / 4.0 - 500); // v REAL
    return random_any(rng);
}

value random_key(std::mt19937_64& rng, const std::string& table) {
    if (table == "t1") return I(static_cast<std::int64_t>(rng() % 6) + 1);
    static const char* keys[] = {"a", "b", "c", "", "B", "\xc3\xa9"};
    return T(keys[rng() % 6]);
}

// `n` records from origins n1..n4: HLCs strictly increase per origin, collide across
// origins (often exactly, to exercise the node-name tie-break).
std::vector<generated> generate(std::mt19937_64& rng, int n) {
    static const char* origins[] = {"n1", "n2", "n3", "n4"};
    hlc_t last[4] = {H0, H0, H0, H0};
    std::vector<hlc_t> used;
    std::vector<generated> out;
    for (int i = 0; i < n; ++i) {
        int o = static_cast<int>(rng() % 4);
        hlc_t hlc = last[o] + 1 + rng() % 3;
        if (rng() % 10 == 0) hlc += hlc_from_ms(1); // sometimes the next millisecond
        if (rng() % 3 == 0) {
            // Reuse another origin's timestamp when that keeps this origin increasing.
            std::vector<hlc_t> cands;
            for (auto h : used)
                if (h > last[o]) cands.push_back(h);
            if (!cands.empty()) hlc = cands[rng() % cands.size()];
        }
        last[o] = hlc;
        used.push_back(hlc);

        txn_record r;
        r.hlc = hlc;
        r.origin = origins[o];
        int mask = 1 + static_cast<int>(rng() % 3); // t1, t2 or both
        for (int t = 0; t < 2; ++t) {
            if (!(mask & (1 << t))) continue;
            const auto& shape = shapes[t];
            auto ti = static_cast<std::uint32_t>(r.tables.size());
            r.tables.push_back({shape.name, shape.def});
            std::set<std::string> keys; // each key at most once per record
            int nchanges = 1 + static_cast<int>(rng() % 3);
            for (int c = 0; c < nchanges; ++c) {
                value key = random_key(rng, shape.name);
                if (!keys.insert(key_of(key)).second) continue;
                if (rng() % 10 < 3) {
                    r.changes.push_back(del_c(ti, key));
                } else {
                    std::vector<value> row(shape.ncols);
                    row[shape.pk] = key;
                    for (std::size_t col = 0; col < shape.ncols; ++col)
                        if (col != shape.pk) row[col] = random_value_for(rng, shape.name, col);
                    r.changes.push_back(put_c(ti, std::move(row)));
                }
            }
        }
        bytes body = encode_record(r);
        out.push_back({std::move(r), std::move(body)});
    }
    return out;
}

// A replica: a database file and the node's applier on it.
struct replica {
    std::unique_ptr<test_db> db;
    std::unique_ptr<applier> ap;
    replica(const std::string& path) : db(std::make_unique<test_db>(path)), ap(std::make_unique<applier>(db->handle())) {}
    ~replica() { ap.reset(); db.reset(); }
    apply_result apply(const bytes& b, const apply_options& o = later_opts()) { return ap->apply(b.data(), b.size(), o); }
};

void require_ok(const apply_result& r) {
    INFO("apply error: " << r.error);
    REQUIRE(r.rc == SQLITE_OK);
}

// Checks the hdbrepl_log invariants of a replica: `clock` never decreases along seq and is
// at least every stored row version, and each row holds one distinct record.
void check_log(test_db& db, const std::vector<generated>* recs, std::int64_t expect_rows) {
    auto log = query(db.handle(), "SELECT seq, hlc, (SELECT name FROM hdbrepl_origins o WHERE o.id = l.origin), clock, body FROM hdbrepl_log l ORDER BY seq");
    CHECK(static_cast<std::int64_t>(log.size()) == expect_rows);
    hlc_t prev = 0;
    std::set<std::pair<hlc_t, std::string>> seen;
    for (const auto& row : log) {
        auto hlc = static_cast<hlc_t>(row[1].i);
        auto clock = static_cast<hlc_t>(row[3].i);
        INFO("log seq " << row[0].i << " hlc " << hlc << " origin " << row[2].s << " clock " << clock);
        CHECK(clock >= prev);
        CHECK(clock >= hlc);
        prev = clock;
        CHECK(seen.insert({hlc, row[2].s}).second); // one row per record
        if (recs) {
            bool found = false;
            for (const auto& g : *recs)
                if (g.rec.hlc == hlc && g.rec.origin == row[2].s) {
                    found = true;
                    CHECK(row[4].s == std::string(g.body.begin(), g.body.end()));
                }
            CHECK(found);
        }
    }
    hlc_t max_version = 0;
    for (const auto& shape : shapes) {
        for (const char* suffix : {"_data", "_tomb"}) {
            std::string t = shape.name + suffix;
            if (!table_exists(db, t)) continue;
            auto r = query(db.handle(), "SELECT coalesce(max(hdbrepl_v), 0) FROM " + quote_ident(t));
            max_version = std::max(max_version, static_cast<hlc_t>(r[0][0].i));
        }
    }
    CHECK(prev >= max_version);
}

} // namespace

// ---- the property test -----------------------------------------------------------------------

TEST_CASE("apply: replicas converge to the last-writer-wins model in any delivery order", "[sql][apply]") {
    const std::uint64_t seed = test_seed();
    std::printf("apply property test: HDBREPL_SEED=%" PRIu64 "\n", seed);
    INFO("HDBREPL_SEED=" << seed);
    std::mt19937_64 rng(seed);

    const int rounds = 8;
    const int nrecords = 80;
    const int nreplicas = 4;
    // How much the runs exercise: same-key writes with equal HLCs from different origins,
    // changes that lose, and keys that end deleted.
    std::size_t ties = 0, lost = 0, deleted = 0, live = 0;
    for (int round = 0; round < rounds; ++round) {
        INFO("round " << round);
        temp_dir dir;
        auto recs = generate(rng, nrecords);

        // The expected final state, independent of order.
        model final_model;
        for (const auto& g : recs) lost += g.rec.changes.size() - model_apply(final_model, g.rec);
        for (const auto& [t, keys] : final_model)
            for (const auto& [k, e] : keys) (e.live ? live : deleted) += 1;
        std::map<std::tuple<std::string, std::string, hlc_t>, std::set<std::string>> writers;
        for (const auto& g : recs)
            for (const auto& c : g.rec.changes) writers[{g.rec.tables[c.table].name, key_of(c.values[0]), g.rec.hlc}].insert(g.rec.origin);
        for (const auto& [k, origins] : writers) ties += origins.size() > 1 ? 1 : 0;

        std::vector<std::unique_ptr<replica>> reps;
        std::vector<std::vector<std::string>> dumps;
        for (int ri = 0; ri < nreplicas; ++ri) {
            INFO("replica " << ri);
            reps.push_back(std::make_unique<replica>(dir.file("r" + std::to_string(ri) + ".db")));
            auto& rep = *reps.back();

            // Delivery order: as generated, reversed, shuffled; with some records twice.
            std::vector<std::size_t> order(recs.size());
            for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
            if (ri == 1) std::reverse(order.begin(), order.end());
            if (ri >= 2) std::shuffle(order.begin(), order.end(), rng);
            for (std::size_t d = 0, dups = recs.size() / 6; d < dups; ++d)
                order.insert(order.begin() + static_cast<std::ptrdiff_t>(rng() % (order.size() + 1)), rng() % recs.size());

            // The last replica applies in batches inside its own transactions (the savepoint path).
            const bool batched = ri == nreplicas - 1;
            model m;
            std::int64_t logged = 0;
            for (std::size_t i = 0; i < order.size(); ++i) {
                const auto& g = recs[order[i]];
                INFO("applying record " << order[i] << " (" << g.rec.origin << " @" << g.rec.hlc << ") as #" << i);
                if (batched && i % 7 == 0) rep.db->exec("BEGIN");
                std::size_t expect = model_apply(m, g.rec);
                auto res = rep.apply(g.body);
                require_ok(res);
                CHECK(res.rows_applied == expect);
                CHECK(res.rows_skipped == g.rec.changes.size() - expect);
                CHECK(res.logged == (expect > 0));
                CHECK_FALSE(res.clock_skew);
                logged += res.logged ? 1 : 0;
                if (batched && (i % 7 == 6 || i + 1 == order.size())) rep.db->exec("COMMIT");
            }

            // Content: the model's live rows, with versions; the virtual table agrees.
            std::vector<std::string> all;
            for (const auto& shape : shapes) {
                INFO("table " << shape.name);
                auto got = dump_data(*rep.db, shape.name, shape.def);
                CHECK(got == model_dump(final_model, shape));
                all.insert(all.end(), got.begin(), got.end());
                if (got.size() == 1 && got[0] == "<no table>") continue;
                std::vector<std::string> want_keys;
                for (const auto& [k, e] : final_model[shape.name])
                    if (e.live) want_keys.push_back(show(e.row[shape.pk]));
                std::sort(want_keys.begin(), want_keys.end());
                auto keys = vtab_keys(*rep.db, shape.name, shape.name == "t1" ? "id" : "k");
                std::sort(keys.begin(), keys.end());
                CHECK(keys == want_keys);
                // A deleted key's tombstone holds the delete that won.
                auto tomb = query(rep.db->handle(), "SELECT " + std::string(shape.name == "t1" ? "id" : "k") +
                                                        ", hdbrepl_v, (SELECT name FROM hdbrepl_origins o WHERE o.id = t.hdbrepl_o) FROM " +
                                                        shape.name + "_tomb t");
                std::map<std::string, model_version> tombs;
                for (const auto& r : tomb) tombs[key_of(r[0])] = {static_cast<hlc_t>(r[1].i), r[2].s};
                for (const auto& [k, e] : final_model[shape.name]) {
                    auto it = tombs.find(k);
                    if (!e.live) {
                        INFO("deleted key " << show(key_value(k)) << " @" << e.v.hlc << "/" << e.v.origin);
                        REQUIRE(it != tombs.end());
                        CHECK(it->second.hlc == e.v.hlc);
                        CHECK(it->second.origin == e.v.origin);
                    } else if (it != tombs.end()) {
                        CHECK(compare_versions({it->second.hlc, it->second.origin}, {e.v.hlc, e.v.origin}) < 0);
                    }
                }
            }
            dumps.push_back(all);

            check_log(*rep.db, &recs, logged);

            // Everything again: nothing changes, nothing is logged.
            for (const auto& g : recs) {
                auto res = rep.apply(g.body);
                require_ok(res);
                CHECK(res.rows_applied == 0);
                CHECK_FALSE(res.logged);
            }
            CHECK(log_rows(*rep.db) == logged);
        }
        for (int ri = 1; ri < nreplicas; ++ri) {
            INFO("replica " << ri << " vs replica 0");
            CHECK(dumps[static_cast<std::size_t>(ri)] == dumps[0]);
        }
    }
    std::printf("apply property test: %d rounds x %d records x %d replicas; %zu equal-HLC same-key writes from different origins, "
                "%zu losing changes, %zu live and %zu deleted keys at the end\n",
                rounds, nrecords, nreplicas, ties, lost, live, deleted);
    CHECK(ties > 0);
    CHECK(lost > 0);
    CHECK(deleted > 0);
}

// ---- targeted cases ---------------------------------------------------------------------------

TEST_CASE("apply: a stale put after a delete does not resurrect the row", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 10, "n1", "t1", {put_c(0, {I(1), T("v1"), N()}), put_c(0, {I(2), T("v2"), N()})})));
    auto del = r.apply(rec1(H0 + 20, "n2", "t1", {del_c(0, I(1)), del_c(0, I(2))}));
    require_ok(del);
    CHECK(del.rows_applied == 2);
    CHECK(vtab_keys(*r.db, "t1", "id").empty());
    std::int64_t logs = log_rows(*r.db);

    // Older than the delete: skipped, not logged.
    auto stale = r.apply(rec1(H0 + 15, "n3", "t1", {put_c(0, {I(1), T("stale"), N()})}));
    require_ok(stale);
    CHECK(stale.rows_applied == 0);
    CHECK(stale.rows_skipped == 1);
    CHECK_FALSE(stale.logged);
    // Same HLC as the delete, smaller node name: the delete still wins.
    auto tie_lose = r.apply(rec1(H0 + 20, "n1", "t1", {put_c(0, {I(1), T("tie"), N()})}));
    require_ok(tie_lose);
    CHECK(tie_lose.rows_applied == 0);
    CHECK(vtab_keys(*r.db, "t1", "id").empty());
    CHECK(log_rows(*r.db) == logs);
    // Same HLC, greater node name: the put wins.
    auto tie_win = r.apply(rec1(H0 + 20, "n3", "t1", {put_c(0, {I(2), T("tie"), N()})}));
    require_ok(tie_win);
    CHECK(tie_win.rows_applied == 1);
    CHECK(tie_win.logged);
    CHECK(vtab_keys(*r.db, "t1", "id") == std::vector<std::string>{"i:2"});
    // A stale delete does not remove the newer row either.
    auto stale_del = r.apply(rec1(H0 + 19, "n4", "t1", {del_c(0, I(2))}));
    require_ok(stale_del);
    CHECK(stale_del.rows_applied == 0);
    CHECK(r.db->scalar("SELECT a FROM t1 WHERE id = 2") == "tie");
}

TEST_CASE("apply: a record too far in the future is rejected for now and changes nothing", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 1, "n1", "t1", {put_c(0, {I(1), T("x"), N()})})));
    auto before_log = log_rows(*r.db);

    apply_options o;
    o.now_ms = base_ms + 1000;
    o.max_clock_skew_ms = 60'000;
    bytes future = make_record(hlc_from_ms(base_ms + 1000 + 60'001), "n2", {{"t1", T1_DEF}, {"t2", T2_DEF}},
                               {put_c(0, {I(1), T("future"), N()}), put_c(1, {T("k"), R(1.5), N()})});
    auto res = r.apply(future, o);
    CHECK(res.clock_skew);
    CHECK(res.rc != SQLITE_OK);
    CHECK(res.rows_applied == 0);
    CHECK_FALSE(res.logged);
    CHECK(res.error.find("ahead") != std::string::npos);
    CHECK(r.db->scalar("SELECT a FROM t1 WHERE id = 1") == "x");
    CHECK_FALSE(table_exists(*r.db, "t2"));
    CHECK(log_rows(*r.db) == before_log);

    // Exactly at the limit is accepted; and the rejected record is applied when time has caught up.
    bytes edge = rec1(hlc_from_ms(base_ms + 1000 + 60'000) | 0xffff, "n3", "t1", {put_c(0, {I(2), T("edge"), N()})});
    auto e = r.apply(edge, o);
    require_ok(e);
    CHECK_FALSE(e.clock_skew);
    o.now_ms = base_ms + 2000;
    auto retry = r.apply(future, o);
    require_ok(retry);
    CHECK(retry.rows_applied == 2);
    CHECK(r.db->scalar("SELECT a FROM t1 WHERE id = 1") == "future");
}

TEST_CASE("apply: corrupt and invalid records give an error and change nothing", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 1, "n1", "t1", {put_c(0, {I(1), T("x"), N()})})));
    auto snapshot = [&] { return std::make_pair(dump_data(*r.db, "t1", T1_DEF), log_rows(*r.db)); };
    const auto before = snapshot();

    auto expect_rejected = [&](const bytes& b, const char* what) {
        INFO(what);
        auto res = r.apply(b);
        CHECK(res.rc != SQLITE_OK);
        CHECK_FALSE(res.error.empty());
        CHECK_FALSE(res.logged);
        CHECK(snapshot() == before);
        CHECK_FALSE(table_exists(*r.db, "t9"));
        return res;
    };

    bytes good = make_record(H0 + 5, "n2", {{"t1", T1_DEF}, {"t9", T1_DEF}},
                             {put_c(0, {I(1), T("changed"), N()}), put_c(0, {I(7), T("new"), N()}), put_c(1, {I(1), N(), N()})});
    for (std::size_t n = 0; n < good.size(); n += 3) {
        auto res = expect_rejected(bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)), "truncated record");
        CHECK(res.rc == SQLITE_CORRUPT);
    }
    bytes garbage = good;
    garbage[0] = 'Z';
    expect_rejected(garbage, "bad magic");
    garbage = good;
    garbage.push_back(0);
    expect_rejected(garbage, "trailing byte");

    // Well-formed bytes, but the last change is wrong: the changes before it must not land.
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}},
                                {put_c(0, {I(1), T("changed"), N()}), put_c(0, {I(7), T("new")})}),
                    "a row with too few values");
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}},
                                {put_c(0, {I(7), T("new"), N()}), put_c(0, {N(), T("null key"), N()})}),
                    "a NULL primary key");
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}}, {put_c(0, {I(7), T("new"), N()}), del_c(0, N())}),
                    "a NULL key in a delete");
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}, {"t9", "\"a\", \"b\""}},
                                {put_c(0, {I(7), T("new"), N()}), put_c(1, {I(1), I(2)})}),
                    "a new table with a definition without a key");
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}, {"t9", "garbage((("}},
                                {put_c(0, {I(7), T("new"), N()}), put_c(1, {I(1)})}),
                    "an unparsable definition");
    expect_rejected(make_record(H0 + 5, "n2", {{"t1", T1_DEF}}, {put_c(0, {I(7), T("new"), N()}), put_c(0, {R(1.5), T("bad key"), N()})}),
                    "a REAL key for an INTEGER PRIMARY KEY");

    // The same transaction inside a caller's transaction: rolled back to its savepoint only.
    r.db->exec("BEGIN");
    require_ok(r.apply(rec1(H0 + 6, "n3", "t1", {put_c(0, {I(8), T("in txn"), N()})})));
    auto bad = r.apply(make_record(H0 + 7, "n3", {{"t1", T1_DEF}}, {put_c(0, {I(9), T("x"), N()}), put_c(0, {I(10)})}));
    CHECK(bad.rc != SQLITE_OK);
    r.db->exec("COMMIT");
    CHECK(vtab_keys(*r.db, "t1", "id") == std::vector<std::string>{"i:1", "i:8"});

    // Still usable after all that.
    auto ok = r.apply(good);
    require_ok(ok);
    CHECK(ok.rows_applied == 3);
}

TEST_CASE("apply: a record whose table has different columns here is rejected", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 1, "n1", "t1", {put_c(0, {I(1), T("x"), N()})})));
    const auto before = dump_data(*r.db, "t1", T1_DEF);
    const auto logs = log_rows(*r.db);

    struct { const char* def; std::vector<value> row; } cases[] = {
        {"\"id\" INTEGER PRIMARY KEY, \"a\" TEXT", {I(1), T("fewer")}},
        {"\"id\" INTEGER PRIMARY KEY, \"a\" TEXT, \"b\", \"c\"", {I(1), T("more"), N(), N()}},
        {"\"id\" INTEGER PRIMARY KEY, \"x\" TEXT, \"b\"", {I(1), T("renamed column"), N()}},
        {"\"a\" TEXT, \"id\" INTEGER PRIMARY KEY, \"b\"", {T("moved key"), I(1), N()}},
    };
    for (auto& c : cases) {
        INFO("sender's definition: " << c.def);
        auto res = r.apply(rec1(H0 + 5, "n2", "t1", {put_c(0, c.row)}, c.def));
        CHECK(res.rc == SQLITE_MISMATCH);
        CHECK(res.error.find("t1") != std::string::npos);
        CHECK_FALSE(res.logged);
        CHECK(dump_data(*r.db, "t1", T1_DEF) == before);
        CHECK(log_rows(*r.db) == logs);
    }
    // A delete with the other definition is rejected as well.
    auto res = r.apply(rec1(H0 + 5, "n2", "t1", {del_c(0, I(1))}, "\"id\" INTEGER PRIMARY KEY"));
    CHECK(res.rc == SQLITE_MISMATCH);
    CHECK(dump_data(*r.db, "t1", T1_DEF) == before);

    // A table created here through SQL, with other columns than the sender's.
    r.db->exec("CREATE VIRTUAL TABLE local USING hdbrepl(id INTEGER PRIMARY KEY, q TEXT)");
    r.db->exec("INSERT INTO local VALUES(1, 'mine')");
    auto res2 = r.apply(rec1(H0 + 5, "n2", "local", {put_c(0, {I(1), T("theirs"), N()})}));
    CHECK(res2.rc == SQLITE_MISMATCH);
    CHECK(r.db->scalar("SELECT q FROM local WHERE id = 1") == "mine");
}

TEST_CASE("apply: a drop keeps the rows written after it and discards the older ones", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 10, "n1", "t1", {put_c(0, {I(1), T("old"), N()}), put_c(0, {I(3), T("old, deleted"), N()})})));
    require_ok(r.apply(rec1(H0 + 12, "n1", "t1", {del_c(0, I(3))})));
    require_ok(r.apply(rec1(H0 + 30, "n2", "t1", {put_c(0, {I(2), T("new"), N()}), del_c(0, I(4))})));
    auto drop = r.apply(rec1(H0 + 20, "n3", "t1", {drop_c(0)}));
    require_ok(drop);
    CHECK(drop.logged);
    REQUIRE(table_exists(*r.db, "t1"));
    CHECK(vtab_keys(*r.db, "t1", "id") == std::vector<std::string>{"i:2"});
    CHECK(r.db->column("SELECT id FROM t1_tomb ORDER BY id") == std::vector<std::string>{"4"}); // the old tombstone went with the drop
    // Applying the drop again changes nothing.
    auto again = r.apply(rec1(H0 + 20, "n3", "t1", {drop_c(0)}));
    require_ok(again);
    CHECK_FALSE(again.logged);
    CHECK(vtab_keys(*r.db, "t1", "id") == std::vector<std::string>{"i:2"});

    // When nothing is newer than the drop, the table goes.
    // (Every (HLC, origin) names one transaction: these are new ones.)
    require_ok(r.apply(rec1(H0 + 110, "n1", "t2", {put_c(0, {T("a"), R(1), N()})}, T2_DEF)));
    require_ok(r.apply(rec1(H0 + 120, "n3", "t2", {drop_c(0)}, T2_DEF)));
    CHECK_FALSE(table_exists(*r.db, "t2"));
    // An older change that arrives later is discarded; a newer one brings the table back.
    auto older = r.apply(rec1(H0 + 115, "n2", "t2", {put_c(0, {T("b"), R(2), N()})}, T2_DEF));
    require_ok(older);
    CHECK(older.rows_applied == 0);
    CHECK_FALSE(older.logged);
    CHECK_FALSE(table_exists(*r.db, "t2"));
    auto newer = r.apply(rec1(H0 + 125, "n1", "t2", {put_c(0, {T("c"), R(3), N()})}, T2_DEF));
    require_ok(newer);
    CHECK(vtab_keys(*r.db, "t2", "k") == std::vector<std::string>{"t:'c'"});
    check_log(*r.db, nullptr, log_rows(*r.db));
}

namespace {
// Applies records in `order` to a fresh in-memory replica and returns t1's live rows
// ("<no table>" when t1 does not exist).
std::vector<std::string> apply_in_order(const std::vector<bytes>& recs, const std::vector<std::size_t>& order,
                                        const std::string& table = "t1") {
    replica r(":memory:");
    for (auto i : order) require_ok(r.apply(recs[i]));
    // Strip the versions: the content is what must agree.
    auto rows = dump_data(*r.db, table, T1_DEF);
    for (auto& s : rows) s = s.substr(0, s.rfind('@'));
    return rows;
}

std::string order_text(const std::vector<std::size_t>& order, const std::vector<const char*>& names) {
    std::string s;
    for (auto i : order) s += std::string(s.empty() ? "" : ", ") + names[i];
    return s;
}
} // namespace

TEST_CASE("apply: an older change that arrives after a drop is discarded, whatever came between", "[sql][apply]") {
    // P1 was written before the drop, P2 after it.
    const std::vector<bytes> recs = {
        rec1(H0 + 10, "n1", "t1", {put_c(0, {I(1), T("before drop"), N()})}),
        rec1(H0 + 20, "n2", "t1", {drop_c(0)}),
        rec1(H0 + 30, "n3", "t1", {put_c(0, {I(2), T("after drop"), N()})}),
    };
    const std::vector<const char*> names = {"put k1 @10", "drop @20", "put k2 @30"};
    const std::vector<std::string> expect = {"i:2|t:'after drop'|NULL|"};
    std::vector<std::size_t> order = {0, 1, 2};
    do {
        INFO("delivery order: " << order_text(order, names));
        CHECK(apply_in_order(recs, order) == expect);
    } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("apply: a tombstone newer than a drop survives the drop", "[sql][apply]") {
    // k2 is written after the drop and deleted after that: it must stay deleted.
    const std::vector<bytes> recs = {
        rec1(H0 + 20, "n1", "t1", {drop_c(0)}),
        rec1(H0 + 25, "n2", "t1", {put_c(0, {I(2), T("after drop"), N()})}),
        rec1(H0 + 30, "n3", "t1", {del_c(0, I(2))}),
        rec1(H0 + 40, "n4", "t1", {put_c(0, {I(4), T("last"), N()})}),
    };
    const std::vector<const char*> names = {"drop @20", "put k2 @25", "delete k2 @30", "put k4 @40"};
    const std::vector<std::string> expect = {"i:4|t:'last'|NULL|"};
    std::vector<std::size_t> order = {0, 1, 2, 3};
    do {
        INFO("delivery order: " << order_text(order, names));
        CHECK(apply_in_order(recs, order) == expect);
    } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("apply: a rename carries older changes addressed to the old name into the renamed table", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 10, "n1", "a", {put_c(0, {I(1), T("first"), N()})})));
    auto ren = r.apply(rec1(H0 + 20, "n2", "a", {rename_c(0, "b")}));
    require_ok(ren);
    CHECK(ren.logged);
    CHECK_FALSE(table_exists(*r.db, "a"));
    REQUIRE(table_exists(*r.db, "b"));
    auto older = r.apply(rec1(H0 + 15, "n3", "a", {put_c(0, {I(2), T("older, old name"), N()})}));
    require_ok(older);
    CHECK(older.rows_applied == 1);
    CHECK_FALSE(table_exists(*r.db, "a"));
    CHECK(vtab_keys(*r.db, "b", "id") == std::vector<std::string>{"i:1", "i:2"});
    // Applying the rename again changes nothing.
    auto again = r.apply(rec1(H0 + 20, "n2", "a", {rename_c(0, "b")}));
    require_ok(again);
    CHECK_FALSE(again.logged);
    CHECK(vtab_keys(*r.db, "b", "id") == std::vector<std::string>{"i:1", "i:2"});

    // A chain of renames: changes to either old name follow it to the end.
    auto ren2 = r.apply(rec1(H0 + 30, "n3", "b", {rename_c(0, "c")}));
    require_ok(ren2);
    CHECK(ren2.logged);
    require_ok(r.apply(rec1(H0 + 16, "n4", "a", {put_c(0, {I(3), T("to a"), N()})})));
    require_ok(r.apply(rec1(H0 + 25, "n1", "b", {put_c(0, {I(4), T("to b"), N()})})));
    CHECK_FALSE(table_exists(*r.db, "a"));
    CHECK_FALSE(table_exists(*r.db, "b"));
    CHECK(vtab_keys(*r.db, "c", "id") == std::vector<std::string>{"i:1", "i:2", "i:3", "i:4"});
    check_log(*r.db, nullptr, log_rows(*r.db));
}

TEST_CASE("apply: a rename converges in every delivery order", "[sql][apply]") {
    const std::vector<bytes> recs = {
        rec1(H0 + 10, "n1", "a", {put_c(0, {I(1), T("first"), N()})}),
        rec1(H0 + 20, "n2", "a", {rename_c(0, "b")}),
        rec1(H0 + 15, "n3", "a", {put_c(0, {I(2), T("second"), N()})}),
    };
    const std::vector<const char*> names = {"put k1 @10 to a", "rename a->b @20", "put k2 @15 to a"};
    const std::vector<std::string> expect = {"i:1|t:'first'|NULL|", "i:2|t:'second'|NULL|"};
    std::vector<std::size_t> order = {0, 1, 2};
    do {
        INFO("delivery order: " << order_text(order, names));
        CHECK(apply_in_order(recs, order, "b") == expect);
        CHECK(apply_in_order(recs, order, "a") == std::vector<std::string>{"<no table>"});
    } while (std::next_permutation(order.begin(), order.end()));
}

TEST_CASE("apply: an explicit create record makes the table, once", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    auto c = r.apply(rec1(H0 + 5, "n1", "t1", {create_c(0)}));
    require_ok(c);
    CHECK(c.logged);
    REQUIRE(table_exists(*r.db, "t1"));
    CHECK(r.db->count("SELECT count(*) FROM t1") == 0);
    auto again = r.apply(rec1(H0 + 5, "n1", "t1", {create_c(0)}));
    require_ok(again);
    CHECK_FALSE(again.logged);
    // The created table is a working hdbrepl table.
    r.db->exec("INSERT INTO t1 VALUES(1, 'x', NULL)");
    CHECK(r.db->scalar("SELECT a FROM t1 WHERE id = 1") == "x");
}

TEST_CASE("apply: local writes after a remote record get a later HLC", "[sql][apply]") {
    temp_dir dir;
    const std::string path = dir.file("r.db");
    replica r(path);
    // A remote transaction 30 s ahead of our wall clock (within the default 60 s skew).
    const hlc_t remote = hlc_from_ms(wall_clock_ms() + 30'000) | 7;
    apply_options o; // the real wall clock
    auto res = r.apply(rec1(remote, "zz-remote", "t1", {put_c(0, {I(1), T("remote"), N()})}), o);
    require_ok(res);
    REQUIRE(res.logged);

    auto last_log_hlc = [&](test_db& db) { return static_cast<hlc_t>(std::stoull(db.scalar("SELECT hlc FROM hdbrepl_log ORDER BY seq DESC LIMIT 1"))); };
    auto row_version = [&](test_db& db, int id) {
        return static_cast<hlc_t>(std::stoull(db.scalar("SELECT hdbrepl_v FROM t1_data WHERE id = " + std::to_string(id))));
    };

    SECTION("on another connection") {
        test_db local(path);
        local.exec("INSERT INTO t1 VALUES(2, 'local', NULL)");
        hlc_t h = last_log_hlc(local);
        CHECK(h > remote);
        CHECK(row_version(local, 2) == h);
        local.exec("UPDATE t1 SET a = 'updated' WHERE id = 1");
        hlc_t h2 = last_log_hlc(local);
        CHECK(h2 > h);
        CHECK(row_version(local, 1) == h2);
        // The updated row beats the remote one anywhere: its version is newer.
        CHECK(compare_versions({h2, "node-local"}, {remote, "zz-remote"}) > 0);
    }
    SECTION("on the applier's own connection") {
        r.db->exec("INSERT INTO t1 VALUES(3, 'local', NULL)");
        hlc_t h = last_log_hlc(*r.db);
        CHECK(h > remote);
        CHECK(row_version(*r.db, 3) == h);
        r.db->exec("DELETE FROM t1 WHERE id = 1");
        CHECK(last_log_hlc(*r.db) > h);
    }
    SECTION("after an older remote record, too") {
        require_ok(r.apply(rec1(remote - 100, "aa-remote", "t1", {put_c(0, {I(5), T("older"), N()})}), o));
        r.db->exec("INSERT INTO t1 VALUES(4, 'local', NULL)");
        CHECK(last_log_hlc(*r.db) > remote);
    }
    check_log(*r.db, nullptr, log_rows(*r.db));
}

TEST_CASE("apply: every new connection has the hdbrepl module, also after others closed", "[sql][apply]") {
    // The applier creates missing tables with CREATE VIRTUAL TABLE ... USING hdbrepl, so the
    // module must be registered on every connection. Connections opened and closed in turn
    // tend to get the same sqlite3* address from malloc.
    for (int i = 0; i < 20; ++i) {
        INFO("connection " << i);
        test_db db(":memory:");
        CHECK(db.count("SELECT count(*) FROM pragma_module_list WHERE name = 'hdbrepl'") == 1);
    }
}

TEST_CASE("apply: a record cannot reach system, shadow or plain tables", "[sql][apply]") {
    temp_dir dir;
    replica r(dir.file("r.db"));
    require_ok(r.apply(rec1(H0 + 1, "n1", "t1", {put_c(0, {I(1), T("x"), N()})})));
    r.db->exec("CREATE TABLE plain(id INTEGER PRIMARY KEY, a TEXT, b); INSERT INTO plain VALUES(1, 'mine', NULL)");
    auto snapshot = [&] {
        std::vector<std::string> s = r.db->rows("SELECT name, sql FROM sqlite_schema ORDER BY name");
        for (const char* t : {"plain", "t1_data", "t1_tomb", "hdbrepl_log", "hdbrepl_meta", "hdbrepl_tables", "hdbrepl_origins"})
            for (auto& row : r.db->rows(std::string("SELECT * FROM ") + t)) s.push_back(std::string(t) + ": " + row);
        return s;
    };
    const auto before = snapshot();
    hlc_t h = H0 + 10;
    for (const char* target : {"hdbrepl_log", "hdbrepl_meta", "t1_data", "t1_tomb", "plain", "sqlite_schema"}) {
        INFO("put into " << target);
        auto res = r.apply(rec1(h++, "n2", target, {put_c(0, {I(1), T("evil"), N()})}));
        CHECK(res.rc != SQLITE_OK);
        CHECK(snapshot() == before);
    }
    for (const char* to : {"plain", "hdbrepl_evil", "t1_data", "sqlite_schema"}) {
        INFO("rename t1 to " << to);
        auto res = r.apply(rec1(h++, "n2", "t1", {rename_c(0, to)}));
        CHECK(res.rc != SQLITE_OK);
        CHECK(snapshot() == before);
    }
    for (const char* target : {"plain", "hdbrepl_log", "t1_data", "t1_tomb"}) {
        INFO("drop " << target);
        (void)r.apply(rec1(h++, "n2", target, {drop_c(0)}));
        CHECK(table_exists(*r.db, target));
        CHECK(r.db->count("SELECT count(*) FROM plain") == 1);
        CHECK(r.db->count("SELECT count(*) FROM t1") == 1);
    }
}

TEST_CASE("apply: a long-lived applier sees a table recreated with other columns elsewhere", "[sql][apply]") {
    // The node's applier lives as long as the node; users change tables on other connections.
    temp_dir dir;
    const std::string path = dir.file("r.db");
    replica r(path);
    apply_options o; // the real wall clock: these records are newer than the local DDL below
    require_ok(r.apply(rec1(hlc_from_ms(wall_clock_ms()), "n1", "t1", {put_c(0, {I(1), T("x"), N()})}), o));
    {
        test_db user(path);
        user.exec("DROP TABLE t1");
        user.exec("CREATE VIRTUAL TABLE t1 USING hdbrepl(id INTEGER PRIMARY KEY, a TEXT, b, c)");
        user.exec("INSERT INTO t1 VALUES(5, 'local', NULL, 'c')");
    }
    // The sender's t1 has three columns; the table here now has four.
    auto res = r.apply(rec1(hlc_from_ms(wall_clock_ms() + 1000), "n2", "t1", {put_c(0, {I(2), T("remote"), N()})}), o);
    CHECK(res.rc == SQLITE_MISMATCH);
    CHECK(vtab_keys(*r.db, "t1", "id") == std::vector<std::string>{"i:5"});
}
