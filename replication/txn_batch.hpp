// The state of a batch of received transactions (node_receiving.cpp): a run applied in one
// SQLite transaction, in passes (the first without savepoints, a replay with one per record),
// and what one transaction did to its pass.
//
// Thread: the db thread only (a batch lives inside node_impl::apply_batch).
#pragma once
#include "replication/node_impl.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace hdbrepl::ext::node_detail {

struct node_impl::txn_batch {
    // Reset at the start of each pass:
    progress_map batch;                                                  // origin -> newest hlc applied
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> acks; // peer -> (link, seq)
    // Records held back (moved to parked_ once the batch commits): index -> why, and whether
    // it was refused (backoff grows) rather than early (clock skew).
    std::map<std::size_t, std::pair<std::string, bool>> to_park;
    std::map<std::string, std::pair<std::size_t, std::string>> refused; // peer -> (changes, first reason)
    std::set<std::string> held; // origins held back in this pass (or before it)
    bool logged = false;        // something applied went to the log (there is something to forward)
    std::size_t count = 0;      // items this pass took (applied, acked, dropped or held)
    // Kept across passes:
    bool users_touched = false; // a record may have touched a system table (users, membership)
    // Set when the disk is full (or failing): the pass stops there and the batch is undone.
    std::string resource_error;
};

// What one received transaction did to its pass.
enum class node_impl::item_step {
    go_on,  // taken (applied, staged, acked, dropped or held back): the pass goes on
    stop,   // a resource error (txn_batch::resource_error): the pass ends before it
    replay, // failed without savepoints: the batch is undone and replayed with them
};

} // namespace hdbrepl::ext::node_detail
