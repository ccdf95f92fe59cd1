// Sending: streaming the log to each subscribed peer within its flow-control window, which
// rows of a record go to the peer (residency, placement; copies are node_copy_sending.cpp),
// and pruning from the log what every peer has.
// Thread: the io thread; log reads, row filters and pruning run on the db thread.
#include "replication/node_impl.hpp"

#include "engine/placement.hpp"
#include "engine/residency_sandbox.hpp"
#include "engine/txn_record.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

// ---- sending (io thread, reads on the db thread) -----------------------------------------

void node_impl::pump_all() {
    for (auto& [name, p] : peers_) pump(name);
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
        int rc = n.rstore_->read_after(from, f, max_bytes, recs, scanned);
        const sub_rules rules = n.rules_for(name);
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
        n.keep_resident_rows(recs, name);
        n.keep_placed_rows(recs, name);
        const bool shares = n.shares_data_with(name);
        if (!rules.empty() || !n.replicate_system_ || !shares) // explicit subscriptions, system, shards
            for (auto& r : recs)
                r.body = filter_record(r.body.data(), r.body.size(), [&](const std::string& t) {
                    return is_system_table(t) ? n.replicate_system_ : shares && rules_allow(rules, t, true);
                });
        std::int64_t last = 0;
        n.rstore_->last_seq(last);
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

// ---- which rows go to a peer: residency and placement (db thread) --------------------------

// Fails closed: a row whose expression cannot be prepared (outside the safe subset,
// engine/residency_sandbox.hpp) or evaluated (an error, the step limit, a result that is
// neither a shard nor a node list) goes to no peer; the nodes that hold it keep it. NULL is
// the one "everywhere". Logged once per definition.
bool node_impl::resident_on(const std::string& table, const std::string& definition, const std::vector<value>& row, const std::string& peer) {
    static const std::string no_residency = "no residency";
    auto& ev = residency_of_definition_[definition];
    if (!ev) {
        ev = std::make_unique<residency_eval>();
        std::string err;
        auto def = parse_table_def(std::string_view(definition), err);
        if (def && def->residency.empty()) ev->error = no_residency;
        else if (!def || prepare_residency(*def, &ev->stmt, err) != SQLITE_OK) {
            ev->error = err.empty() ? "cannot be prepared" : err;
            log_line(name_, "table " + table + ": residency expression refused (" + ev->error + "); its rows go to no other node");
        }
    }
    if (!ev->stmt) return ev->error == no_residency;
    std::string why;
    bool keep = false;
    for (std::size_t i = 0; i < row.size() && why.empty(); ++i)
        if (bind_arg(ev->stmt, static_cast<int>(i + 1), row[i]) != SQLITE_OK) why = "a value of the row cannot be bound (too large?)";
    if (why.empty() && step_residency(ev->stmt, why) == SQLITE_ROW) {
        int type = sqlite3_column_type(ev->stmt, 0);
        if (type == SQLITE_NULL) {
            keep = true;
        } else {
            const auto* text = sqlite3_column_text(ev->stmt, 0);
            auto where = parse_residency(text ? reinterpret_cast<const char*>(text) : "", type == SQLITE_INTEGER, sqlite3_column_int64(ev->stmt, 0));
            if (auto* shard = std::get_if<residency_shard>(&where)) keep = shard_of(peer) == *shard;
            else if (auto* nodes = std::get_if<residency_nodes>(&where)) keep = std::find(nodes->begin(), nodes->end(), peer) != nodes->end();
            else why = std::get<residency_error>(where);
        }
    }
    sqlite3_reset(ev->stmt);
    sqlite3_clear_bindings(ev->stmt);
    if (!why.empty() && ev->error.empty()) { // the first failure of this definition
        ev->error = why;
        log_line(name_, "table " + table + ": residency expression failed for a row (" + why + "); such rows go to no other node");
    }
    return keep;
}

void node_impl::keep_resident_rows(std::vector<replication_store::log_record>& recs, const std::string& peer) {
    static const std::string marker = "residency=";
    for (auto& r : recs) {
        // Most records carry no residency table: a byte search spares decoding them.
        if (r.body.empty() || std::search(r.body.begin(), r.body.end(), marker.begin(), marker.end()) == r.body.end()) continue;
        r.body = filter_changes(r.body.data(), r.body.size(), [&](const record_table& t, const change& c) {
            if (c.op != change_op::put || t.definition.find(marker) == std::string::npos) return true;
            return resident_on(t.name, t.definition, c.values, peer);
        });
    }
}

void node_impl::keep_placed_rows(std::vector<replication_store::log_record>& recs, const std::string& peer) {
    std::vector<std::string> members;
    for (auto& r : recs) {
        if (r.body.empty()) continue;
        // Rows placed by their writer (row_placer.hpp) go to their nodes; the others, under
        // replicateTo, to the nodes the membership gives them now.
        const bool placed = record_is_placed(r.body.data(), r.body.size());
        if (!placed && cfg_.replicate_to < 0) continue;
        hlc_t hlc = 0;
        std::string origin;
        if (!peek_record_head(r.body.data(), r.body.size(), hlc, origin)) continue;
        if (members.empty()) members = placement_members();
        std::vector<std::vector<std::string>> lists;
        if (placed) {
            std::string err;
            if (auto rec = decode_record(r.body.data(), r.body.size(), err)) lists = std::move(rec->placements);
        }
        // Where every row is everywhere by configuration, a receiver with none of a placed
        // record's rows still gets its header (a trimmed record without changes): it then
        // knows the origin wrote rows it does not hold, and forwards lookups that miss.
        const bool tell_empty = placed && cfg_.replicate_to < 0;
        r.body = filter_changes(r.body.data(), r.body.size(), [&](const record_table& t, const change& c) {
            if (c.placement >= 0) {
                const auto& nodes = lists.at(static_cast<std::size_t>(c.placement));
                return std::binary_search(nodes.begin(), nodes.end(), peer);
            }
            if (cfg_.replicate_to < 0) return true;
            // An unplaced delete goes everywhere: its row may have been written by another
            // node, whose placement this one cannot recompute.
            if (is_system_table(t.name) || c.op != change_op::put || c.values.empty()) return true;
            if (t.definition.find("residency=") != std::string::npos) return true; // residency decides for those
            const std::size_t pk = pk_of(t.definition);
            const value& key = c.values[std::min(pk, c.values.size() - 1)];
            auto nodes = place_row(key, origin, members, cfg_.replicate_to);
            return std::binary_search(nodes.begin(), nodes.end(), peer);
        }, tell_empty);
    }
}

// ---- log pruning ----------------------------------------------------------------------------

void node_impl::schedule_prune() {
    std::weak_ptr<node_impl> weak = shared_from_this();
    prune_timer_ = io_->after(clock_ms(5000), [weak] {
        auto s = weak.lock();
        if (!s || s->stopped_) return;
        std::map<std::string, progress_map> known;
        for (auto& [name, p] : s->peers_) known[name] = p.known_progress;
        s->on_db([known](node_impl& n) { n.prune_log(known); });
        s->schedule_prune();
    });
}

void node_impl::prune_log(const std::map<std::string, progress_map>& known) {
    // A record goes once every known node has it, or once it is older than the retention.
    // The log stays a contiguous suffix, so what is gone is described by a floor per origin.
    std::vector<node_row> rows;
    if (wstore_->load_nodes(rows) != SQLITE_OK) return;
    std::set<std::string> nodes;
    for (const auto& r : rows) nodes.insert(r.name);
    for (const auto& [n, p] : known) nodes.insert(n);
    nodes.erase(name_);
    std::uint64_t now = now_ms();
    hlc_t cutoff = now > static_cast<std::uint64_t>(cfg_.log_retention_ms) ? hlc_from_ms(now - static_cast<std::uint64_t>(cfg_.log_retention_ms)) : 0;
    auto& sys = wstore_->system();
    std::string sql = "SELECT seq, hlc, origin, clock FROM " + sys.table("hdbrepl_log") + " WHERE seq < (SELECT max(seq) FROM " +
                      sys.table("hdbrepl_log") + ") ORDER BY seq LIMIT 256"; // small batches: the sender shares this thread
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) { sqlite3_finalize(st); return; }
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
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    int rc = exec_sql(wdb_, "DELETE FROM " + sys.table("hdbrepl_log") + " WHERE seq <= " + std::to_string(last), err);
    auto deleted = static_cast<std::uint64_t>(sqlite3_changes(wdb_));
    if (rc == SQLITE_OK) rc = wstore_->raise_progress(floors, &floors);
    if (rc == SQLITE_OK) rc = sys.raise_clock_floor(max_clock);
    if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
    if (rc != SQLITE_OK) {
        exec_sql(wdb_, "ROLLBACK", err);
        return;
    }
    for (const auto& [o, h] : floors) {
        floors_[o] = std::max(floors_[o], h);
        progress_[o] = std::max(progress_[o], h);
    }
    {
        std::lock_guard lock(shared_m_);
        progress_copy_ = progress_;
        pruned_total_ += deleted;
    }
    // A full batch: more may be prunable. Go on at once, behind whatever else waits for
    // this thread (one batch per 5 s pass let a log under steady writes grow without bound).
    if (deleted >= 256) on_db([known](node_impl& n) { n.prune_log(known); });
}

} // namespace hdbrepl::ext::node_detail
