// The table of replication/link_entitlement.hpp, as code.
#include "replication/link_entitlement.hpp"

#include <type_traits>
#include <variant>

namespace hdbrepl::ext {

namespace w = engine::wire;

const char* link_state_name(link_state s) {
    switch (s) {
    case link_state::awaiting_hello: return "awaiting hello";
    case link_state::signing: return "certificate exchange";
    case link_state::peer: return "streaming";
    case link_state::receiving_copy: return "receiving a copy";
    }
    return "?";
}

std::string link_refusal(const link_view& v, const w::message& m) {
    const std::string what = std::string(w::name_of(m)) + " in state '" + link_state_name(v.state) + "'";
    if (v.state == link_state::signing) return what + ": a certificate exchange speaks no peer protocol";
    if (v.state == link_state::awaiting_hello) return std::holds_alternative<w::hello>(m) ? "" : what + ": expected hello";
    const bool copying = v.state == link_state::receiving_copy;
    return std::visit(
        [&](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, w::hello>) return what + ": second hello";
            else if constexpr (std::is_same_v<T, w::txn>) return copying ? what + ": a sender streams only after its copy_end" : "";
            else if constexpr (std::is_same_v<T, w::copy_start>) {
                if (copying) return what + ": a copy is already under way";
                if (v.initial_copy_source || v.synced) return "";
                return what + ": this node asked that peer for no copy";
            } else if constexpr (std::is_same_v<T, w::copy_table>) {
                if (!copying) return what + ": not inside a copy";
                return v.copy_tables >= max_copy_tables ? what + ": too many tables" : "";
            } else if constexpr (std::is_same_v<T, w::copy_rows> || std::is_same_v<T, w::copy_end>) {
                return copying ? "" : what + ": not inside a copy";
            } else if constexpr (std::is_same_v<T, w::copy_ack>) {
                return v.sending_copy || v.copy_acks_due ? "" : what + ": this node is sending that peer no copy";
            } else if constexpr (std::is_same_v<T, w::fragment_ack>) {
                return v.fragment_acks_due ? "" : what + ": this node is sending that peer no fragmented message";
            } else if constexpr (std::is_same_v<T, w::removed>) {
                return x.by == v.peer ? "" : what + ": names '" + x.by + "', but only the node that removed us may say so";
            } else {
                // subscribe, ack, error, read_request, read_reply, copy_request: the sending
                // direction and reads, in either state after hello; and fragment, whose
                // message is checked itself once assembled.
                return "";
            }
        },
        m);
}

link_state link_state_after(link_state s, const w::message& m) {
    if (s == link_state::awaiting_hello && std::holds_alternative<w::hello>(m)) return link_state::peer;
    if (s == link_state::peer && std::holds_alternative<w::copy_start>(m)) return link_state::receiving_copy;
    if (s == link_state::receiving_copy && std::holds_alternative<w::copy_end>(m)) return link_state::peer;
    return s;
}

} // namespace hdbrepl::ext
