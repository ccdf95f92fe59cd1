# hdbrepl — top-level commands. Each target installs missing Debian packages first.
#   make build   configure and build (build/libhdbrepl.so, tests, bench)
#   make test    build and run the whole test suite (CTest)
#   make bench   build (Release) and print the benchmark ratios against plain SQLite, the
#                replication figures and the wide-area ones (+100 / +200 ms round trips
#                through a delay proxy); on tmpfs where there is one (BENCH_DIR=/tmp: disk)
#   make demo    build and run the demo tour
#   make sanitize  the suite again under AddressSanitizer + UndefinedBehaviorSanitizer
#   make tsan    the threaded C++ tests under ThreadSanitizer
#   make fuzz    the libFuzzer targets (clang), FUZZ_SECONDS each (docs/reliability.md)
JOBS ?= 2
BUILD ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: deps build test bench demo sanitize tsan fuzz clean scale

# Every build directory is generated for Ninja: it starts a target's compiles before the
# libraries it links are finished, so on 2 cores the long net/ sources overlap with the rest
# (Unix Makefiles waited for each library first). A directory configured earlier for another
# generator has its cache dropped first (cmake refuses to switch generators in place).
# $(call configure,DIR,FLAGS)
define configure
	@if [ -f $(1)/CMakeCache.txt ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$$' $(1)/CMakeCache.txt; then \
		rm -rf $(1)/CMakeCache.txt $(1)/CMakeFiles; fi
	cmake -S . -B $(1) -G Ninja $(2) >/dev/null
endef

deps:
	@bash scripts/install-deps.sh

build: deps
	$(call configure,$(BUILD),$(CMAKE_FLAGS))
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# The benches' databases go in BENCH_DIR: tmpfs (/dev/shm) where there is one, so that the
# figures measure hdbrepl and SQLite rather than the machine's disk (on a slow virtual disk
# SQLite's own WAL writes bound every write figure, plain SQLite's too). Ratios compare
# plain SQLite and hdbrepl on the same storage either way. `BENCH_DIR=/tmp make bench`
# measures on disk; README.md gives both.
BENCH_DIR ?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm || echo /tmp)
bench: deps
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DHDBREPL_BUILD_TESTS=OFF)
	cmake --build build-bench -j $(JOBS) --target hdbrepl hdbrepl_bench hdbrepl_repl_bench hdbrepl_wan_bench
	TMPDIR=$(BENCH_DIR) ./build-bench/hdbrepl_bench --lib ./build-bench/libhdbrepl
	TMPDIR=$(BENCH_DIR) ./build-bench/hdbrepl_repl_bench --lib ./build-bench/libhdbrepl
	TMPDIR=$(BENCH_DIR) ./build-bench/hdbrepl_wan_bench --lib ./build-bench/libhdbrepl

demo: build
	bash samples/demo.sh ./$(BUILD)/libhdbrepl
	/usr/bin/python3 samples/demo.py ./$(BUILD)/libhdbrepl

sanitize: deps
	$(call configure,build-asan,-DCMAKE_BUILD_TYPE=Debug -DHDBREPL_SANITIZE="address;undefined")
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) --timeout 900

# ThreadSanitizer over the threaded C++ tests (the transport's io thread, the runtime, the
# in-process clusters of tests/inproc), then the cluster tests TSAN_CLUSTER with every node a
# TSan-built node_host (tests/cluster/node_host.cpp) loading the TSan-built library: a report
# in any node fails its test
# (tests/CMakeLists.txt sets HDBREPL_NODE_HOST and TSAN_OPTIONS; docs/reliability.md).
TSAN_BUILD ?= build-tsan
TSAN_CLUSTER ?= basic|resync|topology|initial_sync|membership|placement|security|hostile|hostile_links|hostile_sign|hostile_reads|subscriptions|disk_full|big_txn|big_rows|wan
tsan: deps
	$(call configure,$(TSAN_BUILD),-DCMAKE_BUILD_TYPE=Debug -DHDBREPL_SANITIZE=thread)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target net_tests unit_tests inproc_tests node_host hdbrepl
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) -L "net|unit|inproc" --timeout 900
	cd $(TSAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L cluster -R 'cluster\.($(TSAN_CLUSTER))_test$$' --timeout 900

# libFuzzer + ASan + UBSan over the decoders and parsers (tests/fuzz): each target runs
# FUZZ_SECONDS on a working copy of its seed corpus in build-fuzz, FUZZ_JOBS at a time; a
# crash, leak, hang (10 s per input) or invariant violation fails the target.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 2
fuzz:
	@bash scripts/install-deps.sh clang libclang-rt-dev
	$(call configure,build-fuzz,-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHDBREPL_FUZZ=ON \
		-DHDBREPL_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) bash scripts/run-fuzz.sh build-fuzz

clean:
	rm -rf build build-bench build-asan build-tsan build-fuzz

# Scale probe (docs/scaling.md): 3, 6, 12 and 16 node processes on 127.0.0.x joined through
# one seed; mesh time, RSS/CPU idle and under writes, wire bytes per row, latency. ~5 min.
scale: build
	HDBREPL_SO=./$(BUILD)/libhdbrepl /usr/bin/python3 tests/cluster/scale_probe.py --nodes 3,6,12,16

# Copy scale probe (docs/benchmarks.md): an initial copy of 10,000,000 rows (~100 bytes each)
# between two node processes (node_host), the peak RSS (VmHWM) of the source and of the
# joiner checked against 128 MB, the copy rate. A few minutes; databases in BENCH_DIR (tmpfs
# where there is one). Fails when a peak is over the bound or a row differs.
.PHONY: scale-copy
scale-copy: deps
	$(call configure,$(BUILD),$(CMAKE_FLAGS))
	cmake --build $(BUILD) -j $(JOBS) --target hdbrepl node_host
	TMPDIR=$(BENCH_DIR) HDBREPL_SO=./$(BUILD)/libhdbrepl HDBREPL_NODE_HOST=./$(BUILD)/tests/node_host \
		/usr/bin/python3 tests/cluster/copy_scale_probe.py

# Big-transaction probe (docs/benchmarks.md): one transaction of 300,000 rows (~40 MB of
# changes, ~40 parts) committed on one node process and replicated to another; the commit,
# the time until the peer shows it (never in part), the receiver's peak RSS (< 128 MB).
.PHONY: scale-txn
scale-txn: deps
	$(call configure,$(BUILD),$(CMAKE_FLAGS))
	cmake --build $(BUILD) -j $(JOBS) --target hdbrepl node_host
	TMPDIR=$(BENCH_DIR) HDBREPL_SO=./$(BUILD)/libhdbrepl HDBREPL_NODE_HOST=./$(BUILD)/tests/node_host \
		/usr/bin/python3 tests/cluster/big_txn_probe.py

# Chaos run (docs/reliability.md, "Chaos runs"): node processes on 127.0.0.x behind a
# fault-injecting proxy, writers on every node, kill -9 / graceful restarts / cut, black-holed
# and slow links / skewed clocks from a seeded schedule, then a checker (lost writes,
# divergence, half-applied transactions, last-writer-wins). Bounded by CHAOS_SECONDS;
# CHAOS_SEED=<n> replays a schedule. Report: $(BUILD)/chaos-report.json.
CHAOS_SECONDS ?= 120
.PHONY: chaos
chaos: deps
	$(call configure,$(BUILD),$(CMAKE_FLAGS))
	cmake --build $(BUILD) -j $(JOBS) --target hdbrepl chaos_skewed_clock
	CHAOS_SECONDS=$(CHAOS_SECONDS) bash scripts/run-chaos.sh $(BUILD)
