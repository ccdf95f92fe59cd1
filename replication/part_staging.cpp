// Staged parts of received transactions (see part_staging.hpp).
#include "replication/part_staging.hpp"

#include "engine/stmt_cache.hpp"

namespace hdbrepl::engine {

namespace {
int done(int rc) { return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc; }
} // namespace

int part_staging::stage(const std::string& origin, hlc_t hlc, std::uint32_t index, const std::uint8_t* body, std::size_t size) {
    if (index == 0) {
        cached_stmt d(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_staged") + " WHERE origin = ?1 AND hlc <> ?2");
        if (!d) return d.prepare_rc();
        sqlite3_bind_text(d.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(d.get(), 2, static_cast<sqlite3_int64>(hlc));
        if (int rc = done(sqlite3_step(d.get())); rc != SQLITE_OK) return rc;
    }
    cached_stmt s(sys_.cache(), "INSERT OR REPLACE INTO " + sys_.table("hdbrepl_staged") + "(origin, hlc, part, body) VALUES(?1, ?2, ?3, ?4)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s.get(), 3, index);
    sqlite3_bind_blob64(s.get(), 4, size ? body : reinterpret_cast<const std::uint8_t*>(""), size, SQLITE_STATIC);
    return done(sqlite3_step(s.get()));
}

int part_staging::count(const std::string& origin, hlc_t hlc, std::uint32_t below, std::uint32_t& n) {
    n = 0;
    cached_stmt s(sys_.cache(), "SELECT count(*) FROM " + sys_.table("hdbrepl_staged") + " WHERE origin = ?1 AND hlc = ?2 AND part < ?3");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s.get(), 3, below);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) n = static_cast<std::uint32_t>(sqlite3_column_int64(s.get(), 0));
    return done(rc);
}

int part_staging::for_each(const std::string& origin, hlc_t hlc, std::uint32_t below, const std::function<bool(bytes&&)>& fn) {
    // One statement per part, not one scan: `fn` applies records on this same connection, and
    // a part is read only when the one before it is done with.
    cached_stmt s(sys_.cache(), "SELECT body FROM " + sys_.table("hdbrepl_staged") + " WHERE origin = ?1 AND hlc = ?2 AND part = ?3");
    if (!s) return s.prepare_rc();
    for (std::uint32_t i = 0; i < below; ++i) {
        sqlite3_reset(s.get());
        sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
        sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(hlc));
        sqlite3_bind_int64(s.get(), 3, i);
        int rc = sqlite3_step(s.get());
        if (rc == SQLITE_DONE) return SQLITE_NOTFOUND;
        if (rc != SQLITE_ROW) return rc;
        const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s.get(), 0));
        bytes body(p, p + sqlite3_column_bytes(s.get(), 0));
        sqlite3_reset(s.get());
        if (!fn(std::move(body))) return SQLITE_OK;
    }
    return SQLITE_OK;
}

int part_staging::drop(const std::string& origin, hlc_t hlc) {
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_staged") + " WHERE origin = ?1 AND hlc = ?2");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(hlc));
    return done(sqlite3_step(s.get()));
}

int part_staging::drop_through(const std::string& origin, hlc_t hlc) {
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_staged") + " WHERE origin = ?1 AND hlc <= ?2");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(s.get(), 2, static_cast<sqlite3_int64>(hlc));
    return done(sqlite3_step(s.get()));
}

int part_staging::totals(std::uint64_t& parts, std::uint64_t& bytes_out) {
    parts = bytes_out = 0;
    cached_stmt s(sys_.cache(), "SELECT count(*), coalesce(sum(length(body)), 0) FROM " + sys_.table("hdbrepl_staged"));
    if (!s) return s.prepare_rc();
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
        parts = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
        bytes_out = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 1));
    }
    return done(rc);
}

} // namespace hdbrepl::engine
