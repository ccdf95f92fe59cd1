// Replication state that lives in the database, next to the data it describes, so a node
// that restarts (even after kill -9) resumes exactly where its last commit left it:
//
//   hdbrepl_progress(origin PRIMARY KEY, hlc, log_floor)
//       hlc:       the newest change of `origin` this database has (applied, or skipped
//                  because something newer was already here). Updated in the same SQLite
//                  transaction as the changes, so it can never run ahead of the data.
//       log_floor: changes of `origin` up to this HLC are in the data but not in this
//                  database's log (they arrived by a copy, or were pruned), so a peer that
//                  is further behind must be copied, not streamed to.
//   hdbrepl_nodes(name PRIMARY KEY, url, subscriptions, shard, start_time, added_at)
//       the nodes this node replicates with (hdb_nodes in SQL).
//
// Also: reading the log for a subscriber, and the snapshot of all replicated tables that
// an initial copy streams. Thread: the node's database thread (one connection each).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/bytes.hpp"
#include "replication/copy_chunk.hpp"
#include "replication/copy_resume.hpp"
#include "engine/hlc.hpp"
#include "engine/schema.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine {

// progress_map (origin -> hlc) comes from replication/copy_resume.hpp.

int ensure_replication_tables(sqlite3* db, const std::string& schema, std::string& err);

struct node_row {
    std::string name, url, subscriptions_json;
    int shard = -1;
    std::int64_t start_time_ms = -1;
};

class replication_store {
public:
    replication_store(sqlite3* db, std::string schema);
    system_store& system() { return sys_; }

    int load_progress(progress_map& hlc, progress_map& floors);
    // Raises progress (and optionally floors) to at least the given values.
    int raise_progress(const progress_map& hlc, const progress_map* floors = nullptr);

    int load_nodes(std::vector<node_row>& out);
    int put_node(const node_row& n);
    int remove_node(const std::string& name, bool& existed);
    // Records a peer that connected (from a route or by dialing us) unless it is known.
    int ensure_node(const std::string& name, const std::string& url);
    // Nodes removed with remove_node stay out, also across restarts, until added again.
    int set_removed(const std::string& name, bool removed);
    // An interrupted initial copy's resume point (replication/copy_resume.hpp), in hdbrepl_meta.
    // load: `found` is false (and `out` empty) when there is none or it cannot be read (the
    // copy then starts over, which loses nothing).
    int load_copy_resume(copy_resume_state& out, bool& found);
    int save_copy_resume(const copy_resume_state& s);
    int clear_copy_resume();
    int load_removed(std::set<std::string>& out);

    // What a subscriber asked for: per origin, records newer than the threshold.
    struct filter {
        hlc_t start_after = 0;
        progress_map progress;
        std::set<std::string> exclude;
        bool wants(const std::string& origin, hlc_t hlc) const;
    };
    // The first log position (seq) a subscriber needs: scans the log backwards from the end
    // until every wanted origin is covered, so the cost is proportional to what will be sent.
    int find_start(const filter& f, std::int64_t& after_seq);
    struct log_record {
        std::int64_t seq = 0;
        hlc_t hlc = 0;
        std::string origin;
        bytes body;
    };
    // Records after `after_seq` that the filter wants, at most `max_bytes` in total (at least
    // one record when any exists). `scanned_to` is the last seq looked at (wanted or not).
    int read_after(std::int64_t after_seq, const filter& f, std::size_t max_bytes, std::vector<log_record>& out,
                   std::int64_t& scanned_to);
    // The newest log position.
    int last_seq(std::int64_t& seq);
    // The newest HLC of each origin present in the log (for the snapshot's progress).
    int own_latest(const std::string& origin, hlc_t& hlc);

private:
    sqlite3* db_;
    system_store sys_;
};

// One row of an initial copy: a live row or a tombstone, with its version.
struct snapshot_row {
    bool deleted = false;
    hlc_t hlc = 0;
    std::string origin;
    std::vector<value> values; // live: the row; deleted: {key}
};

// Streams every replicated table of a read transaction. Call begin() (opens the read
// transaction on `db`, which must be a connection of its own), then next_chunk() until it
// returns false, then end().
class snapshot_reader {
public:
    snapshot_reader(sqlite3* db, std::string schema) : db_(db), sys_(db, std::move(schema)) {}
    ~snapshot_reader();
    struct table { std::string name, definition; std::int64_t rows = 0; };
    int begin(std::string& err);
    const std::vector<table>& tables() const { return tables_; }
    std::uint64_t total_rows() const { return total_rows_; }
    const progress_map& progress() const { return progress_; } // what the snapshot contains
    std::int64_t log_seq() const { return log_seq_; }
    // Continue an interrupted copy (wire::copy_resume): skip every table whose name sorts
    // before `table`, and in `table` the rows of phases before `phase` and of `phase` up to
    // and including `key`. Call after begin(), before the first next_chunk().
    void resume_after(const std::string& table, int phase, const value& key);
    // The next rows of the current table, in key order, within `budget` (copy_chunk.hpp: its
    // wire bytes, receiver charge and rows), at least one; false when every table is done.
    bool next_chunk(const copy_chunk_budget& budget, std::uint32_t& table_index, std::vector<snapshot_row>& rows, int& rc);
    void end();

private:
    sqlite3* db_;
    system_store sys_;
    std::vector<table> tables_;
    progress_map progress_;
    std::int64_t log_seq_ = 0;
    std::uint64_t total_rows_ = 0;
    std::size_t current_ = 0;
    int phase_ = 0; // 0: live rows, 1: tombstones
    sqlite3_stmt* stmt_ = nullptr;
    bool resume_pending_ = false, after_key_ = false;
    std::string resume_table_;
    int resume_phase_ = 0;
    value resume_key_;
    std::optional<snapshot_row> held_; // read, and left for the next chunk (over this one's budget)
    bool open_ = false;
    std::map<std::int64_t, std::string> origin_names_;
};

} // namespace hdbrepl::engine
