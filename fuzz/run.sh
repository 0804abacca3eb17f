#!/bin/sh
# Runs the cargo-fuzz targets for mk/fuzz.mk (fuzz/README.md).
#
#   fuzz/run.sh replay TARGET...          each fuzz/regressions/TARGET/* once
#   fuzz/run.sh run SECONDS OUT TARGET... each TARGET for SECONDS, one at a
#                                         time, one job, at nice 19
#
# `run` prints, per target, the line the reliability summary greps:
#   fuzz TARGET: N execs, cov C, ft F, corpus K, S s
# and writes it to OUT/TARGET.figures (the log is OUT/TARGET.log). It fails
# if a target crashes: the input is in fuzz/artifacts/TARGET/; minimise it
# (`cargo +nightly fuzz tmin TARGET FILE`) and add it to
# fuzz/regressions/TARGET/.
#
# Run from the repository's top directory. CARGO_FUZZ is the command
# (default `cargo +nightly fuzz`).
set -eu

FUZZ=${CARGO_FUZZ:-cargo +nightly fuzz}
# -timeout: an input that runs this long is a hang (the connect timeout of
# the harness is 3 s). -rss_limit_mb: the targets peak near 600 MB.
LIBFUZZER_OPTS="-timeout=30 -rss_limit_mb=4096 -print_final_stats=1"

mode=${1:?usage: run.sh replay TARGET... | run SECONDS OUT TARGET...}
shift

case "$mode" in
replay)
    status=0
    for t in "$@"; do
        mkdir -p fuzz/artifacts
        files=$(find "fuzz/regressions/$t" -type f ! -name '*.md' 2>/dev/null | sort)
        if [ -z "$files" ]; then
            echo "fuzz-regress $t: no inputs"
            continue
        fi
        n=$(echo "$files" | wc -l)
        # RSM_FUZZ_ALL=1: the harness generates the arguments of every
        # finding, fixed or not (api_sequence avoids some by default).
        # shellcheck disable=SC2086
        if RSM_FUZZ_ALL=1 $FUZZ run "$t" $files -- -runs=1 >"fuzz/artifacts/replay-$t.log" 2>&1; then
            echo "fuzz-regress $t: $n passed, 0 failed"
        else
            echo "fuzz-regress $t: FAILED (log: fuzz/artifacts/replay-$t.log)"
            grep -E 'FUZZ BUG|panicked at|SUMMARY|Running:' "fuzz/artifacts/replay-$t.log" | tail -n 8 || true
            status=1
        fi
    done
    exit $status
    ;;
run)
    secs=${1:?seconds}
    out=${2:?output directory}
    shift 2
    mkdir -p "$out"
    status=0
    for t in "$@"; do
        mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
        log="$out/$t.log"
        rc=0
        # fuzz/work/TARGET: the growing corpus (not committed); the seeds
        # in fuzz/corpus/TARGET are read, never written.
        # shellcheck disable=SC2086
        nice -n 19 $FUZZ run "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
            -max_total_time="$secs" $LIBFUZZER_OPTS \
            -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        last=$(grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -n 1)
        cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
        ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
        corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
        line="fuzz $t: ${execs:-0} execs, cov ${cov:-0}, ft ${ft:-0}, corpus ${corp:-0}, $secs s"
        if [ "$rc" -ne 0 ]; then
            line="$line, FAILED (exit $rc)"
            status=1
        fi
        echo "$line" | tee "$out/$t.figures"
        if [ "$rc" -ne 0 ]; then
            grep -E 'FUZZ BUG|panicked at|ERROR: |SUMMARY|Test unit written|error(\[|:)' "$log" | head -n 12 || true
            echo "fuzz $t: log in $log"
        fi
    done
    exit $status
    ;;
*)
    echo "run.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
