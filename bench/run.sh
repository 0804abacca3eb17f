#!/bin/sh
# Runs the benchmark suite (bench/README.md); `make bench` and
# `make bench-smoke` call it after building the drivers.
#
#   bench/run.sh [--smoke] BINDIR OUTDIR DRIVER...
#
# Full run: installs ucx-utils and python3-matplotlib (Debian) when they are
# missing, runs every driver, writes OUTDIR/<name>.txt, .csv, .targets.csv
# and .png, and ends with every target, MET or MISSED.
# --smoke: tiny sizes and counts, installs nothing, uses UCX and matplotlib
# only if already there.
# Exit status: non-zero only if a driver failed (an RSM call failed, a
# worker died or hung); never because of a figure, UCX or plotting.
set -u

smoke=
if [ "${1:-}" = --smoke ]; then smoke=--smoke; shift; fi
if [ $# -lt 3 ]; then echo "usage: $0 [--smoke] BINDIR OUTDIR DRIVER..." >&2; exit 2; fi
bin=$1 out=$2
shift 2
mkdir -p "$out"
log=$bin/install.log

# Installs a Debian package if we may (root, apt-get); quiet, logged.
install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "bench: cannot install $1 (not root or no apt-get)"
        return 1
    fi
    echo "bench: installing Debian package $1 (log: $log)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >>"$log" 2>&1 ||
        { apt-get update >>"$log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$1" >>"$log" 2>&1; }
}

ucx=
if ! command -v ucx_perftest >/dev/null 2>&1; then
    if [ -z "$smoke" ]; then install ucx-utils; fi
    if ! command -v ucx_perftest >/dev/null 2>&1; then
        echo "bench: ucx_perftest not available: the UCX baselines are left out"
        ucx=--no-ucx
    fi
fi

# matplotlib: the python3 on PATH may be another interpreter than Debian's.
find_python() {
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import matplotlib' >/dev/null 2>&1; then
            echo "$p"
            return
        fi
    done
}
py=$(find_python)
if [ -z "$py" ] && [ -z "$smoke" ]; then
    install python3-matplotlib
    py=$(find_python)
fi
[ -n "$py" ] || echo "bench: no python3 with matplotlib: no plots"

# Result files are named after what they measure.
name_of() {
    case $1 in
    databench) echo data ;;
    eventbench) echo events ;;
    scalebench) echo scale ;;
    connbench) echo connect ;;
    windowbench) echo window ;;
    *) echo "$1" ;;
    esac
}

failed=
start=$(date +%s)
for d in "$@"; do
    n=$(name_of "$d")
    echo
    echo "=== $d ($out/$n.txt)"
    rcfile=$bin/$d.rc
    { "$bin/$d" $smoke $ucx --out "$out" 2>&1; echo $? >"$rcfile"; } | tee "$out/$n.txt"
    rc=$(cat "$rcfile")
    if [ "$rc" != 0 ]; then
        echo "bench: $d FAILED (exit status $rc)"
        failed="$failed $d"
    fi
done

if [ -n "$py" ]; then
    echo
    "$py" bench/plot.py "$out" || echo "bench: plotting failed (see above); the figures are in the CSV files"
fi

echo
echo "=== Targets ($out/*.txt; figures are medians of several runs, ratios ours / baseline)"
grep -h "target:" $(for d in "$@"; do echo "$out/$(name_of "$d").txt"; done) 2>/dev/null | sed 's/^ *target: /  /'
met=$(cat "$out"/*.targets.csv 2>/dev/null | grep -c ',MET$')
missed=$(cat "$out"/*.targets.csv 2>/dev/null | grep -c ',MISSED$')
echo "bench: targets: $met met, $missed missed$([ -n "$smoke" ] && echo ' (smoke run: the figures mean nothing)'); $(($(date +%s) - start)) s"
if [ -n "$failed" ]; then
    echo "bench: FAILED:$failed"
    exit 1
fi
echo "bench: all drivers ran"
