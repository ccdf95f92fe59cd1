// What every cluster and security SQL function gets as its user data: the calling
// connection's state and the SQLite API table. One object per connection, shared by the
// functions of fn_cluster.cpp and fn_security.cpp, freed with repl_operation at close.
#pragma once
#include <string>

#include "engine/sqlite_api.hpp"
#include "sql/connection_state.hpp"

namespace hdbrepl::ext {

struct fn_context {
    sql::connection_state* state;
    const sqlite3_api_routines* api;
};

inline fn_context* ctx_of(sqlite3_context* c) { return static_cast<fn_context*>(sqlite3_user_data(c)); }

// A JSON reply, with the JSON subtype that SQLite's json functions use.
inline void result_json(sqlite3_context* c, const std::string& json) {
    sqlite3_result_text(c, json.c_str(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
    sqlite3_result_subtype(c, 'J');
}

} // namespace hdbrepl::ext
