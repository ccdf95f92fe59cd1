// Shared by the libFuzzer targets: an invariant check that traps (so a logic bug is a
// crash libFuzzer saves, not only memory errors) and a byte-buffer helper.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

// Traps when an invariant does not hold; prints what was expected first.
#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                       \
            __builtin_trap();                                                             \
        }                                                                                 \
    } while (0)

inline std::string fuzz_text(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}
