// Initial copies and full resyncs, sender side: a snapshot of every replicated table sent
// in chunks within the copy window, then the snapshot's log position and progress, from
// which streaming goes on. Which rows of a chunk go to the peer follows the same rules as
// the stream (subscriptions, residency, placement).
// Thread: the io thread; snapshot reads and row filters run on the db thread.
#include "extension/node_impl.hpp"

#include "engine/placement.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

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
    p->copy_reading = p->copy_done_reading = false;
    ++p->send_generation; // a log read under way must not stream into the copy
    if (resume)
        log_line(name_, "resuming a copy for " + name + " after table " + resume->table + (resume->phase ? " (tombstones)" : "") +
                            " key " + resume->key.to_string());
    on_db([name, cs, resume](node_impl& n) {
        std::string err;
        bool ok = n.open_connection(&cs->db, err);
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
    constexpr std::uint64_t window = 4; // chunks in flight
    // An ack from an earlier, interrupted copy may count past this one's chunks.
    auto unacked = p->copy_chunks_sent > p->copy_chunks_acked ? p->copy_chunks_sent - p->copy_chunks_acked : 0;
    if (p->copy_done_reading || unacked >= window) return;
    p->copy_reading = true;
    auto cs = p->sending_copy;
    on_db([name, cs](node_impl& n) {
        std::uint32_t table = 0;
        std::vector<snapshot_row> rows;
        int rc = SQLITE_OK;
        // 2,000 rows a chunk: one receiver transaction each, small enough to interleave
        // with streamed transactions on both database threads.
        bool more = cs->reader->next_chunk(2000, table, rows, rc);
        w::copy_end end;
        if (!more && rc == SQLITE_OK) {
            end.seq = static_cast<std::uint64_t>(cs->reader->log_seq());
            for (const auto& [o, h] : cs->reader->progress()) end.progress.push_back({o, h});
        }
        w::copy_rows chunk;
        chunk.table = table;
        // Explicit subscriptions hold for copies too: a table not published to this peer
        // sends no rows (its definition still goes, as definitions do in the stream).
        const sub_rules rules = n.rules_for(name);
        if (more && !rules.empty() && table < cs->reader->tables().size() && !is_system_table(cs->reader->tables()[table].name) &&
            !rules_allow(rules, cs->reader->tables()[table].name, true))
            rows.clear();
        if (more && !rows.empty() && table < cs->reader->tables().size()) n.keep_placed_copy_rows(*cs, cs->reader->tables()[table], name, rows);
        for (auto& r : rows) chunk.rows.push_back({r.deleted, r.hlc, std::move(r.origin), std::move(r.values)});
        n.on_io([name, cs, more, rc, chunk = std::move(chunk), end = std::move(end)](node_impl& m) mutable {
            auto* p = m.find_peer(name);
            if (!p || p->sending_copy != cs) return;
            p->copy_reading = false;
            if (rc != SQLITE_OK) {
                p->last_error = "copy failed reading the snapshot";
                if (p->link) p->link->close("copy failed");
                return;
            }
            if (more) {
                cs->rows_sent += chunk.rows.size();
                m.send(*p, chunk);
                ++p->copy_chunks_sent;
                return m.copy_pump(name);
            }
            // The snapshot is complete: stream from its log position with its progress.
            p->copy_done_reading = true;
            p->full_resync = false;
            m.send(*p, end);
            log_line(m.name_, std::string(cs->resumed ? "resumed copy" : "copy") + " for " + name + " sent: " + std::to_string(cs->rows_sent) + " rows");
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

void node_impl::keep_placed_copy_rows(copy_state& cs, const snapshot_reader::table& t, const std::string& peer, std::vector<snapshot_row>& rows) {
    if (is_system_table(t.name)) return;
    if (t.definition.find("residency=") != std::string::npos) {
        // Residency decides for such tables, in copies as in streams (tombstones carry only
        // a key, so they go everywhere, as deletes do).
        std::erase_if(rows, [&](const snapshot_row& r) { return !r.deleted && !resident_on(t.name, t.definition, r.values, peer); });
        return;
    }
    if (!cs.sys) {
        cs.sys = std::make_unique<system_store>(cs.db, "main");
        cs.placements = std::make_unique<placement_store>(*cs.sys, cs.db);
    }
    bool stored = false;
    cs.placements->in_use(stored);
    if (!stored && cfg_.replicate_to < 0) return;
    const auto members = cfg_.replicate_to >= 0 ? placement_members() : std::vector<std::string>{};
    const std::size_t pk = pk_of(t.definition);
    std::erase_if(rows, [&](const snapshot_row& r) {
        // Tombstones go everywhere, as unplaced deletes do (a deleted row's placement is gone).
        if (r.values.empty() || r.deleted) return false;
        const value& key = r.values[std::min(pk, r.values.size() - 1)];
        std::optional<std::vector<std::string>> nodes;
        if (stored && cs.placements->get(t.name, key, nodes) != SQLITE_OK)
            return false; // unreadable: send it (a copy merges; an extra row is harmless)
        if (!nodes && cfg_.replicate_to >= 0) nodes = place_row(key, r.origin, members, cfg_.replicate_to);
        return nodes && !std::binary_search(nodes->begin(), nodes->end(), peer);
    });
}

} // namespace hdbrepl::ext::node_detail
