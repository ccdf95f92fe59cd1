// Entry point of the extension, for the loadable library (shared_lib.cpp) and for programs
// that link hdbrepl statically and register it with sqlite3_auto_extension().
#pragma once

struct sqlite3;
struct sqlite3_api_routines;

extern "C" {
// Registers everything on `db`. Returns SQLITE_OK (never LOAD_PERMANENTLY: auto-extension
// callers treat any non-zero code as an error).
int hdbrepl_register(sqlite3* db, char** pz_err, const sqlite3_api_routines* api);
// The same for a node's own connections: they are not counted as users of the file (the
// last user connection that closes stops the node).
int hdbrepl_register_internal(sqlite3* db, char** pz_err, const sqlite3_api_routines* api);
}
