// A replication node: peer links, the protocol state machines, and the node's database
// thread (see node.hpp for the threading rules and docs/protocol.md for the messages).
//
// How data flows:
//   local commit -> commit_signal -> io: pump every subscribed peer
//   pump(peer)   -> db: read the log after the peer's position, filtered by its
//                   subscription and bounded by its flow-control window -> io: send TXN
//   TXN received -> apply queue -> db: apply many records in one SQLite transaction,
//                   in origin order, raising per-origin progress in the same transaction
//                -> io: ACK to the sender, pump (the applied records are in our log too,
//                   so peers that do not hear from their origin directly get them from us)
//   ACK          -> io: free the window, record confirmations, pump
// A node whose database was never synced asks its first peer for a copy (COPY_*), and
// holds its other subscriptions until the copy is in.
#include "extension/node.hpp"

#include "engine/apply.hpp"
#include "engine/commit_signal.hpp"
#include "engine/copy_resume.hpp"
#include "engine/replication_store.hpp"
#include "engine/schema.hpp"
#include "engine/placement.hpp"
#include "engine/placement_store.hpp"
#include "engine/system_tables.hpp"
#include "engine/table_def.hpp"
#include "engine/txn_record.hpp"
#include "engine/wire.hpp"
#include "extension/entry.hpp"
#include "extension/json.hpp"
#include "extension/node_security.hpp"
#include "net/credentials.hpp"
#include "net/transport.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>
#include <random>
#include <set>

namespace hdbrepl::ext {
namespace {

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;
using clock_ms = std::chrono::milliseconds;

std::uint64_t now_ms() { return wall_clock_ms(); }

void log_line(const std::string& node, const std::string& text) {
    // One line per event on stderr; the node's name makes interleaved output readable.
    std::fprintf(stderr, "hdbrepl[%s]: %s\n", node.c_str(), text.c_str());
}

// Errors of this node's storage rather than of the data: wait and retry, never refuse.
bool is_resource_error(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_NOMEM;
}

std::string http_date(std::uint64_t ms) {
    if (ms == 0) return {};
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

// ---- the database thread ----------------------------------------------------------------

class db_thread {
public:
    db_thread() : thread_([this] { run(); }) {}
    ~db_thread() { stop_and_join(); }
    // any thread
    void post(std::function<void()> job) {
        {
            std::lock_guard lock(m_);
            if (stopping_) return;
            jobs_.push_back(std::move(job));
        }
        cv_.notify_one();
    }
    void stop_and_join() {
        {
            std::lock_guard lock(m_);
            stopping_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }
    bool on_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

private:
    void run() {
        // Named so that per-thread CPU shows in top -H and in the replication bench.
        pthread_setname_np(pthread_self(), "hdbrepl-db");
        for (;;) {
            std::function<void()> job;
            {
                std::unique_lock lock(m_);
                cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
                if (stopping_) return; // unfinished work is left for resync
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
            try {
                job();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "hdbrepl: database job failed: %s\n", e.what());
            }
        }
    }
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

// ---- peers ------------------------------------------------------------------------------

struct inflight {
    std::int64_t seq;
    std::size_t size;
    std::string origin;
    hlc_t hlc;
};

// An item received from a peer, waiting for the database thread.
struct received {
    enum kind { txn, copy_begin, copy_rows, copy_end } what = txn;
    std::string peer;
    std::uint64_t seq = 0;
    bytes record;
    w::copy_rows rows;
    w::copy_end end; // copy_begin: its progress is the copy_start's
    std::vector<w::copy_table> tables;
    std::uint64_t link_id = 0;
};

struct copy_state; // sender side of an initial copy, lives on the db thread

// An explicit subscription (add_node "subscriptions"): which tables go each way.
struct sub_rule {
    std::string database, table;
    bool publish = false, subscribe = false;
};
using sub_rules = std::vector<sub_rule>;

// Parses the stored subscriptions JSON; empty = replicate everything (automatic).
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

// Whether `table` may flow in the given direction under `rules` (none: everything flows).
bool rules_allow(const sub_rules& rules, const std::string& table, bool publishing) {
    if (rules.empty()) return true;
    for (const auto& r : rules)
        if ((r.table == table || r.table == "*" || r.table.empty()) && (r.database.empty() || r.database == "main" || r.database == "data"))
            return publishing ? r.publish : r.subscribe;
    return false;
}

struct peer {
    std::string name;
    std::string url;
    net::link_ptr link;
    std::uint64_t link_id = 0;
    std::string state = "connecting";
    std::string last_error;
    std::uint64_t down_since = 0; // ms since the link was lost (0: connected or never lost)
    double latency = -1;
    // receiving
    bool copying = false;
    std::uint64_t copy_total = 0, copy_done = 0;
    std::vector<w::copy_table> copy_tables;
    std::uint64_t copy_chunks = 0;
    // sending
    bool subscribed = false;
    replication_store::filter filter;
    std::int64_t send_pos = 0;
    std::uint64_t send_generation = 0; // bumped when the position is reset: stale reads are dropped
    bool reading = false;
    bool pump_again = false; // a wake-up came while a read ran: read again when it ends
    std::deque<inflight> inflight_q;
    std::size_t inflight_bytes = 0;
    hlc_t confirmed_own = 0;
    progress_map known_progress; // what this peer is known to have, per origin (for pruning)
    std::shared_ptr<copy_state> sending_copy;
    std::uint64_t copy_chunks_sent = 0, copy_chunks_acked = 0;
    bool copy_reading = false, copy_done_reading = false;
    // A copy sent because the peer fell behind the retained log (cluster_status shows it).
    bool full_resync = false;
    std::uint64_t full_resyncs = 0, last_full_resync = 0;
    // times (ms) and versions for cluster_status
    std::uint64_t last_commit_confirmed = 0, last_received_local = 0, last_send = 0;
    hlc_t last_received_remote = 0;
};

// A link before its HELLO names the peer.
struct link_info {
    net::link_ptr link;
    std::uint64_t id = 0;
    std::string target; // "host:port" we dialed, "" for inbound
    bool inbound = false;
    bool hello_sent = false;
    bool copy_source = false; // we asked this link for an initial copy
    std::uint64_t copy_rows_before = 0; // rows already here when we asked it to resume one
    std::string peer;         // set after HELLO
    bool sign = false;        // an inbound certificate exchange (/hdbrepl/sign), not replication
    bool sign_requested = false; // its one request arrived (more are ignored)
    std::string claimed_name; // ?node= of an inbound request
};

// The value of `key` in the query of an HTTP target ("/hdbrepl?node=a" -> "a").
std::string query_param(const std::string& target, const std::string& key) {
    auto q = target.find('?');
    if (q == std::string::npos) return "";
    std::string rest = target.substr(q + 1);
    std::size_t pos = 0;
    while (pos <= rest.size()) {
        auto amp = rest.find('&', pos);
        std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
    }
    return "";
}

std::string target_path(const std::string& target) { return target.substr(0, target.find('?')); }

// A node url as hdb_nodes and membership rows store it: "ws://host:port", "wss://[v6]:port".
// scheme is "" and port 0 when absent.
struct node_url {
    std::string scheme, host;
    int port = 0;
};
node_url split_node_url(const std::string& url) {
    node_url u;
    auto pos = url.find("://");
    std::string rest = pos == std::string::npos ? url : url.substr(pos + 3);
    if (pos != std::string::npos) u.scheme = url.substr(0, pos);
    auto colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (!u.host.empty() && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
    if (colon != std::string::npos) u.port = std::atoi(rest.c_str() + colon + 1);
    return u;
}

std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "no name" : out;
}

// A refusal that adding the node again will not cure: bad certificate or credentials.
bool is_refusal(const std::string& error) {
    return error.rfind("TLS: server certificate", 0) == 0 || error.rfind("handshake refused: HTTP 4", 0) == 0;
}

struct target {
    std::string host;
    int port = 0;
    std::string scheme;
    std::int64_t start_time_ms = -1;
    int backoff_ms = 0;
    bool dialing = false;
    std::shared_ptr<net::timer> retry;
    std::string peer_name; // learned from HELLO
    bool verify_tls = true; // add_node verify_tls (false only until a certificate exchange)
    std::string last_error; // of the last dial, for cluster_status before any HELLO
    std::uint64_t down_since = 0; // ms of the first failed dial in a row (0: none)
    // add_node waits for the first dial of a wss target: refusals become its SQL error.
    std::vector<std::function<void(const std::string&)>> first_result;
};

struct copy_state {
    sqlite3* db = nullptr;
    std::unique_ptr<snapshot_reader> reader;
    // Stored row placements, read in the snapshot's transaction (copies carry a row only to
    // the nodes it lives on, as streams do).
    std::unique_ptr<system_store> sys;
    std::unique_ptr<placement_store> placements;
    std::uint64_t rows_sent = 0;
    bool resumed = false;
    ~copy_state() {
        reader.reset();
        placements.reset();
        sys.reset();
        if (db) sqlite3_close_v2(db);
    }
};

// ---- the node ---------------------------------------------------------------------------

class node_impl final : public node, public std::enable_shared_from_this<node_impl> {
public:
    node_impl(std::shared_ptr<net::io_runtime> io, std::string path, node_config cfg, const sqlite3_api_routines* api)
        : io_(std::move(io)), path_(std::move(path)), cfg_(std::move(cfg)), api_(api) {}

    ~node_impl() override { stop(); }

    const node_config& config() const override { return cfg_; }
    const std::string& path() const override { return path_; }

    // user thread: opens the node's connections and starts listening and dialing.
    bool start(std::string& error);
    void stop() override;

    std::string cluster_status_json() override;
    std::string set_node(const std::string& operation_json, std::string& reply_json) override;
    std::string remove_node(const std::string& operation_json, std::string& reply_json) override;
    std::string search_nodes_json() override;
    int wait_confirmed(hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only) override;
    std::string reload_security() override;
    sql::forwarded_read forward_read(const std::string& table, const std::string& definition, const std::string& key_column,
                                     const value& key) override;

private:
    // Forwarded reads under way (io thread): asked of every connected peer at once; the
    // first that has the row answers the caller (the nearest, in effect).
    struct pending_read {
        std::shared_ptr<std::promise<sql::forwarded_read>> done;
        std::set<std::string> waiting; // peers not answered yet
        std::set<std::string> unreachable; // known nodes we could not ask: "absent" is unsure
        std::shared_ptr<net::timer> timer;
    };
    std::map<std::uint64_t, pending_read> reads_;
    std::uint64_t next_read_id_ = 0;
    void finish_read(std::uint64_t id, sql::forwarded_read result);
    void answer_read(peer& p, w::read_request&& q); // io -> db -> io
    // -- io thread --
    void on_link_open(const net::link_ptr& l, const std::string& target_key, bool inbound);
    void on_message(std::uint64_t link_id, std::vector<std::uint8_t>&& data);
    void on_link_closed(std::uint64_t link_id, const std::string& reason);
    void handle(link_info& li, w::message&& m);
    void on_hello(link_info& li, w::hello&& h);
    void send(peer& p, const w::message& m);
    void send_link(const net::link_ptr& l, const w::message& m);
    w::subscription my_subscription(const std::string& peer_name, const link_info* li);
    void resubscribe_all();
    // A never-synced node with no copy under way asks a connected peer for one.
    void ensure_copy_source();
    // The start time configured for the node at the other end of `li` (route startTime or
    // add_node start_time), matched by the target dialed or by the peer's address; -1: none.
    std::int64_t start_time_for(const link_info& li) const {
        if (!li.target.empty())
            if (auto it = targets_.find(li.target); it != targets_.end()) return it->second.start_time_ms;
        if (li.link)
            for (const auto& [key, t] : targets_)
                if (t.host == li.link->remote_address() || (!li.peer.empty() && t.peer_name == li.peer)) return t.start_time_ms;
        return -1;
    }
    // The same limits for accepted and dialed links.
    net::link_options link_opts() const {
        net::link_options opts;
        opts.max_message_bytes = static_cast<std::size_t>(cfg_.max_frame_bytes);
        // Room for one message of the largest size behind a full flow-control window.
        opts.max_queued_bytes = static_cast<std::size_t>(cfg_.max_frame_bytes + cfg_.max_bytes_in_flight);
        opts.ping_interval = clock_ms(cfg_.ping_interval_ms);
        opts.ping_timeout = clock_ms(cfg_.ping_timeout_ms);
        return opts;
    }
    // Where other nodes reach us: the secure port when we serve it.
    std::string self_url() const {
        return std::string(cfg_.serve_secure ? "wss://" : "ws://") + cfg_.hostname + ":" + std::to_string(cfg_.serve_secure ? cfg_.secure_port : cfg_.port);
    }
    void pump(const std::string& name);
    void pump_all();
    // `behind_log`: the peer needs what our log no longer holds (a full resync).
    void start_copy_to(const std::string& name, bool behind_log = false, const std::optional<w::copy_resume>& resume = std::nullopt);
    void copy_pump(const std::string& name);
    void dial(const std::string& key);
    void schedule_redial(const std::string& key);
    void add_target(const std::string& host, int port, const std::string& scheme, std::int64_t start_time_ms, bool verify_tls = true);
    bool accept_ip(const std::string& ip);
    // The secure port's accept filter: who may open a replication link or a certificate exchange.
    net::accept_decision check_secure(const net::peer_check& pc);
    void on_sign_request(link_info& li, std::vector<std::uint8_t>&& data);
    // user thread: the client side of the certificate exchange with host:port; "" or why not.
    std::string exchange_certificates(const std::string& host, int port, bool verify_tls, std::string authorization);
    // user thread: waits for the first dial of a target; "" when it connected.
    std::string first_dial_result(const std::string& key, std::chrono::milliseconds timeout);
    void apply_security(security_snapshot snap);
    peer* find_peer(const std::string& name) {
        auto it = peers_.find(name);
        return it == peers_.end() ? nullptr : &it->second;
    }
    link_info* find_link(std::uint64_t id) {
        auto it = links_.find(id);
        return it == links_.end() ? nullptr : &it->second;
    }
    void update_status();
    void notify_confirmations();

    void schedule_prune();
    // -- db thread --
    void prune_log(const std::map<std::string, progress_map>& known);
    // Initial copies into empty tables build their secondary indexes at the end.
    bool table_empty(const std::string& table);
    void defer_indexes(const std::string& table);
    int restore_deferred_indexes(std::string& err);
    std::set<std::string> deferred_checked_;
    void drain_received();
    // A subscriber wants changes our log no longer (or never) held: it needs a copy instead.
    // Origins we hold only part of cannot be helped by a copy from us (it claims none of
    // them): the subscriber waits for those origins themselves instead.
    bool behind_log_floor(const replication_store::filter& f) const {
        std::set<std::string> partial;
        bool partial_loaded = false;
        for (const auto& [origin, floor] : floors_) {
            if (floor <= 0 || !f.wants(origin, floor)) continue;
            if (!partial_loaded) {
                wstore_->system().load_partial_origins(partial);
                partial_loaded = true;
            }
            if (!partial.count(origin)) return true;
        }
        return false;
    }
    // Users changed by a replicated record or another process reach the secure port's filter.
    void refresh_users();
    // Membership (gossip, engine/system_tables.hpp): our own row, and what replicated rows
    // of others and removals mean for our targets and trust.
    void update_own_member(bool fresh_version = false);
    void refresh_membership(bool force_targets);
    // io thread: the effect of a removal (ours or replicated): stop dialing, refuse, tell it.
    void forget_node(const std::string& name);
    void add_member_target(const member_row& m);
    // Puts items[i..] back at the front of the queue and drains again after `delay`.
    void requeue_and_retry(std::vector<received>& items, std::size_t& i, clock_ms delay);
    // Intake paused by a full disk or quota (db thread writes; the status reads a copy).
    std::string intake_paused_;
    std::int64_t intake_retry_ms_ = 0;
    void pause_intake(const std::string& why, std::vector<received>& items, std::size_t& i);
    void intake_ok();
    void set_intake_paused(const std::string& why);
    std::string intake_status_; // io thread
    void apply_batch(std::vector<received>& items, std::size_t& i);
    bool open_connection(sqlite3** out, std::string& error);

    // -- any thread --
    void enqueue(received&& r);
    template <class F> void on_io(F&& f);
    template <class F> void on_db(F&& f);

    std::shared_ptr<net::io_runtime> io_;
    std::string path_;
    node_config cfg_;
    const sqlite3_api_routines* api_;
    std::string name_;
    std::atomic<bool> stopped_{false};
    std::unique_ptr<db_thread> db_;
    std::uint64_t commit_sub_ = 0;

    // db thread state
    sqlite3* wdb_ = nullptr; // applies
    sqlite3* rdb_ = nullptr; // reads the log
    std::unique_ptr<applier> applier_;
    std::unique_ptr<replication_store> wstore_, rstore_;
    std::unique_ptr<node_security> security_;
    std::map<std::string, user_row> users_seen_; // the users the io thread knows, to notice replicated changes
    std::vector<member_row> members_seen_;         // membership as last given to the io thread
    std::set<std::string> removals_seen_;
    // Static shards (issue 5): with `main` listed as sharded, its data flows only between
    // nodes of the same shard (system tables flow everywhere). A peer's shard is what its
    // membership row says, else what add_node / a route said. Db thread.
    bool main_sharded_ = false;
    // Some rows of the cluster live elsewhere although every table replicates everywhere:
    // rows placed per transaction (repl_replicate_to), seen as trimmed records. Key lookups
    // that miss are then forwarded. Set on the db thread, read by users' threads.
    std::atomic<bool> holds_part_{false};
    std::map<std::string, int> member_shards_, given_shards_;
    int shard_of(const std::string& peer) const {
        if (auto it = member_shards_.find(peer); it != member_shards_.end()) return it->second;
        if (auto it = given_shards_.find(peer); it != given_shards_.end()) return it->second;
        return -1;
    }
    bool shares_data_with(const std::string& peer) const { return !main_sharded_ || shard_of(peer) == cfg_.shard; }
    // replicateTo (issue 5): of each record for `peer`, only the rows placed on it (rendezvous
    // hashing of the key over the membership, engine/placement.hpp). Db thread.
    void keep_placed_rows(std::vector<replication_store::log_record>& recs, const std::string& peer);
    // The same for a chunk of an initial copy: rows with a stored placement go only to their
    // nodes; under replicateTo, unplaced rows go where the membership places them now.
    void keep_placed_copy_rows(copy_state& cs, const snapshot_reader::table& t, const std::string& peer, std::vector<snapshot_row>& rows);
    std::vector<std::string> placement_members() const {
        std::vector<std::string> members{name_};
        for (const auto& m : members_seen_)
            if (!removals_seen_.count(m.name) && m.name != name_) members.push_back(m.name);
        return members;
    }
    std::map<std::string, std::size_t> pk_of_definition_; // canonical definition -> key column
    // The key column's index for a table definition carried by a record or a copy (db thread).
    std::size_t pk_of(const std::string& definition) {
        auto it = pk_of_definition_.find(definition);
        if (it == pk_of_definition_.end()) {
            std::string err;
            auto def = parse_table_def(std::string_view(definition), err);
            it = pk_of_definition_.emplace(definition, def ? def->pk : 0).first;
        }
        return it->second;
    }
    // A peer's explicit subscriptions (empty: everything flows), copied under the lock.
    sub_rules rules_for(const std::string& peer) {
        std::lock_guard lock(shared_m_);
        auto it = rules_.find(peer);
        return it == rules_.end() ? sub_rules{} : it->second;
    }
    // residency=<expr> tables (issue 5): of each record for `peer`, only the rows whose
    // expression places them on it (a shard number or a JSON array of node names). Db thread.
    void keep_resident_rows(std::vector<replication_store::log_record>& recs, const std::string& peer);
    // Whether a table's residency expression places this row (all columns) on `peer`; true
    // when the table has none or it cannot be evaluated.
    bool resident_on(const std::string& table, const std::string& definition, const std::vector<value>& row, const std::string& peer);
    struct residency_eval {
        sqlite3_stmt* stmt = nullptr; // SELECT (expr) FROM (SELECT ?1 AS col1, ...), on rdb_
        std::string error;            // the expression does not prepare: rows go everywhere
        ~residency_eval() { sqlite3_finalize(stmt); }
    };
    std::map<std::string, std::unique_ptr<residency_eval>> residency_of_definition_;
    // Whether the `system` database (users) replicates: databases unset, "*", or listing it.
    bool replicate_system_ = true;
    progress_map progress_, floors_;
    std::int64_t data_version_ = -1;

    // io thread state
    std::vector<std::shared_ptr<net::listener>> listeners_;
    std::shared_ptr<net::listener> tls_listener_;
    security_snapshot sec_; // identity and users, replaced whole by reloads
    std::map<std::uint64_t, link_info> links_;
    std::map<std::string, peer> peers_;
    std::map<std::string, target> targets_;
    std::set<std::string> removed_;
    std::set<std::string> allowed_ips_;
    std::uint64_t next_link_id_ = 1;
    // Written on the io thread (a copy ends, start_time), read on the db thread too.
    std::atomic<bool> synced_{false};
    std::uint64_t copy_link_ = 0; // link we copy from, 0 = none
    // An interrupted initial copy (engine/copy_resume.hpp): the db thread's state, and what
    // the io thread asks the next copy source to continue after.
    copy_resume_state resume_;
    std::optional<w::copy_resume> resume_point_; // io thread
    std::uint64_t resume_rows_ = 0;              // io thread: rows already here
    void publish_resume_point();                 // db thread -> io thread
    std::string copy_peer_;       // the peer whose copy was cut, to ask again first
    std::shared_ptr<net::timer> poll_timer_, retry_apply_timer_, prune_timer_;
    std::int64_t log_last_seq_ = 0;

    // shared: received items (io -> db)
    std::mutex rx_m_;
    std::deque<received> rx_;
    bool rx_scheduled_ = false;

    // shared: progress copy for subscriptions (db -> io), status (io -> users), confirmations
    std::mutex shared_m_;
    progress_map progress_copy_;
    std::uint64_t pruned_total_ = 0;
    std::map<std::string, sub_rules> rules_; // peer name -> explicit subscriptions
    std::string status_json_;
    std::condition_variable confirm_cv_;
    std::map<std::string, hlc_t> confirmed_; // peer -> newest own HLC it confirmed
};

template <class F> void node_impl::on_io(F&& f) {
    std::weak_ptr<node_impl> weak = shared_from_this();
    io_->post([weak, f = std::forward<F>(f)]() mutable {
        if (auto self = weak.lock(); self && !self->stopped_) f(*self);
    });
}

template <class F> void node_impl::on_db(F&& f) {
    std::weak_ptr<node_impl> weak = shared_from_this();
    db_->post([weak, f = std::forward<F>(f)]() mutable {
        if (auto self = weak.lock(); self && !self->stopped_) f(*self);
    });
}

bool node_impl::open_connection(sqlite3** out, std::string& error) {
    // No per-call mutex: the database thread is the only one that uses the node's connections
    // (they are closed on it too; a copy's is handed over through its shared_ptr). The lock and
    // unlock around every bind, step and column call cost ~7% of an applied row (callgrind).
    int rc = sqlite3_open_v2(path_.c_str(), out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        error = std::string("cannot open '") + path_ + "': " + (*out ? sqlite3_errmsg(*out) : sqlite3_errstr(rc));
        sqlite3_close_v2(*out);
        *out = nullptr;
        return false;
    }
    char* err = nullptr;
    // The node's connections need the module too (the apply path creates tables).
    hdbrepl_register_internal(*out, &err, api_);
    sqlite3_free(err);
    sqlite3_busy_timeout(*out, 5000);
    // secure_delete=FAST: pruning the log need not zero every freed page (Debian builds
    // SQLite with SECURE_DELETE on, which made each prune rewrite megabytes).
    // cache_size 8 MiB (SQLite's default is 2): the apply path's b-tree and index pages stay in
    // the connection's cache instead of being read back from the OS page by page.
    sqlite3_exec(*out, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA secure_delete=FAST; PRAGMA cache_size=-8192;", nullptr,
                 nullptr, nullptr);
    if (cfg_.max_database_size > 0) {
        // A quota on what the node writes: past it SQLite says SQLITE_FULL, as a full disk does.
        sqlite3_stmt* s = nullptr;
        std::int64_t page = 4096;
        if (sqlite3_prepare_v2(*out, "PRAGMA page_size", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
            page = std::max<std::int64_t>(512, sqlite3_column_int64(s, 0));
        sqlite3_finalize(s);
        const std::string pragma = "PRAGMA max_page_count = " + std::to_string(std::max<std::int64_t>(1, cfg_.max_database_size / page));
        sqlite3_exec(*out, pragma.c_str(), nullptr, nullptr, nullptr);
    }
    return true;
}

bool node_impl::start(std::string& error) {
    name_ = cfg_.hostname;
    replicate_system_ = cfg_.all_databases;
    for (const auto& d : cfg_.databases) {
        replicate_system_ = replicate_system_ || d.name == "system";
        main_sharded_ = main_sharded_ || (d.name == "main" && d.sharded);
    }
    for (const auto& r : cfg_.routes)
        if (r.shard >= 0) given_shards_[r.hostname] = r.shard;
    db_ = std::make_unique<db_thread>();
    // Open the connections and read the persisted state on the database thread.
    std::promise<std::string> opened;
    auto fut = opened.get_future();
    std::vector<node_row> known;
    db_->post([&] {
        std::string err;
        if (!open_connection(&wdb_, err) || !open_connection(&rdb_, err)) { opened.set_value(err); return; }
        int rc = ensure_replication_tables(wdb_, "main", err);
        if (rc == SQLITE_OK) {
            wstore_ = std::make_unique<replication_store>(wdb_, "main");
            rstore_ = std::make_unique<replication_store>(rdb_, "main");
            applier_ = std::make_unique<applier>(wdb_, "main");
            if (wstore_->system().node_name() != name_) rc = wstore_->system().set_meta("node_name", name_);
            // For hdb_nodes' own row.
            if (rc == SQLITE_OK) rc = wstore_->system().set_meta("node_url", self_url());
            if (rc == SQLITE_OK && cfg_.shard >= 0) rc = wstore_->system().set_meta("node_shard", std::to_string(cfg_.shard));
            // replicateTo for the writers' connections (row_placer.hpp), which place each row
            // at commit; and the table that keeps where rows live.
            if (rc == SQLITE_OK) {
                placement_store ps(wstore_->system(), wdb_);
                rc = ps.ensure();
                if (rc == SQLITE_OK)
                    rc = cfg_.replicate_to >= 0 ? wstore_->system().set_meta("replicate_to", std::to_string(cfg_.replicate_to))
                                                : exec_sql(wdb_, "DELETE FROM main.hdbrepl_meta WHERE key = 'replicate_to'", err);
            }
            if (rc == SQLITE_OK && wstore_->system().get_meta("placed_elsewhere")) holds_part_ = true;
        }
        if (rc == SQLITE_OK && exec_sql(wdb_, "BEGIN IMMEDIATE", err) == SQLITE_OK) {
            // Indexes left out by a copy that a crash interrupted.
            int irc = restore_deferred_indexes(err);
            exec_sql(wdb_, irc == SQLITE_OK ? "COMMIT" : "ROLLBACK", err);
            err.clear();
        }
        if (rc == SQLITE_OK) {
            security_ = std::make_unique<node_security>(wdb_, path_, cfg_);
            if (std::string e = security_->load(sec_); !e.empty()) {
                opened.set_value(e);
                return;
            }
            users_seen_ = sec_.users.users;
            update_own_member();
        }
        if (rc == SQLITE_OK) rc = wstore_->load_progress(progress_, floors_);
        if (rc == SQLITE_OK) rc = wstore_->load_nodes(known);
        if (rc == SQLITE_OK) rc = wstore_->load_removed(removed_);
        for (const auto& k : known) {
            if (!k.subscriptions_json.empty()) rules_[k.name] = parse_rules(k.subscriptions_json);
            if (k.shard >= 0) given_shards_[k.name] = k.shard;
        }
        if (rc == SQLITE_OK) {
            synced_ = wstore_->system().get_meta("synced").value_or("") == "1";
            rstore_->last_seq(log_last_seq_);
            bool found = false;
            if (!synced_) rc = wstore_->load_copy_resume(resume_, found);
            if (found && resume_.has_point) {
                resume_point_ = w::copy_resume{resume_.table, resume_.phase, resume_.key};
                resume_rows_ = resume_.rows_done;
                log_line(name_, "an initial copy was cut after " + std::to_string(resume_.rows_done) + " rows (table " + resume_.table +
                                    "): it resumes there");
            }
        }
        if (rc != SQLITE_OK && err.empty()) err = sqlite3_errmsg(wdb_);
        opened.set_value(rc == SQLITE_OK ? "" : "preparing the database: " + err);
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) { error = "timed out opening the database"; return false; }
    error = fut.get();
    if (!error.empty()) return false;
    {
        std::lock_guard lock(shared_m_);
        progress_copy_ = progress_;
    }
    // Listen, then dial; both on the io thread.
    std::promise<std::string> listening;
    auto lfut = listening.get_future();
    auto self = shared_from_this();
    io_->post([self, &listening, known] {
        std::string err;
        net::link_options opts = self->link_opts();
        if (self->cfg_.has_port) {
            std::weak_ptr<node_impl> weak = self;
            auto l = net::listen(
                *self->io_, self->cfg_.bind, static_cast<std::uint16_t>(self->cfg_.port), opts,
                [weak](const std::string& ip, const std::string&) {
                    auto s = weak.lock();
                    return s && !s->stopped_ && s->accept_ip(ip);
                },
                [weak](const net::link_ptr& link) {
                    if (auto s = weak.lock(); s && !s->stopped_) s->on_link_open(link, "", true);
                },
                err);
            if (!l) { listening.set_value("cannot listen on " + self->cfg_.bind + ":" + std::to_string(self->cfg_.port) + ": " + err); return; }
            self->listeners_.push_back(l);
        }
        if (self->cfg_.serve_secure) {
            std::weak_ptr<node_impl> weak = self;
            auto l = net::listen_tls(
                *self->io_, self->cfg_.bind, static_cast<std::uint16_t>(self->cfg_.secure_port), opts, self->sec_.identity,
                [weak](const net::peer_check& pc) {
                    auto s = weak.lock();
                    if (!s || s->stopped_) return net::accept_decision{503, "node stopping"};
                    return s->check_secure(pc);
                },
                [weak](const net::link_ptr& link) {
                    if (auto s = weak.lock(); s && !s->stopped_) s->on_link_open(link, "", true);
                },
                err);
            if (!l) {
                listening.set_value("cannot listen on " + self->cfg_.bind + ":" + std::to_string(self->cfg_.secure_port) + " (securePort): " + err);
                return;
            }
            self->tls_listener_ = l;
            self->listeners_.push_back(l);
        }
        for (const auto& r : self->cfg_.routes) self->add_target(r.hostname, r.port, r.scheme, r.start_time_ms);
        for (const auto& n : known) {
            auto u = split_node_url(n.url);
            self->add_target(u.host, u.port, u.scheme.empty() ? "wss" : u.scheme, n.start_time_ms);
        }
        self->update_status();
        self->on_db([](node_impl& n) { n.refresh_membership(true); });
        listening.set_value("");
    });
    if (lfut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) { error = "timed out starting the listener"; return false; }
    error = lfut.get();
    if (!error.empty()) return false;
    std::weak_ptr<node_impl> weak = self;
    commit_sub_ = commit_signal::subscribe(path_, [weak](std::uint64_t) {
        if (auto s = weak.lock()) s->on_io([](node_impl& n) { n.pump_all(); });
    });
    // Writers in other processes cannot signal us: a light check of the database's
    // data_version catches their commits (and our own DDL-only transactions).
    io_->post([self] {
        std::weak_ptr<node_impl> weak = self;
        std::function<void()> tick;
        auto tick_ptr = std::make_shared<std::function<void()>>();
        *tick_ptr = [weak, tick_ptr] {
            auto s = weak.lock();
            if (!s || s->stopped_) return;
            s->on_db([](node_impl& n) {
                sqlite3_stmt* st = nullptr;
                if (sqlite3_prepare_v2(n.rdb_, "PRAGMA data_version", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
                    auto v = sqlite3_column_int64(st, 0);
                    if (v != n.data_version_) {
                        n.data_version_ = v;
                        n.refresh_users();
                        std::int64_t last = 0;
                        n.rstore_->last_seq(last);
                        // Also keeps the backlog of disconnected peers current.
                        n.on_io([last](node_impl& m) {
                            m.log_last_seq_ = std::max(m.log_last_seq_, last);
                            m.pump_all();
                        });
                    }
                }
                sqlite3_finalize(st);
            });
            // Latency and backlog change without events: refresh the status snapshot too.
            s->update_status();
            s->poll_timer_ = s->io_->after(clock_ms(250), *tick_ptr);
        };
        (*tick_ptr)();
        self->schedule_prune();
    });
    return true;
}

void node_impl::stop() {
    if (stopped_.exchange(true)) return;
    if (commit_sub_) commit_signal::unsubscribe(commit_sub_);
    // Close sockets on the io thread and wait for that (bounded).
    std::promise<void> closed;
    auto fut = closed.get_future();
    io_->post([this, &closed] {
        for (auto& l : listeners_) l->close();
        listeners_.clear();
        tls_listener_.reset();
        for (auto& [id, li] : links_)
            if (li.link) li.link->close("node stopping");
        links_.clear();
        for (auto& [k, t] : targets_)
            if (t.retry) t.retry->cancel();
        if (poll_timer_) poll_timer_->cancel();
        if (retry_apply_timer_) retry_apply_timer_->cancel();
        if (prune_timer_) prune_timer_->cancel();
        peers_.clear();
        closed.set_value();
    });
    fut.wait_for(std::chrono::seconds(5));
    confirm_cv_.notify_all();
    if (db_) {
        // Close the connections on their own thread, then join it.
        std::promise<void> done;
        auto dfut = done.get_future();
        db_->post([this, &done] {
            applier_.reset();
            wstore_.reset();
            rstore_.reset();
            residency_of_definition_.clear(); // their statements live on rdb_
            if (wdb_) sqlite3_close_v2(wdb_);
            if (rdb_) sqlite3_close_v2(rdb_);
            wdb_ = rdb_ = nullptr;
            done.set_value();
        });
        dfut.wait_for(std::chrono::seconds(10));
        db_->stop_and_join();
    }
}

// ---- links and the protocol (io thread) --------------------------------------------------

void node_impl::add_target(const std::string& host, int port, const std::string& scheme, std::int64_t start_time_ms, bool verify_tls) {
    if (host.empty() || port <= 0) return;
    if (host == cfg_.hostname && port == (cfg_.has_port ? cfg_.port : cfg_.secure_port)) return;
    std::string key = host + ":" + std::to_string(port);
    if (removed_.count(host)) return; // removed with remove_node: stays out until added again
    allowed_ips_.insert(host);
    if (auto it = targets_.find(key); it != targets_.end()) {
        it->second.verify_tls = verify_tls;
        return;
    }
    auto& t = targets_[key];
    t.host = host;
    t.port = port;
    t.scheme = scheme;
    t.start_time_ms = start_time_ms;
    t.verify_tls = verify_tls;
    dial(key);
}

bool node_impl::accept_ip(const std::string& ip) {
    // IP authentication for the plain port: only configured routes and known nodes.
    if (allowed_ips_.count(ip)) return true;
    log_line(name_, "refused connection from " + ip + ": not a configured route or known node");
    return false;
}

void node_impl::dial(const std::string& key) {
    auto it = targets_.find(key);
    if (it == targets_.end() || stopped_) return;
    auto& t = it->second;
    if (t.dialing) return;
    if (!t.peer_name.empty() && (removed_.count(t.peer_name) || (find_peer(t.peer_name) && find_peer(t.peer_name)->link))) return;
    t.dialing = true;
    net::link_options opts = link_opts();
    std::weak_ptr<node_impl> weak = shared_from_this();
    std::string bind = cfg_.bind == "0.0.0.0" ? "" : cfg_.bind;
    auto done = [weak, key](const net::link_ptr& link, const std::string& error) {
                  auto s = weak.lock();
                  if (!s || s->stopped_) {
                      if (link) link->close("node stopping");
                      return;
                  }
                  auto it = s->targets_.find(key);
                  if (it == s->targets_.end()) {
                      if (link) link->close("route removed");
                      return;
                  }
                  it->second.dialing = false;
                  // One log line per new complaint, not one per retry.
                  if (!link && error != it->second.last_error) log_line(s->name_, "cannot connect to " + key + ": " + error);
                  it->second.last_error = error;
                  if (!link && it->second.down_since == 0) it->second.down_since = now_ms();
                  if (link) it->second.down_since = 0;
                  for (auto& waiter : std::exchange(it->second.first_result, {})) waiter(error);
                  if (!link) {
                      if (!it->second.peer_name.empty())
                          if (auto* p = s->find_peer(it->second.peer_name)) {
                              p->last_error = error;
                              p->state = "unreachable";
                          }
                      s->schedule_redial(key);
                      s->update_status();
                      return;
                  }
                  it->second.backoff_ms = 0;
                  s->on_link_open(link, key, false);
              };
    if (t.scheme == "wss") {
        net::tls_dial_options tls;
        tls.verify_server = t.verify_tls;
        tls.expected_name = t.host;
        net::dial_tls(*io_, t.host, static_cast<std::uint16_t>(t.port), bind, "/hdbrepl?node=" + name_, opts, sec_.identity, tls,
                      std::move(done));
    } else {
        net::dial(*io_, t.host, static_cast<std::uint16_t>(t.port), bind, "/hdbrepl", opts, std::move(done));
    }
}

void node_impl::schedule_redial(const std::string& key) {
    auto it = targets_.find(key);
    if (it == targets_.end() || stopped_) return;
    auto& t = it->second;
    // Capped exponential backoff with jitter, so restarted nodes do not dial in lockstep.
    t.backoff_ms = t.backoff_ms == 0 ? cfg_.reconnect_min_ms : std::min(t.backoff_ms * 2, cfg_.reconnect_max_ms);
    static thread_local std::mt19937 gen(std::random_device{}());
    int delay = t.backoff_ms / 2 + static_cast<int>(gen() % static_cast<unsigned>(t.backoff_ms / 2 + 1));
    std::weak_ptr<node_impl> weak = shared_from_this();
    if (t.retry) t.retry->cancel();
    t.retry = io_->after(clock_ms(delay), [weak, key] {
        if (auto s = weak.lock(); s && !s->stopped_) s->dial(key);
    });
}

void node_impl::send_link(const net::link_ptr& l, const w::message& m) {
    if (!l) return;
    if (!l->send(w::encode(m))) log_line(name_, std::string("send queue full, dropping ") + w::name_of(m));
}

void node_impl::send(peer& p, const w::message& m) {
    if (!p.link) return;
    auto bytes = w::encode(m);
    if (bytes.size() > static_cast<std::size_t>(cfg_.max_frame_bytes)) {
        // The peer would refuse it; say so where an operator looks, and close the link
        // rather than skip a transaction (raise maxFrameBytes on both nodes).
        p.last_error = std::string(w::name_of(m)) + " of " + std::to_string(bytes.size()) + " bytes exceeds maxFrameBytes (" +
                       std::to_string(cfg_.max_frame_bytes) + "); raise replication.maxFrameBytes on both nodes";
        log_line(name_, "to " + p.name + ": " + p.last_error);
        p.link->close("message too big");
        return;
    }
    if (!p.link->send(std::move(bytes))) {
        p.last_error = std::string("send queue full, closing to resync: ") + w::name_of(m);
        log_line(name_, "to " + p.name + ": " + p.last_error);
        p.link->close("send queue full");
    }
}

w::subscription node_impl::my_subscription(const std::string& peer_name, const link_info* li) {
    w::subscription sub;
    {
        std::lock_guard lock(shared_m_);
        for (const auto& [o, h] : progress_copy_) sub.progress.push_back({o, h});
    }
    sub.exclude.push_back(name_);
    for (const auto& [n, p] : peers_)
        if (n != peer_name && p.link) sub.exclude.push_back(n);
    // A route or node with a start time skips the history before it.
    if (li)
        if (auto st = start_time_for(*li); st > 0) sub.start_after = hlc_from_ms(static_cast<std::uint64_t>(st));
    // While an initial copy runs from another peer, ask for nothing yet.
    if (copy_link_ != 0 && (!li || li->id != copy_link_)) sub.start_after = ~hlc_t{0}, sub.progress.clear();
    return sub;
}

void node_impl::on_link_open(const net::link_ptr& l, const std::string& target_key, bool inbound) {
    auto id = next_link_id_++;
    auto& li = links_[id];
    li.link = l;
    li.id = id;
    li.target = target_key;
    li.inbound = inbound;
    if (inbound) {
        li.sign = target_path(l->request_target()) == "/hdbrepl/sign";
        li.claimed_name = query_param(l->request_target(), "node");
    }
    std::weak_ptr<node_impl> weak = shared_from_this();
    net::link_events ev;
    ev.on_message = [weak, id](const net::link_ptr&, std::vector<std::uint8_t>&& data) {
        if (auto s = weak.lock(); s && !s->stopped_) s->on_message(id, std::move(data));
    };
    ev.on_closed = [weak, id](const net::link_ptr&, const std::string& reason) {
        if (auto s = weak.lock(); s && !s->stopped_) s->on_link_closed(id, reason);
    };
    l->set_events(std::move(ev));
    if (li.sign) return; // a certificate exchange: the client speaks first, in JSON
    w::hello h;
    h.node_name = name_;
    h.node_url = self_url();
    h.database = "main";
    // A database never synced copies from the first peer that answers, and only from it.
    bool has_start_time = start_time_for(li) > 0;
    if (has_start_time) synced_ = true; // start_time: skip the copy, stream from that time
    if (!synced_ && copy_link_ == 0) {
        h.needs_copy = true;
        h.resume = resume_point_;
        li.copy_rows_before = resume_point_ ? resume_rows_ : 0;
        li.copy_source = true;
        copy_link_ = id;
    }
    h.sub = my_subscription("", &li);
    if (h.needs_copy) { h.sub.start_after = ~hlc_t{0}; h.sub.progress.clear(); }
    send_link(l, h);
    li.hello_sent = true;
}

void node_impl::on_message(std::uint64_t link_id, std::vector<std::uint8_t>&& data) {
    auto* li = find_link(link_id);
    if (!li) return;
    if (li->sign) {
        // Never a peer (so no subscribe or copy traffic reaches it): one request, one answer.
        if (li->sign_requested) return;
        li->sign_requested = true;
        return on_sign_request(*li, std::move(data));
    }
    std::string err;
    auto m = w::decode(data.data(), data.size(), err);
    if (!m) {
        // A malformed or hostile frame closes that link, with a log line, and nothing else.
        log_line(name_, "closing link from " + li->link->remote_address() + ": " + err);
        if (!li->peer.empty()) {
            if (auto* p = find_peer(li->peer)) p->last_error = err;
        } else if (!li->target.empty()) {
            // Before its HELLO (e.g. a peer of another protocol version): shown under the target.
            if (auto t = targets_.find(li->target); t != targets_.end()) t->second.last_error = "protocol error: " + err;
        }
        li->link->close("protocol error: " + err);
        return;
    }
    if (li->peer.empty() && !std::holds_alternative<w::hello>(*m)) {
        log_line(name_, "closing link from " + li->link->remote_address() + ": " + w::name_of(*m) + " before hello");
        li->link->close("protocol error: expected hello");
        return;
    }
    handle(*li, std::move(*m));
}

void node_impl::on_hello(link_info& li, w::hello&& h) {
    auto refuse = [&](const std::string& why) {
        log_line(name_, "refusing " + h.node_name + " (" + li.link->remote_address() + "): " + why);
        send_link(li.link, w::error_msg{why});
        li.link->close(why);
    };
    if (!li.peer.empty()) return refuse("second hello");
    if (h.node_name == name_) return refuse("a node cannot connect to itself (same name '" + name_ + "')");
    if (h.database != "main") return refuse("database '" + h.database + "' is not replicated here");
    if (removed_.count(h.node_name)) return refuse("node '" + h.node_name + "' was removed from this cluster");
    if (li.link->secure()) {
        // Over TLS a node is who its certificate says: the name in its HELLO must be on it.
        auto names = li.link->peer_certificate_names();
        if (std::find(names.begin(), names.end(), h.node_name) == names.end())
            return refuse("certificate name mismatch: the certificate is for " + join_names(names) + ", not '" + h.node_name + "'");
    }
    if (li.inbound && !li.claimed_name.empty() && li.claimed_name != h.node_name)
        return refuse("HELLO names '" + h.node_name + "' but the connection was opened for '" + li.claimed_name + "'");
    // One link per pair of nodes: when both dialed, keep the link dialed by the smaller name.
    if (auto* existing = find_peer(h.node_name); existing && existing->link) {
        auto old = std::find_if(links_.begin(), links_.end(), [&](auto& kv) { return kv.second.id == existing->link_id; });
        std::string old_dialer = old != links_.end() && old->second.inbound ? h.node_name : name_;
        std::string new_dialer = li.inbound ? h.node_name : name_;
        bool keep_new = old_dialer == new_dialer ? true : new_dialer == std::min(name_, h.node_name);
        if (!keep_new) {
            if (li.copy_source && copy_link_ == li.id) copy_link_ = 0;
            li.copy_source = false;
            li.peer = "";
            if (!li.target.empty()) targets_[li.target].peer_name = h.node_name;
            li.link->close("duplicate link");
            return;
        }
        if (old != links_.end()) {
            auto old_link = old->second.link;
            if (old->second.copy_source && copy_link_ == old->second.id) {
                copy_link_ = 0; // ensure_copy_source() asks on the kept link
                copy_peer_ = h.node_name;
                existing->copying = false;
            }
            links_.erase(old);
            old_link->close("duplicate link");
        }
    }
    li.peer = h.node_name;
    if (!li.target.empty()) targets_[li.target].peer_name = h.node_name;
    allowed_ips_.insert(li.link->remote_address());
    auto& p = peers_[h.node_name];
    p.name = h.node_name;
    p.url = h.node_url;
    p.link = li.link;
    p.link_id = li.id;
    p.state = "connected";
    p.down_since = 0;
    p.last_error.clear();
    p.subscribed = true;
    p.filter = {};
    p.filter.start_after = h.sub.start_after;
    for (auto& o : h.sub.progress) {
        p.filter.progress[o.origin] = o.hlc;
        auto& k = p.known_progress[o.origin];
        k = std::max(k, o.hlc);
    }
    for (auto& e : h.sub.exclude) p.filter.exclude.insert(e);
    p.inflight_q.clear();
    p.inflight_bytes = 0;
    ++p.send_generation;
    p.sending_copy.reset();
    if (li.copy_source) {
        p.copying = true;
        p.copy_done = p.copy_total = 0;
    }
    on_db([name = h.node_name, url = h.node_url](node_impl& n) {
        n.wstore_->ensure_node(name, url);
        // Announce ourselves again with a fresh version: a peer that has our row only from an
        // initial copy (copies do not enter its log) could not relay it to nodes we do not
        // reach yet; a new log record can.
        n.update_own_member(true);
    });
    // Other peers' subscriptions change: what this peer sends directly, they need not relay.
    resubscribe_all();
    if (h.needs_copy) {
        start_copy_to(h.node_name, false, h.resume);
    } else {
        auto f = p.filter;
        auto name = h.node_name;
        on_db([f, name](node_impl& n) {
            std::int64_t start = 0;
            bool needs_copy = n.behind_log_floor(f);
            n.rstore_->find_start(f, start);
            n.on_io([name, start, needs_copy](node_impl& m) {
                auto* p = m.find_peer(name);
                if (!p) return;
                if (needs_copy) return m.start_copy_to(name, true);
                p->send_pos = start;
                ++p->send_generation;
                m.pump(name);
            });
        });
    }
    ensure_copy_source();
    update_status();
}

void node_impl::ensure_copy_source() {
    if (synced_ || copy_link_ != 0) return;
    // The peer whose copy was cut (e.g. its link replaced as a duplicate) first: a copy is
    // taken from one peer only, and starting over elsewhere would copy twice.
    for (int pass = 0; pass < 2; ++pass)
        for (auto& [id, li] : links_) {
            if (li.peer.empty() || !li.link || (pass == 0 && li.peer != copy_peer_)) continue;
            auto* p = find_peer(li.peer);
            if (!p || p->link_id != id) continue;
            copy_link_ = id;
            copy_peer_.clear();
            li.copy_source = true;
            p->copying = true;
            p->copy_done = p->copy_total = 0;
            li.copy_rows_before = resume_point_ ? resume_rows_ : 0;
            send_link(li.link, w::copy_request{resume_point_});
            return;
        }
}

void node_impl::resubscribe_all() {
    for (auto& [id, li] : links_) {
        if (li.peer.empty() || !li.link) continue;
        if (li.copy_source && copy_link_ == li.id) continue; // its subscription follows the copy
        send_link(li.link, w::subscribe{my_subscription(li.peer, &li)});
    }
}

void node_impl::handle(link_info& li, w::message&& m) {
    if (auto* h = std::get_if<w::hello>(&m)) return on_hello(li, std::move(*h));
    auto* p = find_peer(li.peer);
    if (!p || p->link_id != li.id) return;
    std::visit(
        [&](auto&& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, w::subscribe>) {
                p->filter = {};
                p->filter.start_after = x.sub.start_after;
                for (auto& o : x.sub.progress) {
                    p->filter.progress[o.origin] = o.hlc;
                    auto& k = p->known_progress[o.origin];
                    k = std::max(k, o.hlc);
                }
                for (auto& e : x.sub.exclude) p->filter.exclude.insert(e);
                ++p->send_generation; // reads under way were for the old subscription
                if (p->sending_copy) return; // applied when the copy ends
                auto f = p->filter;
                auto name = p->name;
                on_db([f, name](node_impl& n) {
                    std::int64_t start = 0;
                    bool needs_copy = n.behind_log_floor(f);
                    n.rstore_->find_start(f, start);
                    n.on_io([name, start, needs_copy](node_impl& m) {
                        if (needs_copy) return m.start_copy_to(name, true);
                        if (auto* q = m.find_peer(name)) {
                            q->send_pos = start;
                            ++q->send_generation;
                            m.pump(name);
                        }
                    });
                });
            } else if constexpr (std::is_same_v<T, w::txn>) {
                hlc_t hlc = 0;
                std::string origin;
                peek_record_head(x.record.data(), x.record.size(), hlc, origin);
                p->last_received_remote = std::max(p->last_received_remote, hlc);
                p->last_received_local = now_ms();
                received r;
                r.what = received::txn;
                r.peer = p->name;
                r.seq = x.seq;
                r.record = std::move(x.record);
                r.link_id = li.id;
                enqueue(std::move(r));
            } else if constexpr (std::is_same_v<T, w::ack>) {
                while (!p->inflight_q.empty() && p->inflight_q.front().seq <= static_cast<std::int64_t>(x.seq)) {
                    auto& f = p->inflight_q.front();
                    if (f.origin == name_) p->confirmed_own = std::max(p->confirmed_own, f.hlc);
                    auto& k = p->known_progress[f.origin];
                    k = std::max(k, f.hlc);
                    p->inflight_bytes -= f.size;
                    p->inflight_q.pop_front();
                }
                p->last_commit_confirmed = now_ms();
                notify_confirmations();
                pump(p->name);
            } else if constexpr (std::is_same_v<T, w::copy_start>) {
                p->copying = true;
                p->copy_total = x.total_rows;
                p->copy_done = li.copy_source ? li.copy_rows_before : 0;
                p->copy_chunks = 0; // acks count this copy's chunks
                p->copy_tables.clear();
                received r;
                r.what = received::copy_begin;
                r.peer = p->name;
                r.end.progress = std::move(x.progress);
                r.link_id = li.id;
                enqueue(std::move(r));
            } else if constexpr (std::is_same_v<T, w::copy_table>) {
                p->copy_tables.push_back(std::move(x));
            } else if constexpr (std::is_same_v<T, w::copy_rows>) {
                if (x.table >= p->copy_tables.size()) {
                    li.link->close("protocol error: copy rows for unknown table");
                    return;
                }
                p->copy_done += x.rows.size();
                received r;
                r.what = received::copy_rows;
                r.peer = p->name;
                r.rows = std::move(x);
                r.tables = p->copy_tables;
                r.link_id = li.id;
                enqueue(std::move(r));
            } else if constexpr (std::is_same_v<T, w::copy_end>) {
                received r;
                r.what = received::copy_end;
                r.peer = p->name;
                r.end = std::move(x);
                r.tables = p->copy_tables;
                r.link_id = li.id;
                enqueue(std::move(r));
            } else if constexpr (std::is_same_v<T, w::copy_ack>) {
                p->copy_chunks_acked = std::max(p->copy_chunks_acked, x.chunks);
                copy_pump(p->name);
            } else if constexpr (std::is_same_v<T, w::error_msg>) {
                p->last_error = x.text;
                log_line(name_, "peer " + p->name + " reports: " + x.text);
            } else if constexpr (std::is_same_v<T, w::read_request>) {
                answer_read(*p, std::move(x));
            } else if constexpr (std::is_same_v<T, w::read_reply>) {
                auto it = reads_.find(x.id);
                if (it == reads_.end() || !it->second.waiting.erase(p->name)) return; // late or unasked: dropped
                if (x.status == w::read_status::found) {
                    sql::forwarded_read r;
                    r.status = sql::forwarded_read::found;
                    r.row = std::move(x.row);
                    return finish_read(x.id, std::move(r));
                }
                if (it->second.waiting.empty()) {
                    sql::forwarded_read r;
                    r.status = sql::forwarded_read::absent;
                    if (!it->second.unreachable.empty()) { // it may be on a node that is down
                        std::string who;
                        for (const auto& n : it->second.unreachable) who += (who.empty() ? "" : ", ") + n;
                        r.status = sql::forwarded_read::failed;
                        r.error = "the row is on no node that answered, and these may hold it but are unreachable: " + who;
                    }
                    finish_read(x.id, std::move(r));
                }
            } else if constexpr (std::is_same_v<T, w::copy_request>) {
                if (!p->sending_copy) start_copy_to(p->name, false, x.resume);
            } else if constexpr (std::is_same_v<T, w::removed>) {
                log_line(name_, "removed from the cluster by " + x.by);
                removed_.insert(x.by);
                std::string by = x.by;
                for (auto it = targets_.begin(); it != targets_.end();)
                    if (it->second.peer_name == by) {
                        if (it->second.retry) it->second.retry->cancel();
                        it = targets_.erase(it);
                    } else {
                        ++it;
                    }
                on_db([by](node_impl& n) {
                    bool existed = false;
                    n.wstore_->remove_node(by, existed);
                    n.wstore_->set_removed(by, true);
                });
                li.link->close("removed from the cluster");
            }
        },
        std::move(m));
    // No status rebuild per message: the 250 ms tick refreshes counters and times, and
    // state changes (hello, close, copy end, removal) refresh it where they happen.
}

void node_impl::on_link_closed(std::uint64_t link_id, const std::string& reason) {
    auto it = links_.find(link_id);
    if (it == links_.end()) return;
    link_info li = std::move(it->second);
    links_.erase(it);
    if (li.copy_source && copy_link_ == link_id) {
        copy_link_ = 0; // another link asks for the copy (the same peer's, if it has one)
        copy_peer_ = li.peer;
    }
    if (li.copy_source && !li.peer.empty())
        if (auto* p = find_peer(li.peer)) p->copying = false;
    if (!li.peer.empty())
        if (auto* p = find_peer(li.peer); p && p->link_id == link_id) {
            p->link.reset();
            p->down_since = now_ms();
            p->state = removed_.count(p->name) ? "removed" : "disconnected";
            if (!reason.empty()) p->last_error = reason;
            p->copying = false;
            p->sending_copy.reset();
            if (removed_.count(p->name)) peers_.erase(li.peer);
            resubscribe_all(); // others now relay what this peer sent directly
        }
    if (!li.target.empty()) {
        // A link closed before its HELLO was answered (e.g. a peer speaking another protocol
        // version): say why in cluster_status, under the target.
        if (li.peer.empty() && !reason.empty())
            if (auto it = targets_.find(li.target); it != targets_.end() && it->second.last_error.rfind("protocol error", 0) != 0)
                it->second.last_error = reason;
        schedule_redial(li.target);
    }
    ensure_copy_source();
    update_status();
}

// ---- sending (io thread, reads on the db thread) -----------------------------------------

void node_impl::pump_all() {
    for (auto& [name, p] : peers_) pump(name);
}

void node_impl::pump(const std::string& name) {
    auto* p = find_peer(name);
    if (!p || !p->link || !p->subscribed || p->sending_copy) return;
    if (p->reading) { // the read under way may have started before this commit
        p->pump_again = true;
        return;
    }
    p->pump_again = false;
    auto budget = static_cast<std::size_t>(cfg_.max_bytes_in_flight);
    if (p->inflight_bytes >= budget) return; // flow control: wait for ACKs
    p->reading = true;
    auto f = p->filter;
    auto from = p->send_pos;
    auto gen = p->send_generation;
    auto max_bytes = budget - p->inflight_bytes;
    on_db([name, f, from, gen, max_bytes](node_impl& n) {
        std::vector<replication_store::log_record> recs;
        std::int64_t scanned = from;
        int rc = n.rstore_->read_after(from, f, max_bytes, recs, scanned);
        const sub_rules rules = n.rules_for(name);
        // A trimmed record of another origin is not the whole transaction (filters upstream
        // withheld rows the peer may need): it and everything after it from that origin wait
        // for the peer to hear the origin itself. Skipping one and relaying later ones would
        // carry the peer's progress for that origin past rows it never got.
        std::set<std::string> held;
        for (auto& r : recs)
            if (r.origin != n.name_ && (held.count(r.origin) || record_is_trimmed(r.body.data(), r.body.size()))) {
                held.insert(r.origin);
                r.body.clear();
            }
        n.keep_resident_rows(recs, name);
        n.keep_placed_rows(recs, name);
        const bool shares = n.shares_data_with(name);
        if (!rules.empty() || !n.replicate_system_ || !shares) // explicit subscriptions, system, shards
            for (auto& r : recs)
                r.body = filter_record(r.body.data(), r.body.size(), [&](const std::string& t) {
                    return is_system_table(t) ? n.replicate_system_ : shares && rules_allow(rules, t, true);
                });
        std::int64_t last = 0;
        n.rstore_->last_seq(last);
        n.on_io([name, recs = std::move(recs), scanned, rc, last, gen, held = std::move(held)](node_impl& m) mutable {
            m.log_last_seq_ = std::max(m.log_last_seq_, last);
            auto* p = m.find_peer(name);
            if (!p) return;
            p->reading = false;
            if (rc != SQLITE_OK || !p->link) return;
            // The subscription changed while this read ran: it read for the old one.
            if (gen != p->send_generation) return m.pump(name);
            // Until the next subscribe, which restarts from the peer's own progress.
            for (const auto& o : held) p->filter.exclude.insert(o);
            for (auto& r : recs) {
                if (r.body.empty()) continue; // nothing of it is published to this peer
                p->inflight_q.push_back({r.seq, r.body.size(), r.origin, r.hlc});
                p->inflight_bytes += r.body.size();
                m.send(*p, w::txn{static_cast<std::uint64_t>(r.seq), std::move(r.body)});
                p->last_send = now_ms();
            }
            bool more = scanned > p->send_pos || p->pump_again;
            p->send_pos = std::max(p->send_pos, scanned);
            if (more) m.pump(name);
        });
    });
}

void node_impl::start_copy_to(const std::string& name, bool behind_log, const std::optional<w::copy_resume>& resume) {
    auto* p = find_peer(name);
    if (!p || !p->link) return;
    p->full_resync = behind_log;
    if (behind_log) {
        ++p->full_resyncs;
        p->last_full_resync = now_ms();
        log_line(name_, name + " needs changes our log no longer holds: sending it a full copy (a merge: it deletes nothing)");
        update_status();
    }
    auto cs = std::make_shared<copy_state>();
    p->sending_copy = cs;
    p->copy_chunks_sent = p->copy_chunks_acked = 0;
    p->copy_reading = p->copy_done_reading = false;
    if (resume)
        log_line(name_, "resuming a copy for " + name + " after table " + resume->table + (resume->phase ? " (tombstones)" : "") +
                            " key " + resume->key.to_string());
    on_db([name, cs, resume](node_impl& n) {
        std::string err;
        bool ok = n.open_connection(&cs->db, err);
        if (ok) {
            cs->reader = std::make_unique<snapshot_reader>(cs->db, "main");
            ok = cs->reader->begin(err) == SQLITE_OK;
        }
        std::vector<w::copy_table> tables;
        w::copy_start start;
        if (ok) {
            for (const auto& t : cs->reader->tables()) tables.push_back({t.name, t.definition});
            start.total_rows = cs->reader->total_rows();
            for (const auto& [o, h] : cs->reader->progress()) start.progress.push_back({o, h});
            if (resume) {
                cs->reader->resume_after(resume->table, resume->phase, resume->key);
                cs->resumed = true;
            }
        }
        n.on_io([name, cs, ok, err, tables, start = std::move(start)](node_impl& m) {
            auto* p = m.find_peer(name);
            if (!p || p->sending_copy != cs) return;
            if (!ok) {
                log_line(m.name_, "cannot start a copy for " + name + ": " + err);
                p->last_error = "copy failed: " + err;
                if (p->link) p->link->close("copy failed");
                return;
            }
            m.send(*p, start);
            for (const auto& t : tables) m.send(*p, t);
            m.copy_pump(name);
        });
    });
}

void node_impl::copy_pump(const std::string& name) {
    auto* p = find_peer(name);
    if (!p || !p->sending_copy || p->copy_reading || !p->link) return;
    constexpr std::uint64_t window = 4; // chunks in flight
    // An ack from an earlier, interrupted copy may count past this one's chunks.
    auto unacked = p->copy_chunks_sent > p->copy_chunks_acked ? p->copy_chunks_sent - p->copy_chunks_acked : 0;
    if (p->copy_done_reading || unacked >= window) return;
    p->copy_reading = true;
    auto cs = p->sending_copy;
    on_db([name, cs](node_impl& n) {
        std::uint32_t table = 0;
        std::vector<snapshot_row> rows;
        int rc = SQLITE_OK;
        // 2,000 rows a chunk: one receiver transaction each, small enough to interleave
        // with streamed transactions on both database threads.
        bool more = cs->reader->next_chunk(2000, table, rows, rc);
        w::copy_end end;
        if (!more && rc == SQLITE_OK) {
            end.seq = static_cast<std::uint64_t>(cs->reader->log_seq());
            for (const auto& [o, h] : cs->reader->progress()) end.progress.push_back({o, h});
        }
        w::copy_rows chunk;
        chunk.table = table;
        // Explicit subscriptions hold for copies too: a table not published to this peer
        // sends no rows (its definition still goes, as definitions do in the stream).
        const sub_rules rules = n.rules_for(name);
        if (more && !rules.empty() && table < cs->reader->tables().size() && !is_system_table(cs->reader->tables()[table].name) &&
            !rules_allow(rules, cs->reader->tables()[table].name, true))
            rows.clear();
        if (more && !rows.empty() && table < cs->reader->tables().size()) n.keep_placed_copy_rows(*cs, cs->reader->tables()[table], name, rows);
        for (auto& r : rows) chunk.rows.push_back({r.deleted, r.hlc, std::move(r.origin), std::move(r.values)});
        n.on_io([name, cs, more, rc, chunk = std::move(chunk), end = std::move(end)](node_impl& m) mutable {
            auto* p = m.find_peer(name);
            if (!p || p->sending_copy != cs) return;
            p->copy_reading = false;
            if (rc != SQLITE_OK) {
                p->last_error = "copy failed reading the snapshot";
                if (p->link) p->link->close("copy failed");
                return;
            }
            if (more) {
                cs->rows_sent += chunk.rows.size();
                m.send(*p, chunk);
                ++p->copy_chunks_sent;
                return m.copy_pump(name);
            }
            // The snapshot is complete: stream from its log position with its progress.
            p->copy_done_reading = true;
            p->full_resync = false;
            m.send(*p, end);
            log_line(m.name_, std::string(cs->resumed ? "resumed copy" : "copy") + " for " + name + " sent: " + std::to_string(cs->rows_sent) + " rows");
            if (cs->resumed) {
                // The receiver streams from below this snapshot (what changed in the rows it
                // got before the cut): nothing goes until its subscribe says from where.
                p->filter = {};
                p->filter.start_after = ~hlc_t{0};
            } else {
                for (const auto& o : end.progress) {
                    auto& h = p->filter.progress[o.origin];
                    h = std::max(h, o.hlc);
                }
                p->filter.start_after = std::min<hlc_t>(p->filter.start_after, 0);
            }
            p->send_pos = static_cast<std::int64_t>(end.seq);
            ++p->send_generation;
            p->sending_copy.reset();
            m.on_db([cs](node_impl&) { cs->reader->end(); });
            m.pump(name);
        });
    });
}

// ---- log pruning ----------------------------------------------------------------------------

void node_impl::schedule_prune() {
    std::weak_ptr<node_impl> weak = shared_from_this();
    prune_timer_ = io_->after(clock_ms(5000), [weak] {
        auto s = weak.lock();
        if (!s || s->stopped_) return;
        std::map<std::string, progress_map> known;
        for (auto& [name, p] : s->peers_) known[name] = p.known_progress;
        s->on_db([known](node_impl& n) { n.prune_log(known); });
        s->schedule_prune();
    });
}

void node_impl::prune_log(const std::map<std::string, progress_map>& known) {
    // A record goes once every known node has it, or once it is older than the retention.
    // The log stays a contiguous suffix, so what is gone is described by a floor per origin.
    std::vector<node_row> rows;
    if (wstore_->load_nodes(rows) != SQLITE_OK) return;
    std::set<std::string> nodes;
    for (const auto& r : rows) nodes.insert(r.name);
    for (const auto& [n, p] : known) nodes.insert(n);
    nodes.erase(name_);
    std::uint64_t now = now_ms();
    hlc_t cutoff = now > static_cast<std::uint64_t>(cfg_.log_retention_ms) ? hlc_from_ms(now - static_cast<std::uint64_t>(cfg_.log_retention_ms)) : 0;
    auto& sys = wstore_->system();
    std::string sql = "SELECT seq, hlc, origin, clock FROM " + sys.table("hdbrepl_log") + " WHERE seq < (SELECT max(seq) FROM " +
                      sys.table("hdbrepl_log") + ") ORDER BY seq LIMIT 256"; // small batches: the sender shares this thread
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) { sqlite3_finalize(st); return; }
    std::int64_t last = 0;
    hlc_t max_clock = 0;
    progress_map floors;
    while (sqlite3_step(st) == SQLITE_ROW) {
        hlc_t hlc = static_cast<hlc_t>(sqlite3_column_int64(st, 1));
        std::string origin = sys.origin_name(sqlite3_column_int64(st, 2));
        bool prunable = hlc < cutoff;
        if (!prunable && !nodes.empty()) {
            prunable = true;
            for (const auto& n : nodes) {
                if (n == origin) continue;
                auto k = known.find(n);
                hlc_t have = 0;
                if (k != known.end())
                    if (auto o = k->second.find(origin); o != k->second.end()) have = o->second;
                if (have < hlc) { prunable = false; break; }
            }
        }
        if (!prunable) break;
        last = sqlite3_column_int64(st, 0);
        max_clock = std::max(max_clock, static_cast<hlc_t>(sqlite3_column_int64(st, 3)));
        auto& f = floors[origin];
        f = std::max(f, hlc);
    }
    sqlite3_finalize(st);
    if (last == 0) return;
    std::string err;
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    int rc = exec_sql(wdb_, "DELETE FROM " + sys.table("hdbrepl_log") + " WHERE seq <= " + std::to_string(last), err);
    auto deleted = static_cast<std::uint64_t>(sqlite3_changes(wdb_));
    if (rc == SQLITE_OK) rc = wstore_->raise_progress(floors, &floors);
    if (rc == SQLITE_OK) rc = sys.raise_clock_floor(max_clock);
    if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
    if (rc != SQLITE_OK) {
        exec_sql(wdb_, "ROLLBACK", err);
        return;
    }
    for (const auto& [o, h] : floors) {
        floors_[o] = std::max(floors_[o], h);
        progress_[o] = std::max(progress_[o], h);
    }
    {
        std::lock_guard lock(shared_m_);
        progress_copy_ = progress_;
        pruned_total_ += deleted;
    }
    // A full batch: more may be prunable. Go on at once, behind whatever else waits for
    // this thread (one batch per 5 s pass let a log under steady writes grow without bound).
    if (deleted >= 256) on_db([known](node_impl& n) { n.prune_log(known); });
}

// ---- receiving (db thread) ----------------------------------------------------------------

void node_impl::enqueue(received&& r) {
    bool schedule = false;
    {
        std::lock_guard lock(rx_m_);
        rx_.push_back(std::move(r));
        if (!rx_scheduled_) schedule = rx_scheduled_ = true;
    }
    if (schedule) on_db([](node_impl& n) { n.drain_received(); });
}

bool node_impl::table_empty(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT 1 FROM main." + quote_ident(table + "_data") + " LIMIT 1";
    bool empty = true; // a table the copy will create is empty too
    if (sqlite3_prepare_v2(wdb_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) empty = sqlite3_step(st) != SQLITE_ROW;
    sqlite3_finalize(st);
    return empty;
}

void node_impl::defer_indexes(const std::string& table) {
    std::string err;
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return;
    sqlite3_stmt* st = nullptr;
    std::vector<std::pair<std::string, std::string>> indexes; // name, CREATE INDEX sql
    if (sqlite3_prepare_v2(wdb_, "SELECT name, sql FROM main.sqlite_schema WHERE type='index' AND tbl_name=?1 AND sql IS NOT NULL", -1,
                           &st, nullptr) == SQLITE_OK) {
        std::string data = table + "_data";
        sqlite3_bind_text(st, 1, data.c_str(), -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW)
            indexes.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    int rc = SQLITE_OK;
    for (const auto& [name, sql] : indexes) {
        if (rc == SQLITE_OK) rc = wstore_->system().set_meta("deferred_index:" + name, sql);
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "DROP INDEX main." + quote_ident(name), err);
    }
    if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
    if (rc != SQLITE_OK) exec_sql(wdb_, "ROLLBACK", err); // keep the indexes: slower, still right
    applier_->forget_caches();
}

int node_impl::restore_deferred_indexes(std::string& err) {
    // Inside the caller's transaction (copy end) or its own (node start).
    std::vector<std::pair<std::string, std::string>> pending;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(wdb_, "SELECT key, value FROM main.hdbrepl_meta WHERE key GLOB 'deferred_index:*'", -1, &st, nullptr) == SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            pending.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    for (const auto& [key, sql] : pending) {
        // The table may have been dropped meanwhile: then the index goes with it.
        int rc = exec_sql(wdb_, sql, err);
        if (rc != SQLITE_OK && err.find("no such table") == std::string::npos) return rc;
        if ((rc = exec_sql(wdb_, "DELETE FROM main.hdbrepl_meta WHERE key=" + quote_literal(key), err)) != SQLITE_OK) return rc;
    }
    if (!pending.empty()) applier_->forget_caches();
    return SQLITE_OK;
}

void node_impl::requeue_and_retry(std::vector<received>& items, std::size_t& i, clock_ms delay) {
    std::lock_guard lock(rx_m_);
    for (std::size_t k = items.size(); k > i; --k) rx_.push_front(std::move(items[k - 1]));
    i = items.size();
    if (rx_scheduled_) return;
    rx_scheduled_ = true;
    on_io([delay](node_impl& m) {
        m.retry_apply_timer_ = m.io_->after(delay, [w = m.weak_from_this()] {
            if (auto s = w.lock(); s && !s->stopped_) s->on_db([](node_impl& n) { n.drain_received(); });
        });
    });
}

// ---- forwarded reads ---------------------------------------------------------------------

sql::forwarded_read node_impl::forward_read(const std::string& table, const std::string& definition, const std::string& key_column,
                                            const value& key) {
    sql::forwarded_read out;
    // Where every row is everywhere, a miss is a miss: no network at all.
    const bool partial = cfg_.replicate_to >= 0 || main_sharded_ || holds_part_ || definition.find("residency=") != std::string::npos;
    if (!partial || stopped_) return out;
    auto done = std::make_shared<std::promise<sql::forwarded_read>>();
    auto fut = done->get_future();
    const auto timeout = std::chrono::milliseconds(cfg_.read_timeout_ms);
    on_io([done, table, key_column, key, timeout](node_impl& m) {
        const std::uint64_t id = ++m.next_read_id_;
        pending_read pr;
        pr.done = done;
        for (auto& [name, p] : m.peers_) {
            if (!p.link) {
                pr.unreachable.insert(name);
                continue;
            }
            m.send(p, w::read_request{id, table, key_column, key});
            pr.waiting.insert(name);
        }
        for (const auto& [k, t] : m.targets_)
            if (t.peer_name.empty() || !m.peers_.count(t.peer_name)) pr.unreachable.insert(t.host);
        if (pr.waiting.empty()) {
            sql::forwarded_read r;
            r.status = sql::forwarded_read::failed;
            r.error = "the row is not on this node, and no other node is connected to ask";
            done->set_value(std::move(r));
            return;
        }
        std::weak_ptr<node_impl> weak = m.weak_from_this();
        pr.timer = m.io_->after(timeout, [weak, id, timeout] {
            auto s = weak.lock();
            if (!s) return;
            auto it = s->reads_.find(id);
            if (it == s->reads_.end()) return;
            std::string who;
            for (const auto& n : it->second.waiting) who += (who.empty() ? "" : ", ") + n;
            sql::forwarded_read r;
            r.status = sql::forwarded_read::failed;
            r.error = "the row is not on this node and no node that may hold it answered within " + std::to_string(timeout.count()) +
                      " ms (waiting for " + who + ")";
            s->finish_read(id, std::move(r));
        });
        m.reads_.emplace(id, std::move(pr));
    });
    // The io thread answers within the timeout; the margin covers a stopped node.
    if (fut.wait_for(timeout + std::chrono::seconds(2)) != std::future_status::ready) {
        out.status = sql::forwarded_read::failed;
        out.error = "the node did not answer a forwarded read (is it stopping?)";
        return out;
    }
    return fut.get();
}

void node_impl::finish_read(std::uint64_t id, sql::forwarded_read result) {
    auto it = reads_.find(id);
    if (it == reads_.end()) return;
    if (it->second.timer) it->second.timer->cancel();
    it->second.done->set_value(std::move(result));
    reads_.erase(it);
}

void node_impl::answer_read(peer& p, w::read_request&& q) {
    const std::string name = p.name;
    const auto link_id = p.link_id;
    on_db([name, link_id, q = std::move(q)](node_impl& n) {
        // Our own data only: rdb_ is a node connection, which never forwards again.
        w::read_reply reply;
        reply.id = q.id;
        reply.status = w::read_status::cannot;
        const std::string sql = "SELECT * FROM \"main\"." + quote_ident(q.table) + " WHERE " + quote_ident(q.key_column) + " = ?1";
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(n.rdb_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
            bind_arg(st, 1, q.key);
            int rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                reply.status = w::read_status::found;
                for (int i = 0; i < sqlite3_column_count(st); ++i) reply.row.push_back(column_value(st, i));
            } else if (rc == SQLITE_DONE) {
                reply.status = w::read_status::absent;
            }
        }
        sqlite3_finalize(st);
        n.on_io([name, link_id, reply = std::move(reply)](node_impl& m) {
            if (auto* p = m.find_peer(name); p && p->link && p->link_id == link_id) m.send(*p, reply);
        });
    });
}

void node_impl::publish_resume_point() {
    std::optional<w::copy_resume> point;
    if (resume_.has_point) point = w::copy_resume{resume_.table, resume_.phase, resume_.key};
    on_io([point, rows = resume_.rows_done](node_impl& m) {
        m.resume_point_ = point;
        m.resume_rows_ = rows;
    });
}

void node_impl::pause_intake(const std::string& why, std::vector<received>& items, std::size_t& i) {
    intake_retry_ms_ = std::min<std::int64_t>(intake_retry_ms_ ? intake_retry_ms_ * 2 : 250, 4000);
    if (intake_paused_.empty()) log_line(name_, "intake paused: " + why + " (retrying; nothing is lost)");
    set_intake_paused(why);
    requeue_and_retry(items, i, clock_ms(intake_retry_ms_));
}

void node_impl::intake_ok() {
    if (intake_paused_.empty()) return;
    log_line(name_, "intake resumed");
    intake_retry_ms_ = 0;
    set_intake_paused("");
}

void node_impl::set_intake_paused(const std::string& why) {
    intake_paused_ = why;
    on_io([why](node_impl& m) {
        m.intake_status_ = why;
        m.update_status();
    });
}

void node_impl::drain_received() {
    std::vector<received> items;
    {
        std::lock_guard lock(rx_m_);
        items.assign(std::make_move_iterator(rx_.begin()), std::make_move_iterator(rx_.end()));
        rx_.clear();
        rx_scheduled_ = false;
    }
    std::size_t i = 0;
    while (i < items.size() && !stopped_) apply_batch(items, i);
}

void node_impl::apply_batch(std::vector<received>& items, std::size_t& i) {
    auto& first = items[i];
    if (first.what == received::copy_begin) {
        ++i;
        if (synced_) return; // only initial copies resume (a full resync is merged anew)
        progress_map next;
        for (const auto& o : first.end.progress) next[o.origin] = o.hlc;
        if (resume_.has_base) lower_copy_base(resume_.base, next);
        else resume_.base = std::move(next);
        resume_.has_base = true;
        if (int rc = wstore_->save_copy_resume(resume_); rc != SQLITE_OK)
            log_line(name_, std::string("saving the copy's resume point: ") + sqlite3_errstr(rc));
        return;
    }
    if (first.what == received::copy_rows) {
        auto& r = first.rows;
        const auto& t = first.tables[r.table];
        std::vector<copied_row> rows;
        rows.reserve(r.rows.size());
        for (auto& row : r.rows) rows.push_back({row.deleted, row.hlc, std::move(row.origin), std::move(row.values)});
        // A table that is empty when its copy starts gets its secondary indexes back at the
        // end of the copy: building an index once is many times cheaper than maintaining it
        // row by row in random order. The CREATE INDEX statements wait in hdbrepl_meta, so a
        // crash mid-copy cannot lose them (restored when the node starts).
        // The `system` tables are copied only where `system` replicates.
        const sub_rules rules = rules_for(first.peer);
        const bool skip = is_system_table(t.name) ? !replicate_system_ : !shares_data_with(first.peer) || !rules_allow(rules, t.name, false);
        bool defer = !skip && !deferred_checked_.count(t.name) && table_empty(t.name);
        deferred_checked_.insert(t.name);
        auto res = skip ? apply_result{} : applier_->apply_copy(t.name, t.definition, rows);
        if (res.rc != SQLITE_OK && is_resource_error(res.rc)) {
            // As for streamed records (below): the chunk waits, nothing is refused.
            for (std::size_t k = 0; k < rows.size(); ++k) {
                r.rows[k].origin = std::move(rows[k].origin);
                r.rows[k].values = std::move(rows[k].values);
            }
            return pause_intake(res.error, items, i);
        }
        if (res.rc == SQLITE_OK) intake_ok();
        if (defer && res.rc == SQLITE_OK) defer_indexes(t.name);
        if (res.rc == SQLITE_OK && !synced_ && !rows.empty()) {
            // The resume point follows the rows in (a crash before this write only re-copies
            // one chunk, merged by version). The rows' values were moved into `rows`.
            const auto& last = rows.back();
            const std::size_t pk = pk_of(t.definition);
            resume_.has_point = true;
            resume_.table = t.name;
            resume_.phase = last.deleted ? 1 : 0;
            resume_.key = last.deleted ? last.values[0] : last.values[std::min(pk, last.values.size() - 1)];
            resume_.rows_done += rows.size();
            if (int rc = wstore_->save_copy_resume(resume_); rc != SQLITE_OK)
                log_line(name_, std::string("saving the copy's resume point: ") + sqlite3_errstr(rc));
            publish_resume_point();
        }
        if (!skip && is_system_table(t.name) && res.rc == SQLITE_OK) {
            refresh_users();
            refresh_membership(false);
        }
        std::string peer = first.peer;
        auto link_id = first.link_id;
        ++i;
        on_io([peer, link_id, res](node_impl& m) {
            auto* p = m.find_peer(peer);
            if (!p || p->link_id != link_id) return;
            if (res.rc != SQLITE_OK) {
                p->last_error = res.error;
                log_line(m.name_, "copy from " + peer + " failed: " + res.error);
                if (p->link) p->link->close("copy failed: " + res.error);
                return;
            }
            m.send(*p, w::copy_ack{++p->copy_chunks});
        });
        return;
    }
    if (first.what == received::copy_end) {
        progress_map prog;
        for (const auto& o : first.end.progress) prog[o.origin] = o.hlc;
        // A copy that was cut and resumed claims no more than its earliest snapshot held.
        const bool was_resumed = resume_.has_point;
        if (!synced_ && resume_.has_base) lower_copy_base(prog, resume_.base);
        std::string err;
        int rc = exec_sql(wdb_, "BEGIN IMMEDIATE", err);
        // Tables that are empty at the source came without rows: create them, or the progress
        // raised below would claim their CREATE while they are missing here.
        for (const auto& t : first.tables) {
            if (rc != SQLITE_OK) break;
            const bool skip = is_system_table(t.name) ? !replicate_system_ : !shares_data_with(first.peer);
            if (skip) continue;
            auto res = applier_->ensure_copied_table(t.name, t.definition);
            rc = res.rc;
            if (rc != SQLITE_OK) err = res.error;
        }
        // What the copy brought is in our data but not in our log: those are the floors.
        if (rc == SQLITE_OK) rc = wstore_->raise_progress(prog, &prog);
        if (rc == SQLITE_OK) rc = restore_deferred_indexes(err);
        if (rc == SQLITE_OK) rc = wstore_->system().set_meta("synced", "1");
        if (rc == SQLITE_OK) rc = wstore_->clear_copy_resume();
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
        if (rc == SQLITE_OK) {
            if (was_resumed) log_line(name_, "the resumed initial copy is complete (" + std::to_string(resume_.rows_done) + " rows in all)");
            resume_ = {};
            publish_resume_point();
        }
        else exec_sql(wdb_, "ROLLBACK", err);
        deferred_checked_.clear();
        if (rc == SQLITE_OK)
            for (const auto& [o, h] : prog) {
                progress_[o] = std::max(progress_[o], h);
                floors_[o] = std::max(floors_[o], h);
            }
        {
            std::lock_guard lock(shared_m_);
            progress_copy_ = progress_;
        }
        std::string peer = first.peer;
        auto link_id = first.link_id;
        ++i;
        on_io([peer, link_id, rc, prog](node_impl& m) {
            auto* p = m.find_peer(peer);
            if (p && p->link_id == link_id) p->copying = false;
            if (rc != SQLITE_OK) return;
            m.synced_ = true;
            if (m.copy_link_ == link_id) m.copy_link_ = 0;
            if (auto* li = m.find_link(link_id)) li->copy_source = false;
            // What the copy brought is not in our log, so we cannot stream it: a peer that
            // subscribed meanwhile and wants it gets a copy from us instead.
            for (auto& [name, q] : m.peers_) {
                if (name == peer || !q.link || !q.subscribed || q.sending_copy) continue;
                bool wants = false;
                for (const auto& [o, h] : prog) wants = wants || (h > 0 && q.filter.wants(o, h));
                if (wants) m.start_copy_to(name, true);
            }
            m.resubscribe_all();
            m.pump_all();
            m.update_status();
        });
        return;
    }
    // A run of transactions: applied in one SQLite transaction, each in its own savepoint.
    std::string err;
    if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) {
        // Busy for longer than the timeout: try again shortly, keeping the order.
        return requeue_and_retry(items, i, clock_ms(100));
    }
    progress_map batch;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> acks; // peer -> (link, seq)
    std::map<std::string, std::string> failed;                            // peer -> error
    bool logged = false, skew = false, users_touched = false;
    std::size_t count = 0;
    apply_options opt;
    opt.max_clock_skew_ms = static_cast<std::uint64_t>(cfg_.max_clock_skew_ms);
    // First pass without savepoints (a savepoint per record journals every page it
    // touches); if a record fails, undo the batch and replay it with savepoints, so only
    // the failing record is left out.
    const std::size_t batch_start = i;
    std::string resource_error;
    auto undo_batch = [&] {
        exec_sql(wdb_, "ROLLBACK", err);
        applier_->forget_caches();
        progress_.clear();
        floors_.clear();
        wstore_->load_progress(progress_, floors_);
    };
    for (int pass = 0;; ++pass) {
        opt.savepoint = pass > 0;
        bool replay = false;
        batch.clear();
        acks.clear();
        failed.clear();
        logged = skew = false;
        count = 0;
        while (i < items.size() && items[i].what == received::txn && count < 1000) {
            auto& r = items[i];
            if (failed.count(r.peer)) { ++i; continue; }
            hlc_t hlc = 0;
            std::string origin;
            peek_record_head(r.record.data(), r.record.size(), hlc, origin);
            auto& have = progress_[origin];
            if (hlc > have) { // each origin's changes apply once, in order
                const sub_rules rules = rules_for(r.peer);
                const bool shares = shares_data_with(r.peer);
                if (!rules.empty() || !replicate_system_ || !shares) // explicit subscriptions, system, shards
                    r.record = filter_record(r.record.data(), r.record.size(), [&](const std::string& t) {
                        return is_system_table(t) ? replicate_system_ : shares && rules_allow(rules, t, false);
                    });
                auto res = r.record.empty() ? apply_result{} : applier_->apply(r.record.data(), r.record.size(), opt);
                // Rows placed elsewhere were withheld (placed and trimmed): lookups that miss forward.
                if (res.rc == SQLITE_OK && record_is_placed(r.record.data(), r.record.size()) &&
                    record_is_trimmed(r.record.data(), r.record.size()) && !holds_part_.exchange(true))
                    wstore_->system().set_meta("placed_elsewhere", "1"); // in the batch's transaction
                if (res.clock_skew) { skew = true; break; }
                if (res.rc != SQLITE_OK && is_resource_error(res.rc)) { resource_error = res.error; break; }
                if (res.rc != SQLITE_OK) {
                    if (!opt.savepoint) { replay = true; break; }
                    failed[r.peer] = res.error;
                    ++i;
                    continue;
                }
                logged = logged || res.logged;
                // A cheap over-approximation: a system table's name prefix in the record's bytes.
                static const std::string system_prefix = "hdbrepl_";
                users_touched = users_touched || std::search(r.record.begin(), r.record.end(), system_prefix.begin(), system_prefix.end()) != r.record.end();
                have = hlc;
                batch[origin] = hlc;
            }
            acks[r.peer] = {r.link_id, r.seq};
            ++i;
            ++count;
        }
        if (!replay || !resource_error.empty()) break;
        undo_batch();
        i = batch_start;
        if (exec_sql(wdb_, "BEGIN IMMEDIATE", err) != SQLITE_OK) return requeue_and_retry(items, i, clock_ms(100));
    }
    int rc = SQLITE_OK;
    if (resource_error.empty()) {
        rc = batch.empty() ? SQLITE_OK : wstore_->raise_progress(batch);
        if (rc == SQLITE_OK) rc = exec_sql(wdb_, "COMMIT", err);
        if (rc != SQLITE_OK) resource_error = sqlite3_errmsg(wdb_);
    }
    if (!resource_error.empty()) {
        // The disk is full (or failing), not the record bad: nothing is refused or acked.
        // Every record waits, in order, and the batch is tried again after a pause that
        // grows to a few seconds (no event says that space came back). Senders stop when
        // their flow-control windows fill, so a paused node costs them bounded memory.
        undo_batch();
        i = batch_start;
        return pause_intake(resource_error, items, i);
    }
    intake_ok();
    if (users_touched) {
        // Before the acks below: a peer that saw its change confirmed can rely on it here.
        refresh_users();
        refresh_membership(false);
    }
    if (skew) {
        // Too far ahead of our clock: keep the rest, in order, and retry in a while.
        requeue_and_retry(items, i, clock_ms(500));
    }
    {
        std::lock_guard lock(shared_m_);
        progress_copy_ = progress_;
    }
    std::vector<std::string> applied_origins;
    for (const auto& [o, h] : batch) applied_origins.push_back(o);
    on_io([acks, failed, logged, skew, applied_origins](node_impl& m) {
        for (const auto& [peer, a] : acks)
            if (auto* p = m.find_peer(peer); p && p->link_id == a.first) m.send(*p, w::ack{a.second});
        for (const auto& [peer, e] : failed)
            if (auto* p = m.find_peer(peer)) {
                p->last_error = "cannot apply: " + e;
                log_line(m.name_, "cannot apply a transaction from " + peer + ": " + e);
                if (p->link) p->link->close("apply failed");
            }
        if (skew)
            for (auto& [n, p] : m.peers_) p.last_error = "waiting: a received transaction is ahead of this node's clock";
        // Forward what we applied, to the peers that take it from us: in a steady full mesh
        // every peer hears each origin directly (excluded), and a log read for each of them
        // after each applied batch would find nothing (n(n-1) empty reads per commit).
        if (logged)
            for (auto& [name, p] : m.peers_) {
                bool wants = false;
                for (const auto& o : applied_origins) wants = wants || (o != name && !p.filter.exclude.count(o));
                if (wants) m.pump(name);
            }
        if (!failed.empty() || skew) m.update_status();
    });
}

// ---- status and operations --------------------------------------------------------------

void node_impl::notify_confirmations() {
    {
        std::lock_guard lock(shared_m_);
        for (auto& [n, p] : peers_) confirmed_[n] = p.confirmed_own;
    }
    confirm_cv_.notify_all();
}

int node_impl::wait_confirmed(hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only) {
    std::unique_lock lock(shared_m_);
    auto count = [&] {
        int c = 0;
        for (auto& [name, h] : confirmed_) c += h >= hlc && (only.empty() || only.count(name)) ? 1 : 0;
        return c;
    };
    confirm_cv_.wait_for(lock, timeout, [&] { return stopped_ || count() >= n; });
    return count();
}

void node_impl::update_status() {
    json::object top;
    top["type"] = "cluster-status";
    top["node_name"] = name_;
    json::array conns;
    bool any = false;
    for (auto& [name, p] : peers_) {
        json::object c;
        c["name"] = name;
        c["url"] = p.url;
        c["subscriptions"] = nullptr;
        c["replicates"] = true;
        c["state"] = p.copying ? "copying" : p.full_resync && p.sending_copy ? "full-resync" : p.state;
        c["lastError"] = p.last_error.empty() ? json::value(nullptr) : json::value(p.last_error);
        if (!p.link && p.down_since) c["unreachableSince"] = http_date(p.down_since);
        std::int64_t pending = std::max<std::int64_t>(0, log_last_seq_ - p.send_pos);
        c["backlog"] = static_cast<std::int64_t>(p.inflight_q.size()) + pending;
        // A resumed copy counts the rows from before the cut, which a newer snapshot may hold
        // a few fewer of (deleted meanwhile): progress never shows more than the total.
        if (p.copying) c["sync"] = json::object{{"rowsDone", std::min(p.copy_done, p.copy_total)}, {"rowsTotal", p.copy_total}};
        // Full copies sent to this peer because it fell behind our retained log.
        c["fullResyncs"] = p.full_resyncs;
        c["lastFullResync"] = p.last_full_resync ? json::value(http_date(p.last_full_resync)) : json::value(nullptr);
        json::object sock;
        sock["database"] = "main";
        sock["connected"] = static_cast<bool>(p.link);
        any = any || p.link;
        sock["latency"] = p.link ? json::value(p.link->latency_ms()) : json::value(nullptr);
        sock["lastCommitConfirmed"] = http_date(p.last_commit_confirmed);
        sock["lastReceivedRemoteTime"] = http_date(hlc_ms(p.last_received_remote));
        sock["lastReceivedLocalTime"] = p.copying ? std::string("Copying") : http_date(p.last_received_local);
        sock["lastSendTime"] = http_date(p.last_send);
        c["database_sockets"] = json::array{sock};
        conns.push_back(std::move(c));
    }
    // Targets never reached yet (no HELLO, so no peer): their state and why.
    for (auto& [key, t] : targets_) {
        if (!t.peer_name.empty() && peers_.count(t.peer_name)) continue;
        json::object c;
        c["name"] = t.host;
        c["url"] = t.scheme + "://" + (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
        c["subscriptions"] = nullptr;
        c["replicates"] = true;
        c["state"] = t.last_error.empty() ? "connecting" : is_refusal(t.last_error) ? "refused" : "unreachable";
        c["lastError"] = t.last_error.empty() ? json::value(nullptr) : json::value(t.last_error);
        if (t.down_since) c["unreachableSince"] = http_date(t.down_since);
        c["backlog"] = nullptr;
        json::object sock;
        sock["database"] = "main";
        sock["connected"] = false;
        sock["latency"] = nullptr;
        c["database_sockets"] = json::array{sock};
        conns.push_back(std::move(c));
    }
    top["connections"] = std::move(conns);
    top["is_enabled"] = true;
    top["connected"] = any;
    // Receiving stopped because this node cannot write (disk full, maxDatabaseSize): null
    // while all is well.
    top["intakePaused"] = intake_status_.empty() ? json::value(nullptr) : json::value(intake_status_);
    std::string s = json::serialize(top);
    std::lock_guard lock(shared_m_);
    status_json_ = std::move(s);
}

std::string node_impl::cluster_status_json() {
    std::lock_guard lock(shared_m_);
    return status_json_;
}

namespace {} // namespace

std::string node_impl::set_node(const std::string& operation_json, std::string& reply_json) {
    json::value v;
    std::string err = json::parse_object(operation_json, v);
    if (!err.empty()) return err;
    auto& o = v.as_object();
    std::string hostname = json::get_string(o, "hostname");
    if (hostname.empty()) hostname = json::get_string(o, "node_name");
    if (hostname.empty()) hostname = json::get_string(o, "name");
    std::string url = json::get_string(o, "url");
    int port = 0;
    std::string scheme;
    if (!url.empty()) {
        auto pos = url.find("://");
        if (pos == std::string::npos) return "'url' must look like ws://host:port or wss://host:port";
        scheme = url.substr(0, pos);
        if (scheme != "ws" && scheme != "wss") return "'url' scheme must be ws or wss, not '" + scheme + "'";
        std::string rest = url.substr(pos + 3);
        if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
        auto colon = rest.rfind(':');
        std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
        if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
        if (colon != std::string::npos) port = std::atoi(rest.c_str() + colon + 1);
        if (hostname.empty()) hostname = host;
    }
    if (hostname.empty()) return "'hostname' or 'url' is required";
    if (auto* pv = o.if_contains("port")) {
        if (!pv->is_int64() || pv->as_int64() < 1 || pv->as_int64() > 65535) return "'port' must be an integer between 1 and 65535";
        port = static_cast<int>(pv->as_int64());
    }
    // Without a URL, a node that serves TLS reaches others on their secure port.
    if (scheme.empty()) scheme = cfg_.serve_secure ? "wss" : "ws";
    if (port == 0) port = scheme == "wss" ? cfg_.secure_port : cfg_.port;
    bool verify_tls = true;
    if (auto* vt = o.if_contains("verify_tls")) {
        if (!vt->is_bool()) return "'verify_tls' must be true or false";
        verify_tls = vt->as_bool();
    }
    // The one-time credentials for a certificate exchange: used below, never stored.
    std::string authorization;
    if (auto* a = o.if_contains("authorization"); a && !a->is_null()) {
        if (a->is_string()) {
            authorization = std::string(a->as_string());
        } else if (a->is_object()) {
            std::string user = json::get_string(a->as_object(), "username"), pass = json::get_string(a->as_object(), "password");
            if (user.empty() || pass.empty()) return "'authorization' must hold a non-empty username and password";
            authorization = "Basic " + net::cred::base64_encode(user + ":" + pass);
            net::cred::wipe(pass);
        } else {
            return "'authorization' must be {\"username\": ..., \"password\": ...} or an HTTP Authorization string (Basic ..., Bearer <jwt>)";
        }
        if (authorization.empty()) return "'authorization' is empty";
        if (scheme != "wss")
            return "'authorization' is for a certificate exchange over TLS (wss://, securePort); the connection to '" + hostname + "' is " + scheme + "://";
    }
    std::int64_t start_time = -1;
    if (auto* st = o.if_contains("start_time")) {
        std::string e = json::parse_time_ms(*st, start_time);
        if (!e.empty()) return "'start_time' " + e;
    }
    node_row row;
    row.name = hostname;
    row.url = scheme + "://" + (hostname.find(':') != std::string::npos ? "[" + hostname + "]" : hostname) + ":" + std::to_string(port);
    row.start_time_ms = start_time;
    if (auto* sh = o.if_contains("shard")) {
        if (!sh->is_int64() || sh->as_int64() < 0 || sh->as_int64() >= 65536) return "'shard' must be an integer from 0 to 65535";
        row.shard = static_cast<int>(sh->as_int64());
    }
    if (auto* subs = o.if_contains("subscriptions")) {
        if (!subs->is_array() && !subs->is_null()) return "'subscriptions' must be an array of {database, table, publish, subscribe}";
        row.subscriptions_json = json::serialize(*subs);
    }
    if (hostname == name_) return "cannot add this node ('" + name_ + "') to its own cluster";
    if (!authorization.empty()) {
        // Cross-generated certificates: the exchange first, so that the link below is
        // verified mutual TLS from its first byte.
        std::string e = exchange_certificates(hostname, port, verify_tls, std::move(authorization));
        net::cred::wipe(authorization);
        if (!e.empty()) return "certificate exchange with '" + hostname + "' failed: " + e;
        verify_tls = true; // we trust its CA now
    }
    std::promise<int> done;
    auto fut = done.get_future();
    {
        std::lock_guard lock(shared_m_);
        if (row.subscriptions_json.empty()) rules_.erase(row.name);
        else rules_[row.name] = parse_rules(row.subscriptions_json);
    }
    on_db([row, &done](node_impl& n) {
        if (row.shard >= 0) n.given_shards_[row.name] = row.shard;
        int rc = n.wstore_->put_node(row);
        if (rc == SQLITE_OK) rc = n.wstore_->set_removed(row.name, false);
        if (rc == SQLITE_OK) rc = clear_removal(n.wdb_, "main", row.name);
        n.removals_seen_.erase(row.name);
        done.set_value(rc);
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return "timed out writing hdb_nodes";
    if (int rc = fut.get(); rc != SQLITE_OK) return std::string("writing hdb_nodes: ") + sqlite3_errstr(rc);
    on_io([hostname, port, scheme, start_time, verify_tls](node_impl& m) {
        m.removed_.erase(hostname);
        m.add_target(hostname, port, scheme, start_time, verify_tls);
    });
    if (scheme == "wss") {
        // A refusal (untrusted certificate, name mismatch, refused credentials) is the
        // answer to this add_node; a node that is merely down is kept and retried.
        const std::string key = hostname + ":" + std::to_string(port);
        std::string e = first_dial_result(key, std::chrono::seconds(8));
        if (is_refusal(e)) {
            on_io([key](node_impl& m) {
                if (auto it = m.targets_.find(key); it != m.targets_.end()) {
                    if (it->second.retry) it->second.retry->cancel();
                    m.targets_.erase(it);
                }
                m.update_status();
            });
            std::promise<void> removed;
            auto rfut = removed.get_future();
            on_db([name = row.name, &removed](node_impl& n) {
                bool existed = false;
                n.wstore_->remove_node(name, existed);
                removed.set_value();
            });
            rfut.wait_for(std::chrono::seconds(10));
            return "cannot connect to '" + hostname + "': " + e;
        }
    }
    std::string op = json::get_string(o, "operation");
    reply_json = op == "update_node" ? json::message("Successfully updated '" + hostname + "'")
                                     : json::message("Successfully added '" + hostname + "' to cluster");
    return "";
}

std::string node_impl::remove_node(const std::string& operation_json, std::string& reply_json) {
    std::string name;
    json::value v;
    if (json::parse_object(operation_json, v).empty()) {
        auto& o = v.as_object();
        name = json::get_string(o, "hostname");
        if (name.empty()) name = json::get_string(o, "node_name");
        if (name.empty()) name = json::get_string(o, "name");
        if (name.empty()) {
            std::string url = json::get_string(o, "url");
            if (auto pos = url.find("://"); pos != std::string::npos) {
                std::string rest = url.substr(pos + 3);
                name = rest.substr(0, rest.rfind(':'));
            }
        }
    } else {
        name = operation_json; // a bare hostname
        if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    }
    if (name.empty()) return "'hostname' (or 'name' or 'url') is required";
    std::promise<std::pair<int, bool>> done;
    auto fut = done.get_future();
    on_db([name, &done](node_impl& n) {
        bool existed = false;
        int rc = n.wstore_->remove_node(name, existed);
        if (rc == SQLITE_OK) rc = n.wstore_->set_removed(name, true);
        // Every member learns it (and no stale membership row brings the node back).
        if (rc == SQLITE_OK) rc = put_removal(n.wdb_, "main", name, n.name_);
        n.removals_seen_.insert(name);
        done.set_value({rc, existed});
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return "timed out writing hdb_nodes";
    auto [rc, existed] = fut.get();
    if (rc != SQLITE_OK) return std::string("writing hdb_nodes: ") + sqlite3_errstr(rc);
    std::promise<bool> known;
    auto kfut = known.get_future();
    on_io([name, &known](node_impl& m) {
        bool k = m.peers_.count(name) > 0;
        for (const auto& [key, t] : m.targets_) k = k || t.peer_name == name || t.host == name;
        m.forget_node(name);
        known.set_value(k);
    });
    bool was_known = kfut.wait_for(std::chrono::seconds(5)) == std::future_status::ready && kfut.get();
    if (!existed && !was_known) return "'" + name + "' does not exist";
    reply_json = json::message("Successfully removed '" + name + "' from cluster");
    return "";
}

std::string node_impl::search_nodes_json() {
    std::promise<std::vector<node_row>> done;
    auto fut = done.get_future();
    on_db([&done](node_impl& n) {
        std::vector<node_row> rows;
        n.wstore_->load_nodes(rows);
        done.set_value(rows);
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return "[]";
    json::array out;
    json::object self;
    self["name"] = name_;
    self["url"] = self_url();
    self["replicates"] = true;
    self["shard"] = cfg_.shard < 0 ? json::value(nullptr) : json::value(cfg_.shard);
    out.push_back(self);
    for (const auto& r : fut.get()) {
        json::object o;
        o["name"] = r.name;
        o["url"] = r.url;
        o["replicates"] = true;
        o["shard"] = r.shard < 0 ? json::value(nullptr) : json::value(r.shard);
        o["subscriptions"] = r.subscriptions_json.empty() ? json::value(nullptr) : json::parse_or_null(r.subscriptions_json);
        if (r.start_time_ms >= 0) o["start_time"] = r.start_time_ms;
        out.push_back(std::move(o));
    }
    return json::serialize(out);
}

} // namespace

// ---- security: the secure port's filter, the certificate exchange, reloads ----------------

bool node_impl::resident_on(const std::string& table, const std::string& definition, const std::vector<value>& row, const std::string& peer) {
    auto& ev = residency_of_definition_[definition];
    if (!ev) {
        ev = std::make_unique<residency_eval>();
        std::string err;
        auto def = parse_table_def(std::string_view(definition), err);
        if (!def || def->residency.empty()) {
            ev->error = def ? "no residency" : err;
        } else if (sqlite3_prepare_v2(rdb_, residency_query(*def).c_str(), -1, &ev->stmt, nullptr) != SQLITE_OK) {
            ev->error = sqlite3_errmsg(rdb_);
            log_line(name_, "table " + table + ": residency expression does not prepare (" + ev->error + "); its rows go to every node");
        }
    }
    if (!ev->stmt) return true;
    for (std::size_t i = 0; i < row.size(); ++i) bind_arg(ev->stmt, static_cast<int>(i + 1), row[i]);
    bool keep = true;
    if (sqlite3_step(ev->stmt) == SQLITE_ROW) {
        int type = sqlite3_column_type(ev->stmt, 0);
        if (type != SQLITE_NULL) {
            const auto* text = sqlite3_column_text(ev->stmt, 0);
            auto where = parse_residency(text ? reinterpret_cast<const char*>(text) : "", type == SQLITE_INTEGER, sqlite3_column_int64(ev->stmt, 0));
            if (auto* shard = std::get_if<residency_shard>(&where)) keep = shard_of(peer) == *shard;
            else if (auto* nodes = std::get_if<residency_nodes>(&where)) keep = std::find(nodes->begin(), nodes->end(), peer) != nodes->end();
            // an error (not a shard, not a list): the row goes everywhere
        }
    }
    sqlite3_reset(ev->stmt);
    sqlite3_clear_bindings(ev->stmt);
    return keep;
}

void node_impl::keep_resident_rows(std::vector<replication_store::log_record>& recs, const std::string& peer) {
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

void node_impl::keep_placed_rows(std::vector<replication_store::log_record>& recs, const std::string& peer) {
    std::vector<std::string> members;
    for (auto& r : recs) {
        if (r.body.empty()) continue;
        // Rows placed by their writer (row_placer.hpp) go to their nodes; the others, under
        // replicateTo, to the nodes the membership gives them now.
        const bool placed = record_is_placed(r.body.data(), r.body.size());
        if (!placed && cfg_.replicate_to < 0) continue;
        hlc_t hlc = 0;
        std::string origin;
        if (!peek_record_head(r.body.data(), r.body.size(), hlc, origin)) continue;
        if (members.empty()) members = placement_members();
        std::vector<std::vector<std::string>> lists;
        if (placed) {
            std::string err;
            if (auto rec = decode_record(r.body.data(), r.body.size(), err)) lists = std::move(rec->placements);
        }
        // Where every row is everywhere by configuration, a receiver with none of a placed
        // record's rows still gets its header (a trimmed record without changes): it then
        // knows the origin wrote rows it does not hold, and forwards lookups that miss.
        const bool tell_empty = placed && cfg_.replicate_to < 0;
        r.body = filter_changes(r.body.data(), r.body.size(), [&](const record_table& t, const change& c) {
            if (c.placement >= 0) {
                const auto& nodes = lists.at(static_cast<std::size_t>(c.placement));
                return std::binary_search(nodes.begin(), nodes.end(), peer);
            }
            if (cfg_.replicate_to < 0) return true;
            // An unplaced delete goes everywhere: its row may have been written by another
            // node, whose placement this one cannot recompute.
            if (is_system_table(t.name) || c.op != change_op::put || c.values.empty()) return true;
            if (t.definition.find("residency=") != std::string::npos) return true; // residency decides for those
            const std::size_t pk = pk_of(t.definition);
            const value& key = c.values[std::min(pk, c.values.size() - 1)];
            auto nodes = place_row(key, origin, members, cfg_.replicate_to);
            return std::binary_search(nodes.begin(), nodes.end(), peer);
        }, tell_empty);
    }
}

void node_impl::keep_placed_copy_rows(copy_state& cs, const snapshot_reader::table& t, const std::string& peer, std::vector<snapshot_row>& rows) {
    if (is_system_table(t.name)) return;
    if (t.definition.find("residency=") != std::string::npos) {
        // Residency decides for such tables, in copies as in streams (tombstones carry only
        // a key, so they go everywhere, as deletes do).
        std::erase_if(rows, [&](const snapshot_row& r) { return !r.deleted && !resident_on(t.name, t.definition, r.values, peer); });
        return;
    }
    if (!cs.sys) {
        cs.sys = std::make_unique<system_store>(cs.db, "main");
        cs.placements = std::make_unique<placement_store>(*cs.sys, cs.db);
    }
    bool stored = false;
    cs.placements->in_use(stored);
    if (!stored && cfg_.replicate_to < 0) return;
    const auto members = cfg_.replicate_to >= 0 ? placement_members() : std::vector<std::string>{};
    const std::size_t pk = pk_of(t.definition);
    std::erase_if(rows, [&](const snapshot_row& r) {
        // Tombstones go everywhere, as unplaced deletes do (a deleted row's placement is gone).
        if (r.values.empty() || r.deleted) return false;
        const value& key = r.values[std::min(pk, r.values.size() - 1)];
        std::optional<std::vector<std::string>> nodes;
        if (stored && cs.placements->get(t.name, key, nodes) != SQLITE_OK)
            return false; // unreadable: send it (a copy merges; an extra row is harmless)
        if (!nodes && cfg_.replicate_to >= 0) nodes = place_row(key, r.origin, members, cfg_.replicate_to);
        return nodes && !std::binary_search(nodes->begin(), nodes->end(), peer);
    });
}

void node_impl::update_own_member(bool fresh_version) {
    member_row me{name_, self_url(), security_ ? security_->presented_ca() : "", cfg_.shard};
    std::vector<member_row> rows;
    if (load_members(wdb_, "main", rows) != SQLITE_OK) return;
    for (const auto& r : rows)
        if (r == me && !fresh_version) return; // unchanged: no log record
    if (put_member(wdb_, "main", me) != SQLITE_OK) log_line(name_, std::string("writing this node's membership row: ") + sqlite3_errmsg(wdb_));
}

void node_impl::refresh_membership(bool force_targets) {
    std::vector<member_row> members;
    std::set<std::string> removals;
    if (load_members(wdb_, "main", members) != SQLITE_OK || load_removals(wdb_, "main", removals) != SQLITE_OK) return;
    if (!force_targets && members == members_seen_ && removals == removals_seen_) return;
    bool cas_changed = false;
    {
        std::set<std::string> before, after;
        for (const auto& m : members_seen_) before.insert(m.ca);
        for (const auto& m : members) after.insert(m.ca);
        cas_changed = before != after;
    }
    std::vector<std::string> new_removals;
    for (const auto& r : removals)
        if (!removals_seen_.count(r) || force_targets) new_removals.push_back(r);
    members_seen_ = members;
    removals_seen_ = removals;
    member_shards_.clear();
    for (const auto& m : members) member_shards_[m.name] = m.shard;
    // A removal made elsewhere is ours too: out of hdb_nodes, and kept out across restarts.
    for (const auto& r : new_removals) {
        if (r == name_) continue;
        bool existed = false;
        wstore_->remove_node(r, existed);
        wstore_->set_removed(r, true);
    }
    security_snapshot snap;
    bool reload = cas_changed && !force_targets && security_->load(snap).empty();
    on_io([members = std::move(members), new_removals = std::move(new_removals), reload, snap = std::move(snap)](node_impl& m) mutable {
        if (reload) m.apply_security(std::move(snap)); // trust the CAs members announce, before dialing them
        for (const auto& r : new_removals)
            if (r != m.name_) m.forget_node(r);
        for (const auto& member : members) m.add_member_target(member);
        m.update_status();
    });
}

void node_impl::add_member_target(const member_row& member) {
    if (member.name == name_ || removed_.count(member.name)) return;
    auto [scheme, host, port] = split_node_url(member.url);
    if (scheme.empty() || port == 0) return;
    // A member we already reach (by any target) needs no second route.
    if (auto* p = find_peer(member.name); p && p->link) return;
    for (const auto& [key, t] : targets_)
        if (t.peer_name == member.name || t.host == host) return;
    if (scheme != "ws" && scheme != "wss") return;
    add_target(host, port, scheme, -1);
}

void node_impl::forget_node(const std::string& name) {
    for (auto it = targets_.begin(); it != targets_.end();) {
        if (it->second.peer_name == name || it->second.host == name) {
            if (it->second.retry) it->second.retry->cancel();
            it = targets_.erase(it);
        } else {
            ++it;
        }
    }
    removed_.insert(name);
    if (auto* p = find_peer(name)) {
        // Tell the peer, so the flow stops both ways, then close.
        send(*p, w::removed{name_});
        if (p->link) p->link->close("removed from the cluster");
    }
    peers_.erase(name);
    resubscribe_all();
    update_status();
}

void node_impl::refresh_users() {
    std::vector<user_row> rows;
    security_store store(wdb_, "main");
    if (store.load_users(rows) != SQLITE_OK) return;
    std::map<std::string, user_row> users;
    for (auto& u : rows) users[u.username] = std::move(u);
    auto same = [](const std::map<std::string, user_row>& a, const std::map<std::string, user_row>& b) {
        if (a.size() != b.size()) return false;
        for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
            if (ia->first != ib->first || ia->second.role != ib->second.role || ia->second.password_hash != ib->second.password_hash) return false;
        return true;
    };
    if (same(users, users_seen_)) return;
    users_seen_ = users;
    on_io([users = std::move(users)](node_impl& m) mutable { m.sec_.users.users = std::move(users); });
}

net::accept_decision node_impl::check_secure(const net::peer_check& pc) {
    const std::string path = target_path(pc.target);
    const std::string claimed = query_param(pc.target, "node");
    auto refuse = [&](int status, const std::string& why) {
        log_line(name_, "refused " + path + " from " + pc.remote_ip + (claimed.empty() ? "" : " (" + claimed + ")") + ": " + why);
        return net::accept_decision{status, why};
    };
    if (path == "/hdbrepl/sign") {
        if (claimed.empty()) return refuse(400, "a certificate request must name its node (?node=<hostname>)");
        auto o = auth::check_header(sec_.users, pc.authorization, static_cast<std::int64_t>(now_ms() / 1000));
        if (o.http_status != 0) return refuse(o.http_status, o.message);
        log_line(name_, "certificate exchange with " + claimed + " (" + pc.remote_ip + ") authorized by user '" + o.username + "'");
        return {};
    }
    if (path != "/hdbrepl") return refuse(404, "unknown path " + path);
    if (!pc.certificate_presented)
        return refuse(403, "no client certificate: use this cluster's certificates, or add_node with authorization to have one signed");
    if (!pc.certificate_verified) return refuse(403, "client certificate refused: " + pc.verify_error);
    if (claimed.empty()) return refuse(403, "the request must name its node (?node=<hostname>)");
    const auto& names = pc.certificate_names;
    if (std::find(names.begin(), names.end(), claimed) == names.end())
        return refuse(403, "certificate name mismatch: the certificate is for " + join_names(names) + ", not '" + claimed + "'");
    if (removed_.count(claimed)) return refuse(403, "node '" + claimed + "' was removed from this cluster");
    return {};
}

void node_impl::on_sign_request(link_info& li, std::vector<std::uint8_t>&& data) {
    // One request per exchange; the answer closes the link.
    std::string request(data.begin(), data.end());
    on_db([request = std::move(request), claimed = li.claimed_name, id = li.id](node_impl& n) {
        bool changed = false;
        std::string reply = n.security_->handle_sign_request(request, claimed, changed);
        security_snapshot snap;
        std::string reload_error = changed ? n.security_->load(snap) : "";
        json::value v = json::parse_or_null(reply);
        std::string outcome = v.is_object() && v.as_object().contains("error") ? "refused: " + json::get_string(v.as_object(), "error")
                              : v.is_object() && v.as_object().contains("certificate") ? "signed a certificate"
                                                                                          : "exchanged CAs";
        log_line(n.name_, "certificate exchange with " + claimed + ": " + outcome);
        n.on_io([reply = std::move(reply), id, changed, reload_error, snap = std::move(snap)](node_impl& m) mutable {
            if (changed && reload_error.empty()) m.apply_security(std::move(snap));
            if (!reload_error.empty()) log_line(m.name_, "reloading certificates: " + reload_error);
            auto* li = m.find_link(id);
            if (!li) return;
            li->link->send(std::vector<std::uint8_t>(reply.begin(), reply.end()));
            li->link->close("certificate exchange done");
        });
    });
}

void node_impl::apply_security(security_snapshot snap) {
    sec_ = std::move(snap);
    if (tls_listener_)
        if (std::string e = tls_listener_->set_tls_identity(sec_.identity); !e.empty()) log_line(name_, "new certificate not taken: " + e);
}

std::string node_impl::reload_security() {
    auto p = std::make_shared<std::promise<std::string>>();
    auto fut = p->get_future();
    on_db([p](node_impl& n) {
        security_snapshot snap;
        if (std::string e = n.security_->load(snap); !e.empty()) return p->set_value(e);
        n.users_seen_ = snap.users.users;
        n.on_io([p, snap = std::move(snap)](node_impl& m) mutable {
            m.apply_security(std::move(snap));
            p->set_value("");
        });
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return "the node did not reload its certificates in time";
    return fut.get();
}

namespace {
// A promise that several callbacks may race to fulfil; the first wins.
struct once_result {
    std::promise<std::string> promise;
    std::atomic<bool> set{false};
    void operator()(const std::string& v) {
        if (!set.exchange(true)) promise.set_value(v);
    }
};
} // namespace

std::string node_impl::exchange_certificates(const std::string& host, int port, bool verify_tls, std::string authorization) {
    auto result = std::make_shared<once_result>();
    auto fut = result->promise.get_future();
    on_db([result, host, port, verify_tls, authorization](node_impl& n) {
        std::string request, key;
        if (std::string e = n.security_->make_sign_request(request, key); !e.empty()) return (*result)(e);
        n.on_io([result, host, port, verify_tls, authorization, request, key](node_impl& m) {
            net::tls_dial_options tls;
            tls.verify_server = verify_tls;
            tls.expected_name = host;
            tls.authorization = authorization;
            std::weak_ptr<node_impl> weak = m.shared_from_this();
            std::string bind = m.cfg_.bind == "0.0.0.0" ? "" : m.cfg_.bind;
            net::dial_tls(
                *m.io_, host, static_cast<std::uint16_t>(port), bind, "/hdbrepl/sign?node=" + m.name_, m.link_opts(), m.sec_.identity, tls,
                [weak, result, host, request, key](const net::link_ptr& link, const std::string& error) {
                    if (!link) return (*result)(error);
                    auto answered = std::make_shared<std::atomic<bool>>(false);
                    net::link_events ev;
                    ev.on_message = [weak, result, host, key, answered](const net::link_ptr& l, std::vector<std::uint8_t>&& data) {
                        if (answered->exchange(true)) return;
                        l->close("");
                        auto s = weak.lock();
                        if (!s || s->stopped_) return (*result)("node stopping");
                        s->on_db([result, host, key, reply = std::string(data.begin(), data.end())](node_impl& n) {
                            if (std::string e = n.security_->accept_sign_reply(reply, key, host); !e.empty()) return (*result)(e);
                            security_snapshot snap;
                            if (std::string e = n.security_->load(snap); !e.empty()) return (*result)(e);
                            n.update_own_member(); // the cluster learns the CA of our new certificate
                            log_line(n.name_, "certificate exchange with " + host + " done");
                            n.on_io([result, snap = std::move(snap)](node_impl& m) mutable {
                                m.apply_security(std::move(snap));
                                (*result)("");
                            });
                        });
                    };
                    ev.on_closed = [result, answered](const net::link_ptr&, const std::string& reason) {
                        if (!answered->load()) (*result)("the peer closed the certificate exchange without answering" + (reason.empty() ? "" : ": " + reason));
                    };
                    link->set_events(std::move(ev));
                    link->send(std::vector<std::uint8_t>(request.begin(), request.end()));
                });
        });
    });
    net::cred::wipe(authorization);
    if (fut.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return "the certificate exchange with " + host + " timed out";
    return fut.get();
}

std::string node_impl::first_dial_result(const std::string& key, std::chrono::milliseconds timeout) {
    auto result = std::make_shared<once_result>();
    auto fut = result->promise.get_future();
    on_io([key, result](node_impl& m) {
        auto it = m.targets_.find(key);
        if (it == m.targets_.end()) return (*result)("");
        auto& t = it->second;
        if (auto* p = t.peer_name.empty() ? nullptr : m.find_peer(t.peer_name); p && p->link) return (*result)("");
        t.first_result.push_back([result](const std::string& e) { (*result)(e); });
        if (!t.dialing) m.dial(key);
    });
    // No answer in time (a slow or silent peer) is not a refusal: the node keeps trying.
    if (fut.wait_for(timeout) != std::future_status::ready) return "";
    return fut.get();
}

std::shared_ptr<node> start_node(const std::shared_ptr<net::io_runtime>& io, const std::string& path, const node_config& cfg,
                                 const sqlite3_api_routines* api, std::string& error) {
    auto n = std::make_shared<node_impl>(io, path, cfg, api);
    if (!n->start(error)) {
        n->stop();
        return nullptr;
    }
    return n;
}

} // namespace hdbrepl::ext
