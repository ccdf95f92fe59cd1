// Forwarded reads: a key lookup that missed here, asked of the connected peers (user
// thread waits, io thread asks and collects), and the answers to peers' lookups (db thread).
#include "replication/node_impl.hpp"

namespace hdbrepl::ext::node_detail {

sql::forwarded_read node_impl::forward_read(const std::string& table, const std::string& definition, const std::string& key_column,
                                            const value& key) {
    sql::forwarded_read out;
    // Where every row is everywhere, a miss is a miss: no network at all.
    if (!row_filter_.rows_may_live_elsewhere(definition) || stopped_) return out;
    const auto timeout = std::chrono::milliseconds(cfg_.read_timeout_ms);
    // The io thread answers within the timeout; the margin covers a stopped node.
    auto answer = submit_to<sql::forwarded_read>(node_thread::io, timeout + std::chrono::seconds(2),
                                                 [table, key_column, key, timeout](node_impl& m, reply<sql::forwarded_read> done) {
        const std::uint64_t id = ++m.next_read_id_;
        pending_read pr;
        pr.done = done;
        for (auto& [name, p] : m.peers()) {
            if (!p.link) {
                pr.unreachable.insert(name);
                continue;
            }
            m.send(p, w::read_request{id, table, key_column, key});
            pr.waiting.insert(name);
        }
        for (const auto& [k, t] : m.targets())
            if (t.peer_name.empty() || !m.peers().count(t.peer_name)) pr.unreachable.insert(t.host);
        if (pr.waiting.empty()) {
            sql::forwarded_read r;
            r.status = sql::forwarded_read::failed;
            r.error = "the row is not on this node, and no other node is connected to ask";
            done(std::move(r));
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
    if (!answer) {
        out.status = sql::forwarded_read::failed;
        out.error = "the node did not answer a forwarded read (is it stopping?)";
        return out;
    }
    return std::move(*answer);
}

void node_impl::finish_read(std::uint64_t id, sql::forwarded_read result) {
    auto it = reads_.find(id);
    if (it == reads_.end()) return;
    if (it->second.timer) it->second.timer->cancel();
    it->second.done(std::move(result));
    reads_.erase(it);
}

// A peer's lookup is answered only with what the link is entitled to: a row of a replicated
// user table of the main schema, looked up by that table's declared key, that the peer's
// subscription publishes to it, in a shard it shares, and that the table's residency places
// on it (rows placed by replicateTo or repl_replicate_to are served: placement is where rows
// are stored, and forwarded reads exist to reach them). Everything else is `cannot`. The
// table, its definition and its key column come from this node's own hdbrepl_tables, never
// from the request: the peer's strings only select among them. One log line per peer and
// reason. The lookup runs on the db thread; the reply goes out on the io thread.
void node_impl::answer_read(peer& p, w::read_request&& q) {
    const std::string name = p.name;
    const auto link_id = p.link_id;
    on_db([name, link_id, q = std::move(q)](node_impl& n) {
        // Our own data only: rdb() is a node connection, which never forwards again.
        w::read_reply reply;
        reply.id = q.id;
        reply.status = w::read_status::cannot;
        std::string refusal, reason; // the log line, and its kind (once per peer and kind)
        auto refuse = [&](const std::string& kind, const std::string& why) {
            reason = kind;
            refusal = "refused a forwarded read of " + name + " (table '" + q.table.substr(0, 200) + "'): " + why;
        };
        std::optional<system_store::table_entry> entry;
        std::optional<table_def> def;
        if (q.table.size() > max_name_len || q.key_column.size() > max_name_len) {
            refuse("name", "a name longer than " + std::to_string(max_name_len) + " bytes");
        } else if (is_reserved_table_name(q.table)) {
            refuse("hdbrepl", "hdbrepl's own tables are not served to peers");
        } else if (entry = n.rstore()->system().get_table(q.table); !entry || !entry->live || entry->name != q.table) {
            refuse("unknown", "no replicated table of that name here");
        } else if (!entry->replicate) {
            refuse("local", "the table is replicate=false");
        } else {
            std::string err;
            def = parse_table_def(std::string_view(entry->definition), err);
            bool is_vtab = false;
            sqlite3_stmt* s = nullptr;
            if (sqlite3_prepare_v2(n.rdb(), "SELECT sql FROM \"main\".sqlite_schema WHERE type = 'table' AND name = ?1", -1, &s, nullptr) == SQLITE_OK) {
                sqlite3_bind_text(s, 1, entry->name.data(), static_cast<int>(entry->name.size()), SQLITE_TRANSIENT);
                if (sqlite3_step(s) == SQLITE_ROW) {
                    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
                    std::string sql = t ? t : "";
                    for (auto& c : sql) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                    is_vtab = sql.rfind("create virtual table", 0) == 0 && sql.find("using hdbrepl(") != std::string::npos;
                }
            }
            sqlite3_finalize(s);
            if (!def || !is_vtab) {
                refuse("unknown", "not an hdbrepl table of the main schema here");
            } else if (sqlite3_stricmp(q.key_column.c_str(), def->columns[def->pk].name.c_str()) != 0) {
                refuse("key", "'" + q.key_column.substr(0, 200) + "' is not the table's primary key");
            } else if (!rules_allow(n.row_filter_.rules_for(name), entry->name, true)) {
                refuse("subscription", "the subscription does not publish this table to it");
            } else if (!n.row_filter_.shares_data_with(name)) {
                refuse("shard", "the table's data stays within this node's shard");
            }
        }
        if (refusal.empty()) {
            // Built from this node's own definition only.
            const std::string sql = "SELECT * FROM \"main\"." + quote_ident(entry->name) + " WHERE " + quote_ident(def->columns[def->pk].name) + " = ?1";
            sqlite3_stmt* st = nullptr;
            if (sqlite3_prepare_v2(n.rdb(), sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
                bind_arg(st, 1, q.key);
                int rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                    std::vector<value> row;
                    for (int i = 0; i < sqlite3_column_count(st); ++i) row.push_back(column_value(st, i));
                    if (!def->residency.empty() && !n.row_filter_.resident_on(entry->name, entry->definition, row, name)) {
                        refuse("residency", "the table's residency does not place the row on it");
                    } else {
                        reply.status = w::read_status::found;
                        reply.row = std::move(row);
                    }
                } else if (rc == SQLITE_DONE) {
                    reply.status = w::read_status::absent;
                }
            }
            sqlite3_finalize(st);
        }
        if (!refusal.empty()) {
            // Per db thread, so per node; bounded however many names peers make up.
            thread_local std::set<std::string> logged;
            if (logged.size() > 10000) logged.clear();
            if (logged.insert(name + '\n' + reason).second) log_line(n.name_, refusal + " (answered 'cannot'; logged once per peer and reason)");
        }
        n.on_io([name, link_id, reply = std::move(reply), refusal](node_impl& m) {
            auto* p = m.find_peer(name);
            // Every refused read counts in cluster_status; the log line is once per peer and reason.
            if (!refusal.empty()) m.note_refusal(p && p->link ? p->link->remote_address() : "", name, refusal, false);
            if (p && p->link && p->link_id == link_id) m.send(*p, reply);
        });
    });
}

} // namespace hdbrepl::ext::node_detail
