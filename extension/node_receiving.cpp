// Receiving: the queue of received items (io thread -> db thread), and applying them on
// the db thread: transactions in batches, initial copies, pauses when the disk is full.
#include "extension/node_impl.hpp"

#include "engine/txn_record.hpp"
#include "extension/record_entitlement.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace hdbrepl::ext::node_detail {

namespace {

// Errors of this node's storage rather than of the data: wait and retry, never refuse.
bool is_resource_error(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_NOMEM;
}

// Test hook: HDBREPL_TEST_COPY_END_DELAY_MS (read once; never set outside tests) holds each
// copy end that long on the db thread, so a cluster test can replace the copy's link while
// the end of a complete copy is still queued (initial_sync_test), or keep the db thread busy
// past an operation's wait (membership_test).
void copy_end_test_delay() {
    static const long ms = [] {
        const char* s = std::getenv("HDBREPL_TEST_COPY_END_DELAY_MS");
        return s ? std::clamp(std::strtol(s, nullptr, 10), 0L, 20000L) : 0L;
    }();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// Test hook, as above: HDBREPL_TEST_PART_DELAY_MS holds the db thread before each staged part,
// so tests can cut a link or kill a node while a transaction of many parts is half received.
void part_test_delay() {
    static const long ms = [] {
        const char* s = std::getenv("HDBREPL_TEST_PART_DELAY_MS");
        return s ? std::clamp(std::strtol(s, nullptr, 10), 0L, 5000L) : 0L;
    }();
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// A version no honest peer can hold: beyond the 63 bits of the HLC, or further ahead of this
// node's clock than maxClockSkew. Copies are checked as streams are: one such row raised the
// clock of every later local write to its time.
bool hlc_out_of_range(hlc_t h, std::int64_t max_skew_ms) {
    return h >= (hlc_t{1} << 63) || hlc_too_far_ahead(h, wall_clock_ms(), static_cast<std::uint64_t>(max_skew_ms));
}

} // namespace

// db thread: a message that carries a version out of range, or a record with no valid head,
// closes its link; what the link queued behind it is dropped.
void node_impl::refuse_copy(const received& r, const std::string& why) {
    refused_links_.insert(r.link_id); // what it queued behind this is dropped too
    while (refused_links_.size() > 256) refused_links_.erase(refused_links_.begin()); // ids only grow: the oldest are long closed
    on_io([peer = r.peer, link_id = r.link_id, why](node_impl& m) {
        auto* p = m.find_peer(peer);
        if (!p || p->link_id != link_id || !p->link) return;
        m.note_refusal(p->link->remote_address(), peer, "closing link from " + peer + ": " + why);
        p->last_error = "protocol error: " + why;
        p->copying = false;
        p->link->close("protocol error: " + why);
    });
}

void node_impl::enqueue(received&& r) {
    bool schedule = false;
    {
        std::lock_guard lock(rx_m_);
        rx_.push_back(std::move(r));
        if (!rx_scheduled_) schedule = rx_scheduled_ = true;
    }
    if (schedule) on_db([](node_impl& n) { n.drain_received(); });
}

bool node_impl::table_empty(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT 1 FROM main." + quote_ident(table + "_data") + " LIMIT 1";
    bool empty = true; // a table the copy will create is empty too
    if (sqlite3_prepare_v2(wdb_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) empty = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    return empty;
}

void node_impl::defer_indexes(const std::string& table) {
    std::string err;
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    sqlite3_stmt* st = nullptr;
    std::vector<std::pair<std::string, std::string>> indexes; // name, CREATE INDEX sql
    if (sqlite3_prepare_v2(wdb_, "SELECT name, sql FROM main.sqlite_schema WHERE type='index' AND tbl_name=?1 AND sql IS NOT NULL", -1,
                           &st, nullptr) == SQLITE_OK) {
        std::string data = table + "_data";
        sqlite3_bind_text(st, 1, data.c_str(), -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW)
            indexes.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    int rc = SQLITE_OK;
    for (const auto& [name, sql] : indexes) {
        if (rc == SQLITE_OK) rc = wstore_->system().set_meta("deferred_index:" + name, sql);
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "DROP INDEX main." + quote_ident(name), err);
    }
    if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
    if (rc != SQLITE_OK) exec_sql(wdb_, "ROLLBACK", err); // keep the indexes: slower, still right
    applier_->forget_caches();
}

int node_impl::restore_deferred_indexes(std::string& err) {
    // Inside the caller's transaction (copy end) or its own (node start).
    std::vector<std::pair<std::string, std::string>> pending;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb_, "SELECT key, value FROM main.hdbrepl_meta WHERE key GLOB 'deferred_index:*'", -1, &st, nullptr) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            pending.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    for (const auto& [key, sql] : pending) {
        // The table may have been dropped meanwhile: then the index goes with it.
        int rc = exec_sql(wdb_, sql, err);
        if (rc != SQLITE_OK && err.find("no such table") == std::string::npos) return rc;
        if ((rc = exec_sql(wdb_, "DELETE FROM main.hdbrepl_meta WHERE key=" + quote_literal(key), err)) != SQLITE_OK) return rc;
    }
    if (!pending.empty()) applier_->forget_caches();
    return SQLITE_OK;
}

void node_impl::requeue_and_retry(std::vector<received>& items, std::size_t& i, clock_ms delay) {
    std::lock_guard lock(rx_m_);
    for (std::size_t k = items.size(); k > i; --k) rx_.push_front(std::move(items[k - 1]));
    i = items.size();
    if (rx_scheduled_) return;
    rx_scheduled_ = true;
    on_io([delay](node_impl& m) {
        m.retry_apply_timer_ = m.io_->after(delay, [w = m.weak_from_this()] {
            if (auto s = w.lock(); s && !s->stopped_) s->on_db([](node_impl& n) { n.drain_received(); });
        });
    });
}

void node_impl::publish_resume_point() {
    std::optional<w::copy_resume> point;
    if (resume_.has_point) point = w::copy_resume{resume_.table, resume_.phase, resume_.key};
    on_io([point, rows = resume_.rows_done](node_impl& m) {
        m.resume_point_ = point;
        m.resume_rows_ = rows;
    });
}

void node_impl::pause_intake(const std::string& why, std::vector<received>& items, std::size_t& i) {
    intake_retry_ms_ = std::min<std::int64_t>(intake_retry_ms_ ? intake_retry_ms_ * 2 : 250, 4000);
    if (intake_paused_.empty()) log_line(name_, "intake paused: " + why + " (retrying; nothing is lost)");
    set_intake_paused(why);
    requeue_and_retry(items, i, clock_ms(intake_retry_ms_));
}

void node_impl::intake_ok() {
    if (intake_paused_.empty()) return;
    log_line(name_, "intake resumed");
    intake_retry_ms_ = 0;
    set_intake_paused("");
}

void node_impl::set_intake_paused(const std::string& why) {
    intake_paused_ = why;
    on_io([why](node_impl& m) {
        m.intake_status_ = why;
        m.update_status();
    });
}

void node_impl::drain_received() {
    std::vector<received> items;
    {
        std::lock_guard lock(rx_m_);
        items.assign(std::make_move_iterator(rx_.begin()), std::make_move_iterator(rx_.end()));
        rx_.clear();
        rx_scheduled_ = false;
    }
    std::size_t i = 0;
    while (i < items.size() && !stopped_) apply_batch(items, i);
    items.clear(); // gives the items' queue credit back (queue_credit)
    // Fragment acks held back while a link's input was over its bound can go now.
    if (frag_acks_waiting_.exchange(false)) on_io([](node_impl& m) { m.ack_all_fragments(); });
}

// One received record (a whole transaction, or one of its parts) as this node takes it: the
// tables this link subscribes to, the changes it is entitled to (record_entitlement.hpp),
// then applied in the caller's transaction. `record` is as received; a replayed batch (or a
// retry of a held origin) judges it again, and counts its refusals again.
// Thread: the db thread.
apply_result node_impl::apply_received(const received& r, const bytes& record, const apply_options& opt,
                                       std::map<std::string, std::pair<std::size_t, std::string>>& refused, bool& logged,
                                       bool& users_touched) {
    const sub_rules rules = rules_for(r.peer);
    const bool shares = shares_data_with(r.peer);
    const bytes* rec = &record;
    bytes kept;
    if (!rules.empty() || !replicate_system_ || !shares) { // explicit subscriptions, system, shards
        kept = filter_record(record.data(), record.size(), [&](const std::string& t) {
            return is_system_table(t) ? replicate_system_ : shares && rules_allow(rules, t, false);
        });
        rec = &kept;
    }
    if (!rec->empty()) {
        auto verdict = entitled_changes(*rec, r.secure, name_, !cfg_.serve_secure);
        if (verdict.refused) {
            auto& ref = refused[r.peer];
            if (ref.first == 0) ref.second = "from origin '" + r.head_origin + "': " + verdict.reason;
            ref.first += verdict.refused;
        }
        if (verdict.rewritten) { // also when only a CA was dropped
            kept = std::move(verdict.record);
            rec = &kept;
        }
    }
    // A part left with nothing is still applied, empty: it is logged, so the run this node
    // relays stays contiguous (txn_record.hpp, "Parts").
    if (rec->empty() && record_part(record.data(), record.size()).part) {
        kept = empty_part_like(record.data(), record.size());
        rec = &kept;
    }
    auto res = rec->empty() ? apply_result{} : applier_->apply(rec->data(), rec->size(), opt);
    if (res.rc != SQLITE_OK || res.clock_skew) return res;
    // Rows placed elsewhere were withheld (placed and trimmed): lookups that miss forward.
    if (record_is_placed(rec->data(), rec->size()) && record_is_trimmed(rec->data(), rec->size()) && !holds_part_.exchange(true))
        wstore_->system().set_meta("placed_elsewhere", "1"); // in the batch's transaction
    logged = logged || res.logged;
    // A cheap over-approximation: a system table's name prefix in the record's bytes.
    static const std::string system_prefix = "hdbrepl_";
    users_touched = users_touched || std::search(rec->begin(), rec->end(), system_prefix.begin(), system_prefix.end()) != rec->end();
    return res;
}

void node_impl::apply_batch(std::vector<received>& items, std::size_t& i) {
    auto& first = items[i];
    if (refused_links_.count(first.link_id)) {
        ++i;
        return;
    }
    if (first.what == received::copy_begin || first.what == received::copy_end) {
        for (const auto& o : first.end.progress)
            if (hlc_out_of_range(o.hlc, cfg_.max_clock_skew_ms)) {
                refuse_copy(first, std::string(first.what == received::copy_end ? "copy_end" : "copy_start") + " claims origin '" + o.origin +
                                       "' up to a version ahead of this node's clock");
                ++i;
                return;
            }
    }
    if (first.what == received::copy_begin) {
        ++i;
        if (synced_) return; // only initial copies resume (a full resync is merged anew)
        progress_map next;
        for (const auto& o : first.end.progress) next[o.origin] = o.hlc;
        if (resume_.has_base) lower_copy_base(resume_.base, next);
        else resume_.base = std::move(next);
        resume_.has_base = true;
        if (int rc = wstore_->save_copy_resume(resume_); rc != SQLITE_OK)
            log_line(name_, std::string("saving the copy's resume point: ") + sqlite3_errstr(rc));
        return;
    }
    if (first.what == received::copy_rows) {
        auto& r = first.rows;
        const auto& t = first.tables[r.table];
        for (const auto& row : r.rows)
            if (hlc_out_of_range(row.hlc, cfg_.max_clock_skew_ms)) {
                refuse_copy(first, "copy_rows of " + t.name + " holds a row versioned ahead of this node's clock (" +
                                       std::to_string(hlc_ms(row.hlc)) + " ms)");
                ++i;
                return;
            }
        std::vector<copied_row> rows;
        rows.reserve(r.rows.size());
        for (auto& row : r.rows) rows.push_back({row.deleted, row.hlc, std::move(row.origin), std::move(row.values)});
        // A table that is empty when its copy starts gets its secondary indexes back at the
        // end of the copy: building an index once is many times cheaper than maintaining it
        // row by row in random order. The CREATE INDEX statements wait in hdbrepl_meta, so a
        // crash mid-copy cannot lose them (restored when the node starts).
        // The `system` tables are copied only where `system` replicates.
        const sub_rules rules = rules_for(first.peer);
        const bool skip = is_system_table(t.name) ? !replicate_system_ : !shares_data_with(first.peer) || !rules_allow(rules, t.name, false);
        bool defer = !skip && !deferred_checked_.count(t.name) && table_empty(t.name);
        deferred_checked_.insert(t.name);
        auto res = skip ? apply_result{} : applier_->apply_copy(t.name, t.definition, rows);
        if (res.rc != SQLITE_OK && is_resource_error(res.rc)) {
            // As for streamed records (below): the chunk waits, nothing is refused.
            for (std::size_t k = 0; k < rows.size(); ++k) {
                r.rows[k].origin = std::move(rows[k].origin);
                r.rows[k].values = std::move(rows[k].values);
            }
            return pause_intake(res.error, items, i);
        }
        if (res.rc == SQLITE_OK) intake_ok();
        if (defer && res.rc == SQLITE_OK) defer_indexes(t.name);
        if (res.rc == SQLITE_OK && !synced_ && !rows.empty()) {
            // The resume point follows the rows in (a crash before this write only re-copies
            // one chunk, merged by version). The rows' values were moved into `rows`.
            const auto& last = rows.back();
            const std::size_t pk = pk_of(t.definition);
            resume_.has_point = true;
            resume_.table = t.name;
            resume_.phase = last.deleted ? 1 : 0;
            resume_.key = last.deleted ? last.values[0] : last.values[std::min(pk, last.values.size() - 1)];
            resume_.rows_done += rows.size();
            if (int rc = wstore_->save_copy_resume(resume_); rc != SQLITE_OK)
                log_line(name_, std::string("saving the copy's resume point: ") + sqlite3_errstr(rc));
            publish_resume_point();
        }
        if (!skip && is_system_table(t.name) && res.rc == SQLITE_OK) {
            refresh_users();
            refresh_membership(false);
        }
        // Applied: its bytes wait here no longer. Given back before its ack goes, so what the
        // sender has unacknowledged always covers what this node counts (copy_window.hpp).
        first.credit = queue_credit{};
        std::string peer = first.peer;
        auto link_id = first.link_id;
        ++i;
        on_io([peer, link_id, res](node_impl& m) {
            auto* p = m.find_peer(peer);
            if (!p || p->link_id != link_id) return;
            if (res.rc != SQLITE_OK) {
                p->last_error = res.error;
                log_line(m.name_, "copy from " + peer + " failed: " + res.error);
                if (p->link) p->link->close("copy failed: " + res.error);
                return;
            }
            m.send(*p, w::copy_ack{++p->copy_chunks});
        });
        return;
    }
    if (first.what == received::copy_end) {
        progress_map prog;
        for (const auto& o : first.end.progress)
            if (!first.resync || !first.excluded.count(o.origin)) prog[o.origin] = o.hlc;
        copy_end_test_delay();
        bool claim_nothing = false;
        if (first.resumed && !resume_.has_base) {
            // A resumed copy brings only the rows after its resume point, and skips the rows
            // before it, including what changed in them since the first snapshot. Without
            // the earlier attempt's base (that attempt's end was still queued when its link
            // was replaced, and completed this node's copy first) its progress is not ours
            // to claim: the rows merge by version, and the stream brings the rest.
            claim_nothing = true;
            prog.clear();
        } else if (!synced_ && resume_.has_base) {
            // A copy that was cut and resumed claims no more than its earliest snapshot held.
            lower_copy_base(prog, resume_.base);
        }
        std::string err;
        int rc = exec_sql(wdb_, "BEGIN IMMEDIATE", err);
        // Busy past the timeout: try again shortly, keeping the order (dropping the end would
        // leave this node waiting for a copy that already arrived).
        if (rc != SQLITE_OK) return requeue_and_retry(items, i, clock_ms(100));
        // Tables that are empty at the source came without rows: create them, or the progress
        // raised below would claim their CREATE while they are missing here.
        for (const auto& t : first.tables) {
            if (rc != SQLITE_OK) break;
            const bool skip = is_system_table(t.name) ? !replicate_system_ : !shares_data_with(first.peer);
            if (skip) continue;
            auto res = applier_->ensure_copied_table(t.name, t.definition);
            rc = res.rc;
            if (rc != SQLITE_OK) err = res.error;
        }
        // What the copy brought is in our data but not in our log: those are the floors.
        if (rc == SQLITE_OK) rc = wstore_->raise_progress(prog, &prog);
        // Parts staged of transactions the copy already holds will never be completed.
        for (const auto& [o, h] : prog)
            if (rc == SQLITE_OK) rc = staging_->drop_through(o, h);
        if (rc == SQLITE_OK) rc = restore_deferred_indexes(err);
        if (rc == SQLITE_OK) rc = wstore_->system().set_meta("synced", "1");
        if (rc == SQLITE_OK) rc = wstore_->clear_copy_resume();
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
        if (rc != SQLITE_OK) {
            exec_sql(wdb_, "ROLLBACK", err);
            if (is_resource_error(rc)) return pause_intake(err, items, i); // as for rows: wait, lose nothing
        }
        if (rc == SQLITE_OK) {
            if (claim_nothing)
                log_line(name_, "a resumed copy from " + first.peer + " ended after this node's copy had completed: its rows merged, "
                                "the rest comes by the stream");
            else if (first.resumed)
                log_line(name_, "the resumed initial copy is complete (" + std::to_string(resume_.rows_done) + " rows in all)");
            resume_ = {};
            publish_resume_point();
        }
        deferred_checked_.clear();
        if (rc == SQLITE_OK)
            for (const auto& [o, h] : prog) {
                progress_[o] = std::max(progress_[o], h);
                floors_[o] = std::max(floors_[o], h);
            }
        {
            std::lock_guard lock(shared_m_);
            progress_copy_ = progress_;
        }
        // Set here, not only on the io thread: a copy_begin already queued behind this end
        // (another peer's, or a resumed attempt's) must see the node synced, or it would
        // record that copy's snapshot as the base to claim.
        if (rc == SQLITE_OK) synced_ = true;
        std::string peer = first.peer;
        auto link_id = first.link_id;
        ++i;
        on_io([peer, link_id, rc, prog, err](node_impl& m) {
            auto* p = m.find_peer(peer);
            if (p && p->link_id == link_id) p->copying = false;
            if (rc != SQLITE_OK) {
                // Not a resource error (those wait above): ask again on a fresh link.
                if (p && p->link_id == link_id && p->link) {
                    p->last_error = "copy end failed: " + err;
                    log_line(m.name_, "copy from " + peer + " could not be completed: " + err);
                    p->link->close("copy end failed");
                }
                return;
            }
            if (m.copy_link_ == link_id) m.copy_link_ = 0; // synced_ was set with the commit
            if (auto* li = m.find_link(link_id)) li->copy_source = false;
            // What the copy brought is not in our log, so we cannot stream it: a peer that
            // subscribed meanwhile and wants it gets a copy from us instead.
            for (auto& [name, q] : m.peers_) {
                if (name == peer || !q.link || !q.subscribed || q.sending_copy) continue;
                bool wants = false;
                for (const auto& [o, h] : prog) wants = wants || (h > 0 && q.filter.wants(o, h));
                if (wants) m.start_copy_to(name, true);
            }
            m.resubscribe_all();
            m.pump_all();
            m.update_status();
        });
        return;
    }
    // A run of transactions: applied in one SQLite transaction, each in its own savepoint.
    std::string err;
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) {
        // Busy for longer than the timeout: try again shortly, keeping the order.
        return requeue_and_retry(items, i, clock_ms(100));
    }
    progress_map batch;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> acks; // peer -> (link, seq)
    // Records held back this batch (moved to parked_ once the batch commits): index -> why,
    // and whether it was refused (backoff grows) rather than early (clock skew).
    std::map<std::size_t, std::pair<std::string, bool>> to_park;
    std::map<std::string, std::pair<std::size_t, std::string>> refused; // peer -> (changes, first reason)
    bool logged = false, users_touched = false;
    std::size_t count = 0;
    apply_options opt;
    opt.max_clock_skew_ms = static_cast<std::uint64_t>(cfg_.max_clock_skew_ms);
    // First pass without savepoints (a savepoint per record journals every page it
    // touches); if a record fails, undo the batch and replay it with savepoints, so only
    // the failing record is left out.
    const std::size_t batch_start = i;
    std::string resource_error;
    auto undo_batch = [&] {
        exec_sql(wdb_, "ROLLBACK", err);
        applier_->forget_caches();
        progress_.clear();
        floors_.clear();
        wstore_->load_progress(progress_, floors_);
    };
    for (int pass = 0;; ++pass) {
        opt.savepoint = pass > 0;
        bool replay = false;
        batch.clear();
        acks.clear();
        to_park.clear();
        refused.clear();
        std::set<std::string> held; // origins held back in this pass (or before it)
        logged = false;
        count = 0;
        while (i < items.size() && items[i].what == received::txn && count < 1000) {
            auto& r = items[i];
            if (refused_links_.count(r.link_id)) { // cut off: what it queued is dropped
                ++i;
                ++count;
                continue;
            }
            if (!r.head_ok && !peek_record_head(r.record.data(), r.record.size(), r.head_hlc, r.head_origin)) {
                // Not even a record head: nothing of it can be applied or held in order.
                refuse_copy(r, "a txn whose record has no valid head");
                ++i;
                ++count;
                continue;
            }
            r.head_ok = true;
            const hlc_t hlc = r.head_hlc;
            const std::string origin = r.head_origin;
            // An origin with a record held back: everything after it waits behind it, in order.
            if (held.count(origin) || (parked_.count(origin) && !parked_[origin].retrying)) {
                held.insert(origin);
                to_park[i] = {"", false};
                ++i;
                ++count;
                continue;
            }
            auto& have = progress_[origin];
            if (hlc > have) { // each origin's changes apply once, in order
                const part_info part = record_part(r.record.data(), r.record.size());
                if (part.part && !part.last) {
                    // A part before the last: kept in the database until the last one comes
                    // (part_staging.hpp); acked below, so the sender's window moves on.
                    part_test_delay();
                    int src = staging_->stage(origin, hlc, part.index, r.record.data(), r.record.size());
                    if (src != SQLITE_OK) {
                        resource_error = std::string("staging a transaction part: ") + sqlite3_errmsg(wdb_);
                        break;
                    }
                    acks[r.peer] = {r.link_id, r.seq};
                    ++i;
                    ++count;
                    continue;
                }
                apply_result res;
                if (!part.part) {
                    res = apply_received(r, r.record, opt, refused, logged, users_touched);
                } else {
                    // The last part: the staged ones, then this one, in one SQLite transaction
                    // (the batch's), inside a savepoint of their own when records are isolated.
                    std::uint32_t staged = 0;
                    int crc = staging_->count(origin, hlc, part.index, staged);
                    if (crc != SQLITE_OK) {
                        resource_error = std::string("reading staged transaction parts: ") + sqlite3_errmsg(wdb_);
                        break;
                    }
                    if (staged != part.index) {
                        res.rc = SQLITE_ERROR;
                        res.error = "transaction " + std::to_string(hlc) + " of " + origin + ": " + std::to_string(part.index - staged) +
                                    " of its " + std::to_string(part.index + 1) + " parts never arrived";
                    } else {
                        if (opt.savepoint) exec_sql(wdb_, "SAVEPOINT hdbrepl_parts", err);
                        bool skew = false;
                        int frc = staging_->for_each(origin, hlc, part.index, [&](bytes&& body) {
                            res = apply_received(r, body, opt, refused, logged, users_touched);
                            skew = res.clock_skew;
                            return res.rc == SQLITE_OK && !skew;
                        });
                        if (frc != SQLITE_OK && res.rc == SQLITE_OK) {
                            res.rc = frc;
                            res.error = std::string("reading staged transaction parts: ") + sqlite3_errstr(frc);
                        }
                        if (res.rc == SQLITE_OK && !skew) res = apply_received(r, r.record, opt, refused, logged, users_touched);
                        if (res.rc == SQLITE_OK && !res.clock_skew) {
                            res.rc = staging_->drop(origin, hlc);
                            if (res.rc != SQLITE_OK) res.error = sqlite3_errmsg(wdb_);
                        }
                        const bool failed = res.rc != SQLITE_OK || res.clock_skew;
                        if (opt.savepoint) {
                            if (failed) exec_sql(wdb_, "ROLLBACK TO hdbrepl_parts", err);
                            exec_sql(wdb_, "RELEASE hdbrepl_parts", err);
                        } else if (failed && !is_resource_error(res.rc)) {
                            // Parts before it are in the batch already: only a replay with
                            // savepoints can leave this transaction out and keep the rest.
                            replay = true;
                            break;
                        }
                    }
                }
                if (res.clock_skew) {
                    // Too far ahead of our clock: this origin waits (nothing was written), the
                    // others go on.
                    held.insert(origin);
                    to_park[i] = {res.error, false};
                    ++i;
                    ++count;
                    continue;
                }
                if (res.rc != SQLITE_OK && is_resource_error(res.rc)) { resource_error = res.error; break; }
                if (res.rc != SQLITE_OK) {
                    if (!opt.savepoint) { replay = true; break; }
                    held.insert(origin);
                    to_park[i] = {res.error, true};
                    ++i;
                    ++count;
                    continue;
                }
                have = hlc;
                batch[origin] = hlc;
            }
            acks[r.peer] = {r.link_id, r.seq};
            ++i;
            ++count;
        }
        if (!replay || !resource_error.empty()) break;
        undo_batch();
        i = batch_start;
        if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return requeue_and_retry(items, i, clock_ms(100));
    }
    int rc = SQLITE_OK;
    if (resource_error.empty()) {
        rc = batch.empty() ? SQLITE_OK : wstore_->raise_progress(batch);
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
        if (rc != SQLITE_OK) resource_error = sqlite3_errmsg(wdb_);
    }
    if (!resource_error.empty()) {
        // The disk is full (or failing), not the record bad: nothing is refused or acked.
        // Every record waits, in order, and the batch is tried again after a pause that
        // grows to a few seconds (no event says that space came back). Senders stop when
        // their flow-control windows fill, so a paused node costs them bounded memory.
        undo_batch();
        i = batch_start;
        return pause_intake(resource_error, items, i);
    }
    intake_ok();
    if (users_touched) {
        // Before the acks below: a peer that saw its change confirmed can rely on it here.
        refresh_users();
        refresh_membership(false);
    }
    // Origins whose record applied (or was already here) while retried are well again.
    for (const auto& [o, h] : batch) parked_done(o);
    for (std::size_t k = batch_start; k < i; ++k)
        if (!to_park.count(k) && items[k].what == received::txn && items[k].head_ok) parked_done(items[k].head_origin);
    std::vector<std::string> newly_held;
    for (auto& [k, why] : to_park) {
        const std::string o = items[k].head_origin;
        if (!parked_.count(o) || parked_[o].retrying) newly_held.push_back(o);
        park(o, std::move(items[k]), why.first, why.second);
    }
    // Acks stay below the first held record of each link: an ack covers every seq before it.
    for (auto& [peer, a] : acks) {
        max_seen_seq_[a.first] = std::max(max_seen_seq_[a.first], a.second);
        a.second = std::min(a.second, ack_ceiling(a.first));
    }
    {
        std::lock_guard lock(shared_m_);
        progress_copy_ = progress_;
    }
    if (!to_park.empty() || !newly_held.empty()) publish_parked();
    std::vector<std::string> applied_origins;
    for (const auto& [o, h] : batch) applied_origins.push_back(o);
    on_io([acks, refused, logged, applied_origins](node_impl& m) {
        for (const auto& [peer, a] : acks)
            if (auto* p = m.find_peer(peer); p && p->link_id == a.first && a.second > 0) m.send(*p, w::ack{a.second});
        for (const auto& [peer, ref] : refused) {
            auto* p = m.find_peer(peer);
            m.note_refusal(p && p->link ? p->link->remote_address() : "", peer,
                           "left out " + std::to_string(ref.first) + " change(s) received from " + peer + " " + ref.second);
        }
        // Forward what we applied, to the peers that take it from us: in a steady full mesh
        // every peer hears each origin directly (excluded), and a log read for each of them
        // after each applied batch would find nothing (n(n-1) empty reads per commit).
        if (logged)
            for (auto& [name, p] : m.peers_) {
                bool wants = false;
                for (const auto& o : applied_origins) wants = wants || (o != name && !p.filter.exclude.count(o));
                if (wants) m.pump(name);
            }
    });
}

} // namespace hdbrepl::ext::node_detail
