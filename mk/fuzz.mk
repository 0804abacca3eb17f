# Fuzzing (issue 7, item 1): cargo-fuzz (libFuzzer) targets in fuzz/, its
# own workspace, built with the nightly toolchain into fuzz/target. See
# fuzz/README.md; figures and findings in fuzz/RESULTS.md.
#
#   make fuzz-smoke    regressions, then each target FUZZ_SMOKE_SECS (20) s;
#                      part of `make test`; fails on any crash
#   make fuzz-long     each target FUZZ_LONG_SECS (600) s, one at a time
#   make fuzz-regress  replay fuzz/regressions/* only
#   make fuzz-figures  the last figures: "fuzz <target>: N execs, cov C, ..."
#
# One libFuzzer job at nice 19, one target at a time: the machine is shared.

FUZZ_TARGETS    := api_sequence agent_messages config_parsers
FUZZ_SMOKE_SECS ?= 20
FUZZ_LONG_SECS  ?= 600
CARGO_FUZZ      ?= cargo +nightly fuzz
FUZZ_OUT        := $(BUILD)/fuzz

.PHONY: fuzz-tools fuzz-build fuzz-regress fuzz-smoke fuzz-long fuzz-figures

# cargo-fuzz if missing (a fresh CI machine has rustup stable and nightly).
fuzz-tools:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@$(CARGO_FUZZ) --version >/dev/null

fuzz-build: fuzz-tools
	$(CARGO_FUZZ) build

fuzz-regress: fuzz-build
	@mkdir -p fuzz/artifacts
	@CARGO_FUZZ="$(CARGO_FUZZ)" sh fuzz/run.sh replay $(FUZZ_TARGETS)

# Both write $(FUZZ_OUT)/figures.txt, also when a target fails (its line
# then ends in "FAILED (exit N)"), and fail if any target crashed.
fuzz-smoke: fuzz-regress
	@rc=0; CARGO_FUZZ="$(CARGO_FUZZ)" sh fuzz/run.sh run $(FUZZ_SMOKE_SECS) $(FUZZ_OUT)/smoke $(FUZZ_TARGETS) || rc=$$?; \
	  cat $(addprefix $(FUZZ_OUT)/smoke/,$(addsuffix .figures,$(FUZZ_TARGETS))) > $(FUZZ_OUT)/figures.txt 2>/dev/null; \
	  exit $$rc

fuzz-long: fuzz-regress
	@rc=0; CARGO_FUZZ="$(CARGO_FUZZ)" sh fuzz/run.sh run $(FUZZ_LONG_SECS) $(FUZZ_OUT)/long $(FUZZ_TARGETS) || rc=$$?; \
	  cat $(addprefix $(FUZZ_OUT)/long/,$(addsuffix .figures,$(FUZZ_TARGETS))) > $(FUZZ_OUT)/figures.txt 2>/dev/null; \
	  exit $$rc

# The figures of the last fuzz-smoke or fuzz-long, one line per target:
#   fuzz <target>: N execs, cov C, ft F, corpus K, S s
fuzz-figures:
	@cat $(FUZZ_OUT)/figures.txt 2>/dev/null || echo "fuzz: no figures yet (make fuzz-smoke or fuzz-long)"
