// The write side of the hdbrepl virtual-table module: xUpdate writes the shadow table and
// encodes each change into the connection's pending transaction, and the transaction slots
// (xSync turns the pending changes into one change-log record inside the same SQLite
// transaction; savepoints truncate the pending list). Thread: the connection's.
#include "sql/vtab_repl_table_impl.hpp"

#include "engine/row_store.hpp"
#include "engine/table_def.hpp"
#include "sql/sql_error.hpp"
#include "sql/value_encode.hpp"

namespace hdbrepl::sql::repl_table {

using namespace hdbrepl::engine;

namespace {

std::uint32_t pending_slot(repl_vtab* t) {
    auto& p = t->conn->pending();
    if (t->slot_generation != t->conn->generation() || p.empty()) {
        t->slot = p.table_slot(t->schema, t->name, t->definition);
        t->slot_generation = t->conn->generation();
    }
    return t->slot;
}

// Appends a put of the row `cols` to the pending transaction.
void log_put(repl_vtab* t, sqlite3_value** cols) {
    const auto& def = t->def();
    auto& p = t->conn->pending();
    std::uint32_t slot = pending_slot(t);
    auto& buf = p.buffer();
    std::size_t start = buf.size(), key_start = 0, key_end = 0;
    byte_writer w(buf);
    w.put_varint(def.columns.size());
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (i == def.pk) key_start = buf.size();
        encode_with_affinity(w, cols[i], def.columns[i].aff);
        if (i == def.pk) key_end = buf.size();
    }
    p.add(slot, change_op::put, start, key_start, key_end);
}

void log_delete(repl_vtab* t, sqlite3_value* key) {
    auto& p = t->conn->pending();
    std::uint32_t slot = pending_slot(t);
    auto& buf = p.buffer();
    std::size_t start = buf.size();
    byte_writer w(buf);
    encode_with_affinity(w, key, t->def().columns[t->def().pk].aff);
    p.add(slot, change_op::del, start, start, buf.size());
    p.note_overwrite();
}

int constraint_error(repl_vtab* t, const char* kind, const std::string& column) {
    set_vtab_error(&t->base, std::string(kind) + " constraint failed: " + t->name + "." + column);
    return SQLITE_CONSTRAINT;
}

int check_not_null(repl_vtab* t, sqlite3_value** cols) {
    const auto& def = t->def();
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (!def.columns[i].not_null || sqlite3_value_type(cols[i]) != SQLITE_NULL) continue;
        if (i == def.pk) {
            set_vtab_error(&t->base, "NOT NULL constraint failed: " + t->name + "." + def.columns[i].name +
                                         " (a replicated table's primary key must be given: keys are never assigned automatically)");
            return SQLITE_CONSTRAINT;
        }
        return constraint_error(t, "NOT NULL", def.columns[i].name);
    }
    return SQLITE_OK;
}

int write_error(repl_vtab* t, int rc) {
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return constraint_error(t, "UNIQUE", t->def().columns[t->def().pk].name);
    set_vtab_error(&t->base, sqlite3_errmsg(t->conn->db()));
    return rc;
}

bool same_key(sqlite3_value* a, sqlite3_value* b, affinity aff) {
    bytes x, y;
    byte_writer wx(x), wy(y);
    encode_with_affinity(wx, a, aff);
    encode_with_affinity(wy, b, aff);
    // As SQLite compares keys: 1.0 and 1 are the same key.
    return normalized_key({reinterpret_cast<const char*>(x.data()), x.size()}) ==
           normalized_key({reinterpret_cast<const char*>(y.data()), y.size()});
}

int do_update(repl_vtab* t, int argc, sqlite3_value** argv) {
    sqlite3* db = t->conn->db();
    const auto& def = t->def();
    if (argc > 1 && static_cast<std::size_t>(argc - 2) != def.columns.size()) return SQLITE_INTERNAL;
    std::string err;
    schema_txn* v = nullptr;
    int rc = t->conn->begin_write(t->schema, v, err);
    if (rc != SQLITE_OK) { set_vtab_error(&t->base, err); return rc; }
    sqlite3_int64 last_rowid = sqlite3_last_insert_rowid(db);
    auto& p = t->conn->pending();
    int on_conflict = sqlite3_vtab_on_conflict(db);
    bool replace = on_conflict == SQLITE_REPLACE;

    if (argc == 1) { // DELETE
        if ((rc = t->store->delete_row(argv[0], v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
        if (t->replicate) log_delete(t, argv[0]);
    } else {
        sqlite3_value** cols = argv + 2;
        if ((rc = check_not_null(t, cols)) != SQLITE_OK) return rc;
        sqlite3_value* new_key = cols[def.pk];
        if (sqlite3_value_type(argv[0]) == SQLITE_NULL) { // INSERT
            if ((rc = t->store->insert_row(cols, v->hlc, v->origin_id, replace)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_put(t, cols);
                if (replace) p.note_overwrite();
            }
        } else if (same_key(argv[0], new_key, def.columns[def.pk].aff)) { // UPDATE, same key
            if ((rc = t->store->update_row(argv[0], cols, v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_put(t, cols);
                p.note_overwrite();
            }
        } else { // UPDATE of the key: the old key is deleted, the new one written
            if ((rc = t->store->insert_row(cols, v->hlc, v->origin_id, replace)) != SQLITE_OK) return write_error(t, rc);
            if ((rc = t->store->delete_row(argv[0], v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_delete(t, argv[0]);
                log_put(t, cols);
            }
        }
    }
    sqlite3_set_last_insert_rowid(db, last_rowid);
    return SQLITE_OK;
}

} // namespace

int xUpdate(sqlite3_vtab* v, int argc, sqlite3_value** argv, sqlite3_int64* rowid) {
    // SQLite stores *rowid as last_insert_rowid() after an INSERT; a WITHOUT ROWID table
    // leaves it alone, so hand back the current value.
    *rowid = sqlite3_last_insert_rowid(vt(v)->conn->db());
    return do_update(vt(v), argc, argv);
}

// ---- transactions -------------------------------------------------------------------

int xBegin(sqlite3_vtab*) { return SQLITE_OK; }

int xSync(sqlite3_vtab* v) {
    std::string err;
    int rc = vt(v)->conn->flush(err);
    if (rc != SQLITE_OK) set_vtab_error(v, err);
    return rc;
}

int xCommit(sqlite3_vtab* v) {
    vt(v)->conn->end(true);
    return SQLITE_OK;
}

int xRollback(sqlite3_vtab* v) {
    vt(v)->conn->end(false);
    return SQLITE_OK;
}

int xSavepoint(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().savepoint(n);
    return SQLITE_OK;
}
int xRelease(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().release(n);
    return SQLITE_OK;
}
int xRollbackTo(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().rollback_to(n);
    return SQLITE_OK;
}

} // namespace hdbrepl::sql::repl_table
