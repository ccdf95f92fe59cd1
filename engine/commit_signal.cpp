// Commit signal registry (see commit_signal.hpp).
#include "engine/commit_signal.hpp"

#include <atomic>
#include <map>
#include <mutex>

namespace hdbrepl::engine::commit_signal {

namespace {
struct entry {
    std::string path;
    listener fn;
};
std::mutex mutex;
std::map<std::uint64_t, entry> listeners;
std::uint64_t next_id = 1;
std::atomic<int> count{0};
} // namespace

std::uint64_t subscribe(const std::string& db_path, listener fn) {
    std::lock_guard lock(mutex);
    auto id = next_id++;
    listeners[id] = {db_path, std::move(fn)};
    count.store(static_cast<int>(listeners.size()));
    return id;
}

void unsubscribe(std::uint64_t id) {
    std::lock_guard lock(mutex);
    listeners.erase(id);
    count.store(static_cast<int>(listeners.size()));
}

bool any_listener() { return count.load(std::memory_order_relaxed) > 0; }

void signal(const std::string& db_path, std::uint64_t committed_hlc) {
    if (!any_listener()) return;
    std::lock_guard lock(mutex);
    for (auto& [id, e] : listeners)
        if (e.path == db_path) e.fn(committed_hlc);
}

} // namespace hdbrepl::engine::commit_signal
