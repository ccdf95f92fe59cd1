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

int report_error(sqlite3_vtab* vtab, const error& e) noexcept {
    if (vtab && !e.message.empty()) set_vtab_error(vtab, e.message);
    return e.code;
}

int report_error(char** pz_err, const error& e) noexcept {
    if (pz_err && !e.message.empty()) {
        sqlite3_free(*pz_err);
        *pz_err = error_string(e.message);
    }
    return e.code;
}

void report_error(sqlite3_context* ctx, const error& e) noexcept {
    if (e.code == SQLITE_NOMEM) return sqlite3_result_error_nomem(ctx);
    if (e.message.empty()) sqlite3_result_error(ctx, "hdbrepl: error", -1);
    else sqlite3_result_error(ctx, e.message.c_str(), static_cast<int>(e.message.size()));
    sqlite3_result_error_code(ctx, e.code);
}

} // namespace hdbrepl::sql
