// The forwarded-read hook (read_forward.hpp).
#include "sql/read_forward.hpp"

#include <atomic>

namespace hdbrepl::sql {
namespace {
std::atomic<read_forwarder> forwarder{nullptr};
} // namespace

void set_read_forwarder(read_forwarder f) { forwarder.store(f, std::memory_order_release); }
read_forwarder get_read_forwarder() { return forwarder.load(std::memory_order_acquire); }

} // namespace hdbrepl::sql
