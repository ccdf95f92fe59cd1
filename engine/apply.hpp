// The apply path: applies a change-log record that another node committed, atomically, in
// one local SQLite transaction (or savepoint, inside a caller's transaction so that the
// network layer can apply many records per commit).
//
// Rules:
//  * row by row, last writer wins on (HLC, origin name); a tombstone is a version too;
//  * idempotent: a record applied twice changes nothing the second time (every row of it
//    compares equal to what is stored) and is logged once;
//  * order-independent: any delivery order gives the same content;
//  * a table missing here is created from the definition carried in the record; changes
//    for a table that was dropped later than they were written are discarded, and changes
//    for a renamed table follow the rename;
//  * the record is appended to the local change log (for forwarding) when it changed
//    something, and the local clock moves past its HLC;
//  * a record whose HLC is further ahead of our wall clock than max_clock_skew_ms is not
//    applied now (result.clock_skew); the caller retries it later.
// Thread: the thread that owns `db` (the node's own connection, never a user's).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "engine/row_store.hpp"
#include "engine/schema.hpp"
#include "engine/txn_record.hpp"

namespace hdbrepl::engine {

struct apply_options {
    std::uint64_t max_clock_skew_ms = 60'000;
    std::uint64_t now_ms = 0; // 0: the wall clock
    // Inside a caller's transaction, wrap the record in a savepoint so a failing record
    // leaves nothing. false: no savepoint (much cheaper: no statement journal); the caller
    // must then roll back its whole transaction when a record fails.
    bool savepoint = true;
};

struct apply_result {
    int rc = SQLITE_OK;          // SQLITE_OK, or the error (record rejected, nothing changed)
    std::string error;
    bool clock_skew = false;     // rejected for now: too far ahead of our clock
    std::size_t rows_applied = 0;
    std::size_t rows_skipped = 0; // older than what is stored, or duplicates
    bool logged = false;
};

// While set, the hdbrepl module's DDL callbacks (xCreate, xDestroy, xRename) record this
// remote version instead of logging a new local change. Thread-local: the apply path runs
// its DDL synchronously on its own thread.
struct remote_ddl {
    hlc_t hlc = 0;
    std::string origin;
    bool keep_rows_newer = false;
};
const remote_ddl* current_remote_ddl();

class remote_ddl_scope {
public:
    explicit remote_ddl_scope(remote_ddl d);
    ~remote_ddl_scope();
    remote_ddl_scope(const remote_ddl_scope&) = delete;
    remote_ddl_scope& operator=(const remote_ddl_scope&) = delete;
private:
    remote_ddl d_;
    const remote_ddl* prev_;
};

struct copied_row {
    bool deleted = false;
    hlc_t hlc = 0;
    std::string origin;
    std::vector<value> values; // live: the row; deleted: {key}
};

class applier {
public:
    applier(sqlite3* db, std::string schema = "main");
    apply_result apply(const std::uint8_t* body, std::size_t size, const apply_options& opt = {});
    // Merges rows of an initial copy into `table` (created from `definition` when missing):
    // each row is written only when its version is newer than what is stored, so a copy
    // never deletes or overwrites newer local rows. Runs in the caller's transaction, or in
    // its own when none is open. Raises the clock floor to the newest version copied.
    apply_result apply_copy(const std::string& table, const std::string& definition, const std::vector<copied_row>& rows);
    // A table an initial copy announced but sent no rows for (it is empty at the source):
    // created here too, since the copy's progress says its CREATE is in.
    apply_result ensure_copied_table(const std::string& table, const std::string& definition);
    system_store& system() { return sys_; }
    // After the caller rolled back a transaction this applier wrote in.
    void forget_caches() {
        sys_.forget_origins();
        stores_.clear();
    }

private:
    struct resolved {
        row_store* store = nullptr; // null: skip the change
        int tombstones = -1;        // whether the table had tombstones when the record began (-1: not looked yet)
    };
    int resolve_table(const std::string& name, const std::string& definition, hlc_t hlc, const std::string& origin,
                      resolved& out, std::string& err);
    int apply_ddl(const change& c, const record_table& t, hlc_t hlc, const std::string& origin, bool& changed, std::string& err);
    row_store* open_store(const std::string& name, std::string& err);
    void forget(const std::string& name) { stores_.erase(name); }

    sqlite3* db_;
    system_store sys_;
    std::unordered_map<std::string, std::unique_ptr<row_store>> stores_;
};

} // namespace hdbrepl::engine
