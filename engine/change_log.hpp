// Reading the change log (hdbrepl_log, see schema.hpp). Appending happens in the same
// SQLite transaction as the data it describes (pending_txn for local commits, applier
// for remote ones), through system_store::append_log.
// Thread: the thread that owns `db`.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "engine/bytes.hpp"
#include "engine/hlc.hpp"
#include "engine/stmt_cache.hpp"

namespace hdbrepl::engine {

struct log_entry {
    std::int64_t seq = 0;
    hlc_t hlc = 0;
    std::int64_t origin = 0;
    hlc_t clock = 0;
    bytes body;
};

// Calls `fn` for each entry with seq > after_seq, in seq order, at most `limit` entries;
// `fn` returns false to stop early. Returns an SQLite code.
int read_log(sqlite3* db, const std::string& schema, std::int64_t after_seq, std::int64_t limit,
             const std::function<bool(const log_entry&)>& fn);

} // namespace hdbrepl::engine
