#include <catch2/catch.hpp>
#include "engine/hlc.hpp"
TEST_CASE("hlc placeholder", "[unit]") { CHECK(hdbrepl::engine::hlc_next(0, 5) == (5u << 16)); }
