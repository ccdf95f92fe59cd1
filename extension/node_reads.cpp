// Forwarded reads: a key lookup that missed here, asked of the connected peers (user
// thread waits, io thread asks and collects), and the answers to peers' lookups (db thread).
#include "extension/node_impl.hpp"

namespace hdbrepl::ext::node_detail {

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

} // namespace hdbrepl::ext::node_detail
