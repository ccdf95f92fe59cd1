// The engine reaches SQLite through the loadable-extension API table, so that the host
// process's own SQLite library is used (never a second copy with its own file locks).
// The table is set once by sqlite3_hdbrepl_init (extension/entry.cpp, the only INIT1).
#pragma once
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
