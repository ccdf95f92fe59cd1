// Internal to net/: how many connections a listener holds (handshaking or open), per remote
// address and in total, so that one address, or many, cannot take every socket of a node
// (link_options::max_connections_per_address, max_connections).
//
// A slot is taken on the io thread when a TCP connection is accepted, before anything is read,
// and released when the connection ends (hard_close of the ws_acceptor during the handshake, or
// of the ws_session that took the slot over; io thread), or at the latest when the object
// holding it is destroyed (any thread: hence the mutex).
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace hdbrepl::net::detail {

class connection_counts : public std::enable_shared_from_this<connection_counts> {
public:
    class slot {
    public:
        slot(std::shared_ptr<connection_counts> counts, std::string address)
            : counts_(std::move(counts)), address_(std::move(address)) {}
        ~slot() { counts_->release(address_); }
        slot(const slot&) = delete;
        slot& operator=(const slot&) = delete;

    private:
        std::shared_ptr<connection_counts> counts_;
        std::string address_;
    };

    connection_counts(std::size_t per_address, std::size_t total) : per_address_cap_(per_address), total_cap_(total) {}

    // Any thread. A slot for a connection from `address`, or null with `why` set when a cap is
    // reached (a cap of 0 is no cap).
    std::unique_ptr<slot> take(const std::string& address, std::string& why) {
        std::lock_guard lk(mu_);
        if (total_cap_ != 0 && total_ >= total_cap_) {
            why = std::to_string(total_) + " connections on this listener (limit " + std::to_string(total_cap_) + ")";
            return nullptr;
        }
        auto& n = per_address_[address];
        if (per_address_cap_ != 0 && n >= per_address_cap_) {
            why = std::to_string(n) + " connections from " + address + " (limit " + std::to_string(per_address_cap_) + ")";
            return nullptr;
        }
        ++n;
        ++total_;
        return std::make_unique<slot>(shared_from_this(), address);
    }

    // Any thread. Connections counted now (for tests and status).
    std::size_t total() const {
        std::lock_guard lk(mu_);
        return total_;
    }

private:
    void release(const std::string& address) noexcept {
        std::lock_guard lk(mu_);
        auto it = per_address_.find(address);
        if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
        --total_;
    }

    const std::size_t per_address_cap_, total_cap_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::size_t> per_address_;
    std::size_t total_ = 0;
};

} // namespace hdbrepl::net::detail
