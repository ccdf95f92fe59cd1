// node_role.hpp: the node side of the replication benches (repl_bench.cpp, wan_bench.cpp): each
// node is the bench program itself run with `--node` (fork + exec by node_proc in
// bench_procs.hpp), one process per node, which opens its database, loads the extension and
// takes one-line commands on stdin (listed above node_role). Header-only: each bench is one
// translation unit. Thread: the node process's main thread (the extension runs its own).
#pragma once

#include "bench_common.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

namespace hdbrepl::bench {

// Bounds a wait: fails after `total_ms`, or when the watched value (a max(id) or count) has
// not changed for `stall_ms` (replication that stopped moving is reported in 30 s, not
// after the generous total bound).
class progress_clock {
public:
    explicit progress_clock(std::int64_t total_ms, std::int64_t stall_ms = 30'000)
        : start_(mono_ns()), deadline_(start_ + total_ms * 1'000'000), stall_ns_(stall_ms * 1'000'000), changed_(start_) {}
    void check(std::int64_t value, const std::string& what) {
        std::int64_t now = mono_ns();
        if (value != last_) last_ = value, changed_ = now;
        if (now > deadline_)
            fail(what + " not visible within " + std::to_string((deadline_ - start_) / 1'000'000) + " ms (at " + std::to_string(value) + ")");
        if (now - changed_ > stall_ns_)
            fail(what + " not visible: no progress for " + std::to_string(stall_ns_ / 1'000'000'000) + " s (stuck at " + std::to_string(value) + ")");
    }

private:
    std::int64_t start_, deadline_, stall_ns_, changed_;
    std::int64_t last_ = -1;
};

// Commands, one per line on stdin; every answer is one line on stdout starting with '@'
// ("@ok ..." with integers, "@polling" when a wait has started, "@err <text>"). TABLE is
// a table name; all tables have the same columns (id, name, breed INDEXED, ts).
//   start PATH                   repl_start(PATH)                              -> t_before t_after
//   create TABLE                 CREATE VIRTUAL TABLE TABLE USING hdbrepl(...)
//   insert TABLE FIRST COUNT     COUNT rows from id FIRST, 1,000-row transactions -> t_begin t_end
//   commit1 TABLE ID             one autocommit INSERT with ts = now           -> ts t_after
//   waitrow TABLE ID MS          @polling, then polls id=ID in a tight loop    -> t_seen ts
//   watch TABLE FIRST LAST MS    (waits for TABLE) @polling, then polls max(id) every 1 ms
//                                until >= LAST                                 -> t_first max_at_first t_last
//   waitall TABLE N LAST MS      polls until TABLE exists, max(id) >= LAST, count(*) >= N -> t_done count
//   digest TABLE                 count, sum(id), sum(length(name)), sum(length(breed)), sum(ts % 1000003)
//   sql TEXT                     runs the rest of the line as one statement      -> t_before t_after
//   waitlink MS                  polls repl_cluster_status() until a link is connected -> t_before t_after
//   status                       repl_cluster_status()                         -> "@status <json>"
//   stop                         repl_stop(), then exit
// The waits give up after MS, or after 30 s without progress.
class node_role {
public:
    node_role(const std::string& db_path, const std::string& lib) : db_(db_path) {
        db_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
        sqlite3_busy_timeout(db_.get(), 10000);
        db_.load_extension(lib);
    }
    ~node_role() {
        tables_.clear();
        if (started_) sqlite3_exec(db_.get(), "SELECT repl_stop()", nullptr, nullptr, nullptr);
    }

    int serve() {
        char line[8192];
        while (std::fgets(line, sizeof line, stdin)) {
            std::istringstream in(line);
            std::string cmd;
            in >> cmd;
            if (cmd.empty()) continue;
            try {
                if (!handle(cmd, in)) return 0;
            } catch (const std::exception& e) {
                std::string msg = e.what();
                std::replace(msg.begin(), msg.end(), '\n', ' ');
                answer("@err " + msg);
            }
        }
        return 0; // stdin closed: the benchmark is gone
    }

private:
    // The statements on one table (names are plain identifiers chosen by the benchmark).
    struct queries {
        statement begin, commit, insert, point, max_id, count;
        queries(sqlite3* db, const std::string& t)
            : begin(db, "BEGIN"),
              commit(db, "COMMIT"),
              insert(db, ("INSERT INTO " + t + "(id, name, breed, ts) VALUES(?1, ?2, ?3, ?4)").c_str()),
              point(db, ("SELECT ts FROM " + t + " WHERE id = ?1").c_str()),
              max_id(db, ("SELECT max(id) FROM " + t).c_str()),
              count(db, ("SELECT count(*) FROM " + t).c_str()) {}
    };

    // Makes row `id` in `r` and binds it to the insert's id, name and breed (the caller binds
    // ts); `r` must outlive the insert's run (the text is bound without a copy).
    static void bind_row(statement& insert, std::int64_t id, row_text& r) {
        make_row(id, r);
        insert.bind(1, id);
        insert.bind(2, r.name());
        insert.bind(3, r.breed());
    }

    static void answer(const std::string& s) {
        std::fputs(s.c_str(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    }
    static void ok(std::initializer_list<std::int64_t> values) {
        std::string s = "@ok";
        for (auto v : values) {
            s += ' ';
            s += std::to_string(v);
        }
        answer(s);
    }
    static std::int64_t arg(std::istringstream& in) {
        long long v = 0;
        if (!(in >> v)) fail("missing or bad integer argument");
        return v;
    }
    static std::string word(std::istringstream& in) {
        std::string w;
        if (!(in >> w)) fail("missing argument");
        return w;
    }

    queries& q(const std::string& table) {
        auto& p = tables_[table];
        if (!p) p = std::make_unique<queries>(db_.get(), table);
        return *p;
    }
    bool table_exists(const std::string& table) {
        statement s(db_.get(), "SELECT count(*) FROM sqlite_schema WHERE name = ?1");
        s.bind(1, table.c_str());
        s.step();
        return s.column_int(0) > 0;
    }
    void wait_table(const std::string& table, progress_clock& pc) { // a replicated table arrives with its first change
        while (!table_exists(table)) {
            pc.check(0, "table " + table);
            sleep_us(500);
        }
    }
    // Polls id=`id` once; true (and its ts) when the row is visible.
    static bool visible(queries& t, std::int64_t id, std::int64_t& ts) {
        t.point.bind(1, id);
        bool found = t.point.step();
        if (found) ts = t.point.column_int(0);
        t.point.reset();
        return found;
    }
    static std::int64_t max_id(queries& t) {
        std::int64_t v = t.max_id.step() && !t.max_id.column_null(0) ? t.max_id.column_int(0) : 0;
        t.max_id.reset();
        return v;
    }

    bool handle(const std::string& cmd, std::istringstream& in) {
        if (cmd == "start") {
            std::string path = word(in);
            statement s(db_.get(), "SELECT repl_start(?1)");
            s.bind(1, path.c_str());
            std::int64_t t0 = mono_ns();
            s.step();
            std::int64_t t1 = mono_ns();
            started_ = true;
            ok({t0, t1});
        } else if (cmd == "create") {
            std::string table = word(in);
            db_.exec("CREATE VIRTUAL TABLE " + table + " USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED, ts INTEGER)");
            ok({});
        } else if (cmd == "insert") {
            std::string table = word(in);
            std::int64_t first = arg(in), count = arg(in);
            auto& t = q(table);
            row_text r{};
            std::int64_t t0 = mono_ns();
            for (std::int64_t i = 0; i < count; i += txn_rows) {
                t.begin.run();
                for (std::int64_t id = first + i; id < first + std::min(count, i + txn_rows); ++id) {
                    bind_row(t.insert, id, r);
                    t.insert.bind(4, std::int64_t{0});
                    t.insert.run();
                }
                t.commit.run();
            }
            ok({t0, mono_ns()});
        } else if (cmd == "commit1" || cmd == "confirm1") {
            // An autocommit INSERT (its own transaction); confirm1 then calls repl_confirm(1):
            // how long the writer waits for a peer to say the row is durable there.
            std::string table = word(in);
            std::int64_t id = arg(in);
            auto& ins = q(table).insert;
            row_text r{};
            bind_row(ins, id, r);
            std::int64_t ts = mono_ns();
            ins.bind(4, ts);
            ins.run();
            const std::int64_t committed = mono_ns();
            if (cmd == "commit1") {
                ok({ts, committed});
            } else {
                statement c(db_.get(), "SELECT repl_confirm(1, 10000)");
                c.step();
                const std::int64_t n = c.column_int(0);
                ok({ts, committed, mono_ns(), n});
            }
        } else if (cmd == "waitrow") {
            std::string table = word(in);
            std::int64_t id = arg(in), ms = arg(in);
            auto& t = q(table);
            answer("@polling");
            std::int64_t deadline = mono_ns() + ms * 1'000'000, ts = 0;
            for (;;) { // a tight loop: the figure is the time to visibility, not a poll period
                if (visible(t, id, ts)) { ok({mono_ns(), ts}); break; }
                if (mono_ns() > deadline) fail("row " + std::to_string(id) + " not visible within " + std::to_string(ms) + " ms");
            }
        } else if (cmd == "watch") {
            std::string table = word(in);
            std::int64_t first = arg(in), last = arg(in), ms = arg(in);
            progress_clock pc(ms);
            wait_table(table, pc);
            auto& t = q(table);
            answer("@polling");
            std::int64_t t_first = 0, at_first = 0;
            for (;;) { // max(id) is one step down the key's b-tree
                std::int64_t m = max_id(t), now = mono_ns();
                if (!t_first && m >= first) t_first = now, at_first = m;
                if (m >= last) { ok({t_first, at_first, now}); break; }
                pc.check(m, "rows up to " + std::to_string(last));
                // 1 ms between looks: a round lasts seconds, so the figure moves by < 0.1%,
                // while a 200 us poll (5,000 read transactions a second) took a visible share
                // of the two cores from the nodes being measured.
                sleep_us(1000);
            }
        } else if (cmd == "waitall") {
            std::string table = word(in);
            std::int64_t n = arg(in), last = arg(in), ms = arg(in);
            progress_clock pc(ms);
            wait_table(table, pc);
            auto& t = q(table);
            // Copies go in key order: max(id) rises as chunks arrive ...
            for (std::int64_t m; (m = max_id(t)) < last;) {
                pc.check(m, "row " + std::to_string(last));
                sleep_us(500);
            }
            // ... so the last key normally comes last; the count makes sure.
            for (;;) {
                t.count.step();
                std::int64_t have = t.count.column_int(0);
                t.count.reset();
                if (have >= n) { ok({mono_ns(), have}); break; }
                pc.check(have, std::to_string(n) + " rows");
                sleep_us(20'000);
            }
        } else if (cmd == "digest") {
            std::string table = word(in);
            statement s(db_.get(), ("SELECT count(*), coalesce(sum(id), 0), coalesce(sum(length(name)), 0), coalesce(sum(length(breed)), 0), "
                                    "coalesce(sum(ts % 1000003), 0) FROM " + table).c_str());
            s.step();
            ok({s.column_int(0), s.column_int(1), s.column_int(2), s.column_int(3), s.column_int(4)});
        } else if (cmd == "sql") {
            std::string text;
            std::getline(in >> std::ws, text);
            std::int64_t t0 = mono_ns();
            statement s(db_.get(), text.c_str());
            while (s.step()) {}
            ok({t0, mono_ns()});
        } else if (cmd == "waitlink") {
            // Until repl_cluster_status() shows a connected link (the TLS pair after add_node).
            std::int64_t ms = arg(in), t0 = mono_ns(), deadline = t0 + ms * 1'000'000;
            statement s(db_.get(), "SELECT repl_cluster_status()");
            for (;;) {
                s.step();
                std::string json(s.column_text(0));
                s.reset();
                json.erase(std::remove(json.begin(), json.end(), ' '), json.end());
                if (json.find("\"state\":\"connected\"") != std::string::npos) { ok({t0, mono_ns()}); break; }
                if (mono_ns() > deadline) fail("no connected link within " + std::to_string(ms) + " ms: " + json);
                sleep_us(10'000);
            }
        } else if (cmd == "status") {
            statement s(db_.get(), "SELECT repl_cluster_status()");
            s.step();
            std::string json(s.column_text(0));
            std::replace(json.begin(), json.end(), '\n', ' ');
            answer("@status " + json);
        } else if (cmd == "stop") {
            tables_.clear();
            db_.exec("SELECT repl_stop()");
            started_ = false;
            ok({});
            return false;
        } else {
            fail("unknown command '" + cmd + "'");
        }
        return true;
    }

    database db_;
    std::map<std::string, std::unique_ptr<queries>> tables_; // after db_: finalized first
    bool started_ = false;
};

inline int node_main(int argc, char** argv) {
    std::string db, lib;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string_view a = argv[i];
        if (a == "--db") db = argv[i + 1];
        else if (a == "--lib") lib = argv[i + 1];
    }
    try {
        if (db.empty() || lib.empty()) fail("--node needs --db and --lib");
        node_role n(db, lib);
        return n.serve();
    } catch (const std::exception& e) {
        std::fprintf(stdout, "@err %s\n", e.what());
        std::fflush(stdout);
        std::fprintf(stderr, "node: %s\n", e.what());
        return 1;
    }
}

} // namespace hdbrepl::bench
