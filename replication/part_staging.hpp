// The parts of a transaction that a receiver holds until its last part arrives
// (txn_record.hpp, "Parts"), kept in the database, not in memory:
//
//   hdbrepl_staged(origin, hlc, part, body)   PRIMARY KEY (origin, hlc, part)
//       one row per part received, body as received (filters and the entitlement rule run
//       when the run is applied, as they do for a whole record).
//
// Staging is written in the receiver's intake transaction, so a part is acked only once it
// is durable; a crash or a cut link leaves the rows, and the sender, streaming again from
// the receiver's progress (which stays below the transaction until all of it applies),
// sends every part again: staging one twice replaces it. What is staged for an origin
// never holds more than one transaction: its first part removes what an older one left,
// and applying a run, or a copy that brings newer progress, removes the run.
// Thread: the node's database thread (its write connection).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "engine/bytes.hpp"
#include "engine/hlc.hpp"
#include "engine/schema.hpp"

namespace hdbrepl::engine {

class part_staging {
public:
    explicit part_staging(system_store& sys) : sys_(sys) {}

    // Keeps `body`, part `index` of (origin, hlc). The first part (index 0) first drops what
    // the origin's older transactions left.
    int stage(const std::string& origin, hlc_t hlc, std::uint32_t index, const std::uint8_t* body, std::size_t size);
    // How many parts of (origin, hlc) below `below` are staged; contiguous when that equals
    // `below` (indexes are unique, so a count equal to the range means none is missing).
    int count(const std::string& origin, hlc_t hlc, std::uint32_t below, std::uint32_t& n);
    // Each staged part of (origin, hlc) below `below`, in index order, one in memory at a
    // time. `fn` returning false stops (the result is then SQLITE_OK).
    int for_each(const std::string& origin, hlc_t hlc, std::uint32_t below, const std::function<bool(bytes&& body)>& fn);
    int drop(const std::string& origin, hlc_t hlc);
    // Drops every staged part of `origin` at or below `hlc` (applied, or made moot by a copy).
    int drop_through(const std::string& origin, hlc_t hlc);
    // Parts and bytes staged now (cluster_status).
    int totals(std::uint64_t& parts, std::uint64_t& bytes);

private:
    system_store& sys_;
};

} // namespace hdbrepl::engine
