// Registration of the hdbrepl extension on one connection: the hdbrepl module and the
// repl_* functions, table-driven in sql/. This file holds the one SQLITE_EXTENSION_INIT1
// of the project (the API table every other file reaches through sqlite_api.hpp).
#include "extension/entry.hpp"

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "extension/fn_cluster.hpp"
#include "extension/fn_placement.hpp"
#include "extension/runtime.hpp"
#include "sql/connection_state.hpp"
#include "sql/functions.hpp"
#include "sql/sql_error.hpp"
#include "sql/vtab_system_tables.hpp"
#include "sql/vtab_repl_table.hpp"

#include <mutex>
#include <new>
#include <set>

namespace {
// Connections that already have the extension: loading it twice on one connection would
// otherwise replace the module and leave functions pointing at a freed state.
std::mutex registered_mutex;
std::set<sqlite3*> registered;

void forget_connection(void* db) {
    std::lock_guard lock(registered_mutex);
    registered.erase(static_cast<sqlite3*>(db));
}

// Connection state that also counts the user connections of each database file.
class tracked_state : public hdbrepl::sql::connection_state {
public:
    tracked_state(sqlite3* db, bool internal) : connection_state(db), internal_(internal) {
        if (!internal_) hdbrepl::ext::user_connection_opened(main_path());
        forward_reads = !internal_;
    }
    ~tracked_state() override {
        forget_connection(db());
        // Runs inside sqlite3_close() of this connection; stopping the node closes only
        // the node's own connections.
        if (!internal_) hdbrepl::ext::user_connection_closed(main_path());
    }
private:
    bool internal_;
};

int register_all(sqlite3* db, char** pz_err, const sqlite3_api_routines* api, bool internal) {
    // Every connection of the process passes the same table: only the first load writes the
    // global, so registering the node's own connections on its threads never writes a pointer
    // other threads are reading (a data race under ThreadSanitizer).
    if (sqlite3_api != api) {
        SQLITE_EXTENSION_INIT2(api);
    }
    {
        std::lock_guard lock(registered_mutex);
        if (registered.count(db)) return SQLITE_OK;
    }
    auto* state = new (std::nothrow) tracked_state(db, internal);
    if (!state) return SQLITE_NOMEM;
    // The module owns the state from here on, also when registration fails.
    int rc = hdbrepl::sql::register_repl_table_module(db, state);
    if (rc == SQLITE_OK) rc = hdbrepl::sql::register_basic_functions(db, state);
    if (rc == SQLITE_OK) rc = hdbrepl::sql::register_system_table_modules(db);
    if (rc == SQLITE_OK) rc = hdbrepl::ext::register_cluster_functions(db, state, api);
    if (rc == SQLITE_OK) rc = hdbrepl::ext::register_placement_functions(db, state);
    if (rc != SQLITE_OK) {
        if (pz_err) *pz_err = sqlite3_mprintf("hdbrepl: registration failed: %s", sqlite3_errmsg(db));
        return rc;
    }
    std::lock_guard lock(registered_mutex);
    registered.insert(db);
    return SQLITE_OK;
}
} // namespace

// The C entry points, guarded like every other (sql/sql_error.hpp): a failure is a code and
// *pz_err, never an exception unwinding into sqlite3_load_extension or the auto-extension loop.
extern "C" int hdbrepl_register(sqlite3* db, char** pz_err, const sqlite3_api_routines* api) {
    return hdbrepl::sql::guarded_create(pz_err, [&] { return register_all(db, pz_err, api, false); });
}

extern "C" int hdbrepl_register_internal(sqlite3* db, char** pz_err, const sqlite3_api_routines* api) {
    return hdbrepl::sql::guarded_create(pz_err, [&] { return register_all(db, pz_err, api, true); });
}
