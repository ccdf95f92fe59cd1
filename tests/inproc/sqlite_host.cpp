// The host's SQLite API table, for start_node (the table SQLite hands a loadable extension).
// This file includes only sqlite3.h: the other files of the fixture include the engine's
// headers, where every sqlite3_* call goes through that table (sqlite3ext.h), so it must be
// known, and given to the extension, before any of them calls SQLite.
#include <sqlite3.h>

#include "extension/entry.hpp"

namespace hdbrepl::test::inproc {

namespace {
const sqlite3_api_routines* captured = nullptr;
int capture(sqlite3*, char**, const sqlite3_api_routines* api) {
    captured = api;
    return SQLITE_OK;
}
} // namespace

const sqlite3_api_routines* host_sqlite_api() {
    static const sqlite3_api_routines* api = [] {
        sqlite3_auto_extension(reinterpret_cast<void (*)()>(capture));
        sqlite3* db = nullptr;
        sqlite3_open(":memory:", &db);
        sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(capture));
        // Registering hdbrepl once hands the table to the extension's files (and to ours).
        if (captured && db) {
            char* err = nullptr;
            hdbrepl_register(db, &err, captured);
            sqlite3_free(err);
        }
        sqlite3_close(db);
        return captured;
    }();
    return api;
}

} // namespace hdbrepl::test::inproc
