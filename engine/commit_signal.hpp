// Process-wide signal "a transaction that wrote the change log committed on this database
// file", from whichever connection committed it to the node that streams the log. This is
// what wakes a sender: no timers poll the log.
// Thread: signal() runs on the committing thread; listeners must only post work elsewhere.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace hdbrepl::engine::commit_signal {

using listener = std::function<void(std::uint64_t committed_hlc)>;

// Returns an id for unsubscribe().
std::uint64_t subscribe(const std::string& db_path, listener fn);
void unsubscribe(std::uint64_t id);
// Called after a commit that appended a log record with this HLC.
void signal(const std::string& db_path, std::uint64_t committed_hlc);
bool any_listener();

} // namespace hdbrepl::engine::commit_signal
