// Which of this node's rows flow to a peer and which of a peer's rows this node takes: one
// rule, used by every path that moves data — the stream sender (node_sending.cpp), the copy
// sender (node_copy_sending.cpp), the receivers of streams and copies (node_receiving.cpp,
// node_copy_receiving.cpp) and the answers to forwarded reads (node_reads.cpp).
//
// By table, both directions:
//   - a table of the `system` database (hdbrepl_users, membership) flows where `system`
//     replicates (databases unset, "*", or listing it), and regardless of subscriptions;
//   - any other table flows only between nodes of one shard when `main` is sharded (a peer's
//     shard: its membership row, else what add_node or a route said), and only in the
//     directions the peer's explicit subscription gives (none: every table both ways).
// By row, sending only (a receiver cannot recompute where a row belongs):
//   - a table with a residency expression sends each row to the nodes the expression names
//     (a shard number or a list of node names; NULL: everywhere); one that cannot be
//     evaluated sends the row nowhere (fails closed);
//   - rows placed by their writer (repl_replicate_to) go to their nodes; under replicateTo,
//     unplaced rows go where rendezvous hashing over the membership places them now.
//
// Thread: the db thread, except where a member says otherwise.
#pragma once
#include "engine/placement_store.hpp"
#include "engine/system_tables.hpp"
#include "replication/node_config.hpp"
#include "replication/replication_store.hpp"
#include "replication/thread_check.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3_stmt;

namespace hdbrepl::ext::node_detail {

// An explicit subscription (add_node "subscriptions"): which tables go each way.
struct sub_rule {
    std::string database, table;
    bool publish = false, subscribe = false;
};
using sub_rules = std::vector<sub_rule>;

// Parses the stored subscriptions JSON; empty = replicate everything (automatic).
sub_rules parse_rules(const std::string& text);

// Whether `table` may flow in the given direction under `rules` (none: everything flows).
bool rules_allow(const sub_rules& rules, const std::string& table, bool publishing);

enum class flow { to_peer, from_peer };

// Where the placement of a copy's rows is read: the copy's own snapshot connection.
struct copy_placements {
    sqlite3* db = nullptr;
    std::unique_ptr<engine::system_store> sys;
    std::unique_ptr<engine::placement_store> placements;
};

class row_filter {
public:
    using members_fn = std::function<std::vector<std::string>()>; // placement members, self first

    // User thread, before the node's threads start.
    void configure(const std::string& self, const node_config& cfg);

    // Any thread (its own lock): a peer's explicit subscriptions; none: everything flows.
    void set_rules(const std::string& peer, const std::string& subscriptions_json);
    sub_rules rules_for(const std::string& peer) const;

    // A peer's shard as add_node or a route gave it, and as membership rows give them.
    void set_given_shard(const std::string& peer, int shard);
    void set_member_shards(const std::vector<engine::member_row>& members);
    int shard_of(const std::string& peer) const;
    bool shares_data_with(const std::string& peer) const { return !main_sharded_ || shard_of(peer) == own_shard_; }

    // By table: the rule for one peer and direction, taken once for a batch of records.
    struct table_gate {
        sub_rules rules;
        bool shares = true, system = true, publishing = true;
        bool passes_all() const { return rules.empty() && system && shares; }
        bool allows(const std::string& table) const;
        // `record` less the tables this gate stops; false (out untouched) when it stops none
        // (which spares decoding).
        bool drop_tables(const engine::bytes& record, engine::bytes& out) const;
    };
    table_gate gate(const std::string& peer, flow f) const;
    bool table_flows(const std::string& peer, const std::string& table, flow f) const { return gate(peer, f).allows(table); }
    // Whether `table`'s data is shared with `peer` at all (system, shards), subscriptions
    // aside: a copy still creates the tables a subscription leaves without rows.
    bool data_shared(const std::string& peer, const std::string& table) const;

    // By row, sending. Each trims log records (or a copy chunk) to what `peer` may hold.
    void keep_resident_rows(std::vector<engine::replication_store::log_record>& recs, const std::string& peer);
    void keep_placed_rows(std::vector<engine::replication_store::log_record>& recs, const std::string& peer, const members_fn& members);
    void keep_placed_copy_rows(copy_placements& cp, const engine::snapshot_reader::table& t, const std::string& peer,
                               std::vector<engine::snapshot_row>& rows, const members_fn& members);
    // Whether a table's residency places this row (all columns) on `peer`; true when the table
    // has none, false when it cannot be evaluated.
    bool resident_on(const std::string& table, const std::string& definition, const std::vector<engine::value>& row, const std::string& peer);

    // Finalizes the residency statements, before the db thread and its sandbox connection
    // (engine/residency_sandbox.hpp) end.
    void finalize_statements() { residency_of_definition_.clear(); }

    // The key column's index for a table definition carried by a record or a copy.
    std::size_t pk_of(const std::string& definition);

    // Any thread (set before the threads start, or atomic).
    bool replicates_system() const { return replicate_system_; }
    // Some rows of the cluster may live elsewhere: key lookups that miss are forwarded.
    bool rows_may_live_elsewhere(const std::string& definition) const {
        return replicate_to_ >= 0 || main_sharded_ || holds_part_ || definition.find("residency=") != std::string::npos;
    }
    // Rows placed per transaction were withheld from this node (a trimmed placed record
    // came): true the first time, when the caller persists it.
    bool note_holds_part() { return !holds_part_.exchange(true); }
    void set_holds_part() { holds_part_ = true; }

private:
    thread_check db_thread_; // the db-thread members assert it in debug builds
    struct residency_eval {
        sqlite3_stmt* stmt = nullptr; // SELECT (expr) FROM (SELECT ?1 AS col1, ...), in the residency sandbox
        std::string error;            // why it failed (logged once); "no residency": none
        ~residency_eval();
    };
    std::string self_;
    int own_shard_ = -1;
    int replicate_to_ = -1;
    bool replicate_system_ = true;
    bool main_sharded_ = false;
    std::atomic<bool> holds_part_{false};
    std::map<std::string, int> member_shards_, given_shards_;
    std::map<std::string, std::size_t> pk_of_definition_; // canonical definition -> key column
    std::map<std::string, std::unique_ptr<residency_eval>> residency_of_definition_;
    mutable std::mutex rules_m_;
    std::map<std::string, sub_rules> rules_; // peer name -> explicit subscriptions
};

} // namespace hdbrepl::ext::node_detail
