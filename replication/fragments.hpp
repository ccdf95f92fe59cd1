// Messages larger than a frame (docs/protocol.md, "Fragments"): the sizes a sender cuts them
// into and keeps in flight, and the receiver's assembly of one message from its pieces, which
// checks every piece against the others. Pure: no I/O, no node state; the node's use of them
// is replication/node_fragments.cpp. Thread: the caller's (the io thread, in the node).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "engine/bytes.hpp"
#include "replication/wire.hpp"

namespace hdbrepl::engine {

// The smallest maxFrameBytes a node accepts (extension/config_sections.cpp): a message of at most
// this many bytes fits a frame on every node, so it never needs fragments.
inline constexpr std::uint64_t min_frame_bytes = 64 * 1024;

// Data bytes of one fragment: at most 1 MiB, so several fit the window and a peer's acks
// keep a transfer moving (a frame-sized fragment would make each one wait for the last).
constexpr std::size_t fragment_data_bytes(std::size_t max_frame_bytes) {
    return std::min<std::size_t>(max_frame_bytes, std::size_t{1} << 20) - wire::fragment_header_bytes;
}

// Data bytes of one fragmented message a sender may have sent and not had acknowledged.
constexpr std::size_t fragment_window_bytes(std::size_t max_frame_bytes, std::size_t max_bytes_in_flight) {
    return std::max(fragment_data_bytes(max_frame_bytes), max_bytes_in_flight / 2);
}

// One link's message under assembly. Each fragment is checked before it is kept: the first
// declares the total (at most `cap`, more than min_frame_bytes, more than it carries itself,
// and not itself a fragment or fragment ack), every later one repeats that total, and none
// runs past it. The whole total is reserved at the first piece, so no piece moves what came
// before (a 300 MB message would otherwise be copied again at each doubling, on the io
// thread): that is address space, and memory is used only as the pieces fill it.
class fragment_assembler {
public:
    // "" when `f` was taken; otherwise the protocol error (the assembler is then reset).
    std::string add(const wire::fragment& f, std::uint64_t cap);
    bool active() const { return total_ != 0; }
    bool complete() const { return total_ != 0 && buf_.size() == total_; }
    std::uint64_t total() const { return total_; }
    std::uint64_t received() const { return buf_.size(); }
    // The whole message, once complete(); the assembler is then ready for the next one.
    bytes take();
    void reset();

private:
    bytes buf_;
    std::uint64_t total_ = 0;
};

} // namespace hdbrepl::engine
