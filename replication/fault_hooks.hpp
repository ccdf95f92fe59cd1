// Faults a test can inject into one node. The in-process cluster fixture (tests/inproc) sets
// them when it starts a node; a node started by the extension has none, so product code never
// reads a test knob from the environment.
//
// Thread: set before start_node() and never changed after; the db thread reads them.
#pragma once
#include <chrono>

namespace hdbrepl::ext {

struct fault_hooks {
    // Held on the db thread before each part of a many-part transaction is staged, so a test
    // can cut a link or kill a node while such a transaction is half received.
    std::chrono::milliseconds before_each_part{0};
    // Held on the db thread before a copy's end is applied, so a test can replace the copy's
    // link while the end of a complete copy is still queued, or keep the db thread busy past
    // an operation's wait.
    std::chrono::milliseconds before_copy_end{0};
};

} // namespace hdbrepl::ext
