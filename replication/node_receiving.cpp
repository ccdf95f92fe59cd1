// Receiving: the queue of received items (io thread -> db thread), and applying them on
// the db thread: transactions in batches (those of many parts whole), pauses when the disk is
// full. Copies are applied by node_copy_receiving.cpp.
#include "replication/node_impl.hpp"

#include "engine/txn_record.hpp"
#include "replication/record_entitlement.hpp"
#include "replication/txn_batch.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace hdbrepl::ext::node_detail {

// db thread: a message that carries a version out of range, or a record with no valid head,
// closes its link; what the link queued behind it is dropped.
void node_impl::refuse_copy(const received& r, const std::string& why) {
    assert_on(node_thread::db);
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
    if (intake_.push(std::move(r))) on_db([](node_impl& n) { n.drain_received(); });
}

void node_impl::requeue_and_retry(std::vector<received>& items, std::size_t& i, clock_ms delay) {
    const bool schedule = intake_.put_back(items, i);
    i = items.size();
    if (!schedule) return;
    on_io([delay](node_impl& m) {
        m.retry_apply_timer_ = m.io_->after(delay, [w = m.weak_from_this()] {
            if (auto s = w.lock(); s && !s->stopped_) s->on_db([](node_impl& n) { n.drain_received(); });
        });
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
    assert_on(node_thread::db);
    std::vector<received> items = intake_.take_all();
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
    const bytes* rec = &record;
    bytes kept;
    if (row_filter_.gate(r.peer, flow::from_peer).drop_tables(record, kept)) rec = &kept; // row_filter.hpp
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
    auto res = rec->empty() ? apply_result{} : applier_of()->apply(rec->data(), rec->size(), opt);
    if (res.rc != SQLITE_OK || res.clock_skew) return res;
    // Rows placed elsewhere were withheld (placed and trimmed): lookups that miss forward.
    if (record_is_placed(rec->data(), rec->size()) && record_is_trimmed(rec->data(), rec->size()) && row_filter_.note_holds_part())
        wstore()->system().set_meta("placed_elsewhere", "1"); // in the batch's transaction
    logged = logged || res.logged;
    // A cheap over-approximation: a system table's name prefix in the record's bytes.
    static const std::string system_prefix = "hdbrepl_";
    users_touched = users_touched || std::search(rec->begin(), rec->end(), system_prefix.begin(), system_prefix.end()) != rec->end();
    return res;
}

// db thread: takes what comes next from items[i]: a copy item (node_copy_receiving.cpp), or a
// run of transactions applied in one SQLite transaction and acked once it commits; i moves past
// what was taken (or stays, with the rest requeued, when the batch must wait).
void node_impl::apply_batch(std::vector<received>& items, std::size_t& i) {
    assert_on(node_thread::db);
    auto& first = items[i];
    if (refused_links_.count(first.link_id)) {
        ++i;
        return;
    }
    if (first.what != received::txn) return apply_copy_item(items, i); // node_copy_receiving.cpp
    if (!begin_batch(items, i)) return;
    txn_batch b;
    apply_options opt;
    opt.max_clock_skew_ms = static_cast<std::uint64_t>(cfg_.max_clock_skew_ms);
    // First pass without savepoints (a savepoint per record journals every page it
    // touches); if a record fails, undo the batch and replay it with savepoints, so only
    // the failing record is left out.
    const std::size_t batch_start = i;
    for (int pass = 0;; ++pass) {
        opt.savepoint = pass > 0;
        const bool replay = apply_batch_pass(items, i, b, opt);
        if (!replay || !b.resource_error.empty()) break;
        undo_batch();
        i = batch_start;
        if (!begin_batch(items, i)) return;
    }
    finish_batch(items, batch_start, i, b);
}

// db thread: BEGIN IMMEDIATE for a batch. Busy for longer than the timeout: items[i..] go back
// to the queue, tried again shortly, keeping the order (false).
bool node_impl::begin_batch(std::vector<received>& items, std::size_t& i) {
    assert_on(node_thread::db);
    std::string err;
    if (exec_sql(wdb(), "BEGIN IMMEDIATE", err) == SQLITE_OK) return true;
    requeue_and_retry(items, i, clock_ms(100));
    return false;
}

// db thread: rolls the batch's transaction back and reloads what the database holds: the
// applier forgets its caches, each origin's progress and floor are read again.
void node_impl::undo_batch() {
    assert_on(node_thread::db);
    std::string err;
    exec_sql(wdb(), "ROLLBACK", err);
    applier_of()->forget_caches();
    progress_.clear();
    floors_.clear();
    wstore()->load_progress(progress_, floors_);
}

// db thread: one pass over the run from items[i] (up to 1000 transactions) in the batch's
// SQLite transaction, its state started afresh (users_touched is kept across passes). i ends
// past what the pass took. Returns whether the batch must be replayed with savepoints.
bool node_impl::apply_batch_pass(std::vector<received>& items, std::size_t& i, txn_batch& b, const apply_options& opt) {
    assert_on(node_thread::db);
    b.batch.clear();
    b.acks.clear();
    b.to_park.clear();
    b.refused.clear();
    b.held.clear();
    b.logged = false;
    b.count = 0;
    while (i < items.size() && items[i].what == received::txn && b.count < 1000) {
        const item_step step = apply_batch_item(items[i], i, b, opt);
        if (step != item_step::go_on) return step == item_step::replay;
        ++i;
        ++b.count;
    }
    return false;
}

// db thread: one transaction of a pass (items[k] is r): dropped when its link is cut off or it
// has no record head, held back behind a held record of its origin, applied when newer than its
// origin's progress (apply_new_txn), acked when already here.
node_impl::item_step node_impl::apply_batch_item(received& r, std::size_t k, txn_batch& b, const apply_options& opt) {
    assert_on(node_thread::db);
    if (refused_links_.count(r.link_id)) return item_step::go_on; // cut off: what it queued is dropped
    if (!r.head_ok && !peek_record_head(r.record.data(), r.record.size(), r.head_hlc, r.head_origin)) {
        // Not even a record head: nothing of it can be applied or held in order.
        refuse_copy(r, "a txn whose record has no valid head");
        return item_step::go_on;
    }
    r.head_ok = true;
    const std::string origin = r.head_origin;
    // An origin with a record held back: everything after it waits behind it, in order.
    if (b.held.count(origin) || (parked_.count(origin) && !parked_[origin].retrying)) return hold_back(b, k, origin, "", false);
    auto& have = progress_[origin];
    if (r.head_hlc > have) return apply_new_txn(r, k, have, b, opt); // each origin's changes apply once, in order
    b.acks[r.peer] = {r.link_id, r.seq};
    return item_step::go_on;
}

// db thread: items[k] is held back, and its origin with it for the rest of the pass; parked
// once the batch commits (settle_parked), with `why` and whether it was refused.
node_impl::item_step node_impl::hold_back(txn_batch& b, std::size_t k, const std::string& origin, const std::string& why,
                                          bool refused) {
    assert_on(node_thread::db);
    b.held.insert(origin);
    b.to_park[k] = {why, refused};
    return item_step::go_on;
}

// db thread: a transaction (or part) newer than its origin's progress `have`. A part before the
// last is staged; a whole transaction, or a last part with the staged ones, is applied: then
// `have` and the batch's progress move to it and it is acked. Too far ahead of our clock, or
// failing in a pass with savepoints, it is held back with its origin.
node_impl::item_step node_impl::apply_new_txn(const received& r, std::size_t k, hlc_t& have, txn_batch& b,
                                              const apply_options& opt) {
    assert_on(node_thread::db);
    const part_info part = record_part(r.record.data(), r.record.size());
    if (part.part && !part.last) return stage_part(r, part, b);
    apply_result res;
    if (!part.part)
        res = apply_received(r, r.record, opt, b.refused, b.logged, b.users_touched);
    else if (const item_step step = apply_last_part(r, part, b, opt, res); step != item_step::go_on)
        return step;
    // Too far ahead of our clock: this origin waits (nothing was written), the others go on.
    if (res.clock_skew) return hold_back(b, k, r.head_origin, res.error, false);
    if (res.rc != SQLITE_OK && is_resource_error(res.rc)) {
        b.resource_error = res.error;
        return item_step::stop;
    }
    if (res.rc != SQLITE_OK) {
        if (!opt.savepoint) return item_step::replay;
        return hold_back(b, k, r.head_origin, res.error, true);
    }
    have = r.head_hlc;
    b.batch[r.head_origin] = r.head_hlc;
    b.acks[r.peer] = {r.link_id, r.seq};
    return item_step::go_on;
}

// db thread: a part before the last: kept in the database until the last one comes
// (part_staging.hpp), and acked, so the sender's window moves on. Failing to stage it is a
// resource error: the pass stops before it.
node_impl::item_step node_impl::stage_part(const received& r, const part_info& part, txn_batch& b) {
    assert_on(node_thread::db);
    if (faults_.before_each_part.count() > 0) std::this_thread::sleep_for(faults_.before_each_part);
    int src = staging()->stage(r.head_origin, r.head_hlc, part.index, r.record.data(), r.record.size());
    if (src != SQLITE_OK) {
        b.resource_error = std::string("staging a transaction part: ") + sqlite3_errmsg(wdb());
        return item_step::stop;
    }
    b.acks[r.peer] = {r.link_id, r.seq};
    return item_step::go_on;
}

// db thread: the last part: the staged ones, then this one, in one SQLite transaction (the
// batch's), inside a savepoint of their own when records are isolated (opt.savepoint). `res`
// gets the outcome, for the caller to judge (go_on); stop when the staged parts can't be
// counted (b.resource_error), replay when they failed in a pass without savepoints.
node_impl::item_step node_impl::apply_last_part(const received& r, const part_info& part, txn_batch& b,
                                                const apply_options& opt, apply_result& res) {
    assert_on(node_thread::db);
    std::uint32_t staged = 0;
    int crc = staging()->count(r.head_origin, r.head_hlc, part.index, staged);
    if (crc != SQLITE_OK) {
        b.resource_error = std::string("reading staged transaction parts: ") + sqlite3_errmsg(wdb());
        return item_step::stop;
    }
    if (staged != part.index) {
        res.rc = SQLITE_ERROR;
        res.error = "transaction " + std::to_string(r.head_hlc) + " of " + r.head_origin + ": " +
                    std::to_string(part.index - staged) + " of its " + std::to_string(part.index + 1) + " parts never arrived";
        return item_step::go_on;
    }
    std::string err;
    if (opt.savepoint) exec_sql(wdb(), "SAVEPOINT hdbrepl_parts", err);
    res = apply_staged_and_last(r, part, b, opt);
    const bool failed = res.rc != SQLITE_OK || res.clock_skew;
    if (opt.savepoint) {
        if (failed) exec_sql(wdb(), "ROLLBACK TO hdbrepl_parts", err);
        exec_sql(wdb(), "RELEASE hdbrepl_parts", err);
    } else if (failed && !is_resource_error(res.rc)) {
        // Parts before it are in the batch already: only a replay with savepoints can leave
        // this transaction out and keep the rest.
        return item_step::replay;
    }
    return item_step::go_on;
}

// db thread: applies the staged parts of the last part's transaction in order, then the last
// part, stopping at the first that fails or is too far ahead of our clock; all applied, the
// staged parts are dropped. Returns the outcome (the savepoint is the caller's).
apply_result node_impl::apply_staged_and_last(const received& r, const part_info& part, txn_batch& b,
                                              const apply_options& opt) {
    assert_on(node_thread::db);
    apply_result res;
    bool skew = false;
    int frc = staging()->for_each(r.head_origin, r.head_hlc, part.index, [&](bytes&& body) {
        res = apply_received(r, body, opt, b.refused, b.logged, b.users_touched);
        skew = res.clock_skew;
        return res.rc == SQLITE_OK && !skew;
    });
    if (frc != SQLITE_OK && res.rc == SQLITE_OK) {
        res.rc = frc;
        res.error = std::string("reading staged transaction parts: ") + sqlite3_errstr(frc);
    }
    if (res.rc == SQLITE_OK && !skew) res = apply_received(r, r.record, opt, b.refused, b.logged, b.users_touched);
    if (res.rc == SQLITE_OK && !res.clock_skew) {
        res.rc = staging()->drop(r.head_origin, r.head_hlc);
        if (res.rc != SQLITE_OK) res.error = sqlite3_errmsg(wdb());
    }
    return res;
}

// db thread: ends the batch whose passes took items[batch_start..i). Committed, it resumes
// intake, refreshes users and membership when a system table may have changed, settles the
// held origins, keeps the acks below held records, publishes the progress, and has the io
// thread send acks, refusals and forwarding. On a resource error (or a failed commit) it undoes
// the batch and pauses intake instead, items[batch_start..] waiting in order.
void node_impl::finish_batch(std::vector<received>& items, std::size_t batch_start, std::size_t& i, txn_batch& b) {
    assert_on(node_thread::db);
    if (b.resource_error.empty()) commit_batch(b);
    if (!b.resource_error.empty()) {
        // The disk is full (or failing), not the record bad: nothing is refused or acked.
        // Every record waits, in order, and the batch is tried again after a pause that
        // grows to a few seconds (no event says that space came back). Senders stop when
        // their flow-control windows fill, so a paused node costs them bounded memory.
        undo_batch();
        i = batch_start;
        return pause_intake(b.resource_error, items, i);
    }
    intake_ok();
    if (b.users_touched) {
        // Before the acks below: a peer that saw its change confirmed can rely on it here.
        refresh_users();
        refresh_membership(false);
    }
    const bool newly_held = settle_parked(items, batch_start, i, b);
    // Acks stay below the first held record of each link: an ack covers every seq before it.
    for (auto& [peer, a] : b.acks) {
        max_seen_seq_[a.first] = std::max(max_seen_seq_[a.first], a.second);
        a.second = std::min(a.second, ack_ceiling(a.first));
    }
    {
        board_.set_progress(progress_);
    }
    if (!b.to_park.empty() || newly_held) publish_parked();
    send_batch_outcome(b);
}

// db thread: raises the stored progress of the origins the batch applied, then commits; a
// failure is a resource error (b.resource_error).
void node_impl::commit_batch(txn_batch& b) {
    assert_on(node_thread::db);
    std::string err;
    int rc = b.batch.empty() ? SQLITE_OK : wstore()->raise_progress(b.batch);
    if (rc == SQLITE_OK) rc = exec_sql(wdb(), "COMMIT", err);
    if (rc != SQLITE_OK) b.resource_error = sqlite3_errmsg(wdb());
}

// db thread, after the batch committed: origins whose record applied (or was already here)
// while retried are well again, and the records held back in the batch are parked. Returns
// whether an origin was newly held.
bool node_impl::settle_parked(std::vector<received>& items, std::size_t batch_start, std::size_t i, const txn_batch& b) {
    assert_on(node_thread::db);
    for (const auto& [o, h] : b.batch) parked_done(o);
    for (std::size_t k = batch_start; k < i; ++k)
        if (!b.to_park.count(k) && items[k].what == received::txn && items[k].head_ok) parked_done(items[k].head_origin);
    bool newly_held = false;
    for (const auto& [k, why] : b.to_park) {
        const std::string o = items[k].head_origin;
        if (!parked_.count(o) || parked_[o].retrying) newly_held = true;
        park(o, std::move(items[k]), why.first, why.second);
    }
    return newly_held;
}

// db thread: hands the committed batch's outcome to the io thread, which acks each link, notes
// the refused changes, and forwards what was applied to the peers that take it from us.
void node_impl::send_batch_outcome(const txn_batch& b) {
    assert_on(node_thread::db);
    std::vector<std::string> applied_origins;
    for (const auto& [o, h] : b.batch) applied_origins.push_back(o);
    on_io([acks = b.acks, refused = b.refused, logged = b.logged, applied_origins](node_impl& m) {
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
            for (auto& [name, p] : m.peers()) {
                bool wants = false;
                for (const auto& o : applied_origins) wants = wants || (o != name && !p.filter.exclude.count(o));
                if (wants) m.pump(name);
            }
    });
}

} // namespace hdbrepl::ext::node_detail
