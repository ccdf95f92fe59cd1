# hdbrepl — top-level commands. Each target installs missing Debian packages first.
#   make build   configure and build (build/libhdbrepl.so, tests, bench)
#   make test    build and run the whole test suite (CTest)
#   make bench   build (Release) and print the benchmark ratios against plain SQLite
#   make demo    build and run the demo tour
#   make sanitize  the suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan    the threaded C++ tests under ThreadSanitizer
JOBS ?= 2
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: deps build test bench demo sanitize tsan clean scale

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: deps
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DHDBREPL_BUILD_TESTS=OFF >/dev/null
	cmake --build build-bench -j $(JOBS) --target hdbrepl hdbrepl_bench hdbrepl_repl_bench
	./build-bench/hdbrepl_bench --lib ./build-bench/libhdbrepl
	./build-bench/hdbrepl_repl_bench --lib ./build-bench/libhdbrepl

demo: build
	bash samples/demo.sh ./$(BUILD)/libhdbrepl
	/usr/bin/python3 samples/demo.py ./$(BUILD)/libhdbrepl

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHDBREPL_SANITIZE="address;undefined" >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) --timeout 900

# ThreadSanitizer over the threaded C++ tests (the transport's io thread, the runtime).
# The node processes of the cluster tier run in python3, which cannot host TSan.
tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DHDBREPL_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j $(JOBS) --target net_tests unit_tests
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) -L "net|unit" --timeout 900

clean:
	rm -rf build build-bench build-asan build-tsan

# Scale probe (docs/scaling.md): 3, 6, 12 and 16 node processes on 127.0.0.x joined through
# one seed; mesh time, RSS/CPU idle and under writes, wire bytes per row, latency. ~5 min.
scale: build
	HDBREPL_SO=./$(BUILD)/libhdbrepl /usr/bin/python3 tests/cluster/scale_probe.py --nodes 3,6,12,16
