// Row placement for sharded replication (HarperDB 4.4+ sharding, harperdb-facts.md 1.10):
// which nodes store a row. Pure: no SQLite, no I/O, no global state; every function may run
// on any thread.
//
//   replication.replicateTo: N      a row lives on its writing node plus N other members,
//                                   chosen from the row's key by rendezvous hashing
//   residency=<SQL expression>      a table option whose value, per row, is a shard number
//                                   or a JSON array of node names (parse_residency)
//   replication.shard: <n>          static shards: a database {name, sharded: true}
//                                   replicates only between nodes of one shard (same_shard)
//
// Why rendezvous (highest-random-weight) hashing: every (node, key) pair gets a pseudo-random
// score and a row goes to the highest-scoring members. Any node computes the same answer from
// the key and the member list alone, with no coordination and no table of assignments; and
// when a node joins, a row's placement changes only if the new node outscores one of its
// current holders (about N of every M+1 rows with M candidates, each losing exactly one
// holder); when a node leaves, only the rows it held change, each gaining exactly one holder.
// A consistent-hash ring gives the same bound but needs virtual nodes to spread load evenly;
// HarperDB's own choice (a random start index into the node list, wrapping) is neither
// deterministic nor stable. M members cost M hashes per placement, trivial at cluster sizes.
//
// Key bytes are the value codec's encoding of the primary key (engine/value.hpp: tag byte,
// then the payload), normalized as SQLite compares keys (normalized_key: REAL 1.0 is the key
// INTEGER 1), so every node derives the same bytes from the same key whatever its affinity
// path. The overloads taking an engine::value do that encoding.
//
// The hash is SipHash-2-4 (Aumasson & Bernstein, public domain reference), implemented here
// over bytes with explicit little-endian loads, so the scores are identical on every
// platform and endianness. Scores are persisted nowhere, but every node must agree on them:
// changing the hash, its key or the message layout moves rows and is a protocol change (the
// unit tests pin sample outputs so that it cannot happen by accident).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/value.hpp"

namespace hdbrepl::engine {

// ---- hashing --------------------------------------------------------------------------

// SipHash-2-4 of `data` under the 128-bit key (k0, k1) — k0 is the little-endian reading of
// key bytes 0..7, k1 of bytes 8..15, as in the reference implementation.
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::span<const std::uint8_t> data);

// The rendezvous score of `node_name` for a row key: SipHash-2-4 under the fixed key
// "hdbrepl-place-v1" of the message  u64le(len(node_name)) || node_name || key  (the length
// prefix keeps ("ab", "c") and ("a", "bc") apart).
std::uint64_t rendezvous_score(std::string_view node_name, std::span<const std::uint8_t> key);

// The placement key of a primary-key value: its normalized codec encoding (see above).
bytes placement_key(const value& key);

// Views a std::string holding encoded bytes (as the change-log code keeps keys) as bytes.
inline std::span<const std::uint8_t> as_byte_span(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// ---- placement by count (replicateTo) -------------------------------------------------

// The nodes that store a new row written by `writer`: the writer plus the `replicate_to`
// highest-scoring other members (score desc, name asc on a tie), sorted by name.
// `replicate_to` < 0, or >= the number of other members, means every member. The writer is
// always included even when it is not in `members`; duplicates in `members` are ignored.
// Only the key enters the choice, never the row's values. Note that when the writer is
// itself among the key's N+1 top-scoring members the result is exactly those N+1, whoever of
// them writes: an update from any holder of such a row recomputes the same set.
std::vector<std::string> place_row(std::span<const std::uint8_t> key_bytes, const std::string& writer,
                                   const std::vector<std::string>& members, int replicate_to);
std::vector<std::string> place_row(const value& key, const std::string& writer,
                                   const std::vector<std::string>& members, int replicate_to);

// Where a row lives: sorted, unique node names. Decided at the row's first write and kept
// with it (HarperDB keeps a record's "previous residency"): a later update — even one from
// a node outside the set, or after the membership changed — lands on the same nodes.
// A table without replicateTo/residency has no placement: every member holds every row.
struct placement {
    std::vector<std::string> nodes;
    bool operator==(const placement&) const = default;
};

// Sorts and de-duplicates a node list into a placement (for residency lists, shard lists).
placement make_placement(std::vector<std::string> nodes);

// The placement of a write: `previous` (the stored placement of the row, if it has one)
// unchanged, else place_row() for a new row. An update never re-places its row; moving rows
// after membership changes is a rebalancing decision, made explicitly elsewhere.
placement place_write(const std::optional<placement>& previous, std::span<const std::uint8_t> key_bytes,
                      const std::string& writer, const std::vector<std::string>& members, int replicate_to);

// Whether `node` stores rows with this placement.
bool node_holds(const placement& p, std::string_view node);

// The nodes a row must be sent to by `self`: its holders other than `self`, sorted.
std::vector<std::string> receivers(const placement& p, std::string_view self);

// ---- residency (table option residency=<SQL expression>) ------------------------------

// The value of a row's residency expression: a shard (0..65535), the node names (as written,
// at least one, each non-empty UTF-8), or an error message (the std::string alternative).
using residency = std::variant<int, std::vector<std::string>, std::string>;
constexpr std::size_t residency_shard = 0, residency_nodes = 1, residency_error = 2;
constexpr int max_shard = 65535;

// Parses the expression's result. `is_integer` (SQLite INTEGER) takes `integer_value` as a
// shard; otherwise `sql_value_text` must be a JSON array of strings — strict JSON (RFC 8259
// strings with all escapes, \u surrogate pairs; JSON whitespace; no trailing commas, no
// other value types, nothing after the array; read by json::parse_string_array, Boost.JSON).
// A NULL result is the caller's to handle (it has no text to pass); empty text is an error.
// Errors start with "residency: ".
residency parse_residency(std::string_view sql_value_text, bool is_integer, std::int64_t integer_value);

// A member and its static shard (-1 = none), for resolving a shard residency.
struct member_shard {
    std::string name;
    int shard = -1;
};
// The members in `shard`, sorted and unique (empty when the shard has no member).
std::vector<std::string> shard_nodes(int shard, const std::vector<member_shard>& members);

// ---- static shards -------------------------------------------------------------------

// Whether two nodes with these shards replicate a database marked {sharded: true}.
// Shards are 0..65535; any negative value means "no shard" (-1 by convention).
//   - two nodes with shards replicate iff the shards are equal;
//   - a node with a shard never replicates a sharded database with a node without one;
//   - two nodes without a shard do replicate: unassigned nodes form one implicit group, so
//     marking a database sharded before assigning shards isolates nobody (as HarperDB, whose
//     comparison of two undefined shards is equal).
// So: equal after mapping every negative value to -1.
bool same_shard(int a, int b);

// Whether a node in `my_shard` replicates a database with a peer in `peer_shard`: always
// when the database is not sharded, else same_shard().
bool replicates_with(bool database_sharded, int my_shard, int peer_shard);

} // namespace hdbrepl::engine
