// Initial copies and full resyncs, receiver side (db thread): a copy's start (the resume
// base), its chunks of rows merged by version, and its end (progress, log floors, deferred
// indexes, synced); apply_batch (node_receiving.cpp) hands every item that is not a streamed
// transaction here.
#include "replication/node_impl.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace hdbrepl::ext::node_detail {

bool node_impl::table_empty(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT 1 FROM main." + quote_ident(table + "_data") + " LIMIT 1";
    bool empty = true; // a table the copy will create is empty too
    if (sqlite3_prepare_v2(wdb(), sql.c_str(), -1, &st, nullptr) == SQLITE_OK) empty = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    return empty;
}

void node_impl::defer_indexes(const std::string& table) {
    std::string err;
    if (exec_sql(wdb(), "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    sqlite3_stmt* st = nullptr;
    std::vector<std::pair<std::string, std::string>> indexes; // name, CREATE INDEX sql
    if (sqlite3_prepare_v2(wdb(), "SELECT name, sql FROM main.sqlite_schema WHERE type='index' AND tbl_name=?1 AND sql IS NOT NULL", -1,
                           &st, nullptr) == SQLITE_OK) {
        std::string data = table + "_data";
        sqlite3_bind_text(st, 1, data.c_str(), -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW)
            indexes.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    int rc = SQLITE_OK;
    for (const auto& [name, sql] : indexes) {
        if (rc == SQLITE_OK) rc = wstore()->system().set_meta("deferred_index:" + name, sql);
        if (rc == SQLITE_OK) rc = exec_sql(wdb(), "DROP INDEX main." + quote_ident(name), err);
    }
    if (rc == SQLITE_OK) rc = exec_sql(wdb(), "COMMIT", err);
    if (rc != SQLITE_OK) exec_sql(wdb(), "ROLLBACK", err); // keep the indexes: slower, still right
    applier_of()->forget_caches();
}

int node_impl::restore_deferred_indexes(std::string& err) {
    // Inside the caller's transaction (copy end) or its own (node start).
    std::vector<std::pair<std::string, std::string>> pending;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb(), "SELECT key, value FROM main.hdbrepl_meta WHERE key GLOB 'deferred_index:*'", -1, &st, nullptr) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            pending.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    for (const auto& [key, sql] : pending) {
        // The table may have been dropped meanwhile: then the index goes with it.
        int rc = exec_sql(wdb(), sql, err);
        if (rc != SQLITE_OK && err.find("no such table") == std::string::npos) return rc;
        if ((rc = exec_sql(wdb(), "DELETE FROM main.hdbrepl_meta WHERE key=" + quote_literal(key), err)) != SQLITE_OK) return rc;
    }
    if (!pending.empty()) applier_of()->forget_caches();
    return SQLITE_OK;
}

void node_impl::publish_resume_point() {
    std::optional<w::copy_resume> point;
    if (resume_.has_point) point = w::copy_resume{resume_.table, resume_.phase, resume_.key};
    on_io([point, rows = resume_.rows_done](node_impl& m) {
        m.resume_point_ = point;
        m.resume_rows_ = rows;
    });
}

// One item of a copy (copy_begin, copy_rows or copy_end) at items[i]; moves i past what it
// handled, or leaves it (with the item requeued) when it has to wait.
void node_impl::apply_copy_item(std::vector<received>& items, std::size_t& i) {
    assert_on(node_thread::db);
    auto& first = items[i];
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
        if (int rc = wstore()->save_copy_resume(resume_); rc != SQLITE_OK)
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
        const bool skip = !row_filter_.table_flows(first.peer, t.name, flow::from_peer);
        bool defer = !skip && !deferred_checked_.count(t.name) && table_empty(t.name);
        deferred_checked_.insert(t.name);
        auto res = skip ? apply_result{} : applier_of()->apply_copy(t.name, t.definition, rows);
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
            const std::size_t pk = row_filter_.pk_of(t.definition);
            resume_.has_point = true;
            resume_.table = t.name;
            resume_.phase = last.deleted ? 1 : 0;
            resume_.key = last.deleted ? last.values[0] : last.values[std::min(pk, last.values.size() - 1)];
            resume_.rows_done += rows.size();
            if (int rc = wstore()->save_copy_resume(resume_); rc != SQLITE_OK)
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
        if (faults_.before_copy_end.count() > 0) std::this_thread::sleep_for(faults_.before_copy_end);
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
        int rc = exec_sql(wdb(), "BEGIN IMMEDIATE", err);
        // Busy past the timeout: try again shortly, keeping the order (dropping the end would
        // leave this node waiting for a copy that already arrived).
        if (rc != SQLITE_OK) return requeue_and_retry(items, i, clock_ms(100));
        // Tables that are empty at the source came without rows: create them, or the progress
        // raised below would claim their CREATE while they are missing here.
        for (const auto& t : first.tables) {
            if (rc != SQLITE_OK) break;
            if (!row_filter_.data_shared(first.peer, t.name)) continue;
            auto res = applier_of()->ensure_copied_table(t.name, t.definition);
            rc = res.rc;
            if (rc != SQLITE_OK) err = res.error;
        }
        // What the copy brought is in our data but not in our log: those are the floors.
        if (rc == SQLITE_OK) rc = wstore()->raise_progress(prog, &prog);
        // Parts staged of transactions the copy already holds will never be completed.
        for (const auto& [o, h] : prog)
            if (rc == SQLITE_OK) rc = staging()->drop_through(o, h);
        if (rc == SQLITE_OK) rc = restore_deferred_indexes(err);
        if (rc == SQLITE_OK) rc = wstore()->system().set_meta("synced", "1");
        if (rc == SQLITE_OK) rc = wstore()->clear_copy_resume();
        if (rc == SQLITE_OK) rc = exec_sql(wdb(), "COMMIT", err);
        if (rc != SQLITE_OK) {
            exec_sql(wdb(), "ROLLBACK", err);
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
            board_.set_progress(progress_);
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
            for (auto& [name, q] : m.peers()) {
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
}

} // namespace hdbrepl::ext::node_detail
