// libFuzzer target: message sequences against what a link is entitled to
// (replication/link_entitlement.hpp) and what a received record may change in hdbrepl's own
// tables (replication/record_entitlement.hpp).
//
// Input: one byte of flags (this node synced, the link is its initial copy source, it sends
// the peer a copy, the link is TLS-authenticated, the node serves no secure port, the link is
// a certificate exchange, it awaits fragment acks), then frames, each a varint length and that many bytes of a peer
// message. Frames that do not decode are skipped (the node closes the link on them; the
// decoder has its own target). Each decoded message is checked against the table in the
// link's state; a refusal ends the sequence (the link is closed), an accepted message moves
// the state as replication/node_links.cpp does.
// Invariants, stated apart from the table so that a change to it that breaks them traps:
// before HELLO only a hello passes; a certificate exchange takes nothing; copy rows, tables
// and ends pass only inside a copy; a txn never inside one; a copy starts only from the
// initial copy source or on a synced node; removed only from the remover; a fragment_ack only
// while acks are due. Fragments go through the assembler (replication/fragments.hpp), as
// node_fragments.cpp does: a message it assembles is larger than a frame of the smallest size,
// is no fragment itself, and is then checked as if it had come whole. For every txn
// that passes: the entitled record decodes, and over the plain port it holds no change to
// another node's membership row, no CA, no user (unless the node serves no secure port),
// no removal made by another node, and no DDL of an hdbrepl table from any link.
#include "engine/bytes.hpp"
#include "replication/fragments.hpp"
#include "engine/system_tables.hpp"
#include "engine/txn_record.hpp"
#include "replication/wire.hpp"
#include "replication/link_entitlement.hpp"
#include "replication/record_entitlement.hpp"
#include "tests/fuzz/fuzz_common.hpp"

#include <functional>

// engine/system_tables.cpp needs SQLite (not in the fuzz build); its name test is these three
// names (the table at the top of that file), and sql/entitlement_test.cpp runs the real one.
namespace hdbrepl::engine {
bool is_system_table(std::string_view name) {
    return name == "hdbrepl_users" || name == "hdbrepl_members" || name == "hdbrepl_removals";
}
} // namespace hdbrepl::engine

using namespace hdbrepl;
using namespace hdbrepl::engine;
using namespace hdbrepl::ext;

namespace {

void check_record(const bytes& in, bool secure, bool plain_users) {
    const std::string self = "self";
    auto v = entitled_changes(in, secure, self, plain_users);
    const bytes& kept = v.rewritten ? v.record : in; // what the node applies
    if (kept.empty()) return;
    std::string err;
    auto rec = decode_record(kept.data(), kept.size(), err);
    if (!rec) {
        FUZZ_CHECK(v.refused == 0); // undecodable input comes back as it was, for the applier to refuse
        return;
    }
    for (const auto& c : rec->changes) {
        FUZZ_CHECK(c.table < rec->tables.size());
        const auto& t = rec->tables[c.table].name;
        if (!is_system_table(t)) continue;
        FUZZ_CHECK(c.op == change_op::put || c.op == change_op::del);
        if (secure) continue;
        const bool text_key = !c.values.empty() && c.values[0].type == value_type::text;
        if (t == "hdbrepl_members") {
            FUZZ_CHECK(text_key && c.values[0].s == rec->origin);
            FUZZ_CHECK(c.op != change_op::put || c.values.size() < 4 || c.values[3].type == value_type::null);
        } else if (t == "hdbrepl_removals") {
            FUZZ_CHECK(c.op == change_op::put && text_key && c.values[0].s != self);
            FUZZ_CHECK(c.values.size() > 1 && c.values[1].type == value_type::text && c.values[1].s == rec->origin);
        } else {
            FUZZ_CHECK(t == "hdbrepl_users" && plain_users);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t flags = data[0];
    link_view v;
    v.synced = flags & 1;
    v.initial_copy_source = !v.synced && (flags & 2);
    v.sending_copy = flags & 4;
    const bool secure = flags & 8, plain_users = flags & 16;
    v.state = (flags & 32) ? link_state::signing : link_state::awaiting_hello;
    v.fragment_acks_due = flags & 64;
    fragment_assembler assembler;
    // Whether the link stays open after `m`.
    std::function<bool(const wire::message&)> take = [&](const wire::message& m0) -> bool {
        const wire::message* m = &m0;
        const bool ok = link_refusal(v, *m).empty();
        const link_state before = v.state;
        if (!ok) return false;
        if (std::holds_alternative<wire::fragment_ack>(*m)) FUZZ_CHECK(v.fragment_acks_due);
        if (auto* f = std::get_if<wire::fragment>(&*m)) {
            FUZZ_CHECK(before == link_state::peer || before == link_state::receiving_copy);
            if (!assembler.add(*f, std::uint64_t{1} << 22).empty()) return false;
            if (!assembler.complete()) return true;
            const bytes whole = assembler.take();
            FUZZ_CHECK(whole.size() > min_frame_bytes);
            std::string err;
            auto inner = wire::decode(whole.data(), whole.size(), err);
            if (!inner) return false;
            FUZZ_CHECK(!std::holds_alternative<wire::fragment>(*inner) && !std::holds_alternative<wire::fragment_ack>(*inner));
            return take(*inner);
        }
        FUZZ_CHECK(before != link_state::signing);
        if (before == link_state::awaiting_hello) FUZZ_CHECK(std::holds_alternative<wire::hello>(*m));
        if (std::holds_alternative<wire::copy_rows>(*m) || std::holds_alternative<wire::copy_table>(*m) ||
            std::holds_alternative<wire::copy_end>(*m))
            FUZZ_CHECK(before == link_state::receiving_copy);
        if (auto* t = std::get_if<wire::txn>(&*m)) {
            FUZZ_CHECK(before == link_state::peer);
            check_record(t->record, secure, plain_users);
        }
        if (std::holds_alternative<wire::copy_start>(*m)) FUZZ_CHECK(before == link_state::peer && (v.synced || v.initial_copy_source));
        if (auto* x = std::get_if<wire::removed>(&*m)) FUZZ_CHECK(x->by == v.peer);
        // The transitions node_links.cpp makes.
        if (auto* h = std::get_if<wire::hello>(&*m)) {
            v.state = link_state::peer;
            v.peer = h->node_name;
        } else if (std::holds_alternative<wire::copy_start>(*m)) {
            v.state = link_state::receiving_copy;
            v.copy_tables = 0;
        } else if (std::holds_alternative<wire::copy_table>(*m)) {
            ++v.copy_tables;
        } else if (std::holds_alternative<wire::copy_end>(*m)) {
            v.state = link_state::peer;
            v.initial_copy_source = false;
            v.synced = true;
        }
        return true;
    };
    byte_reader r(data + 1, size - 1);
    for (int n = 0; n < 256 && r.ok() && r.remaining() > 0; ++n) {
        const std::uint64_t len = r.get_varint();
        if (!r.ok() || len > r.remaining()) break;
        const std::uint8_t* frame = r.get_raw(static_cast<std::size_t>(len));
        if (!frame && len > 0) break;
        std::string err;
        auto m = wire::decode(frame, static_cast<std::size_t>(len), err);
        if (!m) continue;
        if (!take(*m)) break;
    }
    return 0;
}
