// Where each placed row lives: the node list decided at the row's first
// write (replicateTo, or a per-transaction repl_replicate_to), kept by every node that holds
// the row so that a later update, from any holder and after any membership change, goes to
// the same nodes. HarperDB keeps a record's "previous residency" for the same reason.
//
//   <schema>.hdbrepl_placement(tbl TEXT, key, nodes TEXT, PRIMARY KEY(tbl, key))
//     key:   the row's key as SQLite stores it; the column has no affinity, so 1 and 1.0
//            are one key, exactly as for the table's own primary key
//     nodes: a JSON array of node names, sorted and unique
//   shown read-only, as it is, by the system table hdb_placement
//   hdbrepl_meta 'placement' = 1 once a placement was stored, so writers and appliers that
//   find no flag skip every lookup (one meta read per transaction is all an unplaced
//   database pays, even though every node makes the table when it starts).
//
// A row's placement goes with its delete (a re-insert is placed afresh) and is replaced when
// a record without placement (written by a node that did not know it) updates the row: the
// row is then everywhere that record went. Thread: the connection's.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/schema.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine {

// A JSON array of the names (strings escaped as RFC 8259 requires).
std::string encode_node_list(const std::vector<std::string>& nodes);
// nullopt for anything that is not a non-empty JSON array of non-empty strings.
std::optional<std::vector<std::string>> decode_node_list(std::string_view json);

// A dropped table's placements go with it; a renamed table's follow it (called where its
// shadow tables are dropped or renamed, for local and replicated DDL alike).
int forget_placements(sqlite3* db, const std::string& schema, const std::string& table, std::string& err);
int rename_placements(sqlite3* db, const std::string& schema, const std::string& from, const std::string& to, std::string& err);

class placement_store {
public:
    explicit placement_store(system_store& sys, sqlite3* db) : sys_(sys), db_(db) {}
    // Whether a placement was stored in this schema (the meta flag; cleared by
    // clear_stale_flag() while the table is empty).
    int in_use(bool& out);
    // The caller read the flag already (row_placer reads it with the other settings).
    void set_in_use(bool known) { known_ = known ? 1 : 0; }
    int get(const std::string& table, const value& key, std::optional<std::vector<std::string>>& out);
    // Sets the flag at the schema's first placement (and makes the table if ensure() was
    // not called, which only a test does).
    int put(const std::string& table, const value& key, const std::vector<std::string>& nodes);
    int erase(const std::string& table, const value& key);
    // Creates the table when missing (a schema change: call it where DDL is safe, not from
    // inside a commit).
    int ensure();
    // Clears the flag while the table is empty (node start; the table must exist).
    int clear_stale_flag();

private:
    system_store& sys_;
    sqlite3* db_;
    int known_ = -1;           // the flag: -1 not read yet, 0 no placement stored, 1 stored
    bool table_known_ = false; // ensure() ran in this instance (tables are never dropped)
};

} // namespace hdbrepl::engine
