// The peer protocol's messages (docs/protocol.md): encoding and validating decoding.
// Pure: no I/O. Every decoder treats its input as hostile: a malformed, truncated or
// oversized message yields an error text, never a crash or a partial result.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/bytes.hpp"
#include "engine/hlc.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine::wire {

inline constexpr std::uint16_t protocol_version = 1;
inline constexpr char hello_magic[4] = {'H', 'D', 'B', 'R'};

enum class msg : std::uint8_t {
    hello = 1, subscribe = 2, txn = 3, ack = 4, copy_start = 5, copy_table = 6, copy_rows = 7, copy_end = 8,
    copy_ack = 9, error = 10, removed = 11, copy_request = 12, read_request = 13, read_reply = 14,
    fragment = 15, fragment_ack = 16,
};

struct origin_progress {
    std::string origin;
    hlc_t hlc = 0;
};

// What a receiver wants from this link: every origin's records newer than its progress
// (start_after for origins it does not list), except the excluded origins.
struct subscription {
    hlc_t start_after = 0;
    std::vector<origin_progress> progress;
    std::vector<std::string> exclude;
};

// Where an interrupted initial copy stopped: every table whose name sorts before `table`
// is in, and of `table` every row of `phase` (0 live rows, 1 tombstones; live rows come
// first) up to and including `key`. A copy that resumes sends only what follows.
struct copy_resume {
    std::string table;
    std::uint8_t phase = 0;
    value key;
};

struct hello {
    std::uint16_t version = protocol_version;
    std::string node_name, node_url, database, db_id;
    bool needs_copy = false;
    subscription sub;
    std::optional<copy_resume> resume; // with needs_copy: continue an interrupted copy
};

struct subscribe {
    subscription sub;
};

struct txn {
    std::uint64_t seq = 0; // the sender's log position
    bytes record;          // a txn_record (txn_record.hpp)
};

struct ack { std::uint64_t seq = 0; };

struct copy_start {
    std::uint64_t total_rows = 0;
    // What the snapshot holds, per origin (as in copy_end): a receiver whose copy is cut
    // keeps the lowest of these, so the stream after a resumed copy also brings what changed
    // in the rows it got before the cut.
    std::vector<origin_progress> progress;
};

struct copy_table {
    std::string name, definition;
};

struct copy_row {
    bool deleted = false;
    hlc_t hlc = 0;
    std::string origin;
    std::vector<value> values; // put: the row; deleted: {key}
};

struct copy_rows {
    std::uint32_t table = 0; // index among the copy_table messages of this copy
    std::vector<copy_row> rows;
};

struct copy_end {
    std::uint64_t seq = 0;                 // the sender's log position of the snapshot
    std::vector<origin_progress> progress; // what the snapshot contains, per origin
};

struct copy_ack { std::uint64_t chunks = 0; };

struct error_msg { std::string text; };

// "You were removed from the cluster by `by`": the receiver stops replicating with it too.
struct removed { std::string by; };

// "Send me an initial copy": from a never-synced node whose first copy link went away.
struct copy_request {
    std::optional<copy_resume> resume;
};

// A forwarded read (docs/cluster.md, "Forwarded reads"): "send me the row of `table` whose
// `key_column` equals `key`". Answered from the receiver's own data, never forwarded again.
struct read_request {
    std::uint64_t id = 0;
    std::string table, key_column;
    value key;
};

enum class read_status : std::uint8_t { absent = 0, found = 1, cannot = 2 };

struct read_reply {
    std::uint64_t id = 0;
    read_status status = read_status::absent;
    std::vector<value> row; // found: every column, in declared order
};

// A piece of one encoded message larger than a frame (replication/fragments.hpp,
// docs/protocol.md "Fragments"): the pieces of a message come in order, each repeating the
// whole message's size; `data` runs to the end of the frame.
struct fragment {
    std::uint64_t total = 0;
    bytes data;
};

// "I have buffered `received` bytes of the fragmented message under way" (the whole of it
// once it is complete): the sender may have up to its window beyond that unacknowledged.
struct fragment_ack { std::uint64_t received = 0; };

using message = std::variant<hello, subscribe, txn, ack, copy_start, copy_table, copy_rows, copy_end, copy_ack, error_msg, removed, copy_request,
                             read_request, read_reply, fragment, fragment_ack>;

// Limits a decoder enforces (beyond the transport's message size limit).
inline constexpr std::size_t max_origins = 100'000;
inline constexpr std::size_t max_rows_per_chunk = 100'000;

// A fragment's bytes before its data: the type byte and the u64 total.
inline constexpr std::size_t fragment_header_bytes = 9;

bytes encode(const message& m);
// The fragment of `total` carrying data[0..n), without building a `fragment` first.
bytes encode_fragment(std::uint64_t total, const std::uint8_t* data, std::size_t n);
// Decodes one message; nullopt with `error` naming the message type and the fault.
std::optional<message> decode(const std::uint8_t* data, std::size_t size, std::string& error);
// The same, taking the buffer: a txn keeps it as its record (moved down over its seq, not
// copied), so a huge assembled one costs no second allocation.
std::optional<message> decode(bytes&& data, std::string& error);

const char* name_of(const message& m);

} // namespace hdbrepl::engine::wire
