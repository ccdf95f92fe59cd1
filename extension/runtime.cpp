// Process-wide runtime (see runtime.hpp).
#include "extension/runtime.hpp"
#include "extension/entry.hpp"

#include "net/transport.hpp"

#include <cstdio>
#include <map>
#include <mutex>

namespace hdbrepl::ext {

namespace {
std::mutex mutex;
std::shared_ptr<net::io_runtime> io;
std::map<std::string, std::shared_ptr<node>> nodes;
std::map<std::string, int> connections;

// Called with `mutex` held; returns the io runtime to join outside the lock when the last
// node is gone (so no thread outlives the nodes).
std::shared_ptr<net::io_runtime> release_io_if_idle() {
    if (!nodes.empty() || !io) return nullptr;
    auto r = std::move(io);
    io.reset();
    return r;
}
} // namespace

std::shared_ptr<node> start_node_for(const std::string& path, const node_config& cfg, const sqlite3_api_routines* api, std::string& error) {
    std::shared_ptr<net::io_runtime> rt;
    {
        std::lock_guard lock(mutex);
        if (auto it = nodes.find(path); it != nodes.end()) {
            if (it->second->config().canonical() == cfg.canonical()) return it->second;
            error = "a node is already running on this database with a different configuration; call repl_stop() first";
            return nullptr;
        }
        if (!io) {
            net::set_log_sink([](const std::string& line) { std::fprintf(stderr, "hdbrepl: %s\n", line.c_str()); });
            io = net::make_io_runtime();
        }
        rt = io;
    }
    auto started = start_node(rt, path, cfg, api, hdbrepl_register_internal);
    std::shared_ptr<node> n = started ? *started : nullptr;
    if (!started) error = started.error().message;
    std::shared_ptr<net::io_runtime> idle;
    {
        std::lock_guard lock(mutex);
        if (n) nodes[path] = n;
        else idle = release_io_if_idle();
    }
    if (idle) idle->stop_and_join();
    return n;
}

std::shared_ptr<node> find_node(const std::string& path) {
    std::lock_guard lock(mutex);
    auto it = nodes.find(path);
    return it == nodes.end() ? nullptr : it->second;
}

bool stop_node(const std::string& path) {
    std::shared_ptr<node> n;
    {
        std::lock_guard lock(mutex);
        auto it = nodes.find(path);
        if (it == nodes.end()) return false;
        n = it->second;
        nodes.erase(it);
    }
    n->stop();
    std::shared_ptr<net::io_runtime> idle;
    {
        std::lock_guard lock(mutex);
        idle = release_io_if_idle();
    }
    if (idle) idle->stop_and_join();
    return true;
}

void user_connection_opened(const std::string& path) {
    if (path.empty()) return;
    std::lock_guard lock(mutex);
    ++connections[path];
}

void user_connection_closed(const std::string& path) {
    if (path.empty()) return;
    bool last = false;
    {
        std::lock_guard lock(mutex);
        auto it = connections.find(path);
        if (it == connections.end()) return;
        if (--it->second == 0) {
            connections.erase(it);
            last = nodes.count(path) > 0;
        }
    }
    if (last) stop_node(path);
}

} // namespace hdbrepl::ext
