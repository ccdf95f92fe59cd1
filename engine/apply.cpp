// The apply path for remote change records (see apply.hpp).
#include "engine/apply.hpp"

#include "engine/placement_store.hpp"
#include "engine/system_tables.hpp"

#include "engine/txn_record.hpp"

#include <algorithm>
#include <cctype>

namespace hdbrepl::engine {

namespace {
thread_local const remote_ddl* tl_remote_ddl = nullptr;

bool same_columns(const table_def& a, const table_def& b) {
    if (a.columns.size() != b.columns.size() || a.pk != b.pk) return false;
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        // Same storage behaviour: a value must be stored the same way on every node.
        if (a.columns[i].aff != b.columns[i].aff) return false;
        const auto& x = a.columns[i].name;
        const auto& y = b.columns[i].name;
        if (x.size() != y.size() ||
            !std::equal(x.begin(), x.end(), y.begin(), [](char p, char q) { return std::tolower((unsigned char)p) == std::tolower((unsigned char)q); }))
            return false;
    }
    return true;
}

// Runs the body inside a savepoint (or a transaction when none is open), committing on
// success and rolling back everything on failure.
class apply_txn {
public:
    apply_txn(sqlite3* db, bool savepoint) : db_(db), savepoint_(savepoint) {}
    int begin(std::string& err) {
        own_ = sqlite3_get_autocommit(db_) != 0;
        if (!own_ && !savepoint_) return SQLITE_OK; // the caller's transaction is all-or-nothing
        return exec_sql(db_, own_ ? "BEGIN IMMEDIATE" : "SAVEPOINT hdbrepl_apply", err);
    }
    int commit(std::string& err) {
        int rc = !own_ && !savepoint_ ? SQLITE_OK : exec_sql(db_, own_ ? "COMMIT" : "RELEASE hdbrepl_apply", err);
        if (rc == SQLITE_OK) done_ = true;
        return rc;
    }
    ~apply_txn() {
        if (done_ || (!own_ && !savepoint_)) return;
        std::string ignored;
        if (own_) exec_sql(db_, "ROLLBACK", ignored);
        else exec_sql(db_, "ROLLBACK TO hdbrepl_apply; RELEASE hdbrepl_apply", ignored);
    }
private:
    sqlite3* db_;
    bool savepoint_;
    bool own_ = false;
    bool done_ = false;
};
} // namespace

const remote_ddl* current_remote_ddl() { return tl_remote_ddl; }

remote_ddl_scope::remote_ddl_scope(remote_ddl d) : d_(std::move(d)), prev_(tl_remote_ddl) { tl_remote_ddl = &d_; }
remote_ddl_scope::~remote_ddl_scope() { tl_remote_ddl = prev_; }

applier::applier(sqlite3* db, std::string schema) : db_(db), sys_(db, std::move(schema)) {}

row_store* applier::open_store(const std::string& name, std::string& err) {
    auto entry = sys_.get_table(name);
    if (!entry || !entry->live) { stores_.erase(name); err = "table '" + name + "' does not exist"; return nullptr; }
    if (auto it = stores_.find(name); it != stores_.end()) {
        if (it->second->def().canonical() == entry->definition) return it->second.get();
        stores_.erase(it); // recreated elsewhere since
    }
    auto def = parse_table_def(entry->definition, err);
    if (!def) { err = "stored definition of '" + name + "' is unreadable: " + err; return nullptr; }
    auto store = std::make_unique<row_store>(db_, sys_.schema(), name, std::move(*def));
    auto* p = store.get();
    stores_[name] = std::move(store);
    return p;
}

int applier::resolve_table(const std::string& name, const std::string& definition, hlc_t hlc, const std::string& origin,
                           resolved& out, std::string& err) {
    out.store = nullptr;
    std::string current = name;
    for (int hop = 0; hop < 16; ++hop) {
        auto entry = sys_.get_table(current);
        if (entry && entry->live) {
            if (entry->dropped_hlc >= hlc) return SQLITE_OK; // dropped after this change was written
            out.store = open_store(current, err);
            return out.store ? SQLITE_OK : SQLITE_ERROR;
        }
        if (entry && !entry->renamed_to.empty()) { // renamed away: the rows live on under the new name
            current = entry->renamed_to;
            continue;
        }
        if (entry && entry->dropped_hlc >= hlc) return SQLITE_OK; // dropped after this change was written
        if (is_reserved_table_name(current)) {
            // hdbrepl's own tables are never made from a record: the node makes them itself,
            // the same way everywhere (changes to them do apply once they exist).
            if (!is_system_table(current)) {
                err = "table '" + current + "': names starting with 'hdbrepl_' are reserved for hdbrepl's own tables; a record cannot create one";
                return SQLITE_ERROR;
            }
            int rc = ensure_system_replicated_tables(db_, sys_.schema(), err);
            if (rc != SQLITE_OK) return rc;
            if (auto made = sys_.get_table(current); made && made->live) {
                out.store = open_store(current, err);
                return out.store ? SQLITE_OK : SQLITE_ERROR;
            }
            err = "table '" + current + "': hdbrepl's own table is missing and could not be made";
            return SQLITE_ERROR;
        }
        // Missing here: create it from the replicated definition.
        auto def = parse_table_def(definition, err);
        if (!def) { err = "table '" + current + "': bad definition in record: " + err; return SQLITE_CORRUPT; }
        remote_ddl_scope scope({hlc, origin});
        int rc = exec_sql(db_, "CREATE VIRTUAL TABLE " + quote_ident(sys_.schema()) + "." + quote_ident(current) +
                                   " USING hdbrepl(" + def->canonical() + ")", err);
        if (rc != SQLITE_OK) { err = "creating table '" + current + "': " + err; return rc; }
        out.store = open_store(current, err);
        return out.store ? SQLITE_OK : SQLITE_ERROR;
    }
    err = "table '" + name + "': rename chain too long";
    return SQLITE_CORRUPT;
}

int applier::apply_ddl(const change& c, const record_table& t, hlc_t hlc, const std::string& origin, bool& changed, std::string& err) {
    // hdbrepl's own tables (users, membership, removals, and any other hdbrepl_ name) are
    // made by every node alike and never change shape: a record that creates, drops or
    // renames one, or renames a table to such a name, is refused whole and changes nothing.
    const bool renames_to_reserved = c.op == change_op::rename_table && !c.values.empty() && is_reserved_table_name(c.values[0].s);
    if (is_reserved_table_name(t.name) || renames_to_reserved) {
        const char* what = c.op == change_op::create_table ? "create" : c.op == change_op::drop_table ? "drop" : "rename";
        err = std::string("refused a replicated ") + what + " of table '" + t.name + "'" +
              (renames_to_reserved ? " to '" + c.values[0].s + "'" : "") + " from '" + origin +
              "': names starting with 'hdbrepl_' belong to hdbrepl's own tables, which no record may create, drop or rename";
        return SQLITE_AUTH;
    }
    auto entry = sys_.get_table(t.name);
    std::string qname = quote_ident(sys_.schema()) + "." + quote_ident(t.name);
    switch (c.op) {
    case change_op::create_table: {
        if (entry && entry->live) return SQLITE_OK;              // same name, same table
        if (entry && entry->dropped_hlc >= hlc) return SQLITE_OK; // dropped later than created
        if (entry && entry->renamed_hlc >= hlc) return SQLITE_OK; // renamed later than created
        resolved r;
        changed = true;
        return resolve_table(t.name, t.definition, hlc, origin, r, err);
    }
    case change_op::drop_table: {
        if (entry && entry->dropped_hlc >= hlc) return SQLITE_OK;
        if (!entry || !entry->live) {
            // Remember the drop so that older changes that arrive later are discarded.
            system_store::table_entry e = entry.value_or(system_store::table_entry{});
            e.name = t.name;
            if (e.definition.empty()) e.definition = t.definition;
            e.dropped_hlc = hlc;
            changed = true;
            return sys_.put_table(e);
        }
        // Rows written after the drop (by nodes that had not seen it yet) survive it, as
        // they do on the nodes that recreate the table for them.
        auto* store = open_store(t.name, err);
        if (!store) return SQLITE_ERROR;
        std::string survivors_sql = "SELECT (SELECT count(*) FROM " + store->data_table() + " WHERE " + version_column + " > ?1) + (SELECT count(*) FROM " + store->tomb_table() + " WHERE " + version_column + " > ?1)";
        sqlite3_stmt* s = nullptr;
        int rc = sqlite3_prepare_v2(db_, survivors_sql.c_str(), -1, &s, nullptr);
        if (rc != SQLITE_OK) { err = sqlite3_errmsg(db_); sqlite3_finalize(s); return rc; }
        sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(hlc));
        sqlite3_int64 survivors = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        sqlite3_finalize(s);
        changed = true;
        if (survivors > 0) {
            rc = exec_sql(db_, "DELETE FROM " + store->data_table() + " WHERE " + version_column + " <= " +
                                   std::to_string(static_cast<sqlite3_int64>(hlc)) + "; DELETE FROM " + store->tomb_table() +
                                   " WHERE " + version_column + " <= " + std::to_string(static_cast<sqlite3_int64>(hlc)), err);
            if (rc != SQLITE_OK) return rc;
            entry->dropped_hlc = hlc;
            return sys_.put_table(*entry);
        }
        forget(t.name);
        remote_ddl_scope scope({hlc, origin});
        int drc = exec_sql(db_, "DROP TABLE " + qname, err);
        if ((drc & 0xff) == SQLITE_LOCKED)
            // SQLite cannot drop a table while another statement of this connection reads
            // (e.g. repl_apply called row by row from a SELECT); the node never does that.
            err = "cannot drop table '" + t.name + "' while another statement on this connection is running; "
                  "apply this record in a statement of its own";
        return drc;
    }
    case change_op::rename_table: {
        const std::string& to = c.values.at(0).s;
        if (!entry) {
            system_store::table_entry e;
            e.name = t.name;
            e.definition = t.definition;
            e.renamed_to = to;
            e.renamed_hlc = hlc;
            changed = true;
            return sys_.put_table(e);
        }
        if (!entry->live) return SQLITE_OK; // already renamed/dropped here
        if (entry->created_hlc >= hlc) return SQLITE_OK;
        auto target = sys_.get_table(to);
        if (target && target->live) {
            err = "cannot rename '" + t.name + "' to '" + to + "': a table of that name exists here";
            return SQLITE_ERROR;
        }
        forget(t.name);
        changed = true;
        remote_ddl_scope scope({hlc, origin});
        return exec_sql(db_, "ALTER TABLE " + qname + " RENAME TO " + quote_ident(to), err);
    }
    default: break;
    }
    err = "not a DDL change";
    return SQLITE_CORRUPT;
}

apply_result applier::apply(const std::uint8_t* body, std::size_t size, const apply_options& opt) {
    apply_result res;
    auto rec = decode_record(body, size, res.error);
    if (!rec) { res.rc = SQLITE_CORRUPT; return res; }
    std::uint64_t now = opt.now_ms ? opt.now_ms : wall_clock_ms();
    if (hlc_too_far_ahead(rec->hlc, now, opt.max_clock_skew_ms)) {
        res.rc = SQLITE_BUSY;
        res.clock_skew = true;
        res.error = "transaction from '" + rec->origin + "' is " + std::to_string(hlc_ms(rec->hlc) - now) +
                    " ms ahead of this node's clock (limit " + std::to_string(opt.max_clock_skew_ms) + " ms); retry later";
        return res;
    }
    apply_txn txn(db_, opt.savepoint);
    if ((res.rc = txn.begin(res.error)) != SQLITE_OK) return res;
    if ((res.rc = ensure_system_tables(db_, sys_.schema(), res.error)) != SQLITE_OK) return res;
    std::int64_t origin_id = 0;
    if ((res.rc = sys_.origin_id(rec->origin, origin_id)) != SQLITE_OK) { res.error = sqlite3_errmsg(db_); sys_.forget_origins(); return res; }

    bool changed = false;
    placement_store placements(sys_, db_);
    bool placements_used = false;
    std::vector<resolved> tables(rec->tables.size());
    std::vector<bool> resolved_yet(rec->tables.size(), false);
    auto fail = [&](int rc, std::string msg) {
        res.rc = rc;
        res.error = std::move(msg);
        res.rows_applied = 0;
        sys_.forget_origins();
        stores_.clear();
        return res;
    };
    for (const auto& c : rec->changes) {
        const auto& t = rec->tables[c.table];
        if (c.op == change_op::create_table || c.op == change_op::drop_table || c.op == change_op::rename_table) {
            std::string err;
            if (int rc = apply_ddl(c, t, rec->hlc, rec->origin, changed, err); rc != SQLITE_OK) return fail(rc, err);
            std::fill(resolved_yet.begin(), resolved_yet.end(), false);
            for (auto& r : tables) r.tombstones = -1; // a drop may turn rows into tombstones
            continue;
        }
        if (!resolved_yet[c.table]) {
            std::string err;
            if (int rc = resolve_table(t.name, t.definition, rec->hlc, rec->origin, tables[c.table], err); rc != SQLITE_OK)
                return fail(rc, err);
            resolved_yet[c.table] = true;
            if (tables[c.table].store) {
                std::string derr;
                auto remote_def = parse_table_def(t.definition, derr);
                if (!remote_def || !same_columns(*remote_def, tables[c.table].store->def()))
                    return fail(SQLITE_MISMATCH, "table '" + t.name + "': the columns here (" + tables[c.table].store->def().canonical() +
                                                     ") differ from the sender's (" + t.definition + ")");
            }
        }
        row_store* store = tables[c.table].store;
        if (!store) { ++res.rows_skipped; continue; }
        const auto& def = store->def();
        if (c.op == change_op::put && c.values.size() != def.columns.size())
            return fail(SQLITE_CORRUPT, "table '" + t.name + "': row has " + std::to_string(c.values.size()) + " values, expected " +
                                            std::to_string(def.columns.size()));
        const value& key = c.op == change_op::put ? c.values[def.pk] : c.values[0];
        if (key.type == value_type::null) return fail(SQLITE_CORRUPT, "table '" + t.name + "': NULL primary key in record");
        std::optional<row_store::stored_version> cur;
        int rc;
        if (c.op == change_op::put) {
            // A live row is compared inside the upsert itself; only a tombstone (rare, and
            // in a small table) needs a look first, and none at all when the table has none:
            // a record holds each key once, so its own deletes never shadow its puts.
            auto& tombs = tables[c.table].tombstones;
            if (tombs < 0) {
                bool any = false;
                if ((rc = store->has_tombstones(any)) != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
                tombs = any ? 1 : 0;
            }
            if (tombs && (rc = store->find_tombstone(key, cur)) != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
            if (cur && compare_versions({rec->hlc, rec->origin}, {cur->hlc, sys_.origin_name(cur->origin)}) <= 0) {
                ++res.rows_skipped;
                continue;
            }
            bool applied = false;
            if ((rc = store->put_if_newer(c.values.data(), rec->hlc, origin_id, applied)) != SQLITE_OK)
                return fail(rc, "table '" + t.name + "': " + sqlite3_errmsg(db_));
            if (!applied) { ++res.rows_skipped; continue; }
        } else {
            if ((rc = store->find(key, cur)) != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
            if (cur && compare_versions({rec->hlc, rec->origin}, {cur->hlc, sys_.origin_name(cur->origin)}) <= 0) {
                ++res.rows_skipped;
                continue;
            }
            if ((rc = store->delete_row(key, rec->hlc, origin_id)) != SQLITE_OK) return fail(rc, "table '" + t.name + "': " + sqlite3_errmsg(db_));
        }
        // Where the row lives travels with it: a holder that updates it later keeps its nodes
        // (placement_store.hpp). A winning change without placement makes the row unplaced.
        if (c.placement >= 0 || (placements.in_use(placements_used) == SQLITE_OK && placements_used)) {
            rc = c.op == change_op::put && c.placement >= 0 ? placements.put(t.name, key, rec->placements[static_cast<std::size_t>(c.placement)])
                                                            : placements.erase(t.name, key);
            if (rc != SQLITE_OK) return fail(rc, "table '" + t.name + "': storing where the row lives: " + sqlite3_errmsg(db_));
            placements_used = placements_used || c.placement >= 0;
        }
        ++res.rows_applied;
        changed = true;
    }

    // A trimmed record with no changes left says the origin wrote rows placed elsewhere.
    if (rec->trimmed && (changed || (rec->changes.empty() && !rec->part)))
        if (int rc = sys_.mark_partial_origin(rec->origin); rc != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
    // Parts are logged even when they change nothing here: the run this node relays stays
    // contiguous, which its receivers check (txn_record.hpp, "Parts").
    if (changed || rec->part) {
        hlc_t clock = 0;
        if (int rc = sys_.read_clock(clock); rc != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
        if (int rc = sys_.append_log(rec->hlc, origin_id, hlc_observe(clock, rec->hlc), body, size); rc != SQLITE_OK)
            return fail(rc, sqlite3_errmsg(db_));
        res.logged = true;
    }
    if ((res.rc = txn.commit(res.error)) != SQLITE_OK) { sys_.forget_origins(); stores_.clear(); }
    return res;
}

apply_result applier::ensure_copied_table(const std::string& table, const std::string& definition) {
    apply_result res;
    apply_txn txn(db_, true);
    if ((res.rc = txn.begin(res.error)) != SQLITE_OK) return res;
    if ((res.rc = ensure_system_tables(db_, sys_.schema(), res.error)) != SQLITE_OK) return res;
    resolved r;
    std::string err;
    // Created as of HLC 1: any later change of the table, or a drop of it, still applies.
    if (int rc = resolve_table(table, definition, 1, "", r, err); rc != SQLITE_OK) {
        res.rc = rc;
        res.error = "copy of '" + table + "': " + err;
        sys_.forget_origins();
        stores_.clear();
        return res;
    }
    res.rc = txn.commit(res.error);
    return res;
}

apply_result applier::apply_copy(const std::string& table, const std::string& definition, const std::vector<copied_row>& rows) {
    apply_result res;
    apply_txn txn(db_, true);
    if ((res.rc = txn.begin(res.error)) != SQLITE_OK) return res;
    if ((res.rc = ensure_system_tables(db_, sys_.schema(), res.error)) != SQLITE_OK) return res;
    auto fail = [&](int rc, std::string msg) {
        res.rc = rc;
        res.error = "copy of '" + table + "': " + std::move(msg);
        res.rows_applied = 0;
        sys_.forget_origins();
        stores_.clear();
        return res;
    };
    resolved r;
    hlc_t newest = 0;
    for (const auto& row : rows) newest = std::max(newest, row.hlc);
    std::string err;
    if (rows.empty()) return res;
    if (int rc = resolve_table(table, definition, newest, rows.front().origin, r, err); rc != SQLITE_OK) return fail(rc, err);
    if (!r.store) { res.rows_skipped = rows.size(); return res; }
    const auto& def = r.store->def();
    {
        std::string derr;
        auto remote_def = parse_table_def(definition, derr);
        if (!remote_def || !same_columns(*remote_def, def))
            return fail(SQLITE_MISMATCH, "the columns here (" + def.canonical() + ") differ from the sender's (" + definition + ")");
    }
    for (const auto& row : rows) {
        if (!row.deleted && row.values.size() != def.columns.size()) return fail(SQLITE_CORRUPT, "row with a wrong number of values");
        if (row.values.empty()) return fail(SQLITE_CORRUPT, "row without values");
        const value& key = row.deleted ? row.values[0] : row.values[def.pk];
        if (key.type == value_type::null) return fail(SQLITE_CORRUPT, "NULL primary key");
        std::optional<row_store::stored_version> cur;
        // Live rows are compared inside the upsert; tombstones and deletes need a look first.
        int rc = row.deleted ? r.store->find(key, cur) : r.store->find_tombstone(key, cur);
        if (rc != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
        if (cur && compare_versions({row.hlc, row.origin}, {cur->hlc, sys_.origin_name(cur->origin)}) <= 0) {
            ++res.rows_skipped;
            continue;
        }
        std::int64_t origin_id = 0;
        if ((rc = sys_.origin_id(row.origin, origin_id)) != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
        bool applied = true;
        rc = row.deleted ? r.store->delete_row(key, row.hlc, origin_id) : r.store->put_if_newer(row.values.data(), row.hlc, origin_id, applied);
        if (rc != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
        if (!applied) { ++res.rows_skipped; continue; }
        ++res.rows_applied;
    }
    // Copied rows have no log record; the clock must still end up past every stored version.
    if (int rc = sys_.raise_clock_floor(newest); rc != SQLITE_OK) return fail(rc, sqlite3_errmsg(db_));
    if ((res.rc = txn.commit(res.error)) != SQLITE_OK) { sys_.forget_origins(); stores_.clear(); }
    return res;
}

} // namespace hdbrepl::engine
