// The sender's side of one copy (initial copy or full resync): its own connection and the
// snapshot it reads in one read transaction. Thread: the db thread; the io thread holds it
// only through peer::sending_copy.
#pragma once
#include "replication/row_filter.hpp"
#include "replication/node_common.hpp"
#include "replication/replication_store.hpp"

#include "engine/sqlite_api.hpp"

#include <cstdint>
#include <memory>

namespace hdbrepl::ext::node_detail {

struct copy_state {
    sqlite3* db = nullptr;
    std::unique_ptr<snapshot_reader> reader;
    // Stored row placements, read in the snapshot's transaction on `db` (copies carry a row
    // only to the nodes it lives on, as streams do: row_filter.hpp).
    copy_placements placed;
    std::uint64_t rows_sent = 0;
    bool resumed = false;
    ~copy_state() {
        reader.reset();
        placed.placements.reset();
        placed.sys.reset();
        if (db) sqlite3_close_v2(db);
    }
};

} // namespace hdbrepl::ext::node_detail
