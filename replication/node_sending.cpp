// Sending: streaming the log to each subscribed peer within its flow-control window (which
// rows of a record go to the peer is row_filter.hpp's rule), and pruning from the log what
// every peer has.
// Thread: the io thread; log reads, row filters and pruning run on the db thread.
#include "replication/node_impl.hpp"

#include "engine/placement.hpp"
#include "engine/residency_sandbox.hpp"
#include "engine/txn_record.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

// ---- sending (io thread, reads on the db thread) -----------------------------------------

void node_impl::pump_all() {
    for (auto& [name, p] : peers()) pump(name);
}

void node_impl::pump(const std::string& name) {
    assert_on(node_thread::io);
    auto* p = find_peer(name);
    if (!p || !p->link || !p->subscribed || p->sending_copy) return;
    if (p->reading) { // the read under way may have started before this commit
        p->pump_again = true;
        return;
    }
    p->pump_again = false;
    auto budget = static_cast<std::size_t>(cfg_.max_bytes_in_flight);
    if (p->inflight_bytes >= budget) return; // flow control: wait for ACKs
    p->reading = true;
    auto f = p->filter;
    auto from = p->send_pos;
    auto gen = p->send_generation;
    auto max_bytes = budget - p->inflight_bytes;
    on_db([name, f, from, gen, max_bytes](node_impl& n) {
        std::vector<replication_store::log_record> recs;
        std::int64_t scanned = from;
        int rc = n.rstore()->read_after(from, f, max_bytes, recs, scanned);
        // A trimmed record of another origin is not the whole transaction (filters upstream
        // withheld rows the peer may need): it and everything after it from that origin wait
        // for the peer to hear the origin itself. Skipping one and relaying later ones would
        // carry the peer's progress for that origin past rows it never got.
        std::set<std::string> held;
        for (auto& r : recs)
            if (r.origin != n.name_ && (held.count(r.origin) || record_is_trimmed(r.body.data(), r.body.size()))) {
                held.insert(r.origin);
                r.body.clear();
            }
        // Which rows go to this peer (row_filter.hpp): by row, then by table.
        n.row_filter_.keep_resident_rows(recs, name);
        n.row_filter_.keep_placed_rows(recs, name, [&n] { return n.placement_members(); });
        const auto gate = n.row_filter_.gate(name, flow::to_peer);
        for (auto& r : recs) {
            bytes kept;
            if (gate.drop_tables(r.body, kept)) r.body = std::move(kept);
        }
        std::int64_t last = 0;
        n.rstore()->last_seq(last);
        n.on_io([name, recs = std::move(recs), scanned, rc, last, gen, held = std::move(held)](node_impl& m) mutable {
            m.log_last_seq_ = std::max(m.log_last_seq_, last);
            auto* p = m.find_peer(name);
            if (!p) return;
            p->reading = false;
            if (rc != SQLITE_OK || !p->link) return;
            // The subscription changed while this read ran: it read for the old one.
            if (gen != p->send_generation) return m.pump(name);
            // Until the next subscribe, which restarts from the peer's own progress.
            for (const auto& o : held) p->filter.exclude.insert(o);
            for (auto& r : recs) {
                if (r.body.empty()) continue; // nothing of it is published to this peer
                const auto part = record_part(r.body.data(), r.body.size());
                p->inflight_q.push_back({r.seq, r.body.size(), r.origin, r.hlc, part.part && !part.last});
                p->inflight_bytes += r.body.size();
                m.send(*p, w::txn{static_cast<std::uint64_t>(r.seq), std::move(r.body)});
                p->last_send = now_ms();
            }
            bool more = scanned > p->send_pos || p->pump_again;
            p->send_pos = std::max(p->send_pos, scanned);
            if (more) m.pump(name);
        });
    });
}

// ---- log pruning ----------------------------------------------------------------------------

void node_impl::schedule_prune() {
    std::weak_ptr<node_impl> weak = shared_from_this();
    prune_timer_ = io_->after(clock_ms(5000), [weak] {
        auto s = weak.lock();
        if (!s || s->stopped_) return;
        std::map<std::string, progress_map> known;
        for (auto& [name, p] : s->peers()) known[name] = p.known_progress;
        s->on_db([known](node_impl& n) { n.prune_log(known); });
        s->schedule_prune();
    });
}

void node_impl::prune_log(const std::map<std::string, progress_map>& known) {
    // A record goes once every known node has it, or once it is older than the retention.
    // The log stays a contiguous suffix, so what is gone is described by a floor per origin.
    std::vector<node_row> rows;
    if (wstore()->load_nodes(rows) != SQLITE_OK) return;
    std::set<std::string> nodes;
    for (const auto& r : rows) nodes.insert(r.name);
    for (const auto& [n, p] : known) nodes.insert(n);
    nodes.erase(name_);
    std::uint64_t now = now_ms();
    hlc_t cutoff = now > static_cast<std::uint64_t>(cfg_.log_retention_ms) ? hlc_from_ms(now - static_cast<std::uint64_t>(cfg_.log_retention_ms)) : 0;
    auto& sys = wstore()->system();
    std::string sql = "SELECT seq, hlc, origin, clock FROM " + sys.table("hdbrepl_log") + " WHERE seq < (SELECT max(seq) FROM " +
                      sys.table("hdbrepl_log") + ") ORDER BY seq LIMIT 256"; // small batches: the sender shares this thread
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb(), sql.c_str(), -1, &st, nullptr) != SQLITE_OK) { sqlite3_finalize(st); return; }
    std::int64_t last = 0;
    hlc_t max_clock = 0;
    progress_map floors;
    while (sqlite3_step(st) == SQLITE_ROW) {
        hlc_t hlc = static_cast<hlc_t>(sqlite3_column_int64(st, 1));
        std::string origin = sys.origin_name(sqlite3_column_int64(st, 2));
        bool prunable = hlc < cutoff;
        if (!prunable && !nodes.empty()) {
            prunable = true;
            for (const auto& n : nodes) {
                if (n == origin) continue;
                auto k = known.find(n);
                hlc_t have = 0;
                if (k != known.end())
                    if (auto o = k->second.find(origin); o != k->second.end()) have = o->second;
                if (have < hlc) { prunable = false; break; }
            }
        }
        if (!prunable) break;
        last = sqlite3_column_int64(st, 0);
        max_clock = std::max(max_clock, static_cast<hlc_t>(sqlite3_column_int64(st, 3)));
        auto& f = floors[origin];
        f = std::max(f, hlc);
    }
    sqlite3_finalize(st);
    if (last == 0) return;
    std::string err;
    if (exec_sql(wdb(), "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    int rc = exec_sql(wdb(), "DELETE FROM " + sys.table("hdbrepl_log") + " WHERE seq <= " + std::to_string(last), err);
    auto deleted = static_cast<std::uint64_t>(sqlite3_changes(wdb()));
    if (rc == SQLITE_OK) rc = wstore()->raise_progress(floors, &floors);
    if (rc == SQLITE_OK) rc = sys.raise_clock_floor(max_clock);
    if (rc == SQLITE_OK) rc = exec_sql(wdb(), "COMMIT", err);
    if (rc != SQLITE_OK) {
        exec_sql(wdb(), "ROLLBACK", err);
        return;
    }
    for (const auto& [o, h] : floors) {
        floors_[o] = std::max(floors_[o], h);
        progress_[o] = std::max(progress_[o], h);
    }
    board_.set_progress(progress_);
    // A full batch: more may be prunable. Go on at once, behind whatever else waits for
    // this thread (one batch per 5 s pass let a log under steady writes grow without bound).
    if (deleted >= 256) on_db([known](node_impl& n) { n.prune_log(known); });
}

} // namespace hdbrepl::ext::node_detail
