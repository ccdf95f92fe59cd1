// The confirmation hook (commit_confirm.hpp).
#include "sql/commit_confirm.hpp"

#include <atomic>

namespace hdbrepl::sql {
namespace {
std::atomic<confirm_waiter> waiter{nullptr};
} // namespace

void set_confirm_waiter(confirm_waiter f) { waiter.store(f, std::memory_order_release); }
confirm_waiter get_confirm_waiter() { return waiter.load(std::memory_order_acquire); }

} // namespace hdbrepl::sql
