// The rule of replication/record_entitlement.hpp.
#include "replication/record_entitlement.hpp"

#include "engine/system_tables.hpp"
#include "engine/txn_record.hpp"

#include <algorithm>

namespace hdbrepl::ext {

using namespace hdbrepl::engine;

namespace {

std::string text_of(const std::vector<value>& values, std::size_t i) {
    return i < values.size() && values[i].type == value_type::text ? values[i].s : std::string();
}

bool empty_value(const std::vector<value>& values, std::size_t i) {
    return i >= values.size() || values[i].type == value_type::null || (values[i].type == value_type::text && values[i].s.empty());
}

bool is_ddl(change_op op) { return op == change_op::create_table || op == change_op::drop_table || op == change_op::rename_table; }

} // namespace

record_verdict entitled_changes(const bytes& record, bool secure, const std::string& self, bool plain_users) {
    record_verdict out;
    // Cheap first look: most records touch no hdbrepl table at all.
    static const std::string prefix = "hdbrepl_";
    if (std::search(record.begin(), record.end(), prefix.begin(), prefix.end()) == record.end()) return out;
    std::string err;
    auto rec = decode_record(record.data(), record.size(), err);
    if (!rec) return out;
    auto refuse = [&](const std::string& why) {
        if (out.refused++ == 0) out.reason = why;
        return false;
    };
    bool altered = false;
    auto keep = [&](const record_table& t, change& c) {
        if (!is_system_table(t.name)) return true;
        if (is_ddl(c.op)) return refuse(std::string("DDL on ") + t.name + " (hdbrepl's own tables never change shape)");
        if (secure) return true;
        const std::string key = text_of(c.values, 0);
        if (t.name == "hdbrepl_members") {
            if (key != rec->origin) return refuse("a membership row of '" + key + "' from origin '" + rec->origin + "' over the plain port");
            if (c.op == change_op::put && !empty_value(c.values, 3)) {
                // The row is the origin's to write, but a CA is trusted only from an
                // authenticated link: kept without it.
                c.values[3] = value::null();
                altered = true;
            }
            return true;
        }
        if (t.name == "hdbrepl_removals") {
            if (c.op != change_op::put) return refuse("taking back a removal over the plain port");
            if (c.values.empty() || c.values[0].type != value_type::text) return refuse("a removal that names no node");
            if (text_of(c.values, 1) != rec->origin)
                return refuse("a removal of '" + key + "' made by another node than its origin '" + rec->origin + "'");
            if (key == self) return refuse("a removal of this node over the plain port");
            return true;
        }
        if (t.name == "hdbrepl_users" && plain_users) return true;
        return refuse("a change to " + t.name + " over the plain port of a node that serves the secure port");
    };
    std::vector<change> kept;
    kept.reserve(rec->changes.size());
    for (auto& c : rec->changes) {
        if (c.table >= rec->tables.size()) return {}; // the applier refuses it
        if (keep(rec->tables[c.table], c)) kept.push_back(std::move(c));
    }
    if (!out.refused && !altered) return out;
    out.rewritten = true;
    rec->changes = std::move(kept);
    // Changes left out: not the origin's whole transaction any more, never relayed as one. A
    // dropped CA alone keeps every change, so the record still relays (membership gossip
    // through plain-port chains), without the CA.
    if (out.refused) rec->trimmed = true;
    out.record = rec->changes.empty() ? bytes{} : encode_record(*rec);
    return out;
}

} // namespace hdbrepl::ext
