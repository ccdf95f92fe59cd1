// Transactions larger than a frame, interrupted while half received: the receiver's db thread
// is held before each part it stages (fault_hooks::before_each_part), so the link can be cut
// or a node killed between parts. Each time the receiver ends with the whole transaction
// exactly once, and a reader never sees part of it.
#include "tests/inproc/cluster_fixture.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace hdbrepl::test::inproc;

namespace {

constexpr int rows_n = 30'000; // ~150 bytes each: ~4.5 MB, more than four 1 MiB frames
const char* const big_table = "CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)";

// A: the sender, with a window smaller than a part, so it sends one part per ack and B commits
// each part on its own. B: the receiver, held 150 ms before each part.
std::vector<node_spec> slow_receiver_pair() {
    node_spec a, b;
    a.extra = {{"maxFrameBytes", "1MiB"}, {"maxBytesInFlight", "64KiB"}};
    b.extra = {{"maxFrameBytes", "1MiB"}};
    b.faults.before_each_part = 150ms;
    return {a, b};
}

void start_pair(cluster& c) {
    c.wait_mesh();
    c.exec(0, big_table);
    wait_until([&] { return c.count(1, "SELECT count(*) FROM sqlite_schema WHERE name = 'big'") == 1; }, 15s, "table big on B");
}

void insert_big(cluster& c, int node) {
    c.exec(node, "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < " + std::to_string(rows_n) +
                     ") INSERT INTO big SELECT x, 't1-' || hex(randomblob(64)), x FROM s");
}

std::int64_t staged(cluster& c, int node) { return c.count(node, "SELECT count(*) FROM hdbrepl_staged"); }

// Waits until B holds some parts of the transaction staged, and more to come: its db thread
// is held before the next one.
void half_received(cluster& c) {
    wait_until([&] { return staged(c, 1) >= 2; }, 60s, "B staging parts of the transaction", [&] { return "B's log:" + c.log_tail(1); });
    wait_until([&] { return c.db_thread_sleeping(1); }, 5s, "B's db thread held before a part (fault_hooks::before_each_part)",
               [&] { return "B staged " + std::to_string(staged(c, 1)) + " parts and holds " + c.scalar(1, "SELECT count(*) FROM big") + " rows"; });
    CHECK(c.count(1, "SELECT count(*) FROM big") == 0);
}

void check_whole(cluster& c, int node) {
    const std::string want = std::to_string(rows_n) + "|" + std::to_string(rows_n) + "|1|" + std::to_string(rows_n) + "|" +
                             std::to_string(std::int64_t{rows_n} * (rows_n + 1) / 2);
    CHECK(c.scalar(node, "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(n) FROM big") == want);
}

// Polls count(*) of big on a node's file from its own thread and connection (a reader of the
// file, independent of the node, so it goes on across the node's kill and restart).
class watcher {
public:
    watcher(cluster& c, int node, std::set<std::int64_t> allowed) : allowed_(std::move(allowed)) {
        db_ = c.open_connection(node);
        thread_ = std::thread([this] { run(); });
    }
    ~watcher() { stop(); }

    void stop() {
        if (!thread_.joinable()) return;
        stop_ = true;
        thread_.join();
        sqlite3_close_v2(db_);
    }
    // Fails the test when a reader saw a count outside `allowed` (call after stop()).
    void check() {
        std::lock_guard lock(m_);
        INFO("counts seen: " << describe());
        CHECK(bad_.empty());
        CHECK(samples_.size() > 10);
    }
    // Samples taken after `t`, and the time they span.
    std::size_t samples_since(std::chrono::steady_clock::time_point t, ms* span = nullptr) {
        std::lock_guard lock(m_);
        std::size_t n = 0;
        std::chrono::steady_clock::time_point first{}, last{};
        for (const auto& [when, v] : samples_)
            if (when >= t) {
                if (n++ == 0) first = when;
                last = when;
            }
        if (span) *span = std::chrono::duration_cast<ms>(last - first);
        return n;
    }
    // The largest count seen before `t`.
    std::int64_t max_before(std::chrono::steady_clock::time_point t) {
        std::lock_guard lock(m_);
        std::int64_t m = -1;
        for (const auto& [when, v] : samples_)
            if (when < t) m = std::max(m, v);
        return m;
    }

private:
    void run() {
        const auto deadline = std::chrono::steady_clock::now() + 150s;
        while (!stop_ && std::chrono::steady_clock::now() < deadline) {
            sqlite3_stmt* s = nullptr;
            std::int64_t v = -1;
            if (sqlite3_prepare_v2(db_, "SELECT count(*) FROM big", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
                v = sqlite3_column_int64(s, 0);
            sqlite3_finalize(s);
            if (v >= 0) { // an error (the table not there yet, a busy file): try again
                std::lock_guard lock(m_);
                samples_.emplace_back(std::chrono::steady_clock::now(), v);
                if (!allowed_.count(v)) bad_.insert(v);
            }
            std::this_thread::sleep_for(2ms);
        }
    }
    std::string describe() const {
        std::set<std::int64_t> seen;
        for (const auto& [when, v] : samples_) seen.insert(v);
        std::string s;
        for (auto v : seen) s += std::to_string(v) + (bad_.count(v) ? "(!) " : " ");
        return s + "in " + std::to_string(samples_.size()) + " reads";
    }

    std::set<std::int64_t> allowed_;
    sqlite3* db_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::vector<std::pair<std::chrono::steady_clock::time_point, std::int64_t>> samples_;
    std::set<std::int64_t> bad_;
};

} // namespace

TEST_CASE("a link cut while a transaction is half received: B ends with all of it once", "[inproc][big_txn]") {
    cluster c(slow_receiver_pair());
    start_pair(c);
    watcher w(c, 1, {0, rows_n});
    insert_big(c, 0);
    half_received(c);
    c.cut(0, 1);
    wait_until([&] { return !c.connected(0, 1) && !c.connected(1, 0); }, 15s, "the link between A and B gone");
    CHECK(c.count(1, "SELECT count(*) FROM big") == 0);
    c.heal(0, 1);
    wait_until([&] { return c.count(1, "SELECT count(*) FROM big") == rows_n; }, 90s, "the whole transaction on B after the cut",
               [&] { return c.log_tail(1); });
    w.stop();
    w.check();
    check_whole(c, 1);
    wait_until([&] { return staged(c, 1) == 0; }, 15s, "B's staging emptied");
}

TEST_CASE("a receiver that stops and starts replicating mid-transaction ends with all of it once", "[inproc][big_txn]") {
    cluster c(slow_receiver_pair());
    start_pair(c);
    watcher w(c, 1, {0, rows_n});
    insert_big(c, 0);
    half_received(c);
    c.stop(1);
    c.start(1);
    wait_until([&] { return c.count(1, "SELECT count(*) FROM big") == rows_n; }, 90s, "the whole transaction on B after its restart",
               [&] { return c.log_tail(1); });
    w.stop();
    w.check();
    check_whole(c, 1);
    wait_until([&] { return staged(c, 1) == 0; }, 15s, "B's staging emptied");
}

TEST_CASE("a receiver killed mid-transaction keeps its staged parts and gets the rest once", "[inproc][big_txn]") {
    cluster c(slow_receiver_pair());
    start_pair(c);
    watcher w(c, 1, {0, rows_n}); // across the kill and the restart too
    insert_big(c, 0);
    half_received(c);
    c.kill(1);
    // The parts staged before the kill are durable, and nothing of them is applied.
    {
        sqlite3* db = c.open_connection(1);
        const auto st = query_rows(db, "SELECT count(*) FROM hdbrepl_staged");
        const auto n = query_rows(db, "SELECT count(*) FROM big");
        sqlite3_close_v2(db);
        CHECK(std::stoll(st.at(0)) >= 2);
        CHECK(n.at(0) == "0");
    }
    c.restart(1);
    wait_until([&] { return c.count(1, "SELECT count(*) FROM big") == rows_n; }, 90s, "the whole transaction on B after its kill",
               [&] { return c.log_tail(1); });
    w.stop();
    w.check();
    check_whole(c, 1);
    wait_until([&] { return staged(c, 1) == 0; }, 15s, "B's staging emptied");
}

TEST_CASE("a sender killed mid-transaction: B applies nothing until it is back then all of it once", "[inproc][big_txn]") {
    cluster c(slow_receiver_pair());
    start_pair(c);
    watcher w(c, 1, {0, rows_n});
    insert_big(c, 0);
    half_received(c);
    c.kill(0);
    wait_until([&] { return !c.connected(1, 0); }, 15s, "B sees A gone");
    // What B staged waits: nothing of it is applied without the last part, for as long as A
    // is down (at least half a second of reads).
    const auto down = std::chrono::steady_clock::now();
    wait_until([&] {
        ms span{0};
        return w.samples_since(down, &span) >= 10 && span >= 500ms;
    }, 15s, "half a second of reads on B while A is down");
    CHECK(c.count(1, "SELECT count(*) FROM big") == 0);
    const auto back = std::chrono::steady_clock::now();
    c.restart(0);
    wait_until([&] { return c.count(1, "SELECT count(*) FROM big") == rows_n; }, 90s, "the whole transaction on B after A's kill",
               [&] { return c.log_tail(1); });
    w.stop();
    w.check();
    CHECK(w.max_before(back) == 0);
    check_whole(c, 1);
    wait_until([&] { return staged(c, 1) == 0; }, 15s, "B's staging emptied");
}
