// Replication state, log reading and snapshots (see replication_store.hpp).
#include "replication/replication_store.hpp"

#include <algorithm>

#include "engine/row_store.hpp"
#include "engine/table_def.hpp"

namespace hdbrepl::engine {

namespace {
std::string q(const std::string& schema, const char* name) { return quote_ident(schema) + "." + quote_ident(name); }

std::string col_text(sqlite3_stmt* s, int i) {
    auto* t = sqlite3_column_text(s, i);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}
} // namespace

int ensure_replication_tables(sqlite3* db, const std::string& schema, std::string& err) {
    int rc = ensure_system_tables(db, schema, err);
    if (rc != SQLITE_OK) return rc;
    return exec_sql(db,
                    "CREATE TABLE IF NOT EXISTS " + q(schema, "hdbrepl_progress") +
                        "(origin TEXT PRIMARY KEY, hlc INTEGER NOT NULL, log_floor INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
                        "CREATE TABLE IF NOT EXISTS " + q(schema, "hdbrepl_nodes") +
                        "(name TEXT PRIMARY KEY, url TEXT, subscriptions TEXT, shard INTEGER, start_time INTEGER, added_at INTEGER) WITHOUT ROWID;"
                        // Parts of a transaction received before its last part (part_staging.hpp).
                        "CREATE TABLE IF NOT EXISTS " + q(schema, "hdbrepl_staged") +
                        "(origin TEXT NOT NULL, hlc INTEGER NOT NULL, part INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY(origin, hlc, part));",
                    err);
}

replication_store::replication_store(sqlite3* db, std::string schema) : db_(db), sys_(db, std::move(schema)) {}

int replication_store::load_progress(progress_map& hlc, progress_map& floors) {
    cached_stmt s(sys_.cache(), "SELECT origin, hlc, log_floor FROM " + sys_.table("hdbrepl_progress"));
    if (!s) return s.prepare_rc();
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        std::string o = col_text(s.get(), 0);
        hlc[o] = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 1));
        floors[o] = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 2));
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::raise_progress(const progress_map& hlc, const progress_map* floors) {
    cached_stmt s(sys_.cache(), "INSERT INTO " + sys_.table("hdbrepl_progress") +
                                    "(origin, hlc, log_floor) VALUES(?1, ?2, ?3) ON CONFLICT(origin) DO UPDATE SET "
                                    "hlc = max(hlc, excluded.hlc), log_floor = max(log_floor, excluded.log_floor)");
    if (!s) return s.prepare_rc();
    for (const auto& [origin, h] : hlc) {
        sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_STATIC);
        sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(h));
        hlc_t floor = 0;
        if (floors)
            if (auto it = floors->find(origin); it != floors->end()) floor = it->second;
        sqlite3_bind_int64(s.get(), 3, static_cast<sqlite3_int64>(floor));
        int rc = sqlite3_step(s.get());
        sqlite3_reset(s.get());
        if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
}

int replication_store::load_nodes(std::vector<node_row>& out) {
    cached_stmt s(sys_.cache(), "SELECT name, url, subscriptions, shard, start_time FROM " + sys_.table("hdbrepl_nodes") + " ORDER BY name");
    if (!s) return s.prepare_rc();
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        node_row n;
        n.name = col_text(s.get(), 0);
        n.url = col_text(s.get(), 1);
        n.subscriptions_json = col_text(s.get(), 2);
        n.shard = sqlite3_column_type(s.get(), 3) == SQLITE_NULL ? -1 : sqlite3_column_int(s.get(), 3);
        n.start_time_ms = sqlite3_column_type(s.get(), 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(s.get(), 4);
        out.push_back(std::move(n));
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::put_node(const node_row& n) {
    cached_stmt s(sys_.cache(), "INSERT OR REPLACE INTO " + sys_.table("hdbrepl_nodes") +
                                    "(name, url, subscriptions, shard, start_time, added_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    if (!s) return s.prepare_rc();
    auto* st = s.get();
    sqlite3_bind_text(st, 1, n.name.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, n.url.c_str(), -1, SQLITE_STATIC);
    if (n.subscriptions_json.empty()) sqlite3_bind_null(st, 3);
    else sqlite3_bind_text(st, 3, n.subscriptions_json.c_str(), -1, SQLITE_STATIC);
    if (n.shard < 0) sqlite3_bind_null(st, 4);
    else sqlite3_bind_int(st, 4, n.shard);
    if (n.start_time_ms < 0) sqlite3_bind_null(st, 5);
    else sqlite3_bind_int64(st, 5, n.start_time_ms);
    sqlite3_bind_int64(st, 6, static_cast<sqlite3_int64>(wall_clock_ms()));
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::remove_node(const std::string& name, bool& existed) {
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_nodes") + " WHERE name=?1");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, name.c_str(), -1, SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    existed = sqlite3_changes(db_) > 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::ensure_node(const std::string& name, const std::string& url) {
    // Never for a removed node: a link that came up just before remove_node queues this
    // after the removal's delete, and would bring the row back (seen under TSan).
    cached_stmt s(sys_.cache(), "INSERT OR IGNORE INTO " + sys_.table("hdbrepl_nodes") + "(name, url, added_at) SELECT ?1, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM " +
                                    sys_.table("hdbrepl_meta") + " WHERE key = 'removed:' || ?1)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, name.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_text(s.get(), 2, url.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s.get(), 3, static_cast<sqlite3_int64>(wall_clock_ms()));
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::set_removed(const std::string& name, bool removed) {
    std::string key = "removed:" + name;
    if (removed) return sys_.set_meta(key, "1");
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_meta") + " WHERE key=?1");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, key.c_str(), -1, SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::load_copy_resume(copy_resume_state& out, bool& found) {
    out = {};
    found = false;
    auto text = sys_.get_meta("copy_resume");
    if (!text) return SQLITE_OK;
    found = decode_copy_resume(*text, out);
    if (!found) out = {};
    return SQLITE_OK;
}

int replication_store::save_copy_resume(const copy_resume_state& s) { return sys_.set_meta("copy_resume", encode_copy_resume(s)); }

int replication_store::clear_copy_resume() {
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_meta") + " WHERE key='copy_resume'");
    if (!s) return s.prepare_rc();
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::load_removed(std::set<std::string>& out) {
    cached_stmt s(sys_.cache(), "SELECT substr(key, 9) FROM " + sys_.table("hdbrepl_meta") + " WHERE key GLOB 'removed:*'");
    if (!s) return s.prepare_rc();
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.insert(col_text(s.get(), 0));
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

bool replication_store::filter::wants(const std::string& origin, hlc_t hlc) const {
    if (exclude.count(origin)) return false;
    auto it = progress.find(origin);
    return hlc > (it == progress.end() ? start_after : it->second);
}

int replication_store::find_start(const filter& f, std::int64_t& after_seq) {
    // Every record's hlc is <= its clock, and clock never decreases along seq: once a
    // record's clock is at or below the lowest threshold, nothing at or before it is wanted.
    hlc_t lowest = f.start_after;
    for (const auto& [o, h] : f.progress)
        if (!f.exclude.count(o)) lowest = std::min(lowest, h);
    after_seq = 0;
    cached_stmt s(sys_.cache(), "SELECT seq, clock FROM " + sys_.table("hdbrepl_log") + " ORDER BY seq DESC");
    if (!s) return s.prepare_rc();
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        if (static_cast<hlc_t>(sqlite3_column_int64(s.get(), 1)) <= lowest) {
            after_seq = sqlite3_column_int64(s.get(), 0);
            return SQLITE_OK;
        }
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int replication_store::read_after(std::int64_t after_seq, const filter& f, std::size_t max_bytes, std::vector<log_record>& out,
                                  std::int64_t& scanned_to) {
    scanned_to = after_seq;
    cached_stmt s(sys_.cache(), "SELECT seq, hlc, origin, body FROM " + sys_.table("hdbrepl_log") + " WHERE seq > ?1 ORDER BY seq LIMIT 4096");
    if (!s) return s.prepare_rc();
    sqlite3_bind_int64(s.get(), 1, after_seq);
    std::size_t bytes_out = 0;
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        std::int64_t seq = sqlite3_column_int64(s.get(), 0);
        hlc_t hlc = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 1));
        std::string origin = sys_.origin_name(sqlite3_column_int64(s.get(), 2));
        if (f.wants(origin, hlc)) {
            // The body (often in overflow pages) is read only for records that are sent.
            auto n = static_cast<std::size_t>(sqlite3_column_bytes(s.get(), 3));
            if (!out.empty() && bytes_out + n > max_bytes) break;
            auto* b = static_cast<const std::uint8_t*>(sqlite3_column_blob(s.get(), 3));
            out.push_back({seq, hlc, std::move(origin), bytes(b, b + n)});
            bytes_out += n;
        }
        scanned_to = seq;
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int replication_store::last_seq(std::int64_t& seq) {
    seq = 0;
    cached_stmt s(sys_.cache(), "SELECT coalesce(max(seq), 0) FROM " + sys_.table("hdbrepl_log"));
    if (!s) return s.prepare_rc();
    if (sqlite3_step(s.get()) == SQLITE_ROW) seq = sqlite3_column_int64(s.get(), 0);
    return SQLITE_OK;
}

int replication_store::own_latest(const std::string& origin, hlc_t& hlc) {
    hlc = 0;
    std::int64_t id = 0;
    if (int rc = sys_.origin_id(origin, id); rc != SQLITE_OK) return rc;
    cached_stmt s(sys_.cache(), "SELECT hlc FROM " + sys_.table("hdbrepl_log") + " WHERE origin=?1 ORDER BY seq DESC LIMIT 1");
    if (!s) return s.prepare_rc();
    sqlite3_bind_int64(s.get(), 1, id);
    if (sqlite3_step(s.get()) == SQLITE_ROW) hlc = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 0));
    return SQLITE_OK;
}

// ---- snapshot -------------------------------------------------------------------------

snapshot_reader::~snapshot_reader() { end(); }

int snapshot_reader::begin(std::string& err) {
    int rc = exec_sql(db_, "BEGIN", err);
    if (rc != SQLITE_OK) return rc;
    open_ = true;
    auto fail = [&](int code) { err = sqlite3_errmsg(db_); end(); return code; };
    // Touch the database so the read transaction (and its snapshot) starts now.
    sqlite3_stmt* s = nullptr;
    std::string sql = "SELECT name, definition FROM " + sys_.table("hdbrepl_tables") + " WHERE live=1 AND replicate=1 ORDER BY name";
    if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr)) != SQLITE_OK) { sqlite3_finalize(s); return fail(rc); }
    while (sqlite3_step(s) == SQLITE_ROW) tables_.push_back({col_text(s, 0), col_text(s, 1), 0});
    sqlite3_finalize(s);
    for (auto& t : tables_) {
        sql = "SELECT (SELECT count(*) FROM " + quote_ident(sys_.schema()) + "." + quote_ident(t.name + "_data") + ") + (SELECT count(*) FROM " +
              quote_ident(sys_.schema()) + "." + quote_ident(t.name + "_tomb") + ")";
        if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr)) != SQLITE_OK) { sqlite3_finalize(s); return fail(rc); }
        if (sqlite3_step(s) == SQLITE_ROW) t.rows = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        total_rows_ += static_cast<std::uint64_t>(t.rows);
    }
    // What the snapshot holds of each origin: its log, plus what arrived by copies.
    sql = "SELECT o.name, max(l.hlc) FROM " + sys_.table("hdbrepl_log") + " l JOIN " + sys_.table("hdbrepl_origins") +
          " o ON o.id = l.origin GROUP BY l.origin";
    if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr)) != SQLITE_OK) { sqlite3_finalize(s); return fail(rc); }
    while (sqlite3_step(s) == SQLITE_ROW) progress_[col_text(s, 0)] = static_cast<hlc_t>(sqlite3_column_int64(s, 1));
    sqlite3_finalize(s);
    sql = "SELECT origin, hlc FROM " + sys_.table("hdbrepl_progress");
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            auto& h = progress_[col_text(s, 0)];
            h = std::max(h, static_cast<hlc_t>(sqlite3_column_int64(s, 1)));
        }
    }
    sqlite3_finalize(s);
    // Our own changes: every one committed is in the snapshot, also those whose log rows were
    // pruned, so the copy covers our origin up to the clock's high-water mark (a later write
    // of ours takes a greater HLC). Without this a receiver whose copy came from us would look
    // behind another peer's log floor for our origin and be copied a second time.
    {
        hlc_t high = 0;
        const std::string me = sys_.node_name();
        if (!me.empty() && sys_.read_clock(high) == SQLITE_OK && high > 0) {
            auto& h = progress_[me];
            h = std::max(h, high);
        }
    }
    // Origins we hold only part of (trimmed records, docs/protocol.md "Relaying"): the copy
    // claims none of them, so the receiver still asks their origins for everything.
    {
        std::set<std::string> partial;
        if ((rc = sys_.load_partial_origins(partial)) != SQLITE_OK) return fail(rc);
        for (const auto& o : partial)
            if (o != sys_.node_name()) progress_.erase(o);
    }
    sql = "SELECT coalesce(max(seq), 0) FROM " + sys_.table("hdbrepl_log");
    if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr)) != SQLITE_OK) { sqlite3_finalize(s); return fail(rc); }
    if (sqlite3_step(s) == SQLITE_ROW) log_seq_ = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sql = "SELECT id, name FROM " + sys_.table("hdbrepl_origins");
    if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr)) != SQLITE_OK) { sqlite3_finalize(s); return fail(rc); }
    while (sqlite3_step(s) == SQLITE_ROW) origin_names_[sqlite3_column_int64(s, 0)] = col_text(s, 1);
    sqlite3_finalize(s);
    return SQLITE_OK;
}

void snapshot_reader::resume_after(const std::string& table, int phase, const value& key) {
    resume_pending_ = true;
    resume_table_ = table;
    resume_phase_ = phase;
    resume_key_ = key;
}

bool snapshot_reader::next_chunk(const copy_chunk_budget& budget, std::uint32_t& table_index, std::vector<snapshot_row>& rows, int& rc) {
    rows.clear();
    rc = SQLITE_OK;
    if (resume_pending_) {
        resume_pending_ = false;
        while (current_ < tables_.size() && tables_[current_].name < resume_table_) ++current_;
        if (current_ < tables_.size() && tables_[current_].name == resume_table_) {
            phase_ = resume_phase_;
            after_key_ = true;
        }
    }
    while (current_ < tables_.size()) {
        const auto& t = tables_[current_];
        if (!stmt_) {
            std::string err;
            auto def = parse_table_def(t.definition, err);
            if (!def) { rc = SQLITE_CORRUPT; return false; }
            std::string cols;
            if (phase_ == 0)
                for (const auto& c : def->columns) cols += quote_ident(c.name) + ", ";
            else
                cols = quote_ident(def->columns[def->pk].name) + ", ";
            // Key order (each shadow table is keyed by the primary key, so no sort), which is
            // what makes a cut copy resumable after the last key it delivered.
            const std::string key = quote_ident(def->columns[def->pk].name);
            std::string sql = "SELECT " + cols + version_column + ", " + origin_column + " FROM " + quote_ident(sys_.schema()) + "." +
                              quote_ident(t.name + (phase_ == 0 ? "_data" : "_tomb")) + (after_key_ ? " WHERE " + key + " > ?1" : "") +
                              " ORDER BY " + key;
            if ((rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt_, nullptr)) != SQLITE_OK) return false;
            if (after_key_) {
                bind_arg(stmt_, 1, resume_key_);
                after_key_ = false;
            }
        }
        int ncols = sqlite3_column_count(stmt_) - 2;
        // Rows are sized as they are read (copy_chunk.hpp); the row that would take the
        // chunk past its budget is held for the next chunk, where it goes first (alone when
        // it is larger than the budget by itself).
        std::size_t wire = copy_rows_wire_overhead, charge = copy_rows_charge_base;
        auto fits = [&](const snapshot_row& r) {
            const std::size_t w = copy_row_wire_bytes(r.deleted, r.origin, r.values), c = copy_row_charge(r.origin, r.values);
            if (!rows.empty() && (wire + w > budget.wire_bytes || charge + c > budget.charge_bytes)) return false;
            wire += w;
            charge += c;
            return true;
        };
        bool full = false;
        if (held_) {
            fits(*held_);
            rows.push_back(std::move(*held_));
            held_.reset();
        }
        while (!full) {
            if (rows.size() >= std::max<std::size_t>(1, budget.max_rows)) { full = true; break; }
            int step = sqlite3_step(stmt_);
            if (step == SQLITE_DONE) break;
            if (step != SQLITE_ROW) { rc = step; return false; }
            snapshot_row r;
            r.deleted = phase_ == 1;
            r.hlc = static_cast<hlc_t>(sqlite3_column_int64(stmt_, ncols));
            auto it = origin_names_.find(sqlite3_column_int64(stmt_, ncols + 1));
            r.origin = it == origin_names_.end() ? std::string("unknown") : it->second;
            r.values.reserve(static_cast<std::size_t>(ncols));
            for (int i = 0; i < ncols; ++i) r.values.push_back(column_value(stmt_, i));
            if (!fits(r)) {
                held_ = std::move(r);
                full = true;
                break;
            }
            rows.push_back(std::move(r));
        }
        table_index = static_cast<std::uint32_t>(current_);
        if (!full) { // this phase of the table is done
            sqlite3_finalize(stmt_);
            stmt_ = nullptr;
            if (++phase_ == 2) { phase_ = 0; ++current_; }
        }
        if (!rows.empty()) return true;
    }
    return false;
}

void snapshot_reader::end() {
    held_.reset();
    if (stmt_) { sqlite3_finalize(stmt_); stmt_ = nullptr; }
    if (open_) {
        std::string ignored;
        exec_sql(db_, "COMMIT", ignored);
        open_ = false;
    }
}

} // namespace hdbrepl::engine
