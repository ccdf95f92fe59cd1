// Internal to net/: the state behind io_runtime, shared by the net/*.cpp files. It includes
// Asio, so only net/*.cpp may include it — never a header outside net/ (engine/ and sql/ see
// only net/transport.hpp).
//
// Asio and Beast are compiled once, in net/asio_impl.cpp; every net TU must see the same
// configuration macros, so they are set here (the build may also pass them with -D).
#pragma once
#ifndef BOOST_ASIO_SEPARATE_COMPILATION
#define BOOST_ASIO_SEPARATE_COMPILATION
#endif
#ifndef BOOST_BEAST_SEPARATE_COMPILATION
#define BOOST_BEAST_SEPARATE_COMPILATION
#endif

#include "net/transport.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hdbrepl::net::detail {

namespace asio = boost::asio;

// Something stop_and_join() must cancel: a link (also while dialing or in its handshake), a
// listener, a timer. Objects enroll on the io thread before they start their first operation.
struct closable {
    virtual ~closable() = default;
    // io thread. Cancel every pending operation, close sockets, call no user callback.
    virtual void shutdown() = 0;
};

struct runtime_state : std::enable_shared_from_this<runtime_state> {
    asio::io_context ioc{1}; // concurrency hint: one thread runs it (posting from others stays safe)
    // Keeps run() going while idle; released by shutdown_all().
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{ioc.get_executor()};
    // Set (any thread) when stop_and_join() begins: from then on no user callback starts.
    std::atomic<bool> stopping{false};
    std::atomic<std::thread::id> io_thread{};

    // Any thread.
    bool in_io_thread() const { return io_thread.load(std::memory_order_relaxed) == std::this_thread::get_id(); }

    // io thread. Remembers `c` for shutdown_all(); false when shutdown_all() has already run
    // (the caller must then start nothing and close itself).
    bool enroll(std::weak_ptr<closable> c);

    // io thread, once, posted by stop_and_join(): shuts down everything enrolled and releases
    // the work guard, so run() returns as soon as the cancelled handlers have run.
    void shutdown_all();

private:
    std::vector<std::weak_ptr<closable>> enrolled_; // io thread
    std::size_t prune_at_ = 64;
    bool shut_down_ = false;
};

struct runtime_access {
    static const std::shared_ptr<runtime_state>& state(io_runtime& rt) { return rt.state_; }
};

// Any thread. One line to the sink set by set_log_sink(), prefixed "net: ".
void log(const std::string& line) noexcept;

// The message of the exception being handled (call inside a catch block).
std::string current_exception_text();

} // namespace hdbrepl::net::detail
