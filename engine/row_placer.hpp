// Decides, at commit (xSync), where each row of a transaction lives: the record_placer that
// connection_state::flush hands to pending_txn::build_record.
//
// For each put and delete of a user table in the main schema, in this order:
//   0. a delete goes to the row's stored placement, or everywhere when it has none;
//   1. a per-transaction node list (repl_replicate_to('a,b')): those nodes plus the writer,
//      plus the row's stored nodes if it has some (rows never leave a node: without
//      rebalancing, a holder left out would keep a stale version);
//   2. the row's stored placement (placement_store), so an update keeps its nodes;
//   3. a per-transaction count (repl_replicate_to(2)), else the node's replicateTo (written
//      to hdbrepl_meta 'replicate_to' by the node at start): the writer plus N members chosen
//      by rendezvous hashing of the key (place_row);
//   4. none: the row goes wherever its table replicates.
// A count is fixed only when the membership can fill it (N other members known); before
// that the row stays unplaced and the sender places it by the membership it sees then, so a
// node that writes before it has joined a cluster does not pin its rows to itself.
// The placement is stored with a put, dropped with a delete. Thread: the connection's.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/pending_txn.hpp"
#include "engine/placement_store.hpp"

namespace hdbrepl::engine {

// What a connection asked for its next transactions (repl_replicate_to); empty: nothing.
struct placement_request {
    int count = -1;                 // >= 0: the writer plus this many others
    std::vector<std::string> nodes; // non-empty: these nodes (plus the writer)
    bool empty() const { return count < 0 && nodes.empty(); }
};

class row_placer final : public record_placer {
public:
    row_placer(sqlite3* db, system_store& sys, std::string writer, placement_request request);
    // Reads the node's replicateTo, the membership and whether placements exist. Returns
    // false when nothing can be placed (no request, no replicateTo, no stored placement):
    // build_record then needs no placer at all.
    bool active(int& rc);
    std::int32_t place(const std::string& table, change_op op, std::string_view key) override;
    const std::vector<std::vector<std::string>>& lists() const override { return lists_; }
    // The first error of a lookup or store (SQLITE_OK when none).
    int error() const { return rc_; }
    // Every node other than the writer that got a row of this transaction.
    const std::set<std::string>& receivers() const { return receivers_; }

private:
    std::int32_t intern(const std::vector<std::string>& nodes);
    sqlite3* db_;
    system_store& sys_;
    placement_store store_;
    std::string writer_;
    placement_request request_;
    int configured_ = -1; // the node's replicateTo (-1: none)
    std::vector<std::string> members_;
    bool stored_ = false; // placements exist in this schema
    int rc_ = SQLITE_OK;
    std::vector<std::vector<std::string>> lists_;
    std::map<std::vector<std::string>, std::int32_t> index_;
    std::set<std::string> receivers_;
};

} // namespace hdbrepl::engine
