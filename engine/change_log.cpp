// Change-log reader (see change_log.hpp).
#include "engine/change_log.hpp"

#include "engine/table_def.hpp"

namespace hdbrepl::engine {

int read_log(sqlite3* db, const std::string& schema, std::int64_t after_seq, std::int64_t limit,
             const std::function<bool(const log_entry&)>& fn) {
    std::string sql = "SELECT seq, hlc, origin, clock, body FROM " + quote_ident(schema) +
                      ".hdbrepl_log WHERE seq > ?1 ORDER BY seq LIMIT ?2";
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
    if (rc != SQLITE_OK) { sqlite3_finalize(s); return rc; }
    sqlite3_bind_int64(s, 1, after_seq);
    sqlite3_bind_int64(s, 2, limit);
    log_entry e;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        e.seq = sqlite3_column_int64(s, 0);
        e.hlc = static_cast<hlc_t>(sqlite3_column_int64(s, 1));
        e.origin = sqlite3_column_int64(s, 2);
        e.clock = static_cast<hlc_t>(sqlite3_column_int64(s, 3));
        auto* b = static_cast<const std::uint8_t*>(sqlite3_column_blob(s, 4));
        e.body.assign(b, b + sqlite3_column_bytes(s, 4));
        if (!fn(e)) { rc = SQLITE_DONE; break; }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

} // namespace hdbrepl::engine
