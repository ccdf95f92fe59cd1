// Robustness against untrusted SQL and database files: with SQLITE_DBCONFIG_DEFENSIVE the
// shadow tables cannot be written directly (the module still works), the state-changing
// functions cannot run from views or triggers, and the registered functions are exactly
// the documented ones.
#include "engine/security_store.hpp"
#include "security/auth.hpp"
#include "security/auth_worker.hpp"
#include "security/credentials.hpp"
#include "sql/functions.hpp"
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

using namespace hdbrepl::test;

namespace {
const char* dog_sql = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";

void defensive(test_db& db) {
    int on = -1;
    REQUIRE(sqlite3_db_config(db.handle(), SQLITE_DBCONFIG_DEFENSIVE, 1, &on) == SQLITE_OK);
    REQUIRE(on == 1);
}
} // namespace

TEST_CASE("with SQLITE_DBCONFIG_DEFENSIVE the shadow tables refuse direct writes", "[sql]") {
    temp_dir d;
    test_db db(d.file("def.db"));
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie'), (2, 'Fido', 'lab')");
    db.exec("DELETE FROM dog WHERE id = 2");
    defensive(db);
    auto before = snapshot(db.handle());
    for (const char* sql : {"INSERT INTO dog_data VALUES(3, 'Evil', 'x', 1, 1)", "UPDATE dog_data SET name = 'Evil'", "DELETE FROM dog_data",
                            "INSERT INTO dog_tomb VALUES(5, 1, 1)", "UPDATE dog_tomb SET hdbrepl_v = 0", "DELETE FROM dog_tomb",
                            "INSERT OR REPLACE INTO dog_data SELECT * FROM dog_data", "REPLACE INTO dog_tomb VALUES(2, 0, 0)"}) {
        INFO("SQL: " << sql);
        CHECK_THAT(db.try_exec(sql), Catch::Contains("may not be modified"));
    }
    CHECK_THAT(db.try_exec("DROP TABLE dog_data"), Catch::Contains("may not be dropped"));
    CHECK_THAT(db.try_exec("DROP TABLE dog_tomb"), Catch::Contains("may not be dropped"));
    CHECK_FALSE(db.try_exec("ALTER TABLE dog_data RENAME TO x").empty());
    CHECK_FALSE(db.try_exec("ALTER TABLE dog_data ADD COLUMN evil").empty());
    CHECK(snapshot(db.handle()) == before);
    // Reading them is fine.
    CHECK(db.rows("SELECT id, name FROM dog_data") == std::vector<std::string>{"1|Rex"});
}

TEST_CASE("with SQLITE_DBCONFIG_DEFENSIVE the replicated tables still work fully", "[sql]") {
    temp_dir d;
    test_db db(d.file("def2.db"));
    defensive(db);
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie'), (2, 'Fido', 'lab')");
    db.exec("INSERT OR REPLACE INTO dog VALUES(2, 'Fido2', 'lab')");
    db.exec("UPDATE dog SET id = 3 WHERE id = 2");
    db.exec("BEGIN; DELETE FROM dog WHERE id = 1; SAVEPOINT s; INSERT INTO dog VALUES(9, 'x', 'y'); ROLLBACK TO s; COMMIT;");
    CHECK(db.try_exec("INSERT INTO dog VALUES(3, 'dup', 'x'), (4, 'x', 'y')") == "UNIQUE constraint failed: dog.id");
    CHECK(db.rows("SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"3|Fido2|lab"});
    CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms', 0)") == "0");
    db.exec("SELECT repl_config('test_clock_ms', (strftime('%s', 'now') + 3600) * 1000)"); // an hour later
    CHECK(db.try_exec("SELECT repl_prune_tombstones()") == "");
    CHECK(db.count("SELECT count(*) FROM dog_tomb") == 0);
    db.exec("ALTER TABLE dog RENAME TO hound");
    db.exec("INSERT INTO hound VALUES(5, 'after rename', 'x')");
    check_log_matches_data(db, {"hound"});

    // Applying records (which creates and fills tables) works under DEFENSIVE too.
    temp_dir d2;
    test_db replica(d2.file("replica.db"));
    defensive(replica);
    replica.exec("SELECT repl_config('test_clock_ms', (strftime('%s', 'now') + 3600) * 1000)"); // the source's clock ran ahead
    replay_log(db, replica);
    CHECK(replica.rows("SELECT * FROM hound ORDER BY id") == db.rows("SELECT * FROM hound ORDER BY id"));
    db.exec("DROP TABLE hound");
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'hound%'") == 0);
    replay_log(db, replica); // includes the drop
    CHECK(replica.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'hound%'") == 0);
}

TEST_CASE("state-changing functions cannot be called from a view or a trigger", "[sql]") {
    temp_dir d;
    test_db db(d.file("direct.db"));
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    db.exec("DELETE FROM dog");
    // A database file from an untrusted source may contain such views and triggers.
    db.exec("CREATE VIEW v_config AS SELECT repl_config('tombstone_retention_ms', 0) AS x");
    db.exec("CREATE VIEW v_config_read AS SELECT repl_config('tombstone_retention_ms') AS x");
    db.exec("CREATE VIEW v_prune AS SELECT repl_prune_tombstones() AS x");
    db.exec("CREATE VIEW v_apply AS SELECT repl_apply(body) AS x FROM hdbrepl_log");
    db.exec("CREATE TABLE p(a)");
    db.exec("CREATE TRIGGER t_prune AFTER INSERT ON p BEGIN SELECT repl_prune_tombstones(); END");
    db.exec("CREATE TABLE q(a)");
    db.exec("CREATE TRIGGER t_config AFTER INSERT ON q BEGIN SELECT repl_config('max_clock_skew_ms', 0); END");
    db.exec("CREATE TABLE r(a)");
    db.exec("CREATE TRIGGER t_apply AFTER INSERT ON r BEGIN SELECT repl_apply(x'00'); END");
    auto before = snapshot(db.handle());
    CHECK_THAT(db.try_exec("SELECT * FROM v_config"), Catch::Contains("unsafe use of repl_config()"));
    CHECK_THAT(db.try_exec("SELECT * FROM v_config_read"), Catch::Contains("unsafe use of repl_config()"));
    CHECK_THAT(db.try_exec("SELECT * FROM v_prune"), Catch::Contains("unsafe use of repl_prune_tombstones()"));
    CHECK_THAT(db.try_exec("SELECT * FROM v_apply"), Catch::Contains("unsafe use of repl_apply()"));
    CHECK_THAT(db.try_exec("INSERT INTO p VALUES(1)"), Catch::Contains("unsafe use of repl_prune_tombstones()"));
    CHECK_THAT(db.try_exec("INSERT INTO q VALUES(1)"), Catch::Contains("unsafe use of repl_config()"));
    CHECK_THAT(db.try_exec("INSERT INTO r VALUES(1)"), Catch::Contains("unsafe use of repl_apply()"));
    CHECK(snapshot(db.handle()) == before);
    CHECK(db.count("SELECT count(*) FROM dog_tomb") == 1);
    CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms')") == "604800000");
    // Called directly they work.
    CHECK(db.scalar("SELECT repl_config('max_clock_skew_ms')") == "60000");
    // The pure functions are allowed in views, even with trusted_schema off.
    db.exec("PRAGMA trusted_schema = OFF");
    db.exec("CREATE VIEW v_pure AS SELECT repl_version() AS v, length(repl_record_json(body)) > 0 AS j FROM hdbrepl_log LIMIT 1");
    CHECK(db.rows("SELECT * FROM v_pure") == std::vector<std::string>{"0.1.0|1"});
}

namespace {
// The repl_* functions documented in the repository's docs/*.md: name -> accepted argument
// counts, from the rows of the function tables ("| `repl_config(key)` / `repl_config(key, value)` | ...").
struct doc_function {
    std::set<int> arities;
    std::string notes; // the rest of the table row
};
std::map<std::string, doc_function> documented_functions(std::set<std::string>& mentioned) {
    std::string file = __FILE__; // <repo>/tests/sql/security_test.cpp
    std::string repo = file.substr(0, file.rfind("/tests/sql/"));
    std::map<std::string, doc_function> out;
    for (const char* doc : {"/docs/sql.md", "/docs/config.md", "/docs/protocol.md", "/docs/cluster.md"}) {
        std::ifstream in(repo + doc);
        std::string line;
        while (std::getline(in, line)) {
            // Any `repl_x(` or `repl_x` in backticks counts as a mention.
            for (std::size_t p = line.find("`repl_"); p != std::string::npos; p = line.find("`repl_", p + 1)) {
                std::size_t e = p + 1;
                while (e < line.size() && (std::isalnum(static_cast<unsigned char>(line[e])) || line[e] == '_')) ++e;
                mentioned.insert(line.substr(p + 1, e - p - 1));
            }
            if (line.rfind("| `repl_", 0) != 0) continue;
            std::size_t cell_end = line.find(" | ", 2);
            std::string cell = line.substr(2, cell_end == std::string::npos ? std::string::npos : cell_end - 2);
            for (std::size_t p = cell.find("`repl_"); p != std::string::npos; p = cell.find("`repl_", p + 1)) {
                std::size_t open = cell.find('(', p), close = cell.find(')', p);
                if (open == std::string::npos || close == std::string::npos) continue;
                std::string name = cell.substr(p + 1, open - p - 1);
                std::string args = cell.substr(open + 1, close - open - 1);
                int optional = 0;
                std::string required;
                for (std::size_t i = 0, depth = 0; i < args.size(); ++i) {
                    if (args[i] == '[') { if (depth++ == 0) ++optional; continue; }
                    if (args[i] == ']') { --depth; continue; }
                    if (depth == 0) required += args[i];
                }
                int n = 0;
                bool any = required.find_first_not_of(" ,") != std::string::npos;
                if (any) n = 1 + static_cast<int>(std::count(required.begin(), required.end(), ','));
                auto& f = out[name];
                for (int k = 0; k <= optional; ++k) f.arities.insert(n + k);
                f.notes += cell_end == std::string::npos ? "" : line.substr(cell_end);
            }
        }
    }
    return out;
}
} // namespace

TEST_CASE("the registered repl_* functions are exactly the documented ones", "[sql]") {
    temp_dir d;
    test_db db(d.file("fn.db"));
    std::set<std::string> mentioned;
    auto docs = documented_functions(mentioned);
    REQUIRE(docs.count("repl_version") == 1); // the docs were found and parsed
    std::set<std::string> listed_names;
    std::set<std::string> listed; // "name|narg"
    std::map<std::string, long> flags;
    for (auto& r : db.rows("SELECT DISTINCT name, narg, flags FROM pragma_function_list WHERE name LIKE 'repl\\_%' ESCAPE '\\'")) {
        auto a = r.find('|'), b = r.rfind('|');
        std::string name = r.substr(0, a);
        listed_names.insert(name);
        listed.insert(name + "|" + r.substr(a + 1, b - a - 1));
        flags[name] |= std::stol(r.substr(b + 1));
    }
    // What this build says it registers is what SQLite has.
    std::set<std::string> reg;
    for (const char* const* n = hdbrepl::sql::registered_function_names(); *n; ++n) reg.insert(*n);
    CHECK(reg == listed_names);
    // Every documented function exists with every documented argument count ...
    for (auto& [name, f] : docs) {
        for (int n : f.arities) {
            INFO("documented: " << name << " with " << n << " argument(s)");
            CHECK(listed.count(name + "|" + std::to_string(n)) == 1);
        }
    }
    // ... and every registered function is documented in a function table of docs/.
    for (auto& name : listed_names) {
        INFO("registered but not in a function table of docs/*.md: " << name);
        CHECK(docs.count(name) == 1);
    }
    // Flags: what the docs call direct-only is SQLITE_DIRECTONLY, what they call
    // deterministic is DETERMINISTIC and INNOCUOUS; and everything that changes state or the
    // cluster is direct-only.
    for (auto& [name, f] : docs) {
        if (!flags.count(name)) continue;
        INFO(name << " flags " << flags[name] << ", documented: " << f.notes);
        std::string notes = f.notes;
        std::transform(notes.begin(), notes.end(), notes.begin(), [](unsigned char c) { return std::tolower(c); });
        if (notes.find("direct-only") != std::string::npos) CHECK((flags[name] & SQLITE_DIRECTONLY) != 0);
        if (notes.find("deterministic") != std::string::npos) {
            CHECK((flags[name] & SQLITE_DETERMINISTIC) != 0);
            CHECK((flags[name] & SQLITE_INNOCUOUS) != 0);
        }
    }
    for (const char* name : {"repl_config", "repl_apply", "repl_prune_tombstones", "repl_start", "repl_stop", "repl_add_node", "repl_set_node",
                             "repl_update_node", "repl_remove_node", "repl_add_certificate", "repl_remove_certificate", "repl_add_user",
                             "repl_drop_user", "repl_create_authentication_tokens", "repl_operation"}) {
        if (!flags.count(name)) continue;
        INFO(name << " changes state: it must be SQLITE_DIRECTONLY");
        CHECK((flags[name] & SQLITE_DIRECTONLY) != 0);
        CHECK((flags[name] & SQLITE_INNOCUOUS) == 0);
    }
    CHECK(db.scalar("SELECT count(*) FROM pragma_module_list WHERE name = 'hdbrepl'") == "1");
}

TEST_CASE("a password check costs one default PBKDF2 whether or not the user exists", "[sql]") {
    temp_dir d;
    test_db db(d.file("users.db"));
    db.exec(R"(SELECT repl_add_user('{"username": "admin", "password": "right-password", "role": "super_user"}'))");
    CHECK(db.scalar("SELECT password_hash LIKE 'pbkdf2-sha256$120000$%' FROM hdbrepl_users WHERE username = 'admin'") == "1");
    auto cost_ms = [&](const char* user, const char* password, const char* want) {
        const std::string sql = std::string(R"(SELECT repl_create_authentication_tokens('{"username": ")") + user +
                                R"(", "password": ")" + password + R"("}'))";
        auto t0 = std::chrono::steady_clock::now();
        std::string err = db.try_exec(sql);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        CHECK_THAT(err, Catch::Contains(want));
        return ms;
    };
    // Interleaved, and the fastest of each compared: other tests share the cores (a median of
    // five taken one kind after the other once compared a loaded stretch with a quiet one).
    double wrong = 1e9, unknown = 1e9;
    for (int i = 0; i < 6; ++i) {
        wrong = std::min(wrong, cost_ms("admin", "wrong-password", "wrong password for user 'admin'"));
        unknown = std::min(unknown, cost_ms("nobody", "wrong-password", "unknown user 'nobody'"));
    }
    INFO("fastest: wrong password " << wrong << " ms, unknown user " << unknown << " ms");
    // Before: an unknown user was answered at once (~0.05 ms against ~30 ms), which told
    // anyone timing the answers which user names exist.
    CHECK(unknown >= 0.5 * wrong);
    CHECK(unknown <= 2.0 * wrong + 5.0);
}

TEST_CASE("attempts are limited per address: a burst, then one per refill, in a bounded table", "[sql]") {
    using clk = hdbrepl::ext::attempt_limiter::clock;
    hdbrepl::ext::attempt_limiter lim(10, std::chrono::seconds(1), 4);
    const auto t0 = clk::now();
    for (int i = 0; i < 10; ++i) CHECK(lim.allow("10.0.0.1", t0));
    CHECK_FALSE(lim.allow("10.0.0.1", t0));
    CHECK_FALSE(lim.allow("10.0.0.1", t0 + std::chrono::milliseconds(900)));
    CHECK(lim.allow("10.0.0.1", t0 + std::chrono::milliseconds(1950))); // ~1 refilled since the last refusal
    CHECK_FALSE(lim.allow("10.0.0.1", t0 + std::chrono::milliseconds(1960)));
    CHECK(lim.allow("10.0.0.2", t0)); // another address has its own bucket
    // Many addresses: the table never holds more than its bound, and a busy address keeps its
    // (empty) bucket while idle ones go first.
    for (int i = 0; i < 100; ++i) lim.allow("10.1.0." + std::to_string(i), t0 + std::chrono::milliseconds(2000));
    CHECK(lim.addresses() <= 4);
}

TEST_CASE("the credential thread runs jobs in order, refuses beyond its queue, answers the rest at stop", "[sql]") {
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::atomic<int> ran{0}, cancelled{0};
    std::promise<void> started;
    {
        hdbrepl::ext::auth_worker w(3);
        REQUIRE(w.submit([&](bool run) {
            started.set_value();
            gate.wait();
            if (run) ++ran;
        }));
        started.get_future().wait(); // the first job runs: the queue is empty again
        for (int i = 0; i < 3; ++i) CHECK(w.submit([&](bool run) { ++(run ? ran : cancelled); }));
        CHECK(w.queued() == 3);
        CHECK_FALSE(w.submit([&](bool) { FAIL("a job over the bound is not kept"); }));
        release.set_value();
        // Destroying the worker waits for the running job; queued ones then run or are cancelled.
    }
    CHECK(ran + cancelled == 4);
    CHECK(ran >= 1);
}

TEST_CASE("a job that waited past its limit is answered without running", "[sql]") {
    std::promise<void> release, started;
    std::shared_future<void> gate = release.get_future().share();
    std::promise<bool> late;
    {
        hdbrepl::ext::auth_worker w(3);
        REQUIRE(w.submit([&](bool) {
            started.set_value();
            gate.wait();
        }));
        started.get_future().wait();
        REQUIRE(w.submit([&](bool run) { late.set_value(run); }, std::chrono::milliseconds(10)));
        std::this_thread::sleep_for(std::chrono::milliseconds(60)); // the first job holds the thread past the limit
        release.set_value();
        auto f = late.get_future();
        REQUIRE(f.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
        CHECK_FALSE(f.get());
    }
}

TEST_CASE("an operation token's id is recorded once, until it expires, in a bounded local table", "[sql]") {
    temp_dir d;
    test_db db(d.file("tokens.db"));
    std::string err;
    REQUIRE(hdbrepl::engine::ensure_security_tables(db.handle(), "main", err) == SQLITE_OK);
    hdbrepl::engine::security_store store(db.handle(), "main");
    int outcome = -1;
    REQUIRE(store.use_token("a", 2000, 1000, 3, outcome) == SQLITE_OK);
    CHECK(outcome == 0);
    REQUIRE(store.use_token("a", 2000, 1500, 3, outcome) == SQLITE_OK);
    CHECK(outcome == 1); // already used
    REQUIRE(store.use_token("b", 1600, 1500, 3, outcome) == SQLITE_OK);
    REQUIRE(store.use_token("c", 1700, 1500, 3, outcome) == SQLITE_OK);
    REQUIRE(store.use_token("d", 1800, 1500, 3, outcome) == SQLITE_OK);
    CHECK(outcome == 2); // three ids held, none expired: refused, nothing evicted early
    CHECK(db.count("SELECT count(*) FROM hdbrepl_used_tokens") == 3);
    REQUIRE(store.use_token("d", 1800, 1650, 3, outcome) == SQLITE_OK);
    CHECK(outcome == 0); // "b" expired and was pruned
    CHECK(db.rows("SELECT jti FROM hdbrepl_used_tokens ORDER BY jti") == std::vector<std::string>{"a", "c", "d"});
    REQUIRE(store.use_token("a", 2000, 1500, 3, outcome) == SQLITE_OK);
    CHECK(outcome == 1); // still remembered until its expiry
}

TEST_CASE("operation tokens carry an id the checker hands back; a token without one is refused", "[sql]") {
    namespace auth = hdbrepl::ext::auth;
    auth::directory dir;
    dir.users["joiner"] = {"joiner", "cluster_user", "x"};
    dir.token_secret = std::string(32, 'k');
    dir.issuer = "node-a";
    const std::int64_t now = 1'900'000'000;
    std::string tokens = auth::make_tokens(dir, "joiner", "cluster_user", now);
    auto field = [&](const std::string& key) {
        auto p = tokens.find("\"" + key + "\":\"") + key.size() + 4;
        return tokens.substr(p, tokens.find('"', p) - p);
    };
    auto ok = auth::check_header(dir, "Bearer " + field("operation_token"), now + 10);
    CHECK(ok.http_status == 0);
    CHECK(ok.token_id.size() >= 16);
    CHECK(ok.token_expires_s == now + 24 * 3600);
    auto again = auth::check_header(dir, "Bearer " + field("operation_token"), now + 20);
    CHECK(again.token_id == ok.token_id); // the single use is the caller's to record
    CHECK(auth::check_header(dir, "Bearer " + field("refresh_token"), now + 10).message.find("refresh token") != std::string::npos);
    const std::string no_id = hdbrepl::net::cred::sign_jwt(
        dir.token_secret, R"({"sub":"joiner","typ":"operation","iat":1900000000,"exp":1900086400})");
    auto refused = auth::check_header(dir, "Bearer " + no_id, now + 10);
    CHECK(refused.http_status == 401);
    CHECK(refused.message == "invalid token: no token id (jti)");
    // A password: one PBKDF2 whatever the user; no token id.
    dir.users["joiner"].password_hash = hdbrepl::net::cred::hash_password("pw");
    auto pw = auth::check_header(dir, "Basic " + hdbrepl::net::cred::base64_encode("joiner:pw"), now);
    CHECK(pw.http_status == 0);
    CHECK(pw.token_id.empty());
    CHECK(auth::check_header(dir, "Basic " + hdbrepl::net::cred::base64_encode("nobody:pw"), now).message == "unknown user 'nobody'");
}
