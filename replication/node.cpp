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
//
// This file: the node's construction, start and stop (user thread), its database thread
// and connections. The other parts (node_impl.hpp declares them all): node_links.cpp (links
// and the protocol), node_sending.cpp (streams, which rows go to a peer, log pruning),
// node_copy_sending.cpp (initial copies and full resyncs), node_receiving.cpp (applying),
// node_copy_receiving.cpp (applying copies), node_fragments.cpp (messages larger than a frame),
// node_reads.cpp (forwarded reads), node_cluster.cpp (status, operations, membership),
// node_trust.cpp (the secure port, certificates, users).
#include "replication/node.hpp"

#include "engine/commit_signal.hpp"
#include "engine/json.hpp"
#include "replication/node_impl.hpp"

#include <pthread.h>

#include <algorithm>

namespace hdbrepl::ext {
namespace node_detail {

// ---- the database thread ----------------------------------------------------------------

void db_thread::run() {
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

// ---- start and stop (user thread) ---------------------------------------------------------

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
    register_module_(*out, &err, api_);
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

// user thread. Starts the node in four steps: which databases and shards replicate; on the
// db thread, the connections and the persisted state; on the io thread, the listeners and
// the targets; then the commit subscription and the timers. A failed step leaves `error` set
// and the rest undone (start_node then stops the node).
bool node_impl::start(std::string& error) {
    configure_replication();
    db_ = std::make_unique<db_thread>();
    std::vector<node_row> known;
    if (!open_on_db_thread(known, error)) return false;
    if (!listen_on_io_thread(std::move(known), error)) return false;
    subscribe_to_commits();
    io_->post([self = shared_from_this()] { self->start_timers(); });
    return true;
}

// user thread. What replicates (row_filter.hpp): the system database (all of them, or
// "system" named), whether main is sharded, and the shards the routes give their nodes.
void node_impl::configure_replication() {
    name_ = cfg_.hostname;
    row_filter_.configure(name_, cfg_);
}

// user thread. Opens the connections and reads the persisted state on the db thread (bounded
// wait), then publishes the progress for the io thread. `known` gets the stored nodes. The
// job's answer lives in the reply's shared state, not on this stack: after a timeout here the
// job may still finish, and it holds the node while it runs.
bool node_impl::open_on_db_thread(std::vector<node_row>& known, std::string& error) {
    using opened_t = std::pair<std::string, std::vector<node_row>>;
    auto opened = submit_to<opened_t>(node_thread::db, std::chrono::seconds(10), [](node_impl& n, reply<opened_t> r) {
        std::vector<node_row> rows;
        std::string err = n.open_connections();
        if (err.empty()) err = n.prepare_database(rows);
        r(opened_t{std::move(err), std::move(rows)});
    });
    if (!opened) { error = "timed out opening the database"; return false; }
    error = opened->first;
    if (!error.empty()) return false;
    known = std::move(opened->second);
    board_.set_progress(progress_);
    return true;
}

// db thread. Opens the writing and the reading connection; the error text, or "".
std::string node_impl::open_connections() {
    assert_on(node_thread::db);
    std::string err;
    if (!open_connection(&wdb(), err) || !open_connection(&rdb(), err)) return err;
    // The applying connection commits with the WAL fsynced (synchronous=FULL): an ack is sent
    // after that commit and promises the change survives a power loss here (repl_confirm
    // counts on it). Batches of up to 1,000 records share one commit, so one fsync each.
    sqlite3_exec(wdb(), "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
    return err;
}

// db thread. Prepares the opened database: the replication tables and stores, this node's
// meta rows, the placement store, indexes a crash left out, security, progress, the known
// nodes (into `known`, with their rules and shards), the removed nodes, the synced flag and
// where an interrupted initial copy resumes. The error text, or "".
std::string node_impl::prepare_database(std::vector<node_row>& known) {
    assert_on(node_thread::db);
    std::string err;
    int rc = ensure_replication_tables(wdb(), "main", err);
    if (rc == SQLITE_OK) {
        wstore() = std::make_unique<replication_store>(wdb(), "main");
        staging() = std::make_unique<part_staging>(wstore()->system());
        rstore() = std::make_unique<replication_store>(rdb(), "main");
        applier_of() = std::make_unique<applier>(wdb(), "main");
        if (wstore()->system().node_name() != name_) rc = wstore()->system().set_meta("node_name", name_);
        // For hdb_nodes' own row.
        if (rc == SQLITE_OK) rc = wstore()->system().set_meta("node_url", self_url());
        if (rc == SQLITE_OK && cfg_.shard >= 0) rc = wstore()->system().set_meta("node_shard", std::to_string(cfg_.shard));
        // replicateTo for the writers' connections (row_placer.hpp), which place each row
        // at commit; and the table that keeps where rows live.
        if (rc == SQLITE_OK) {
            placement_store ps(wstore()->system(), wdb());
            rc = ps.ensure();
            if (rc == SQLITE_OK) rc = ps.clear_stale_flag();
            if (rc == SQLITE_OK)
                rc = cfg_.replicate_to >= 0 ? wstore()->system().set_meta("replicate_to", std::to_string(cfg_.replicate_to))
                                            : exec_sql(wdb(), "DELETE FROM main.hdbrepl_meta WHERE key = 'replicate_to'", err);
        }
        if (rc == SQLITE_OK && wstore()->system().get_meta("placed_elsewhere")) row_filter_.set_holds_part();
    }
    if (rc == SQLITE_OK && exec_sql(wdb(), "BEGIN IMMEDIATE", err) == SQLITE_OK) {
        // Indexes left out by a copy that a crash interrupted.
        int irc = restore_deferred_indexes(err);
        exec_sql(wdb(), irc == SQLITE_OK ? "COMMIT" : "ROLLBACK", err);
        err.clear();
    }
    if (rc == SQLITE_OK) {
        security_ = std::make_unique<node_security>(wdb(), path_, cfg_);
        if (std::string e = security_->load(sec_); !e.empty()) return e;
        users_seen_ = sec_.users.users;
        update_own_member();
    }
    if (rc == SQLITE_OK) rc = wstore()->load_progress(progress_, floors_);
    if (rc == SQLITE_OK) rc = wstore()->load_nodes(known);
    if (rc == SQLITE_OK) rc = wstore()->load_removed(removed_);
    for (const auto& k : known) {
        if (!k.subscriptions_json.empty()) row_filter_.set_rules(k.name, k.subscriptions_json);
        row_filter_.set_given_shard(k.name, k.shard);
    }
    if (rc == SQLITE_OK) {
        synced_ = wstore()->system().get_meta("synced").value_or("") == "1";
        rstore()->last_seq(log_last_seq_);
        bool found = false;
        if (!synced_) rc = wstore()->load_copy_resume(resume_, found);
        if (found && resume_.has_point) {
            resume_point_ = w::copy_resume{resume_.table, resume_.phase, resume_.key};
            resume_rows_ = resume_.rows_done;
            log_line(name_, "an initial copy was cut after " + std::to_string(resume_.rows_done) + " rows (table " + resume_.table +
                                "): it resumes there");
        }
    }
    if (rc != SQLITE_OK && err.empty()) err = sqlite3_errmsg(wdb());
    return rc == SQLITE_OK ? "" : "preparing the database: " + err;
}

// user thread. Listens, then dials the routes and the `known` nodes, on the io thread
// (bounded wait).
bool node_impl::listen_on_io_thread(std::vector<node_row> known, std::string& error) {
    auto listening = submit_to<std::string>(node_thread::io, std::chrono::seconds(10),
                                            [known = std::move(known)](node_impl& n, reply<std::string> r) {
                                                std::string err = n.listen();
                                                if (err.empty()) n.dial(known);
                                                r(err);
                                            });
    if (!listening) { error = "timed out starting the listener"; return false; }
    error = *listening;
    return error.empty();
}

// io thread. Opens the plain listener (if a port is set) and the TLS one (if the secure port
// is served); the error text, or "".
std::string node_impl::listen() {
    assert_on(node_thread::io);
    std::string err;
    net::link_options opts = link_opts();
    if (cfg_.has_port) {
        std::weak_ptr<node_impl> weak = weak_from_this();
        auto l = net::listen(
            *io_, cfg_.bind, static_cast<std::uint16_t>(cfg_.port), opts,
            [weak](const std::string& ip, const std::string& target) {
                auto s = weak.lock();
                return s && !s->stopped_ && s->accept_plain(ip, target);
            },
            [weak](const net::link_ptr& link) {
                if (auto s = weak.lock(); s && !s->stopped_) s->on_link_open(link, "", true);
            },
            err);
        if (!l) return "cannot listen on " + cfg_.bind + ":" + std::to_string(cfg_.port) + ": " + err;
        listeners_.push_back(l);
    }
    if (cfg_.serve_secure) {
        std::weak_ptr<node_impl> weak = weak_from_this();
        auto l = net::listen_tls_async(
            *io_, cfg_.bind, static_cast<std::uint16_t>(cfg_.secure_port), opts, sec_.identity,
            [weak](const net::peer_check& pc, net::respond_fn respond) {
                auto s = weak.lock();
                if (!s || s->stopped_) return respond(net::accept_decision{503, "node stopping"});
                s->check_secure(pc, std::move(respond)); // answers later for /hdbrepl/sign (node_trust.cpp)
            },
            [weak](const net::link_ptr& link) {
                if (auto s = weak.lock(); s && !s->stopped_) s->on_link_open(link, "", true);
            },
            err);
        if (!l) return "cannot listen on " + cfg_.bind + ":" + std::to_string(cfg_.secure_port) + " (securePort): " + err;
        tls_listener_ = l;
        listeners_.push_back(l);
    }
    return "";
}

// io thread. Adds a target for every route and every `known` node, refreshes the status and
// has the db thread refresh the membership.
void node_impl::dial(const std::vector<node_row>& known) {
    assert_on(node_thread::io);
    for (const auto& r : cfg_.routes) add_target(r.hostname, r.port, r.scheme, r.start_time_ms);
    for (const auto& n : known) {
        auto u = split_node_url(n.url);
        add_target(u.host, u.port, u.scheme.empty() ? "wss" : u.scheme, n.start_time_ms);
    }
    update_status();
    on_db([](node_impl& n) { n.refresh_membership(true); });
}

// user thread. A commit to the database in this process pumps every peer (on the io thread).
void node_impl::subscribe_to_commits() {
    std::weak_ptr<node_impl> weak = weak_from_this();
    commit_sub_ = commit_signal::subscribe(path_, [weak](std::uint64_t) {
        if (auto s = weak.lock()) s->on_io([](node_impl& n) { n.pump_all(); });
    });
}

// io thread. Starts the data_version poll (writers in other processes cannot signal us: a
// light check of the database's data_version catches their commits, and our own DDL-only
// transactions) and the log prune timer.
void node_impl::start_timers() {
    assert_on(node_thread::io);
    poll_data_version();
    schedule_prune();
}

// io thread. Every 250 ms: the database thread compares data_version with the last seen one
// (another process committed, or a DDL-only transaction ran) and refreshes what depends on it;
// the status snapshot is refreshed too (latency and backlog change without events). The timer
// holds the node weakly, so a stopped or dropped node ends the chain.
void node_impl::poll_data_version() {
    assert_on(node_thread::io);
    if (stopped_) return;
    on_db([](node_impl& n) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(n.rdb(), "PRAGMA data_version", -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            auto v = sqlite3_column_int64(st, 0);
            if (v != n.data_version_) {
                n.data_version_ = v;
                n.refresh_users();
                std::int64_t last = 0;
                n.rstore()->last_seq(last);
                // Also keeps the backlog of disconnected peers current.
                n.on_io([last](node_impl& m) {
                    m.log_last_seq_ = std::max(m.log_last_seq_, last);
                    m.pump_all();
                });
            }
        }
        sqlite3_finalize(st);
    });
    update_status();
    std::weak_ptr<node_impl> weak = weak_from_this();
    poll_timer_ = io_->after(clock_ms(250), [weak] {
        if (auto s = weak.lock()) s->poll_data_version();
    });
}

void node_impl::stop() {
    if (stopped_.exchange(true)) return;
    if (commit_sub_) commit_signal::unsubscribe(commit_sub_);
    // Close sockets on the io thread and wait for that (bounded).
    reply<done_t> closed;
    // Should the wait below give up, the node may be gone when this runs: hold it if it is
    // owned (stop() called through a shared_ptr); from the destructor, `this` is only used
    // while the destructor waits, as before.
    std::weak_ptr<node_impl> weak = weak_from_this();
    const bool owned = !weak.expired();
    io_->post([this, weak, owned, closed] {
        auto hold = weak.lock();
        if (owned && !hold) return closed(done);
        for (auto& l : listeners_) l->close();
        listeners_.clear();
        tls_listener_.reset();
        for (auto& [id, li] : links())
            if (li.link) li.link->close("node stopping");
        links().clear();
        for (auto& [k, t] : targets())
            if (t.retry) t.retry->cancel();
        if (poll_timer_) poll_timer_->cancel();
        if (retry_apply_timer_) retry_apply_timer_->cancel();
        if (prune_timer_) prune_timer_->cancel();
        peers().clear();
        closed(done);
    });
    (void)closed.wait(std::chrono::seconds(5));
    board_.wake_waiters();
    if (db_) {
        // Close the connections on their own thread, then join it.
        reply<done_t> closed_db;
        db_->post([this, closed_db] {
            applier_of().reset();
            staging().reset(); // refers to wstore()'s system store
            wstore().reset();
            rstore().reset();
            row_filter_.finalize_statements(); // they run on this thread's residency sandbox
            if (wdb()) sqlite3_close_v2(wdb());
            if (rdb()) sqlite3_close_v2(rdb());
            wdb() = rdb() = nullptr;
            closed_db(done);
        });
        (void)closed_db.wait(std::chrono::seconds(10));
        db_->stop_and_join();
    }
}

} // namespace node_detail

result<std::shared_ptr<node>> start_node(const std::shared_ptr<net::io_runtime>& io, const std::string& path, const node_config& cfg,
                                         const sqlite3_api_routines* api, module_registrar register_module, const fault_hooks& faults) {
    auto n = std::make_shared<node_detail::node_impl>(io, path, cfg, api, register_module, faults);
    std::string why;
    if (!n->start(why)) {
        n->stop();
        return error{SQLITE_ERROR, why};
    }
    return std::shared_ptr<node>(std::move(n));
}

} // namespace hdbrepl::ext
