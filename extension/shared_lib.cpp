// The exported entry point of libhdbrepl.so, found by `.load ./build/libhdbrepl` and by
// load_extension("./build/libhdbrepl"). Everything else in the library is hidden.
#include "extension/entry.hpp"

#include <sqlite3ext.h>

extern "C" __attribute__((visibility("default"))) int sqlite3_hdbrepl_init(sqlite3* db, char** pz_err,
                                                                          const sqlite3_api_routines* api) {
    int rc = hdbrepl_register(db, pz_err, api);
    // Stay mapped after the loading connection closes: later connections, and the node's
    // background thread (next issue), run code from this library.
    return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}
