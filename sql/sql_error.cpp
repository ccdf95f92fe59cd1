// Error reporting helpers (see sql_error.hpp).
#include "sql/sql_error.hpp"

#include <cstring>

namespace hdbrepl::sql {

char* error_string(const std::string& msg) {
    return sqlite3_mprintf("%s", msg.c_str());
}

void set_vtab_error(sqlite3_vtab* vtab, const std::string& msg) {
    sqlite3_free(vtab->zErrMsg);
    vtab->zErrMsg = error_string(msg);
}

void result_error(sqlite3_context* ctx, const std::string& msg, int code) {
    sqlite3_result_error(ctx, msg.c_str(), static_cast<int>(msg.size()));
    sqlite3_result_error_code(ctx, code);
}

} // namespace hdbrepl::sql
