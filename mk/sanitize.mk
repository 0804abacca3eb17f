# Sanitizer and checker runs (issue 7, item 2). Included by the Makefile.
#
#   ctests-valgrind  every C test in CTESTS under valgrind memcheck
#   rust-asan        the library's unit tests, std and crate built with ASan
#   rust-tsan        the same with ThreadSanitizer, then the concurrency
#                    tests alone, five more rounds
#   miri             the pure-logic unit tests under Miri
#   sanitize         all four
#
# What is missing on a fresh Debian machine (valgrind, the nightly
# toolchain's rust-src and miri components) is installed on first use.
# The Rust builds go to $(SAN_TARGET), never target/: they must not
# disturb the release library other targets link against.

SAN_TARGET  ?= $(abspath target-san)
NIGHTLY     ?= +nightly
SAN_TRIPLE  ?= $(shell rustc -vV | sed -n 's/^host: //p')
NICE        ?= nice -n 10
VGFLAGS_C   := -std=c99 -Wall -Wextra -Werror -g -O0 -Iinclude
# --fair-sched=yes: valgrind runs one thread at a time, and its default
# lock lets a thread that spins (our waits do, and the tests' posters)
# take it back at once, starving the others for seconds.
VALGRIND    := valgrind --tool=memcheck --error-exitcode=99 --trace-children=yes \
               --fair-sched=yes \
               --child-silent-after-fork=no --leak-check=full \
               --show-leak-kinds=definite --errors-for-leak-kinds=definite \
               --num-callers=40 --suppressions=$(abspath ctests/valgrind.supp)

.PHONY: sanitize ctests-valgrind rust-asan rust-tsan miri valgrind-installed \
        nightly-rust-src nightly-miri

sanitize: ctests-valgrind rust-asan rust-tsan miri

# ---- valgrind memcheck over the C tests ----

valgrind-installed:
	@command -v valgrind >/dev/null || { \
	  echo "installing valgrind"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }; }

$(BUILD)/vg/%: ctests/%.c ctests/common.h ctests/rawwire.h lib
	@mkdir -p $(BUILD)/vg
	$(CC) $(VGFLAGS_C) $(VG_EXTRA) $< -o $@ $(LINK)

# leaks.c and faults.c count the process's mappings before and after;
# valgrind, like ASan, maps memory of its own as the program allocates
# (its arenas and translation cache show in /proc/self/maps). With the
# switch they have for ASan they count only the mappings librsm makes
# (memfd segments).
$(BUILD)/vg/leaks: VG_EXTRA := -D__SANITIZE_ADDRESS__
$(BUILD)/vg/faults: VG_EXTRA := -D__SANITIZE_ADDRESS__

# What the kernel does and valgrind does not model (process_vm_writev on
# our own pid, poll's RLIMIT_NOFILE check, exec of /proc/self/exe):
# ctests/valgrind-preload.c, preloaded into every test process.
$(BUILD)/vg/preload.so: ctests/valgrind-preload.c | valgrind-installed
	@mkdir -p $(BUILD)/vg
	$(CC) -std=c99 -Wall -Wextra -Werror -O2 -fPIC -shared $< -o $@

# Each test's processes (it forks; children inherit the valgrind run and
# log apart, %p) must report no error; a child's summary also counts what
# its parent reported before the fork. A process the test kills (SIGKILL)
# writes no summary: its log must then hold nothing but the banner. On
# failure only the logs with errors are shown.
VG_BAD := FNR == 1 { if (NR > 1) verdict(); file = FILENAME; summary = ""; other = 0 } \
  /ERROR SUMMARY:/ { summary = $$0 } \
  !/^==[0-9]+== (Memcheck, a memory error detector|Copyright|Using Valgrind|Command:|Parent PID:|$$)/ { other++ } \
  function verdict() { if (summary != "" ? summary !~ /SUMMARY: 0 errors/ : other > 0) print file } \
  END { if (NR > 0) verdict() }

# The tests run: all of CTESTS but those that cannot run under valgrind,
# each with its reason:
#   limits  sets RLIMIT_AS in the process, which bounds valgrind's own
#           memory too (valgrind dies: "out of memory"), and raises
#           RLIMIT_NOFILE above the limit valgrind keeps for itself. (It
#           runs natively and under ASan.)
VG_CTESTS ?= $(filter-out limits,$(CTESTS))
# Arguments for a test under valgrind (test=arg,arg ...): fewer rounds
# where the test takes a count, to keep the run short (about 20-50 times
# slower than native).
VG_ARGS   ?= faults=40

ctests-valgrind: valgrind-installed $(BUILD)/vg/preload.so $(addprefix $(BUILD)/vg/,$(VG_CTESTS))
	@set -e; n=0; for t in $(VG_CTESTS); do \
	  rc=0; start=$$(date +%s); rm -f $(BUILD)/vg/$$t.vg.*; \
	  LD_PRELOAD=$(abspath $(BUILD)/vg/preload.so) $(NICE) $(VALGRIND) \
	    --log-file=$(BUILD)/vg/$$t.vg.%p $(BUILD)/vg/$$t \
	    $$(for a in $(VG_ARGS); do case $$a in $$t=*) echo "$${a#*=}" | tr , ' ';; esac; done) \
	    > $(BUILD)/vg/$$t.out 2>&1 || rc=$$?; \
	  sed 's/^/valgrind /' $(BUILD)/vg/$$t.out; \
	  procs=$$(ls $(BUILD)/vg/$$t.vg.* 2>/dev/null | wc -l); \
	  bad=$$(awk '$(VG_BAD)' $(BUILD)/vg/$$t.vg.* 2>/dev/null || echo "(no valgrind log)"); \
	  killed=$$(grep -L 'ERROR SUMMARY' $(BUILD)/vg/$$t.vg.* 2>/dev/null | wc -l); \
	  echo "valgrind $$t: $$procs processes ($$killed killed by the test), $$(echo $$bad | wc -w) with errors, exit status $$rc, $$(( $$(date +%s) - start )) s"; \
	  if [ $$rc -ne 0 ] || [ -n "$$bad" ]; then \
	    for f in $$bad; do cat $$f 2>/dev/null || true; done; echo "valgrind $$t: failed (logs in $(BUILD)/vg/$$t.vg.*)"; exit 1; fi; \
	  rm -f $(BUILD)/vg/$$t.vg.*; n=$$((n + 1)); \
	done; echo "ctests-valgrind: $$n passed, 0 failed"

# ---- the Rust unit tests under sanitizers and Miri ----
#
# cargo +nightly with -Zbuild-std, so std is instrumented too (ThreadSan
# needs it; AddressSan finds more with it). Cargo.toml builds with
# panic = "abort", which with -Zbuild-std fails on duplicate lang items
# (rust-lang/cargo#7359): the sanitizer builds override it to unwind,
# which the test harness wants anyway. Each run has its own target
# directory under $(SAN_TARGET), so switching between them rebuilds
# nothing. RUSTFLAGS with --target reaches neither build.rs nor proc
# macros, which run uninstrumented.

SAN_CARGO = CARGO_TARGET_DIR=$(SAN_TARGET)/$(1) CARGO_PROFILE_DEV_PANIC=unwind \
            RUSTFLAGS="-Zsanitizer=$(1) -Cdebuginfo=1" RUSTDOCFLAGS="-Zsanitizer=$(1)" \
            $(NICE) $(CARGO) $(NIGHTLY) test --lib -Zbuild-std --target $(SAN_TRIPLE)

# The nightly toolchain and its components, installed when missing.
nightly-rust-src:
	@rustup run nightly rustc -V >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@rustup component list --toolchain nightly --installed | grep -q '^rust-src' || \
	  rustup component add rust-src --toolchain nightly

nightly-miri: nightly-rust-src
	@rustup component list --toolchain nightly --installed | grep -q '^miri' || \
	  rustup component add miri --toolchain nightly
	@$(CARGO) $(NIGHTLY) miri setup >/dev/null 2>&1 || $(CARGO) $(NIGHTLY) miri setup

# Runs a cargo test command ($(2)) with its output in $(BUILD)/san/$(1).log;
# prints the per-test lines and any sanitizer report, then
# "<name>: N passed, M failed" summed over the "test result" lines. A
# sanitizer report fails the run even when every test passed.
define SAN_RUN
	@mkdir -p $(BUILD)/san
	@start=$$(date +%s); rc=0; \
	$(2) > $(BUILD)/san/$(1).log 2>&1 || rc=$$?; \
	grep -E '^test .* \.\.\. |^(WARNING|ERROR): [A-Za-z]+Sanitizer|^SUMMARY: |^error' \
	  $(BUILD)/san/$(1).log | sed 's/^/$(1) /' || true; \
	if [ $$rc -ne 0 ]; then tail -n 60 $(BUILD)/san/$(1).log; fi; \
	awk -v rc=$$rc -v s=$$(( $$(date +%s) - start )) -v lf=$(BUILD)/san/$(1).log \
	  '/^test result:/ { p += $$4; f += $$6 } \
	   END { if (rc != 0 && f == 0) f = "?"; \
	         printf "$(1): %d passed, %s failed (%d s, exit status %d, log %s)\n", p, f, s, rc, lf }' \
	  $(BUILD)/san/$(1).log; \
	exit $$rc
endef

# Every unit test of the library, std and the crate built with AddressSanitizer
# and LeakSanitizer. The tests that make system calls (memfd, sockets,
# process_vm_readv, /proc) run too: ASan intercepts them as it should.
rust-asan: nightly-rust-src
	$(call SAN_RUN,rust-asan,ASAN_OPTIONS=detect_leaks=1 $(call SAN_CARGO,address))

# ThreadSanitizer: every unit test once (the harness runs them on
# parallel threads, which also exercises the process-wide tables several
# tests share), then the concurrency tests alone, five rounds:
# handles::tests::concurrent_insert_lookup_remove (4 threads on one
# table), transport::events::tests::sleepers_never_miss_a_post and
# concurrent_posts_and_takes_balance (the counter protocol).
TSAN_TESTS := handles::tests::concurrent_insert_lookup_remove \
              transport::events::tests::sleepers_never_miss_a_post \
              transport::events::tests::concurrent_posts_and_takes_balance
rust-tsan: nightly-rust-src
	$(call SAN_RUN,rust-tsan,TSAN_OPTIONS=halt_on_error=1 $(call SAN_CARGO,thread))
	$(call SAN_RUN,rust-tsan-concurrency,(for i in 1 2 3 4 5; do \
	  TSAN_OPTIONS=halt_on_error=1 $(call SAN_CARGO,thread) -- --exact $(TSAN_TESTS) || exit 1; done))

# Miri: the pure-logic tests, interpreted with its checks for undefined
# behaviour, aliasing (Stacked Borrows), data races and, with
# -Zmiri-strict-provenance, integer-to-pointer casts. Miri cannot make
# most system calls, so these tests run (the count is printed): the handle table, the
# permission model, the config and segment-id parsers, controller name
# resolution, the survey and wire codecs, the /proc/net/unix and maps
# parsers, the event counter protocol, the export and import state
# machines against their fake transport, the error and ABI tables. Left
# out (--skip): the 200,000-probe and threaded stress tests (each runs
# over 5 minutes interpreted; ASan and TSan run them); and, by not being
# named, tests that make system calls Miri lacks: uaccess
# (process_vm_readv), the controller reference counts (an AF_UNIX
# socket), the shm tests (memfd, sockets, PROCMAP_QUERY ioctl).
MIRI_FILTERS := handles:: core::permission:: config:: transport::survey:: \
                transport::shm::wire:: transport::shm::tests::parses_ \
                transport::shm::memory::tests::maps_lines_are_checked \
                core::controller::tests::names_resolve_like_solaris \
                transport::events:: core::tests:: error:: abi::types::
MIRI_SKIP    := random_values_never_crash_a_lookup concurrent_insert_lookup_remove \
                sleepers_never_miss_a_post concurrent_posts_and_takes_balance
MIRIFLAGS    ?= -Zmiri-strict-provenance
miri: nightly-miri
	$(call SAN_RUN,miri,CARGO_TARGET_DIR=$(SAN_TARGET) MIRIFLAGS="$(MIRIFLAGS)" $(NICE) $(CARGO) $(NIGHTLY) miri test --lib \
	  -- $(MIRI_FILTERS) $(addprefix --skip ,$(MIRI_SKIP)))
