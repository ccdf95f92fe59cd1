// The rule of replication/row_filter.hpp, as code. Thread: see the header.
#include "replication/row_filter.hpp"

#include "engine/json.hpp"
#include "engine/placement.hpp"
#include "engine/residency_sandbox.hpp"
#include "engine/row_store.hpp"
#include "engine/table_def.hpp"
#include "engine/txn_record.hpp"

#include <algorithm>
#include <cstdio>

namespace hdbrepl::ext::node_detail {

using namespace hdbrepl::engine;

sub_rules parse_rules(const std::string& text) {
    sub_rules out;
    auto v = json::parse_or_null(text);
    if (!v.is_array()) return out;
    for (auto& e : v.as_array()) {
        if (!e.is_object()) continue;
        auto& o = e.as_object();
        sub_rule r;
        r.database = json::get_string(o, "database");
        if (r.database.empty()) r.database = json::get_string(o, "schema");
        r.table = json::get_string(o, "table");
        if (auto* p = o.if_contains("publish")) r.publish = p->is_bool() && p->as_bool();
        if (auto* p = o.if_contains("subscribe")) r.subscribe = p->is_bool() && p->as_bool();
        out.push_back(std::move(r));
    }
    return out;
}

bool rules_allow(const sub_rules& rules, const std::string& table, bool publishing) {
    if (rules.empty()) return true;
    for (const auto& r : rules)
        if ((r.table == table || r.table == "*" || r.table.empty()) && (r.database.empty() || r.database == "main" || r.database == "data"))
            return publishing ? r.publish : r.subscribe;
    return false;
}

row_filter::residency_eval::~residency_eval() { sqlite3_finalize(stmt); }

void row_filter::configure(const std::string& self, const node_config& cfg) {
    self_ = self;
    own_shard_ = cfg.shard;
    replicate_to_ = cfg.replicate_to;
    replicate_system_ = cfg.all_databases;
    for (const auto& d : cfg.databases) {
        replicate_system_ = replicate_system_ || d.name == "system";
        main_sharded_ = main_sharded_ || (d.name == "main" && d.sharded);
    }
    for (const auto& r : cfg.routes)
        if (r.shard >= 0) given_shards_[r.hostname] = r.shard;
}

void row_filter::set_rules(const std::string& peer, const std::string& subscriptions_json) {
    std::lock_guard lock(rules_m_);
    if (subscriptions_json.empty()) rules_.erase(peer);
    else rules_[peer] = parse_rules(subscriptions_json);
}

sub_rules row_filter::rules_for(const std::string& peer) const {
    std::lock_guard lock(rules_m_);
    auto it = rules_.find(peer);
    return it == rules_.end() ? sub_rules{} : it->second;
}

void row_filter::set_given_shard(const std::string& peer, int shard) {
    db_thread_.assert_owner();
    if (shard >= 0) given_shards_[peer] = shard;
}

void row_filter::set_member_shards(const std::vector<member_row>& members) {
    db_thread_.assert_owner();
    member_shards_.clear();
    for (const auto& m : members) member_shards_[m.name] = m.shard;
}

int row_filter::shard_of(const std::string& peer) const {
    db_thread_.assert_owner();
    if (auto it = member_shards_.find(peer); it != member_shards_.end()) return it->second;
    if (auto it = given_shards_.find(peer); it != given_shards_.end()) return it->second;
    return -1;
}

bool row_filter::data_shared(const std::string& peer, const std::string& table) const {
    return is_system_table(table) ? replicate_system_ : shares_data_with(peer);
}

row_filter::table_gate row_filter::gate(const std::string& peer, flow f) const {
    table_gate g;
    g.rules = rules_for(peer);
    g.shares = shares_data_with(peer);
    g.system = replicate_system_;
    g.publishing = f == flow::to_peer;
    return g;
}

bool row_filter::table_gate::allows(const std::string& table) const {
    return is_system_table(table) ? system : shares && rules_allow(rules, table, publishing);
}

bool row_filter::table_gate::drop_tables(const bytes& record, bytes& out) const {
    if (passes_all()) return false;
    out = filter_record(record.data(), record.size(), [&](const std::string& t) { return allows(t); });
    return true;
}

std::size_t row_filter::pk_of(const std::string& definition) {
    db_thread_.assert_owner();
    auto it = pk_of_definition_.find(definition);
    if (it == pk_of_definition_.end()) {
        std::string err;
        auto def = parse_table_def(std::string_view(definition), err);
        it = pk_of_definition_.emplace(definition, def ? def->pk : 0).first;
    }
    return it->second;
}

// Fails closed: a row whose expression cannot be prepared (outside the safe subset,
// engine/residency_sandbox.hpp) or evaluated (an error, the step limit, a result that is
// neither a shard nor a node list) goes to no peer; the nodes that hold it keep it. NULL is
// the one "everywhere". Logged once per definition.
bool row_filter::resident_on(const std::string& table, const std::string& definition, const std::vector<value>& row, const std::string& peer) {
    db_thread_.assert_owner();
    static const std::string no_residency = "no residency";
    auto log = [&](const std::string& text) { std::fprintf(stderr, "hdbrepl[%s]: table %s: %s\n", self_.c_str(), table.c_str(), text.c_str()); };
    auto& ev = residency_of_definition_[definition];
    if (!ev) {
        ev = std::make_unique<residency_eval>();
        std::string err;
        auto def = parse_table_def(std::string_view(definition), err);
        if (def && def->residency.empty()) ev->error = no_residency;
        else if (!def || prepare_residency(*def, &ev->stmt, err) != SQLITE_OK) {
            ev->error = err.empty() ? "cannot be prepared" : err;
            log("residency expression refused (" + ev->error + "); its rows go to no other node");
        }
    }
    if (!ev->stmt) return ev->error == no_residency;
    std::string why;
    bool keep = false;
    for (std::size_t i = 0; i < row.size() && why.empty(); ++i)
        if (bind_arg(ev->stmt, static_cast<int>(i + 1), row[i]) != SQLITE_OK) why = "a value of the row cannot be bound (too large?)";
    if (why.empty() && step_residency(ev->stmt, why) == SQLITE_ROW) {
        int type = sqlite3_column_type(ev->stmt, 0);
        if (type == SQLITE_NULL) {
            keep = true;
        } else {
            const auto* text = sqlite3_column_text(ev->stmt, 0);
            auto where = parse_residency(text ? reinterpret_cast<const char*>(text) : "", type == SQLITE_INTEGER, sqlite3_column_int64(ev->stmt, 0));
            if (auto* shard = std::get_if<residency_shard>(&where)) keep = shard_of(peer) == *shard;
            else if (auto* nodes = std::get_if<residency_nodes>(&where)) keep = std::find(nodes->begin(), nodes->end(), peer) != nodes->end();
            else why = std::get<residency_error>(where);
        }
    }
    sqlite3_reset(ev->stmt);
    sqlite3_clear_bindings(ev->stmt);
    if (!why.empty() && ev->error.empty()) { // the first failure of this definition
        ev->error = why;
        log("residency expression failed for a row (" + why + "); such rows go to no other node");
    }
    return keep;
}

void row_filter::keep_resident_rows(std::vector<replication_store::log_record>& recs, const std::string& peer) {
    db_thread_.assert_owner();
    static const std::string marker = "residency=";
    for (auto& r : recs) {
        // Most records carry no residency table: a byte search spares decoding them.
        if (r.body.empty() || std::search(r.body.begin(), r.body.end(), marker.begin(), marker.end()) == r.body.end()) continue;
        r.body = filter_changes(r.body.data(), r.body.size(), [&](const record_table& t, const change& c) {
            if (c.op != change_op::put || t.definition.find(marker) == std::string::npos) return true;
            return resident_on(t.name, t.definition, c.values, peer);
        });
    }
}

void row_filter::keep_placed_rows(std::vector<replication_store::log_record>& recs, const std::string& peer, const members_fn& members_of) {
    db_thread_.assert_owner();
    std::vector<std::string> members;
    for (auto& r : recs) {
        if (r.body.empty()) continue;
        // Rows placed by their writer (row_placer.hpp) go to their nodes; the others, under
        // replicateTo, to the nodes the membership gives them now.
        const bool placed = record_is_placed(r.body.data(), r.body.size());
        if (!placed && replicate_to_ < 0) continue;
        hlc_t hlc = 0;
        std::string origin;
        if (!peek_record_head(r.body.data(), r.body.size(), hlc, origin)) continue;
        if (members.empty()) members = members_of();
        std::vector<std::vector<std::string>> lists;
        if (placed) {
            std::string err;
            if (auto rec = decode_record(r.body.data(), r.body.size(), err)) lists = std::move(rec->placements);
        }
        // Where every row is everywhere by configuration, a receiver with none of a placed
        // record's rows still gets its header (a trimmed record without changes): it then
        // knows the origin wrote rows it does not hold, and forwards lookups that miss.
        const bool tell_empty = placed && replicate_to_ < 0;
        r.body = filter_changes(r.body.data(), r.body.size(), [&](const record_table& t, const change& c) {
            if (c.placement >= 0) {
                const auto& nodes = lists.at(static_cast<std::size_t>(c.placement));
                return std::binary_search(nodes.begin(), nodes.end(), peer);
            }
            if (replicate_to_ < 0) return true;
            // An unplaced delete goes everywhere: its row may have been written by another
            // node, whose placement this one cannot recompute.
            if (is_system_table(t.name) || c.op != change_op::put || c.values.empty()) return true;
            if (t.definition.find("residency=") != std::string::npos) return true; // residency decides for those
            const std::size_t pk = pk_of(t.definition);
            const value& key = c.values[std::min(pk, c.values.size() - 1)];
            auto nodes = place_row(key, origin, members, replicate_to_);
            return std::binary_search(nodes.begin(), nodes.end(), peer);
        }, tell_empty);
    }
}

void row_filter::keep_placed_copy_rows(copy_placements& cp, const snapshot_reader::table& t, const std::string& peer,
                                       std::vector<snapshot_row>& rows, const members_fn& members_of) {
    db_thread_.assert_owner();
    if (is_system_table(t.name)) return;
    if (t.definition.find("residency=") != std::string::npos) {
        // Residency decides for such tables, in copies as in streams (tombstones carry only
        // a key, so they go everywhere, as deletes do).
        std::erase_if(rows, [&](const snapshot_row& r) { return !r.deleted && !resident_on(t.name, t.definition, r.values, peer); });
        return;
    }
    if (!cp.sys) {
        cp.sys = std::make_unique<system_store>(cp.db, "main");
        cp.placements = std::make_unique<placement_store>(*cp.sys, cp.db);
    }
    bool stored = false;
    cp.placements->in_use(stored);
    if (!stored && replicate_to_ < 0) return;
    const auto members = replicate_to_ >= 0 ? members_of() : std::vector<std::string>{};
    const std::size_t pk = pk_of(t.definition);
    std::erase_if(rows, [&](const snapshot_row& r) {
        // Tombstones go everywhere, as unplaced deletes do (a deleted row's placement is gone).
        if (r.values.empty() || r.deleted) return false;
        const value& key = r.values[std::min(pk, r.values.size() - 1)];
        std::optional<std::vector<std::string>> nodes;
        if (stored && cp.placements->get(t.name, key, nodes) != SQLITE_OK)
            return false; // unreadable: send it (a copy merges; an extra row is harmless)
        if (!nodes && replicate_to_ >= 0) nodes = place_row(key, r.origin, members, replicate_to_);
        return nodes && !std::binary_search(nodes->begin(), nodes->end(), peer);
    });
}

} // namespace hdbrepl::ext::node_detail
