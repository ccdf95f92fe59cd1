// The change-log record: one committed transaction, self-contained, so that the same bytes
// are stored in the log, sent to peers and applied there. Pure: no SQLite types.
//
// Format (version 1), all integers LEB128 varints unless marked:
//   u8  'H', u8 format: low four bits 1 = whole, 2 = trimmed (see txn_record::trimmed),
//                       3 = placed, 4 = placed and trimmed (placed: the placement section
//                       follows); flag 0x10: a part of a transaction written as several
//                       records; flag 0x20 (with 0x10 only): its last part
//   u64le hlc                 the transaction's timestamp (every row it writes carries it)
//   str origin                the node that committed it
//   parts only: varint index  0, 1, 2 ... within the transaction
//   ntables, then per table:  str name, str definition (canonical column list, table_def.hpp)
//   nchanges, then per change: table index, u8 op, payload:
//     put    (1): ncols, then ncols values (the whole row image, in declared column order)
//     delete (2): the key value
//     create (3): nothing (the definition is in the table list)
//     drop   (4): nothing
//     rename (5): str new name
//   placed records only, after the changes (where each row lives):
//     nlists, then per list: nnodes, then nnodes str node names (sorted, unique, non-empty)
//     then per change, in order: varint list index + 1 (0: the change has no placement)
// A table appears at most once per record and each (table, key) at most once: a record holds
// the transaction's net effect, so applying it row by row is the same as replaying it.
//
// Parts. A transaction whose record would pass record_part_bytes is written as a run of
// records, its parts, each holding some of its changes (a change is never split: a row larger
// than the limit is a part of its own) with the same hlc and origin, indexed 0..n-1, the last
// one flagged. Parts are logged, sent, filtered and relayed as records of their own, so no
// buffer anywhere holds more than one part; a receiver stages every part but the last in its
// database and applies the whole run in one SQLite transaction when the last one arrives
// (docs/protocol.md, "Transactions of many parts"). Each (table, key) still appears at most
// once in the whole run. A part filtered down to no change is still sent and logged (empty):
// the run stays contiguous, which receivers check.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/bytes.hpp"
#include "engine/hlc.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine {

enum class change_op : std::uint8_t { put = 1, del = 2, create_table = 3, drop_table = 4, rename_table = 5 };

struct record_table {
    std::string name;
    std::string definition;
};

struct change {
    std::uint32_t table = 0;
    change_op op = change_op::put;
    std::vector<value> values; // put: the row; del: {key}; rename: {new name as TEXT}
    // Placed records: index into txn_record::placements of the nodes that store this row
    // (put and delete only); -1: none, the row goes wherever its table replicates.
    std::int32_t placement = -1;
};

struct txn_record {
    hlc_t hlc = 0;
    std::string origin;
    std::vector<record_table> tables;
    std::vector<change> changes;
    // Some changes of the transaction were withheld on the way here (a subscription, shard,
    // replicateTo or residency filter). Complete for the receiver it was sent to, but not a
    // copy anyone else may take as the whole transaction: a node never relays a trimmed
    // record of another origin (docs/protocol.md, "Relaying").
    bool trimmed = false;
    // The node lists rows are placed on (each sorted and unique); a record with any list is
    // "placed" (formats 3 and 4). Decided by the writer (connection_state::flush) and kept
    // by every holder, so a row keeps its nodes on update.
    std::vector<std::vector<std::string>> placements{};
    // Parts of a transaction written as several records (see "Parts" above).
    bool part = false;
    std::uint32_t part_index = 0;
    bool part_last = false;
};

// A transaction's record is split into parts past this size (1 MiB: small enough for any
// frame limit a node accepts to carry it in a few fragments at worst, large enough that the
// per-record costs stay negligible).
inline constexpr std::size_t record_part_bytes = 1 << 20;
inline constexpr std::uint8_t record_flag_part = 0x10;
inline constexpr std::uint8_t record_flag_last = 0x20;
inline constexpr std::uint32_t max_record_parts = 1u << 30;

inline constexpr std::uint8_t record_magic = 'H';
inline constexpr std::uint8_t record_format = 1;
inline constexpr std::uint8_t record_format_trimmed = 2;
inline constexpr std::uint8_t record_format_placed = 3;
inline constexpr std::uint8_t record_format_placed_trimmed = 4;
inline constexpr std::size_t max_placement_nodes = 1024;

// Limits that a decoder enforces on input from elsewhere.
inline constexpr std::size_t max_name_len = 1024;
inline constexpr std::size_t max_definition_len = 1 << 20;
inline constexpr std::size_t max_columns = 1000;

// Timestamps a decoder accepts are below 2^63 (SQLite keeps them as signed 64-bit integers, so
// a larger one would read back negative and sort first): max_hlc is the largest. The one
// exception is the sentinel hlc_nothing, legal only as a subscription's start_after (wire.hpp).
inline constexpr hlc_t max_hlc = (hlc_t{1} << 63) - 1;
inline constexpr hlc_t hlc_nothing = ~hlc_t{0};

bytes encode_record(const txn_record& rec);
// Writes the part before the changes; the change count follows (see pending_txn).
struct part_info {
    bool part = false;
    std::uint32_t index = 0;
    bool last = false;
};
void encode_record_head(byte_writer& w, hlc_t hlc, std::string_view origin, const std::vector<record_table>& tables, bool trimmed = false,
                        bool placed = false, part_info part = {});
// Writes the placement section of a placed record (after its changes): the lists, then one
// index + 1 per change.
void encode_placements(byte_writer& w, const std::vector<std::vector<std::string>>& lists, const std::vector<std::int32_t>& per_change);

// Decodes and validates a record. On failure returns nullopt with `error` saying what and
// where (byte offset). What it builds stays within decoded_bytes_limit(size) (bytes.hpp): a
// record whose counts or values would take more is refused as malformed, before the memory is
// reserved; so is a timestamp of 0 or above max_hlc.
std::optional<txn_record> decode_record(const std::uint8_t* data, std::size_t size, std::string& error);

// The same record with only the changes of tables that `keep` accepts; empty when none
// is left (explicit subscriptions replicate some tables only). A record that lost any
// change comes out trimmed. Row placements are kept.
bytes filter_record(const std::uint8_t* data, std::size_t size, const std::function<bool(const std::string& table)>& keep);
// The same, change by change (replicateTo keeps only the rows placed on the receiver).
// `keep_empty`: when every change is left out, return the record with no changes (still
// trimmed) instead of nothing, so the receiver learns that the origin wrote rows it does not
// hold (it then forwards key lookups that miss; node_receiving.cpp).
bytes filter_changes(const std::uint8_t* data, std::size_t size, const std::function<bool(const record_table& table, const change& c)>& keep,
                     bool keep_empty = false);

// Reads only the header (hlc and origin) of an encoded record; false when malformed, also for
// an hlc above max_hlc.
bool peek_record_head(const std::uint8_t* data, std::size_t size, hlc_t& hlc, std::string& origin);
// Whether an encoded record is marked trimmed (false for anything malformed).
bool record_is_trimmed(const std::uint8_t* data, std::size_t size);
// Whether an encoded record carries row placements (formats 3 and 4).
bool record_is_placed(const std::uint8_t* data, std::size_t size);
// The part header of an encoded record (part false for a whole record, and for anything
// malformed).
part_info record_part(const std::uint8_t* data, std::size_t size);
// The same part with no changes (trimmed): what a filter that leaves nothing of a part sends
// and logs in its place. Empty for a record that is not a valid part.
bytes empty_part_like(const std::uint8_t* data, std::size_t size);

} // namespace hdbrepl::engine
