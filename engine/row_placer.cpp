// Placement of a transaction's rows at commit (see row_placer.hpp).
#include "engine/row_placer.hpp"

#include "engine/placement.hpp"
#include "engine/stmt_cache.hpp"
#include "engine/system_tables.hpp"
#include "engine/value.hpp"

#include <algorithm>

namespace hdbrepl::engine {

row_placer::row_placer(sqlite3* db, system_store& sys, std::string writer, placement_request request)
    : db_(db), sys_(sys), store_(sys, db), writer_(std::move(writer)), request_(std::move(request)) {}

bool row_placer::active(int& rc) {
    rc = SQLITE_OK;
    {
        // One look at both settings: this runs at every commit of the main schema. Two point
        // look-ups as scalar subqueries (a `key IN (...)` list would build an ephemeral table
        // at each run: ~36,000 instructions a commit, measured).
        auto sql_for = [](const std::string& meta) {
            return "SELECT (SELECT value FROM " + meta + " WHERE key = 'replicate_to'), EXISTS(SELECT 1 FROM " + meta + " WHERE key = 'placement')";
        };
        static const std::string main_sql = sql_for("\"main\".\"hdbrepl_meta\""); // the schema it always runs for
        cached_stmt s(sys_.cache(), sys_.schema() == "main" ? main_sql : sql_for(sys_.table("hdbrepl_meta")));
        if (!s) return false; // no meta table yet: nothing placed, nothing configured
        if ((rc = sqlite3_step(s.get())) != SQLITE_ROW) return false;
        rc = SQLITE_OK;
        if (sqlite3_column_type(s.get(), 0) != SQLITE_NULL) configured_ = static_cast<int>(sqlite3_column_int64(s.get(), 0));
        stored_ = sqlite3_column_int(s.get(), 1) != 0;
        store_.set_in_use(stored_);
    }
    if (request_.empty() && configured_ < 0 && !stored_) return false;
    if (request_.count >= 0 || configured_ >= 0) {
        std::vector<member_row> rows;
        std::set<std::string> removed;
        // Membership tables exist once a node ran here; without them the writer is alone.
        if (load_members(db_, sys_.schema(), rows) == SQLITE_OK && load_removals(db_, sys_.schema(), removed) == SQLITE_OK)
            for (auto& m : rows)
                if (!removed.count(m.name)) members_.push_back(std::move(m.name));
    }
    return true;
}

std::int32_t row_placer::intern(const std::vector<std::string>& nodes) {
    auto [it, inserted] = index_.emplace(nodes, static_cast<std::int32_t>(lists_.size()));
    if (inserted) lists_.push_back(nodes);
    for (const auto& n : nodes)
        if (n != writer_) receivers_.insert(n);
    return it->second;
}

std::int32_t row_placer::place(const std::string& table, change_op op, std::string_view key) {
    if (rc_ != SQLITE_OK || is_system_table(table)) return -1;
    const std::string pkey = normalized_key(key); // what rendezvous hashing reads
    value kv;
    byte_reader kr(reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
    if (!decode_value(kr, kv)) return -1; // cannot happen: the vtab encoded it
    std::optional<std::vector<std::string>> previous;
    if (stored_) {
        if (int rc = store_.get(table, kv, previous); rc != SQLITE_OK) { rc_ = rc; return -1; }
    }
    std::optional<placement> chosen;
    if (op == change_op::del) {
        // A delete goes where the row lives; when that is not known here, everywhere (a node
        // without the row only keeps a tombstone until the retention passes).
        if (!previous) return -1;
        chosen = placement{*previous};
    } else if (!request_.nodes.empty()) {
        // Rows never leave nodes here (there is no rebalancing): a list given for a row that
        // already lives somewhere adds to its nodes, so no holder keeps a stale version.
        auto nodes = request_.nodes;
        nodes.push_back(writer_);
        if (previous) nodes.insert(nodes.end(), previous->begin(), previous->end());
        chosen = make_placement(std::move(nodes));
    } else if (previous) {
        chosen = placement{*previous};
    } else {
        const int n = request_.count >= 0 ? request_.count : configured_;
        if (n >= 0) {
            std::size_t others = 0;
            for (const auto& m : members_) others += m != writer_ ? 1 : 0;
            if (others >= static_cast<std::size_t>(n))
                chosen = placement{place_row(as_byte_span(pkey), writer_, members_, n)};
        }
    }
    int rc = SQLITE_OK;
    if (op == change_op::del) {
        if (previous) rc = store_.erase(table, kv);
    } else if (chosen && (!previous || *previous != chosen->nodes)) {
        rc = store_.put(table, kv, chosen->nodes);
    }
    if (rc != SQLITE_OK) { rc_ = rc; return -1; }
    return chosen ? intern(chosen->nodes) : -1;
}

} // namespace hdbrepl::engine
