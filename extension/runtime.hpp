// The process-wide runtime: the io thread shared by every node of the process, and the
// nodes, one per database file. A node belongs to its file, not to the connection that
// started it: every connection of the process on that file sees it, and it stops with
// repl_stop() or when the last user connection of the file closes.
// Thread: any user thread (a mutex guards the tables); never the io thread.
#pragma once
#include <memory>
#include <string>

#include "engine/sqlite_api.hpp"
#include "extension/config.hpp"
#include "replication/node.hpp"

namespace hdbrepl::ext {

// Starts the node of `path` (or returns the running one when the config is the same).
// On failure returns nullptr with `error` set.
std::shared_ptr<node> start_node_for(const std::string& path, const node_config& cfg, const sqlite3_api_routines* api, std::string& error);
std::shared_ptr<node> find_node(const std::string& path);
// Stops the node of `path`; false when none was running.
bool stop_node(const std::string& path);

// Counting user connections per file (the node's own connections are not counted).
void user_connection_opened(const std::string& path);
void user_connection_closed(const std::string& path);

} // namespace hdbrepl::ext
