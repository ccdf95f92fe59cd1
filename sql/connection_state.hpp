// State shared by every hdbrepl table of one SQLite connection (the module's client data):
// the open transaction's pending changes and, per schema, its HLC and origin, plus the
// cached system-table access. Created when the extension is loaded on a connection and
// destroyed with the module when the connection closes.
//
// Transaction protocol (driven by the vtab callbacks, see vtab_repl_table.cpp):
//   first write in a schema  -> begin_write(): ensures the system tables, reads the clock
//                               under the write lock and fixes the transaction's HLC
//   xSavepoint/xRelease/xRollbackTo -> pending.savepoint/release/rollback_to
//   xSync  -> flush(): one log record per schema, inside the same SQLite transaction
//   xCommit / xRollback -> end()
// Thread: the thread using the connection (SQLite serialises calls on a connection).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/pending_txn.hpp"
#include "engine/row_placer.hpp"
#include "engine/schema.hpp"

namespace hdbrepl::sql {

struct schema_txn {
    engine::hlc_t hlc = 0;
    std::int64_t origin_id = 0;
    std::string origin;
};

class connection_state {
public:
    explicit connection_state(sqlite3* db);
    virtual ~connection_state() = default;

    sqlite3* db() const { return db_; }
    engine::system_store& system(const std::string& schema);
    engine::pending_txn& pending() { return pending_; }
    // Bumped at every transaction end, so tables can cache per-transaction lookups.
    std::uint64_t generation() const { return generation_; }

    // The open transaction's version in `schema`, fixed at its first write.
    int begin_write(const std::string& schema, schema_txn*& out, std::string& err);
    // The version for a DDL change (CREATE, DROP, RENAME of a replicated table). When a data
    // transaction is already open in `schema`, the DDL joins its record (`joins` = true, the
    // version is the transaction's); otherwise it gets a fresh version and a record of its
    // own, written at once (a DDL-only transaction never reaches xSync).
    int ddl_version(const std::string& schema, schema_txn& out, bool& joins, std::string& err);
    // Writes a DDL change: into the open transaction's record, or as its own record.
    int log_ddl(const std::string& schema, const std::string& table, const std::string& definition, engine::change_op op,
                const std::string& new_name, const schema_txn& v, bool joins, std::string& err);
    // Writes the pending changes to the change logs (xSync). Idempotent until end().
    int flush(std::string& err);
    void end(bool committed);

    // Deletes tombstones older than the retention (repl_config tombstone_retention_ms) from
    // `tables` (all live tables of the schema when empty). Runs inside the caller's
    // transaction or as its own statement.
    int prune_tombstones(const std::string& schema, std::int64_t& removed, std::string& err,
                         const std::vector<std::string>& tables = {});
    static constexpr std::uint64_t auto_prune_interval_ms = 60'000;

    // Tables open on this connection. sqlite3_close() refuses to close while any prepared
    // statement exists, and it destroys the module (and so this state) only after that
    // check; so the cached system statements are dropped when the last table disconnects,
    // and after function calls made while no table is open.
    void table_opened() { ++open_tables_; }
    void table_closed() { if (--open_tables_ == 0) release_statements(); }
    void release_statements_if_idle() { if (open_tables_ == 0) release_statements(); }
    void release_statements();

    // The HLC of this connection's last committed transaction that wrote the main log (0
    // when none), for repl_confirm().
    engine::hlc_t last_commit_hlc() const { return last_commit_hlc_; }
    // The database file of the main schema ("" for :memory: and temp databases).
    const std::string& main_path() const { return main_path_; }

    // Forwarded reads (node_hooks.hpp): on for user connections unless repl_forward_reads(0)
    // turned them off; always off on the node's own connections (a node answering a
    // forwarded read must never forward it again).
    bool forward_reads = true;
    // Per-transaction placement and confirmations (repl_replicate_to): where the rows of
    // this connection's next transactions go, and how many nodes each COMMIT waits for.
    engine::placement_request placement;
    int confirm = 0;
    int confirm_timeout_ms = 10'000;
    // What became of the last transaction that wrote the main log (repl_last_commit).
    struct commit_outcome {
        engine::hlc_t hlc = 0;
        std::set<std::string> placed_on; // nodes other than this one that got placed rows
        bool placed = false;             // any row of it had a placement
        int wanted = 0;                  // confirmations asked for
        int confirmed = -1;              // -1: not waited for
        std::string status;              // "not asked", "confirmed", "timed out", "no node running", ...
    };
    const commit_outcome& last_commit() const { return last_commit_; }

    // Wall clock, overridable for tests through repl_config('test_clock_ms', ...).
    std::uint64_t now_ms() const;
    void set_test_clock(std::uint64_t ms) { test_clock_ms_ = ms; }

private:
    void wait_confirmations(commit_outcome out, engine::hlc_t hlc);
    int version_for(const std::string& schema, schema_txn& out, std::string& err, bool recheck);

    sqlite3* db_;
    engine::pending_txn pending_;
    std::map<std::string, schema_txn> txns_;
    std::map<std::string, std::unique_ptr<engine::system_store>> systems_;
    std::set<std::string> ensured_; // schemas whose system tables are known to exist
    bool ddl_in_txn_ = false;       // a CREATE/DROP/RENAME ran in this transaction
    bool flushed_ = false;
    std::uint64_t generation_ = 1;
    std::uint64_t test_clock_ms_ = 0;
    std::uint64_t last_prune_ms_ = 0;
    int open_tables_ = 0;
    engine::hlc_t last_commit_hlc_ = 0;
    engine::hlc_t flushed_main_hlc_ = 0; // set by flush() when the main log got a record
    commit_outcome flushed_main_;          // its placement, until end() waits and publishes it
    commit_outcome last_commit_;
    std::string main_path_;
};

} // namespace hdbrepl::sql
