// Initial copies and full resyncs, sender side: a snapshot of every replicated table sent
// in chunks within the copy window, then the snapshot's log position and progress, from
// which streaming goes on. Which rows of a chunk go to the peer follows the same rules as
// the stream (subscriptions, residency, placement).
// Thread: the io thread; snapshot reads and row filters run on the db thread.
#include "replication/node_impl.hpp"

#include "engine/placement.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace hdbrepl::ext::node_detail {

namespace {
// The copy window's clock: monotonic, in microseconds (a loopback round trip is well under
// a millisecond).
std::int64_t copy_clock_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
} // namespace

copy_chunk_budget node_impl::copy_budget() const {
    return copy_chunk_budget_for(static_cast<std::size_t>(cfg_.max_frame_bytes), static_cast<std::size_t>(cfg_.max_bytes_in_flight));
}

copy_window::limits node_impl::copy_window_limits() const {
    const auto b = copy_budget();
    copy_window::limits l;
    l.chunk_bytes = b.wire_bytes;
    l.chunk_charge = b.charge_bytes;
    // The sender's own queue holds maxFrameBytes + maxBytesInFlight (link_opts), so the
    // chunks not yet acknowledged (some of which may still be in that queue) stay within
    // maxBytesInFlight.
    l.max_bytes = static_cast<std::size_t>(cfg_.max_bytes_in_flight);
    // The receiver cuts off a link whose unapplied input passes maxBytesInFlight + 6 x
    // maxFrameBytes, counted as copy_rows_charge: two frames of that are kept spare.
    l.max_charge = static_cast<std::size_t>(cfg_.max_bytes_in_flight + 4 * cfg_.max_frame_bytes);
    // Chunks that placement or subscriptions left nearly empty still cost the receiver a
    // queue entry each: their number is bounded too.
    l.max_chunks = std::max<std::size_t>(16, 4 * l.max_bytes / l.chunk_bytes);
    return l;
}

void node_impl::start_copy_to(const std::string& name, bool behind_log, const std::optional<w::copy_resume>& resume) {
    auto* p = find_peer(name);
    if (!p || !p->link) return;
    p->full_resync = behind_log;
    if (behind_log) {
        ++p->full_resyncs;
        p->last_full_resync = now_ms();
        log_line(name_, name + " needs changes our log no longer holds: sending it a full copy (a merge: it deletes nothing)");
        update_status();
    }
    auto cs = std::make_shared<copy_state>();
    p->sending_copy = cs;
    p->copy_chunks_sent = p->copy_chunks_acked = 0;
    p->copy_win = copy_window(copy_window_limits());
    p->copy_reading = p->copy_done_reading = false;
    ++p->send_generation; // a log read under way must not stream into the copy
    if (resume)
        log_line(name_, "resuming a copy for " + name + " after table " + resume->table + (resume->phase ? " (tombstones)" : "") +
                            " key " + resume->key.to_string());
    on_db([name, cs, resume](node_impl& n) {
        std::string err;
        bool ok = n.open_connection(&cs->db, err);
        cs->placed.db = cs->db;
        if (ok) {
            cs->reader = std::make_unique<snapshot_reader>(cs->db, "main");
            ok = cs->reader->begin(err) == SQLITE_OK;
        }
        std::vector<w::copy_table> tables;
        w::copy_start start;
        if (ok) {
            for (const auto& t : cs->reader->tables()) tables.push_back({t.name, t.definition});
            start.total_rows = cs->reader->total_rows();
            for (const auto& [o, h] : cs->reader->progress()) start.progress.push_back({o, h});
            if (resume) {
                cs->reader->resume_after(resume->table, resume->phase, resume->key);
                cs->resumed = true;
            }
        }
        n.on_io([name, cs, ok, err, tables, start = std::move(start)](node_impl& m) {
            auto* p = m.find_peer(name);
            if (!p || p->sending_copy != cs) return;
            if (!ok) {
                log_line(m.name_, "cannot start a copy for " + name + ": " + err);
                p->last_error = "copy failed: " + err;
                if (p->link) p->link->close("copy failed");
                return;
            }
            m.send(*p, start);
            for (const auto& t : tables) m.send(*p, t);
            m.copy_pump(name);
        });
    });
}

void node_impl::copy_pump(const std::string& name) {
    auto* p = find_peer(name);
    if (!p || !p->sending_copy || p->copy_reading || !p->link) return;
    // The copy window (replication/copy_window.hpp) says whether another chunk may go.
    if (p->copy_done_reading || !p->copy_win.may_send()) return;
    if (out_backlog(*p)) return; // a fragmented message is under way: one at a time (node_fragments.cpp)
    p->copy_reading = true;
    auto cs = p->sending_copy;
    on_db([name, cs, budget = copy_budget()](node_impl& n) {
        std::uint32_t table = 0;
        std::vector<snapshot_row> rows;
        int rc = SQLITE_OK;
        // Chunks are budgeted in bytes (replication/copy_chunk.hpp): each is one receiver
        // transaction, well within a frame, whatever the size of the rows.
        bool more = cs->reader->next_chunk(budget, table, rows, rc);
        w::copy_end end;
        if (!more && rc == SQLITE_OK) {
            end.seq = static_cast<std::uint64_t>(cs->reader->log_seq());
            for (const auto& [o, h] : cs->reader->progress()) end.progress.push_back({o, h});
        }
        w::copy_rows chunk;
        chunk.table = table;
        // The stream's rule holds for copies too (row_filter.hpp): a table that does not flow
        // to this peer sends no rows (its definition still goes, as definitions do in the
        // stream), and rows placed elsewhere stay.
        if (more && table < cs->reader->tables().size()) {
            const auto& t = cs->reader->tables()[table];
            if (!n.row_filter_.table_flows(name, t.name, flow::to_peer)) rows.clear();
            if (!rows.empty()) n.row_filter_.keep_placed_copy_rows(cs->placed, t, name, rows, [&n] { return n.placement_members(); });
        }
        for (auto& r : rows) chunk.rows.push_back({r.deleted, r.hlc, std::move(r.origin), std::move(r.values)});
        const std::size_t wire_bytes = copy_rows_wire_bytes(chunk), charge = copy_rows_charge(chunk);
        n.on_io([name, cs, more, rc, wire_bytes, charge, chunk = std::move(chunk), end = std::move(end)](node_impl& m) mutable {
            auto* p = m.find_peer(name);
            if (!p || p->sending_copy != cs) return;
            p->copy_reading = false;
            if (rc != SQLITE_OK) {
                p->last_error = "copy failed reading the snapshot";
                if (p->link) p->link->close("copy failed");
                return;
            }
            if (more) {
                // Rows that no rule lets this peer have leave nothing to send or to wait for.
                if (chunk.rows.empty()) return m.copy_pump(name);
                cs->rows_sent += chunk.rows.size();
                m.send(*p, w::message(std::move(chunk))); // not copied: it may hold a huge row
                ++p->copy_chunks_sent;
                p->copy_win.sent(wire_bytes, charge, copy_clock_us());
                return m.copy_pump(name);
            }
            // The snapshot is complete: stream from its log position with its progress.
            p->copy_done_reading = true;
            p->full_resync = false;
            m.send(*p, end);
            const auto& win = p->copy_win;
            char how[160];
            std::snprintf(how, sizeof how, " rows in %llu chunks (window %zu KiB, send-to-ack %.1f ms, %.1f MiB/s)",
                          static_cast<unsigned long long>(win.chunks_sent()), win.window() >> 10, std::max<double>(0, win.min_rtt_us() / 1000.0),
                          win.rate_bytes_per_s() / (1 << 20));
            log_line(m.name_, std::string(cs->resumed ? "resumed copy" : "copy") + " for " + name + " sent: " + std::to_string(cs->rows_sent) + how);
            if (cs->resumed) {
                // The receiver streams from below this snapshot (what changed in the rows it
                // got before the cut): nothing goes until its subscribe says from where.
                p->filter = {};
                p->filter.start_after = ~hlc_t{0};
            } else {
                for (const auto& o : end.progress) {
                    auto& h = p->filter.progress[o.origin];
                    h = std::max(h, o.hlc);
                }
                p->filter.start_after = std::min<hlc_t>(p->filter.start_after, 0);
            }
            p->send_pos = static_cast<std::int64_t>(end.seq);
            ++p->send_generation;
            p->sending_copy.reset();
            m.on_db([cs](node_impl&) { cs->reader->end(); });
            m.pump(name);
        });
    });
}

// Thread: io. Acks count this copy's chunks applied; an ack from an earlier, interrupted
// copy on the same link may count past this one's chunks (the window counts what was sent).
void node_impl::on_copy_ack(peer& p, std::uint64_t chunks) {
    p.copy_chunks_acked = std::max(p.copy_chunks_acked, chunks);
    if (p.sending_copy) p.copy_win.acked(chunks, copy_clock_us());
    copy_pump(p.name);
}


} // namespace hdbrepl::ext::node_detail
