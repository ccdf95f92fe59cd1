// Where an interrupted initial copy stopped, kept in hdbrepl_meta so that a cut link or a
// crash costs only the rows not yet copied (docs/protocol.md, "Initial copy").
//
// A copy delivers tables by name and each table's rows in key order, live rows then
// tombstones, so "everything up to (table, phase, key)" describes what is in. A resumed copy
// comes from a newer snapshot, so rows copied before the cut may have changed since: the
// receiver keeps the lowest per-origin progress of every attempt (`base`) and streams from
// there after the copy, which brings those changes again (applying them twice is harmless:
// every row keeps the newest version).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "engine/hlc.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine {

using progress_map = std::map<std::string, hlc_t>;

// Persisted by replication_store (hdbrepl_meta 'copy_resume'). Pure: no SQLite here.
struct copy_resume_state {
    bool has_point = false; // some rows are in
    std::string table;
    std::uint8_t phase = 0; // 0 live rows, 1 tombstones
    value key;
    std::uint64_t rows_done = 0;
    bool has_base = false; // a copy_start was seen
    progress_map base;
};

// Lowers `base` to `next` per origin; an origin missing from either leaves `base` (its
// progress is unknown for part of the copy, so nothing may be claimed for it).
void lower_copy_base(progress_map& base, const progress_map& next);

std::string encode_copy_resume(const copy_resume_state& s);
bool decode_copy_resume(const std::string& text, copy_resume_state& out);

} // namespace hdbrepl::engine
