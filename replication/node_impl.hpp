// Internal to the node (node.cpp and its parts node_*.cpp), not part of node.hpp's
// interface: node_impl and the types the parts share. node.cpp says how data flows and which
// part is where; the members say which thread runs them ("-- io thread --", "-- db thread --").
#pragma once
#include "replication/node.hpp"

#include "engine/apply.hpp"
#include "replication/copy_chunk.hpp"
#include "replication/copy_resume.hpp"
#include "replication/copy_window.hpp"
#include "replication/fragments.hpp"
#include "replication/part_staging.hpp"
#include "engine/placement_store.hpp"
#include "replication/replication_store.hpp"
#include "engine/schema.hpp"
#include "engine/system_tables.hpp"
#include "engine/table_def.hpp"
#include "replication/wire.hpp"
#include "replication/link_entitlement.hpp"
#include "replication/node_security.hpp"
#include "replication/submit_to.hpp"
#include "net/transport.hpp"

#include <atomic>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

// A named namespace (not an anonymous one): every node_*.cpp must see the same node_impl.
namespace hdbrepl::ext::node_detail {

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;
using clock_ms = std::chrono::milliseconds;

inline std::uint64_t now_ms() { return wall_clock_ms(); }

inline void log_line(const std::string& node, const std::string& text) {
    // One line per event on stderr; the node's name makes interleaved output readable.
    std::fprintf(stderr, "hdbrepl[%s]: %s\n", node.c_str(), text.c_str());
}

// Errors of this node's storage rather than of the data: wait and retry, never refuse.
inline bool is_resource_error(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_NOMEM;
}

// A version no honest peer can hold: beyond the 63 bits of the HLC, or further ahead of this
// node's clock than maxClockSkew. Copies are checked as streams are: one such row raised the
// clock of every later local write to its time.
inline bool hlc_out_of_range(hlc_t h, std::int64_t max_skew_ms) {
    return h >= (hlc_t{1} << 63) || hlc_too_far_ahead(h, wall_clock_ms(), static_cast<std::uint64_t>(max_skew_ms));
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
    void run(); // the thread itself (node.cpp)
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
    // A part of a transaction other than its last (txn_record.hpp): its ack says it is staged,
    // not that the peer has the transaction, so it confirms nothing.
    bool partial = false;
};

// Bytes of one link's received items not yet done with on the db thread. The io thread adds
// when it queues an item; the item gives its bytes back when it is destroyed (applied or
// dropped; moving it on, to a retry or a held origin, keeps them counted). A peer that
// ignores flow control is cut off when its count passes the bound (node_links.cpp).
class queue_credit {
public:
    queue_credit() = default;
    queue_credit(std::shared_ptr<std::atomic<std::size_t>> counter, std::size_t n) : c_(std::move(counter)), n_(n) { *c_ += n_; }
    queue_credit(queue_credit&& o) noexcept : c_(std::move(o.c_)), n_(std::exchange(o.n_, 0)) {}
    queue_credit& operator=(queue_credit&& o) noexcept {
        if (this != &o) {
            release();
            c_ = std::move(o.c_);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    queue_credit(const queue_credit&) = delete;
    queue_credit& operator=(const queue_credit&) = delete;
    ~queue_credit() { release(); }

private:
    void release() {
        if (c_) *c_ -= n_;
        c_.reset();
        n_ = 0;
    }
    std::shared_ptr<std::atomic<std::size_t>> c_;
    std::size_t n_ = 0;
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
    bool resumed = false; // copy_end: of a copy this node asked to resume (rows after a point only)
    // txn: the record's head, read once (the record itself may be filtered down to nothing
    // before a batch is replayed). head_ok false: not read yet.
    bool head_ok = false;
    hlc_t head_hlc = 0;
    std::string head_origin;
    bool secure = false;  // arrived on a mutually authenticated TLS link (record_entitlement.hpp)
    bool resync = false;  // copy_*: a full resync of a synced node, not its initial copy
    std::set<std::string> excluded; // copy_end of a resync: origins this node hears from others
    // Counts this item's bytes against its link's bound of queued input until it is gone.
    queue_credit credit;
};

// Intake of one origin held back on the db thread: a record too far ahead of the clock, or one
// that failed to apply, waits with everything after it from that origin, and is retried with
// backoff; other origins go on. Acks of a link stop below its first held record.
struct parked_origin {
    std::deque<received> items;
    std::string reason;       // for cluster_status (lastError)
    std::uint64_t seq = 0;    // the first held record's sender seq
    std::string peer;         // and the peer it came from
    std::int64_t retry_ms = 0; // current backoff
    std::uint64_t since = 0;  // ms
    std::uint64_t attempts = 0;
    bool retrying = false;    // its items went back to the queue for another try
};

struct copy_state; // sender side of an initial copy, lives on the db thread

// An explicit subscription (add_node "subscriptions"): which tables go each way.
struct sub_rule {
    std::string database, table;
    bool publish = false, subscribe = false;
};
using sub_rules = std::vector<sub_rule>;

// Parses the stored subscriptions JSON; empty = replicate everything (automatic).
sub_rules parse_rules(const std::string& text); // node.cpp

// Whether `table` may flow in the given direction under `rules` (none: everything flows).
inline bool rules_allow(const sub_rules& rules, const std::string& table, bool publishing) {
    if (rules.empty()) return true;
    for (const auto& r : rules)
        if ((r.table == table || r.table == "*" || r.table.empty()) && (r.database.empty() || r.database == "main" || r.database == "data"))
            return publishing ? r.publish : r.subscribe;
    return false;
}

// A peer's connection as cluster_status reports it (its "state", with "copying" and
// "full-resync" shown while a copy runs either way).
enum class peer_state { connecting, connected, unreachable, disconnected, removed };

inline const char* peer_state_name(peer_state s) {
    switch (s) {
    case peer_state::connecting: return "connecting";
    case peer_state::connected: return "connected";
    case peer_state::unreachable: return "unreachable";
    case peer_state::disconnected: return "disconnected";
    case peer_state::removed: return "removed";
    }
    return "unknown";
}

struct peer {
    std::string name;
    std::string url;
    net::link_ptr link;
    std::uint64_t link_id = 0;
    peer_state state = peer_state::connecting;
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
    copy_window copy_win; // what of the copy may be unacknowledged (replication/copy_window.hpp)
    bool copy_reading = false, copy_done_reading = false;
    // A copy sent because the peer fell behind the retained log (cluster_status shows it).
    bool full_resync = false;
    std::uint64_t full_resyncs = 0, last_full_resync = 0;
    // times (ms) and versions for cluster_status
    std::uint64_t last_commit_confirmed = 0, last_received_local = 0, last_send = 0;
    hlc_t last_received_remote = 0;
    // messages and changes refused from this peer (link_entitlement.hpp, record_entitlement.hpp)
    std::uint64_t refusals = 0;
    std::string last_refusal;
};

// A refusal of something a peer or a stranger sent, kept for cluster_status (the newest few).
struct refusal_entry {
    std::uint64_t at_ms = 0;
    std::string from;   // address
    std::string node;   // name, when known
    std::string reason;
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
    bool copy_resumed = false;          // we asked it to resume a cut copy (sent a resume point)
    std::string peer;         // set after HELLO
    bool sign = false;        // an inbound certificate exchange (/hdbrepl/sign), not replication
    bool sign_requested = false; // its one request arrived (more are ignored)
    std::string claimed_name; // ?node= of an inbound request
    link_state state = link_state::awaiting_hello; // link_entitlement.hpp
    bool authenticated = false; // TLS with a verified certificate both ways (inbound: the filter
                                // checked the client's; outbound: we verified the server's)
    std::size_t copy_tables = 0; // copy_table messages of the copy under way
    std::shared_ptr<net::timer> hello_timer; // closes a link that never says HELLO
    std::shared_ptr<std::atomic<std::size_t>> queued = std::make_shared<std::atomic<std::size_t>>(0);
    // ---- messages larger than a frame (node_fragments.cpp; io thread) ----
    // Receiving: the message under assembly, the bytes of it (or of the last one) buffered
    // and acknowledged, and a fragment_ack held back while the input queue is over its bound.
    fragment_assembler frag_in;
    std::uint64_t frag_received = 0, frag_acked = 0;
    bool frag_assembled = false; // handle() runs a message assembled from fragments
    // Sending: a message sent in fragments at the front, and in order behind it what must
    // follow it; of the front, the bytes sent and the bytes the peer acknowledged.
    struct out_message {
        bytes data;
        bool control = false; // may overtake queued stream and copy messages (node_fragments.cpp)
    };
    std::deque<out_message> out_q;
    std::size_t out_controls = 0, out_sent = 0, out_acked = 0;
    bool fragment_acks_due() const {
        return !out_q.empty() && out_sent > out_acked;
    }
};

// The value of `key` in the query of an HTTP target ("/hdbrepl?node=a" -> "a").
inline std::string query_param(const std::string& target, const std::string& key) {
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

inline std::string target_path(const std::string& target) { return target.substr(0, target.find('?')); }

// A node url as hdb_nodes and membership rows store it: "ws://host:port", "wss://[v6]:port".
// scheme is "" and port 0 when absent.
struct node_url {
    std::string scheme, host;
    int port = 0;
};
inline node_url split_node_url(const std::string& url) {
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

inline std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "no name" : out;
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
    std::string address;   // the address our last successful dial reached (binds a plain HELLO)
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
    node_impl(std::shared_ptr<net::io_runtime> io, std::string path, node_config cfg, const sqlite3_api_routines* api,
              module_registrar register_module, const fault_hooks& faults)
        : io_(std::move(io)), path_(std::move(path)), cfg_(std::move(cfg)), api_(api), register_module_(register_module),
          faults_(faults) {}

    ~node_impl() override { stop(); }

    const node_config& config() const override { return cfg_; }
    const std::string& path() const override { return path_; }

    // user thread: opens the node's connections and starts listening and dialing.
    bool start(std::string& error);
    void stop() override;

private:
    // The steps of start(), in order (node.cpp says which thread runs each).
    void configure_replication();
    bool open_on_db_thread(std::vector<node_row>& known, std::string& error);
    std::string open_connections();
    std::string prepare_database(std::vector<node_row>& known);
    bool listen_on_io_thread(std::vector<node_row> known, std::string& error);
    std::string listen();
    void dial(const std::vector<node_row>& known);
    void subscribe_to_commits();
    void start_timers();

public:

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
        reply<sql::forwarded_read> done;
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
    // Moves the link to its next state and runs the message's handler (node_links.cpp).
    void handle(link_info& li, w::message&& m);
    // One handler per message (node_messages.cpp unless noted), run once the link was found
    // entitled to it (link_entitlement.hpp) and moved to its next state.
    void on_msg(link_info& li, peer& p, w::subscribe&& x);
    void on_msg(link_info& li, peer& p, w::txn&& x);
    void on_msg(link_info& li, peer& p, w::ack&& x);
    void on_msg(link_info& li, peer& p, w::copy_start&& x);
    void on_msg(link_info& li, peer& p, w::copy_table&& x);
    void on_msg(link_info& li, peer& p, w::copy_rows&& x);
    void on_msg(link_info& li, peer& p, w::copy_end&& x);
    void on_msg(link_info&, peer& p, w::copy_ack&& x) { on_copy_ack(p, x.chunks); }         // node_copy_sending.cpp
    void on_msg(link_info& li, peer& p, w::error_msg&& x);
    void on_msg(link_info& li, peer& p, w::removed&& x);
    void on_msg(link_info& li, peer& p, w::copy_request&& x);
    void on_msg(link_info&, peer& p, w::read_request&& x) { answer_read(p, std::move(x)); } // node_reads.cpp
    void on_msg(link_info& li, peer& p, w::read_reply&& x);
    void on_msg(link_info& li, peer&, w::fragment&& x) { on_fragment(li, std::move(x)); }    // node_fragments.cpp
    void on_msg(link_info& li, peer&, w::fragment_ack&& x) { on_fragment_ack(li, x); }      // node_fragments.cpp
    // The credit a queued item of n bytes takes from its link's input bound; none (and the
    // link closed, the refusal noted) when the peer ignored flow control.
    std::optional<queue_credit> take_credit(link_info& li, peer& p, std::size_t n);
    received received_from(const link_info& li, const peer& p, received::kind what) const;
    // A copy arriving on `li` is a full resync, not the initial copy this node asked for.
    bool is_resync_copy(const link_info& li) const { return !(li.copy_source && copy_link_ == li.id); }
    void on_hello(link_info& li, w::hello&& h);
    void send(peer& p, const w::message& m);
    void send_link(const net::link_ptr& l, const w::message& m);
    // -- messages larger than a frame (node_fragments.cpp), io thread --
    // Decodes one whole message (as it came, or assembled) and handles it if the link may
    // receive it now (node_links.cpp).
    void deliver(link_info& li, bytes&& data, bool assembled);
    // Sends at once, or queues behind a fragmented message; one larger than a frame goes in
    // fragments. `close_if_full`: a full transport queue closes the link (else it is logged).
    void send_on(link_info& li, const w::message& m, bool close_if_full);
    void pump_out(std::uint64_t link_id);
    void on_fragment(link_info& li, w::fragment&& f);
    void on_fragment_ack(link_info& li, const w::fragment_ack& a);
    void ack_fragments(std::uint64_t link_id);
    void refuse_on_link(link_info& li, const std::string& why); // log, count, close
    bool out_backlog(const peer& p); // messages wait behind a fragmented one on p's link
    // Unapplied input a link may have queued for the db thread (handle()'s flow-control bound).
    std::size_t input_bound() const { return static_cast<std::size_t>(cfg_.max_bytes_in_flight + 6 * cfg_.max_frame_bytes); }
    std::uint64_t fragment_cap(); // the largest fragmented message accepted
    std::uint64_t fragment_cap_ = 0;
    // Set (io thread) when a fragment_ack waits for a link's input queue to drain; the db
    // thread, having drained, clears it and asks the io thread to send what is due.
    std::atomic<bool> frag_acks_waiting_{false};
    void ack_all_fragments(); // io thread
    w::subscription my_subscription(const std::string& peer_name, const link_info* li);
    void choose_copy_source(link_info& li); // io thread
    void confirmations_changed();           // io thread: status, then repl_confirm's waiters
    bool confirm_refresh_posted_ = false;   // io thread
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
    void on_copy_ack(peer& p, std::uint64_t chunks); // io thread
    copy_chunk_budget copy_budget() const;            // node_copy_sending.cpp
    copy_window::limits copy_window_limits() const;
    void dial(const std::string& key);
    void schedule_redial(const std::string& key);
    void add_target(const std::string& host, int port, const std::string& scheme, std::int64_t start_time_ms, bool verify_tls = true);
    bool accept_ip(const std::string& ip);
    // The plain port's accept filter: the replication path only, from an allowed address.
    bool accept_plain(const std::string& ip, const std::string& target);
    // io thread: a refusal of a peer's message or of a connection: log line, status, count.
    // `log`: false when the caller logged the line already (or logs it once per kind).
    void note_refusal(const std::string& from, const std::string& node, const std::string& reason, bool log = true);
    std::deque<refusal_entry> refusals_; // io thread, newest last, bounded
    std::uint64_t refusals_total_ = 0;   // io thread
    // Whether a HELLO naming `name` may come from `ip` on the plain port: the name is the
    // address itself, or a route or known node of that name was reached at that address.
    bool name_bound_to_address(const std::string& name, const std::string& ip) const;
    // The secure port's accept filter: who may open a replication link or a certificate exchange.
    void check_secure(const net::peer_check& pc, std::function<void(net::accept_decision)> respond);
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
    void poll_data_version(); // io thread: the data_version check, every 250 ms
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
    // The steps of a batch of transactions (db thread, node_receiving.cpp; txn_batch.hpp).
    struct txn_batch;
    enum class item_step;
    bool begin_batch(std::vector<received>& items, std::size_t& i);
    void undo_batch();
    bool apply_batch_pass(std::vector<received>& items, std::size_t& i, txn_batch& b, const apply_options& opt);
    item_step apply_batch_item(received& r, std::size_t k, txn_batch& b, const apply_options& opt);
    item_step hold_back(txn_batch& b, std::size_t k, const std::string& origin, const std::string& why, bool refused);
    item_step apply_new_txn(const received& r, std::size_t k, hlc_t& have, txn_batch& b, const apply_options& opt);
    item_step stage_part(const received& r, const part_info& part, txn_batch& b);
    item_step apply_last_part(const received& r, const part_info& part, txn_batch& b, const apply_options& opt, apply_result& res);
    apply_result apply_staged_and_last(const received& r, const part_info& part, txn_batch& b, const apply_options& opt);
    void finish_batch(std::vector<received>& items, std::size_t batch_start, std::size_t& i, txn_batch& b);
    void commit_batch(txn_batch& b);
    bool settle_parked(std::vector<received>& items, std::size_t batch_start, std::size_t i, const txn_batch& b);
    void send_batch_outcome(const txn_batch& b);
    void apply_copy_item(std::vector<received>& items, std::size_t& i); // node_copy_receiving.cpp
    apply_result apply_received(const received& r, const bytes& record, const apply_options& opt,
                                std::map<std::string, std::pair<std::size_t, std::string>>& refused, bool& logged, bool& users_touched);
    void refuse_copy(const received& r, const std::string& why); // db thread -> io: close its link
    // Per-origin intake (db thread): held origins, and the acks they hold back per link.
    std::map<std::string, parked_origin> parked_;
    void park(const std::string& origin, received&& r, const std::string& why, bool refused);
    void retry_parked(const std::string& origin);
    void parked_done(const std::string& origin);             // its retried record went through
    std::uint64_t ack_ceiling(std::uint64_t link_id) const; // acks stay below held records
    std::map<std::uint64_t, std::uint64_t> max_seen_seq_;    // link -> newest seq processed
    std::set<std::uint64_t> refused_links_;                  // links cut for a bad copy: their queue is dropped
    void publish_parked();                                   // db -> io: status
    std::string parked_status_json_;                         // io thread
    std::map<std::string, std::shared_ptr<net::timer>> park_timers_; // io thread: origin -> retry
    bool open_connection(sqlite3** out, std::string& error);

    // -- any thread --
    void enqueue(received&& r);
    template <class F> void on_io(F&& f);
    template <class F> void on_db(F&& f);
    // Any thread but `t` (a thread waiting on its own queue would only wait out the timeout):
    // runs job(node, reply<R>) on thread `t` and waits up to `timeout` for the job, or a step
    // it hands the reply on to, to answer. nullopt: no answer in time, or the node stopped.
    template <class R, class F> std::optional<R> submit_to(node_thread t, clock_ms timeout, F&& job);
    // Debug builds: the caller runs on the named thread.
    void assert_on(node_thread t) const {
        assert(t == node_thread::io ? io_->in_io_thread() : db_ && db_->on_thread());
        (void)t;
    }

    std::shared_ptr<net::io_runtime> io_;
    std::string path_;
    node_config cfg_;
    const sqlite3_api_routines* api_;
    const module_registrar register_module_;
    const fault_hooks faults_; // tests only; see fault_hooks.hpp
    std::string name_;
    std::atomic<bool> stopped_{false};
    std::unique_ptr<db_thread> db_;
    std::uint64_t commit_sub_ = 0;

    // db thread state
    sqlite3* wdb_ = nullptr; // applies
    sqlite3* rdb_ = nullptr; // reads the log
    std::unique_ptr<applier> applier_;
    std::unique_ptr<replication_store> wstore_, rstore_;
    std::unique_ptr<part_staging> staging_; // db thread: parts of received transactions
    std::unique_ptr<node_security> security_;
    std::map<std::string, user_row> users_seen_; // the users the io thread knows, to notice replicated changes
    std::vector<member_row> members_seen_;         // membership as last given to the io thread
    std::set<std::string> removals_seen_;
    // Static shards: with `main` listed as sharded, its data flows only between
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
    // replicateTo: of each record for `peer`, only the rows placed on it (rendezvous
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
    // residency=<expr> tables: of each record for `peer`, only the rows whose
    // expression places them on it (a shard number or a JSON array of node names). Db thread.
    void keep_resident_rows(std::vector<replication_store::log_record>& recs, const std::string& peer);
    // Whether a table's residency expression places this row (all columns) on `peer`; true
    // when the table has none, false when it cannot be evaluated (fails closed).
    bool resident_on(const std::string& table, const std::string& definition, const std::vector<value>& row, const std::string& peer);
    struct residency_eval {
        sqlite3_stmt* stmt = nullptr; // SELECT (expr) FROM (SELECT ?1 AS col1, ...), in the db thread's sandbox
        std::string error;            // why it failed (logged once); "no residency": none
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
    // An interrupted initial copy (replication/copy_resume.hpp): the db thread's state, and what
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

template <class R, class F> std::optional<R> node_impl::submit_to(node_thread t, clock_ms timeout, F&& job) {
    assert(t == node_thread::io ? !io_->in_io_thread() : !(db_ && db_->on_thread()));
    reply<R> r;
    auto step = [r, job = std::forward<F>(job)](node_impl& n) mutable { job(n, r); };
    if (t == node_thread::io) on_io(std::move(step));
    else on_db(std::move(step));
    return r.wait(timeout);
}

} // namespace hdbrepl::ext::node_detail
