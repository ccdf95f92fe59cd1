// The membership as this node last acted on it: every node's own row (hdbrepl_members) and the
// removals (hdbrepl_removals), both replicated like any table (engine/system_tables.hpp).
// After each batch that may have touched them the db thread reads them again and asks what
// changed: removals new to this node (it drops them from hdb_nodes and stops dialing them),
// and whether the set of CAs members announce changed (the node reloads its trust before
// dialing them). Also the node list rows are placed over (engine/placement.hpp).
// Thread: the db thread (asserted in debug builds).
#pragma once
#include "engine/system_tables.hpp"
#include "replication/thread_check.hpp"

#include <set>
#include <string>
#include <vector>

namespace hdbrepl::ext::node_detail {

struct membership_change {
    bool changed = false;                  // anything differs from the last update (or forced)
    bool cas_changed = false;              // the set of member CAs differs
    std::vector<std::string> new_removals; // removals not acted on yet (all of them when forced)
};

class membership_view {
public:
    // The stored membership and removals, now. `force`: act on everything again (at start,
    // when every target is added afresh).
    membership_change update(const std::vector<engine::member_row>& members, const std::set<std::string>& removals, bool force) {
        owner_.assert_owner();
        membership_change c;
        if (!force && members == members_ && removals == removals_) return c;
        c.changed = true;
        std::set<std::string> before, after;
        for (const auto& m : members_) before.insert(m.ca);
        for (const auto& m : members) after.insert(m.ca);
        c.cas_changed = before != after;
        for (const auto& r : removals)
            if (force || !removals_.count(r)) c.new_removals.push_back(r);
        members_ = members;
        removals_ = removals;
        return c;
    }
    // A node added again (add_node) is no longer removed; one removed here is.
    void readmit(const std::string& name) {
        owner_.assert_owner();
        removals_.erase(name);
    }
    void note_removal(const std::string& name) {
        owner_.assert_owner();
        removals_.insert(name);
    }
    // The nodes rows are placed over: `self` first, then the members less removals.
    std::vector<std::string> placement_members(const std::string& self) const {
        owner_.assert_owner();
        std::vector<std::string> out{self};
        for (const auto& m : members_)
            if (!removals_.count(m.name) && m.name != self) out.push_back(m.name);
        return out;
    }

private:
    thread_check owner_;
    std::vector<engine::member_row> members_;
    std::set<std::string> removals_;
};

} // namespace hdbrepl::ext::node_detail
