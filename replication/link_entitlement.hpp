// Which peer messages a link may receive, by what the link is and what it is doing now.
//
// A link is in exactly one state. Every received message is checked against the table below
// before anything acts on it; a message the link is not entitled to in its state closes the
// link with the reason this returns (logged, and shown in cluster_status). The table is the
// whole rule: the handlers behind it may assume what it guarantees (e.g. a copy_rows comes
// only inside a copy this node asked for or subscribed into).
//
//   state            entitled to receive
//   awaiting_hello   hello                        (an accepted or dialed link before HELLO)
//   signing          nothing of the peer protocol (/hdbrepl/sign on the secure port: one
//                                                  JSON request, answered and closed)
//   peer             subscribe, txn, ack, error, read_request, read_reply, copy_request,
//                    removed (only naming the peer itself), copy_ack (only while this node
//                    sends the peer a copy or awaits acks of one), copy_start (only from the link this node asked
//                    for its initial copy, or, once synced, as the answer to its
//                    subscription: a full resync)
//   receiving_copy   copy_table, copy_rows, copy_end (which returns the link to `peer`),
//                    and for the other direction subscribe, ack, error, read_request,
//                    read_reply, copy_request, copy_ack as in `peer`; never a txn, a second
//                    copy_start or a hello
//   peer and receiving_copy also: fragment (a piece of a message larger than a frame; the
//                    message it assembles to is checked against this table itself when it
//                    is complete, replication/fragments.hpp checks the pieces), fragment_ack (only
//                    while this node sends the peer a fragmented message not all acknowledged)
//
// Pure (no node state): node_links.cpp fills link_view. Thread: the io thread's caller.
#pragma once
#include <string>

#include "replication/wire.hpp"

namespace hdbrepl::ext {

enum class link_state { awaiting_hello, signing, peer, receiving_copy };

const char* link_state_name(link_state s);

struct link_view {
    link_state state = link_state::awaiting_hello;
    std::string peer;             // the name its HELLO gave ("" before)
    bool initial_copy_source = false; // this node, never synced, asked this link for its copy
    bool synced = false;          // this node holds a complete copy (resync copies may come)
    bool sending_copy = false;    // this node is sending the peer a copy now
    bool copy_acks_due = false;   // chunks of a copy this node sent are not all acknowledged
    bool fragment_acks_due = false; // fragments this node sent are not all acknowledged
    std::size_t copy_tables = 0;  // copy_table messages of the copy under way
};

inline constexpr std::size_t max_copy_tables = 100000;

// "" when `m` may be received now; otherwise why not, for the log and the closing reason.
std::string link_refusal(const link_view& v, const engine::wire::message& m);

// The state a link is in once it received `m` (entitled in state `s`):
//   awaiting_hello --hello--> peer            (once the HELLO is accepted: node_hello.cpp)
//   peer --copy_start--> receiving_copy --copy_end--> peer
// Every other entitled message leaves the state as it is.
link_state link_state_after(link_state s, const engine::wire::message& m);

} // namespace hdbrepl::ext
