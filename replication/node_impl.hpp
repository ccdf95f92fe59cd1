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
#include "replication/node_common.hpp"
#include "replication/db_thread.hpp"
#include "replication/intake_item.hpp"
#include "replication/peer.hpp"
#include "replication/link_info.hpp"
#include "replication/target.hpp"
#include "replication/copy_state.hpp"
#include "replication/row_filter.hpp"
#include "replication/intake_queue.hpp"
#include "replication/status_board.hpp"
#include "replication/membership_view.hpp"
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
    result<std::string> set_node(const std::string& operation_json) override;
    result<std::string> remove_node(const std::string& operation_json) override;
    // The operations themselves (node_cluster.cpp): "" and the reply, or why not.
    std::string apply_set_node(const std::string& operation_json, std::string& reply_json);
    std::string apply_remove_node(const std::string& operation_json, std::string& reply_json);
    std::string search_nodes_json() override;
    int wait_confirmed(hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only) override;
    result<void> reload_security() override;
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
    // A peer's subscription (from its HELLO or a subscribe) as the filter its stream is read
    // with; what it has, per origin, is also what it is known to have (for pruning).
    void take_subscription(peer& p, const w::subscription& sub);
    // Finds on the db thread where the peer's stream starts under its filter, then streams
    // from there, or sends a full resync when the log no longer holds what it lacks.
    void stream_from_subscription(const peer& p);
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
            if (auto it = targets().find(li.target); it != targets().end()) return it->second.start_time_ms;
        if (li.link)
            for (const auto& [key, t] : targets())
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
    // db thread: the connections and stores (see db_owned below).
    sqlite3*& wdb() { assert_on(node_thread::db); return db_owned_.wdb; }
    sqlite3*& rdb() { assert_on(node_thread::db); return db_owned_.rdb; }
    std::unique_ptr<applier>& applier_of() { assert_on(node_thread::db); return db_owned_.apply; }
    std::unique_ptr<replication_store>& wstore() { assert_on(node_thread::db); return db_owned_.wstore; }
    const std::unique_ptr<replication_store>& wstore() const { assert_on(node_thread::db); return db_owned_.wstore; }
    std::unique_ptr<replication_store>& rstore() { assert_on(node_thread::db); return db_owned_.rstore; }
    std::unique_ptr<part_staging>& staging() { assert_on(node_thread::db); return db_owned_.staging; }
    // io thread: the io-owned state (see io_owned below).
    std::map<std::uint64_t, link_info>& links() { assert_on(node_thread::io); return io_owned_.links; }
    std::map<std::string, peer>& peers() { assert_on(node_thread::io); return io_owned_.peers; }
    std::map<std::string, target>& targets() { assert_on(node_thread::io); return io_owned_.targets; }
    const std::map<std::string, target>& targets() const { assert_on(node_thread::io); return io_owned_.targets; }
    std::set<std::string>& allowed_ips() { assert_on(node_thread::io); return io_owned_.allowed_ips; }
    std::uint64_t& next_link_id() { assert_on(node_thread::io); return io_owned_.next_link_id; }
    peer* find_peer(const std::string& name) {
        auto it = peers().find(name);
        return it == peers().end() ? nullptr : &it->second;
    }
    link_info* find_link(std::uint64_t id) {
        auto it = links().find(id);
        return it == links().end() ? nullptr : &it->second;
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
                wstore()->system().load_partial_origins(partial);
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
    // The node's own SQLite connections and what runs on them: reached only through wdb(),
    // rdb(), applier_of(), wstore(), rstore() and staging(), which assert the db thread in
    // debug builds (no other thread ever touches a connection of the node).
    struct db_owned {
        sqlite3* wdb = nullptr; // applies
        sqlite3* rdb = nullptr; // reads the log
        std::unique_ptr<applier> apply;
        std::unique_ptr<replication_store> wstore, rstore;
        std::unique_ptr<part_staging> staging; // parts of received transactions
    } db_owned_;
    std::unique_ptr<node_security> security_;
    std::map<std::string, user_row> users_seen_; // the users the io thread knows, to notice replicated changes
    membership_view membership_;                   // membership as last given to the io thread
    // Which rows flow to and from each peer: one rule for senders and receivers
    // (row_filter.hpp). Db thread, except its rules (any thread) and configuration (start).
    row_filter row_filter_;
    // The nodes rows are placed over (engine/placement.hpp): this one first, then the
    // membership less removals. Db thread.
    std::vector<std::string> placement_members() const { return membership_.placement_members(name_); }
    progress_map progress_, floors_;
    std::int64_t data_version_ = -1;

    // io thread state
    std::vector<std::shared_ptr<net::listener>> listeners_;
    std::shared_ptr<net::listener> tls_listener_;
    security_snapshot sec_; // identity and users, replaced whole by reloads
    // The links, peers and dial targets, and the plain port's allowlist: reached only through
    // links(), peers(), targets(), allowed_ips() and next_link_id(), which assert the io
    // thread in debug builds.
    struct io_owned {
        std::map<std::uint64_t, link_info> links;
        std::map<std::string, peer> peers;
        std::map<std::string, target> targets;
        std::set<std::string> allowed_ips;
        std::uint64_t next_link_id = 1;
    } io_owned_;
    // Removed nodes: read from the database by the db thread at start, before the io thread
    // uses it; the io thread's afterwards.
    std::set<std::string> removed_;
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

    // shared, each behind its own lock: received items (io -> db), and what the threads
    // publish for each other (progress db -> io, status io -> users, confirmations io -> users)
    intake_queue intake_;
    status_board board_;
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
