// The per-database system tables that hdbrepl keeps beside the replicated tables, in the
// same schema (main, or an attached database) as the tables they describe:
//
//   hdbrepl_meta(key PRIMARY KEY, value)       node name, format version, clock floor, settings
//   hdbrepl_log(seq INTEGER PRIMARY KEY, hlc, origin, clock, body)
//                                             the change log: one row per transaction
//                                             (txn_record.hpp); `clock` is this database's
//                                             HLC after the record, so the last row holds the
//                                             clock's high-water mark
//   hdbrepl_origins(id INTEGER PRIMARY KEY, name UNIQUE)
//                                             node names, interned: rows store the small id
//   hdbrepl_tables(name PRIMARY KEY, definition, replicate, created_hlc, dropped_hlc,
//                  renamed_to, renamed_hlc)   the replicated definitions and their history
//
// All functions run on the thread that owns `db` and expect to be called inside a write
// transaction when they write.
#pragma once
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "engine/hlc.hpp"
#include "engine/stmt_cache.hpp"

namespace hdbrepl::engine {

inline constexpr int schema_format = 1;

// Creates the system tables if missing; generates a node name on first use.
int ensure_system_tables(sqlite3* db, const std::string& schema, std::string& err);
// Whether the system tables exist in `schema` (read-only check).
bool system_tables_exist(sqlite3* db, const std::string& schema);

// Per-connection access to one schema's system tables, with cached statements and the
// interned origin names. Clear the origin cache after a rollback (an interned name may
// have been rolled back with it).
class system_store {
public:
    system_store(sqlite3* db, std::string schema);

    const std::string& schema() const { return schema_; }
    sqlite3* db() const { return cache_.db(); }
    stmt_cache& cache() { return cache_; }
    std::string table(const char* name) const; // "schema"."name"

    // The highest HLC this database has issued or stored (0 when none).
    int read_clock(hlc_t& out);
    // Raises the stored clock floor (used when versions enter without a log record).
    int raise_clock_floor(hlc_t t);

    std::optional<std::string> get_meta(const std::string& key);
    int set_meta(const std::string& key, const std::string& value);
    // Origins of which this database applied a trimmed record (txn_record::trimmed): it
    // holds only part of their data, so its copies vouch for none of them.
    int mark_partial_origin(const std::string& origin);
    int load_partial_origins(std::set<std::string>& out);
    // This database's node name (generated at creation, set by repl_start later).
    std::string node_name();

    // Interns a node name; inserts when new.
    int origin_id(const std::string& name, std::int64_t& id);
    // The name for an id ("" when unknown).
    std::string origin_name(std::int64_t id);
    void forget_origins() { origin_ids_.clear(); origin_names_.clear(); node_name_.reset(); }

    int append_log(hlc_t hlc, std::int64_t origin, hlc_t clock, const void* body, std::size_t size, std::int64_t* seq = nullptr);

    // hdbrepl_tables rows.
    struct table_entry {
        std::string name, definition;
        bool replicate = true;
        hlc_t created_hlc = 0, dropped_hlc = 0, renamed_hlc = 0;
        std::string renamed_to;
        bool live = false; // a vtab of this name exists
    };
    std::optional<table_entry> get_table(const std::string& name);
    int put_table(const table_entry& e);

private:
    std::string schema_;
    stmt_cache cache_;
    std::unordered_map<std::string, std::int64_t> origin_ids_;
    std::unordered_map<std::int64_t, std::string> origin_names_;
    std::optional<std::string> node_name_;
    std::uint64_t node_name_seen_ = 0; // the process-wide rename generation it was read at
};

} // namespace hdbrepl::engine
