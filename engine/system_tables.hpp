// hdbrepl's own replicated tables: HarperDB's `system` database kept inside the file, as
// hdbrepl tables, so it replicates (where `system` does) with the same log, versions,
// last-writer-wins and tombstones as user data:
//
//   hdbrepl_users(username PRIMARY KEY, role, password_hash)   users (engine/security_store.hpp)
//   hdbrepl_members(name PRIMARY KEY, url, shard, ca)           every node's own row: where to
//                                                                reach it and the CA of its
//                                                                certificate (gossip membership)
//   hdbrepl_removals(name PRIMARY KEY, removed_by)              nodes removed with remove_node;
//                                                                a node's own row never clears
//                                                                its removal, only add_node does
//
// Every node creates them the same way, so their creation is not a change to replicate: it
// is recorded as made at HLC 1 and never logged. Names starting with hdbrepl_ are refused
// for user tables; these exact definitions are the exception. Thread: the connection's.
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sqlite_api.hpp"

namespace hdbrepl::engine {

// Whether `name` is one of the tables above.
bool is_system_table(std::string_view name);
// Whether `name` is reserved for hdbrepl's own tables: it starts with hdbrepl_ (any case).
// No SQL and no peer's record may create, drop or rename such a table; only the node itself
// creates the tables above, through ensure_system_replicated_tables.
bool is_reserved_table_name(std::string_view name);
// Whether the calling thread is inside ensure_system_replicated_tables (the hdbrepl module's
// xCreate lets exactly those definitions take a reserved name then, and at no other time).
bool creating_system_tables();
// Whether `name` with this canonical column list is one of them, exactly.
bool is_system_table_definition(std::string_view name, const std::string& canonical_columns);
// Creates the missing ones (the connection needs the hdbrepl module).
int ensure_system_replicated_tables(sqlite3* db, const std::string& schema, std::string& err);

// Membership (gossip): each node's own row, and removals.
struct member_row {
    std::string name, url, ca; // ca: PEM of the CA that signed the node's certificate, "" if none
    int shard = -1;
    bool operator==(const member_row&) const = default;
};
int load_members(sqlite3* db, const std::string& schema, std::vector<member_row>& out);
int put_member(sqlite3* db, const std::string& schema, const member_row& m);
int load_removals(sqlite3* db, const std::string& schema, std::set<std::string>& out);
int put_removal(sqlite3* db, const std::string& schema, const std::string& name, const std::string& removed_by);
// Takes a removal back (add_node of a removed node): a tombstone newer than the removal.
int clear_removal(sqlite3* db, const std::string& schema, const std::string& name);

} // namespace hdbrepl::engine
