// Forwarded reads (docs/cluster.md, "Forwarded reads"): a key lookup that finds no row on a
// node holding only part of the data asks the nodes that may hold it. The SQL layer knows
// tables and cursors, the extension knows nodes and links; this hook joins the two without
// the SQL layer seeing the network. Set once when the extension loads.
// Thread: the user's thread; the forwarder blocks it until an answer or its timeout (it
// holds no SQLite lock then: the lookup runs in a read, never inside a write).
#pragma once
#include <string>
#include <vector>

#include "engine/sqlite_api.hpp"
#include "engine/value.hpp"

namespace hdbrepl::sql {

struct forwarded_read {
    enum status_t {
        not_applicable, // every row is here (no replicateTo, residency or sharding): a miss is a miss
        found,
        absent,         // every node asked says it has no such row
        failed,         // no answer in time (error says which and why)
    } status = not_applicable;
    std::vector<engine::value> row; // found: every column in declared order
    std::string error;
};

// `path`: the database file the table lives in.
using read_forwarder = forwarded_read (*)(const std::string& path, const std::string& table, const std::string& definition,
                                          const std::string& key_column, const engine::value& key);

void set_read_forwarder(read_forwarder f);
read_forwarder get_read_forwarder();

} // namespace hdbrepl::sql
