// Per-connection transaction state (see connection_state.hpp).
#include "sql/connection_state.hpp"

#include "engine/commit_signal.hpp"
#include "sql/node_hooks.hpp"
#include "engine/table_def.hpp"
#include "engine/txn_record.hpp"

#include <functional>

namespace hdbrepl::sql {

connection_state::connection_state(sqlite3* db) : db_(db) {
    const char* f = sqlite3_db_filename(db, "main");
    main_path_ = f ? f : "";
}

engine::system_store& connection_state::system(const std::string& schema) {
    auto& p = systems_[schema];
    if (!p) p = std::make_unique<engine::system_store>(db_, schema);
    return *p;
}

std::uint64_t connection_state::now_ms() const { return test_clock_ms_ ? test_clock_ms_ : engine::wall_clock_ms(); }

int connection_state::ddl_version(const std::string& schema, schema_txn& out, bool& joins, std::string& err) {
    ddl_in_txn_ = true;
    if (auto it = txns_.find(schema); it != txns_.end()) {
        out = it->second;
        joins = true;
        return SQLITE_OK;
    }
    joins = false;
    return version_for(schema, out, err, true);
}

int connection_state::log_ddl(const std::string& schema, const std::string& table, const std::string& definition, engine::change_op op,
                              const std::string& new_name, const schema_txn& v, bool joins, std::string& err) {
    if (joins) {
        std::uint32_t slot = pending_.table_slot(schema, table, definition);
        auto& buf = pending_.buffer();
        std::size_t start = buf.size();
        engine::byte_writer w(buf);
        if (op == engine::change_op::rename_table) w.put_str(new_name);
        pending_.add_ddl(slot, op, start);
        return SQLITE_OK;
    }
    engine::txn_record r{v.hlc, v.origin, {{table, definition}}, {{0, op, {}}}};
    if (op == engine::change_op::rename_table) r.changes[0].values.push_back(engine::value::of_text(new_name));
    auto body = engine::encode_record(r);
    int rc = system(schema).append_log(v.hlc, v.origin_id, v.hlc, body.data(), body.size());
    if (rc != SQLITE_OK) err = std::string("hdbrepl: writing the change log: ") + sqlite3_errmsg(db_);
    return rc;
}

int connection_state::version_for(const std::string& schema, schema_txn& out, std::string& err, bool recheck) {
    int rc = SQLITE_OK;
    // DDL always re-checks: a rolled-back CREATE may have taken the system tables with it
    // without any callback telling us.
    if (recheck || !ensured_.count(schema)) {
        if ((rc = engine::ensure_system_tables(db_, schema, err)) != SQLITE_OK) return rc;
        ensured_.insert(schema);
    }
    auto& sys = system(schema);
    engine::hlc_t clock = 0;
    if ((rc = sys.read_clock(clock)) != SQLITE_OK) { err = sqlite3_errmsg(db_); return rc; }
    // A data transaction already open in this schema has taken clock+1 (not yet logged).
    if (auto it = txns_.find(schema); it != txns_.end() && it->second.hlc > clock) clock = it->second.hlc;
    out.hlc = engine::hlc_next(clock, now_ms());
    out.origin = sys.node_name();
    if ((rc = sys.origin_id(out.origin, out.origin_id)) != SQLITE_OK) { err = sqlite3_errmsg(db_); return rc; }
    return SQLITE_OK;
}

int connection_state::begin_write(const std::string& schema, schema_txn*& out, std::string& err) {
    if (auto it = txns_.find(schema); it != txns_.end()) { out = &it->second; return SQLITE_OK; }
    schema_txn t;
    if (int rc = version_for(schema, t, err, false); rc != SQLITE_OK) return rc;
    if (schema == "main" && !placement.empty()) {
        // The placement table is created here, in the first write, rather than at commit.
        engine::placement_store ps(system(schema), db_);
        if (int rc = ps.ensure(); rc != SQLITE_OK) { err = std::string("hdbrepl: creating the placement table: ") + sqlite3_errmsg(db_); return rc; }
    }
    out = &(txns_[schema] = std::move(t));
    return SQLITE_OK;
}

int connection_state::flush(std::string& err) {
    if (flushed_ || pending_.empty()) { flushed_ = true; return SQLITE_OK; }
    sqlite3_int64 last_rowid = sqlite3_last_insert_rowid(db_);
    for (const auto& schema : pending_.schemas()) {
        auto it = txns_.find(schema);
        if (it == txns_.end()) { err = "hdbrepl: changes in schema '" + schema + "' without a transaction version"; return SQLITE_INTERNAL; }
        const auto& t = it->second;
        std::function<bool(const std::string&)> keep;
        if (ddl_in_txn_) {
            // Changes of a table whose CREATE was rolled back (to a savepoint) must not
            // travel: SQLite drops such a table without telling its module.
            auto& sys = system(schema);
            keep = [&](const std::string& table) {
                auto e = sys.get_table(table);
                return e && (e->live || !e->renamed_to.empty() || e->dropped_hlc >= t.hlc);
            };
        }
        // Rows of the main schema may be placed on some nodes only (row_placer.hpp).
        std::optional<engine::row_placer> placer;
        if (schema == "main") {
            placer.emplace(db_, system(schema), t.origin, placement);
            int prc = SQLITE_OK;
            if (!placer->active(prc)) placer.reset();
            if (prc != SQLITE_OK) { err = std::string("hdbrepl: reading the placement settings: ") + sqlite3_errmsg(db_); return prc; }
        }
        // A large transaction is logged as several records, its parts (txn_record.hpp), each
        // written as soon as it is encoded.
        bool placed = false, any = false;
        int rc = SQLITE_OK;
        pending_.for_each_record(schema, t.hlc, t.origin, keep, placer ? &*placer : nullptr, engine::record_part_bytes, [&](engine::bytes&& body) {
            if (placer && placer->error() != SQLITE_OK) return false;
            rc = system(schema).append_log(t.hlc, t.origin_id, t.hlc, body.data(), body.size());
            if (rc != SQLITE_OK) { err = std::string("hdbrepl: writing the change log: ") + sqlite3_errmsg(db_); return false; }
            placed = placed || engine::record_is_placed(body.data(), body.size());
            any = true;
            return true;
        });
        if (placer && placer->error() != SQLITE_OK) {
            err = std::string("hdbrepl: storing where rows live: ") + sqlite3_errmsg(db_);
            return placer->error();
        }
        if (rc != SQLITE_OK) return rc;
        if (!any) continue;
        if (schema == "main") {
            flushed_main_hlc_ = t.hlc;
            flushed_main_ = commit_outcome{};
            flushed_main_.hlc = t.hlc;
            flushed_main_.placed = placed;
            if (placer) flushed_main_.placed_on = placer->receivers();
        }
    }
    // Tombstones expire in the transactions that write the table, at most once a minute
    // per connection, so no background work is needed on a single node.
    if (std::uint64_t now = now_ms(); now >= last_prune_ms_ + auto_prune_interval_ms) {
        last_prune_ms_ = now;
        for (const auto& schema : pending_.schemas()) {
            // Best effort: housekeeping must never fail the user's commit.
            std::vector<std::string> live;
            for (auto& table : pending_.tables_in(schema))
                if (auto e = system(schema).get_table(table); e && e->live) live.push_back(table);
            std::int64_t removed = 0;
            std::string ignored;
            prune_tombstones(schema, removed, ignored, live);
        }
    }
    sqlite3_set_last_insert_rowid(db_, last_rowid);
    flushed_ = true;
    return SQLITE_OK;
}

int connection_state::prune_tombstones(const std::string& schema, std::int64_t& removed, std::string& err,
                                       const std::vector<std::string>& only) {
    removed = 0;
    if (!engine::system_tables_exist(db_, schema)) return SQLITE_OK;
    auto& sys = system(schema);
    std::int64_t retention = 7LL * 24 * 3600 * 1000;
    if (auto v = sys.get_meta("tombstone_retention_ms")) retention = std::stoll(*v);
    std::uint64_t now = now_ms();
    engine::hlc_t cutoff = now > static_cast<std::uint64_t>(retention) ? engine::hlc_from_ms(now - static_cast<std::uint64_t>(retention)) : 0;
    std::vector<std::string> tables = only;
    if (tables.empty()) {
        engine::cached_stmt s(sys.cache(), "SELECT name FROM " + sys.table("hdbrepl_tables") + " WHERE live=1");
        if (!s) { err = sqlite3_errmsg(db_); return s.prepare_rc(); }
        while (sqlite3_step(s.get()) == SQLITE_ROW) tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
    }
    for (const auto& name : tables) {
        std::string sql = "DELETE FROM " + engine::quote_ident(schema) + "." + engine::quote_ident(name + "_tomb") + " WHERE " +
                          engine::version_column + " < " + std::to_string(static_cast<sqlite3_int64>(cutoff));
        if (int rc = engine::exec_sql(db_, sql, err); rc != SQLITE_OK) return rc;
        removed += sqlite3_changes(db_);
    }
    return SQLITE_OK;
}

void connection_state::release_statements() {
    for (auto& [name, sys] : systems_) sys->cache().clear();
}

void connection_state::wait_confirmations(commit_outcome out, engine::hlc_t hlc) {
    out.hlc = hlc;
    out.wanted = confirm;
    if (confirm <= 0) {
        out.status = "not asked";
    } else if (out.placed && out.placed_on.size() < static_cast<std::size_t>(confirm)) {
        // Waiting could only time out: say so at once (HarperDB answers this with a 400).
        out.status = "cannot confirm: asked for " + std::to_string(confirm) + " confirmations but the rows went to " +
                     std::to_string(out.placed_on.size()) + " other node(s)";
    } else if (auto w = confirm_hook.get(); !w || main_path_.empty()) {
        out.status = "no node running";
    } else {
        // What repl_last_commit() shows should the wait itself fail (the transaction is
        // committed whatever happens here).
        last_commit_ = out;
        last_commit_.status = "confirmation wait failed";
        // Counting only the nodes that got rows: a node that holds none of them confirms
        // nothing about this transaction.
        static const std::set<std::string> anyone;
        out.confirmed = w(main_path_, out.hlc, confirm, out.placed ? out.placed_on : anyone, confirm_timeout_ms);
        out.status = out.confirmed < 0 ? "no node running" : out.confirmed >= confirm ? "confirmed" : "timed out";
    }
    last_commit_ = std::move(out);
}

void connection_state::end(bool committed) {
    if (!committed) {
        // What the rolled-back transaction created (interned names, even the system
        // tables) is gone from the database.
        for (auto& [name, sys] : systems_) sys->forget_origins();
        ensured_.clear();
    }
    // The transaction's state is reset before anything that can wait or fail: the next
    // transaction starts clean whatever happens below.
    const engine::hlc_t committed_hlc = committed ? flushed_main_hlc_ : 0;
    commit_outcome outcome = std::move(flushed_main_);
    flushed_main_hlc_ = 0;
    flushed_main_ = commit_outcome{};
    ddl_in_txn_ = false;
    pending_.clear();
    txns_.clear();
    flushed_ = false;
    ++generation_;
    if (committed_hlc) {
        last_commit_hlc_ = committed_hlc;
        // Wake the node streaming this file's log (if any), now that the record is durable.
        if (!main_path_.empty()) engine::commit_signal::signal(main_path_, committed_hlc);
        wait_confirmations(std::move(outcome), committed_hlc);
    }
}

} // namespace hdbrepl::sql
