#!/bin/bash
# `make qemu-test`: two QEMU guests share one ivshmem device and run the
# window transport across it (docs/hardware.md, "QEMU ivshmem").
#
# Guest 0 is node 0 (exporter), guest 1 node 1 (importer); each guest's
# /init (tests/qemu/init) writes a window controller whose node 0 and
# node 1 windows are the two 8 MiB halves of the ivshmem BAR 2
# (/sys/bus/pci/devices/<bdf>/resource2) and runs its role of
# tests/qemu/pingpong.c. The BAR is backed by one file in /dev/shm on
# this host; nothing else connects the guests (-net none).
#
# Needs root (apt-get, /dev/kvm). Installs qemu-system-x86 and
# busybox-static if missing; fetches the guest kernel with `apt-get
# download` (never installed) and keeps it in build/qemu.
#
# Environment: RSM_QEMU_ROUNDS (10000), RSM_QEMU_TIMEOUT (300 s for the
# guests), RSM_QEMU_ACCEL (auto|kvm|tcg), RSM_QEMU_DEBUG=1 (RSM_DEBUG in
# the guests).
set -euo pipefail

# `ivshmem-test.sh limits` (`make limits-vm`) instead boots one guest that
# runs ctests/limits with 100,000 published segments (RSM_QEMU_SEGMENTS):
# as root in a guest, RLIMIT_NOFILE can be raised past what this host's
# container allows (issue 7.6).
MODE=${1:-ivshmem}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/qemu
ROUNDS=${RSM_QEMU_ROUNDS:-10000}
TIMEOUT=${RSM_QEMU_TIMEOUT:-300}
ACCEL=${RSM_QEMU_ACCEL:-auto}
DEBUG=${RSM_QEMU_DEBUG:-0}
SHM=/dev/shm/rsm-qemu-ivshmem-$$
T0=$(date +%s.%N)

say() { echo "qemu-test: $*"; }
die() { say "FAIL: $*"; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -f "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
cd "$ROOT"

# ---- what we need ---------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    timeout 600 apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" || die "apt-get install ${missing[*]} failed"
fi
BUSYBOX=/bin/busybox
if [ "$(readelf -l "$BUSYBOX" | grep -c 'program interpreter')" != 0 ]; then
    die "$BUSYBOX is not the static busybox (busybox-static)"
fi

# The guest kernel: Debian's current linux-image-<abi>-amd64, unsigned,
# downloaded (not installed: no postinst hooks on this host); only its
# vmlinuz is kept.
# Debian 13's kernel (6.12), from a private apt state in build/qemu/apt
# (this host's sources and lists are not touched): it has PROCMAP_QUERY
# (6.11), without which every export_create reads all of /proc/self/maps,
# and 100,000 creates under software emulation would take hours. Falls
# back to this host's release if Debian 13 cannot be reached.
if [ ! -s "$OUT/vmlinuz" ]; then
    A=$OUT/apt
    mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$A/sources.list"
    APT=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
        -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
    pkg=
    if timeout 600 apt-get "${APT[@]}" update -qq >"$OUT/download.log" 2>&1; then
        pkg=$(apt-cache "${APT[@]}" depends linux-image-amd64 2>/dev/null |
            awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
    if [ -z "$pkg" ]; then
        say "Debian 13's kernel is out of reach; using this host's release's (no PROCMAP_QUERY before 6.11)"
        APT=()
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
        [ -n "$pkg" ] || { timeout 600 apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 |
            awk '/Depends: linux-image-[0-9]/ { print $2; exit }'); }
    fi
    [ -n "$pkg" ] || die "cannot tell which linux-image package linux-image-amd64 depends on"
    rm -rf "$OUT/dl" && mkdir -p "$OUT/dl"
    say "downloading $pkg-unsigned (guest kernel)"
    if ! (cd "$OUT/dl" && timeout 600 apt-get "${APT[@]}" download "$pkg-unsigned") >"$OUT/download.log" 2>&1; then
        say "no $pkg-unsigned ($(tail -n 1 "$OUT/download.log")); trying $pkg"
        (cd "$OUT/dl" && timeout 600 apt-get "${APT[@]}" download "$pkg") >"$OUT/download.log" 2>&1 ||
            die "apt-get download $pkg failed: $(cat "$OUT/download.log")"
    fi
    deb=$(ls "$OUT"/dl/*.deb)
    # Only boot/vmlinuz-* of the package's file system (not its modules).
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$OUT/dl" --wildcards './boot/vmlinuz-*' ||
        die "cannot extract vmlinuz from $deb"
    mv "$OUT"/dl/boot/vmlinuz-* "$OUT/vmlinuz"
    basename "$deb" > "$OUT/vmlinuz.package"
    rm -rf "$OUT/dl"
fi
say "guest kernel: $(cat "$OUT/vmlinuz.package" 2>/dev/null || echo "$OUT/vmlinuz")"

# ---- the initramfs ---------------------------------------------------------
[ -e target/release/librsm.so.2 ] || die "target/release/librsm.so.2 missing: make lib"
cc -std=c99 -O2 -Wall -Wextra -Werror -Iinclude tests/qemu/pingpong.c -o "$OUT/pingpong" \
    -Ltarget/release -lrsm || die "cannot build tests/qemu/pingpong.c"
R=$OUT/initramfs
rm -rf "$R"
mkdir -p "$R"/{bin,dev,proc,sys,etc,tmp,run,usr/lib}
cp "$BUSYBOX" "$R/bin/busybox"
cp "$OUT/pingpong" "$R/bin/pingpong"
if [ "$MODE" = limits ]; then
    [ -x build/limits ] || die "build/limits missing: make build/limits"
    cp build/limits "$R/bin/limits"
fi
install -m 755 tests/qemu/init "$R/init"
strip --strip-unneeded -o "$R/usr/lib/librsm.so.2" target/release/librsm.so
# The C library and the loader, as this host's ldd finds them.
LD_LIBRARY_PATH=$ROOT/target/release ldd "$OUT/pingpong" $([ "$MODE" = limits ] && echo build/limits) |
    awk '/:$/ { next } $2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
        case "$lib" in */librsm.so*) continue ;; esac
        mkdir -p "$R$(dirname "$lib")"
        cp -L "$lib" "$R$lib"
    done
[ -e "$R/lib64/ld-linux-x86-64.so.2" ] || die "ldd did not list the dynamic loader"
(cd "$R" && find . | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -6 > "$OUT/initramfs.gz"
say "initramfs: $(du -k "$OUT/initramfs.gz" | cut -f1) KiB ($(cd "$R" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' '))"

# ---- accelerator ---------------------------------------------------------------
# The command line of a guest: qemu_args ACCEL LOG APPEND [more arguments].
# Run as `timeout ... qemu-system-x86_64 "${QARGS[@]}" &`, so that $! is
# timeout's pid: the cleanup's kill reaches qemu through it.
# -smp 1,maxcpus=2: TCG on a machine with one possible CPU translates the
# guest's locked instructions (cmpxchg, lock xadd) without host atomics,
# since no other vCPU of that QEMU could interfere; but the other guest
# does, through the shared BAR, and the window's import slots are claimed
# and answered by compare-and-swap from both guests. With max_cpus > 1
# they are host atomics. One CPU online, not two: with two, a guest kernel
# (6.12) died at boot of "Oops: int3" in TCG (live code patching across
# vCPUs), once in a CI run.
qemu_args() {
    QARGS=(-accel "$1" -M pc -m 256M -smp 1,maxcpus=2 -nographic -no-reboot -net none -monitor none
        -serial "file:$2" -kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.gz"
        -append "console=ttyS0 panic=-1 quiet $3")
    shift 3
    QARGS+=("$@")
}

PROBE_S=15
if [ "$ACCEL" = auto ]; then
    ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        # /dev/kvm can be there and still not run this guest (on this
        # machine it is kvm-pvm, nested without VMX, which boots only PVM
        # guest kernels): boot once, briefly, and look for the probe line.
        rm -f "$OUT/probe.log"
        qemu_args kvm "$OUT/probe.log" rsm.role=probe
        timeout -k 5 "$PROBE_S" qemu-system-x86_64 "${QARGS[@]}" </dev/null >"$OUT/probe.out" 2>&1 &
        PIDS=($!)
        wait "${PIDS[0]}" || true
        PIDS=()
        if grep -q 'rsm-qemu-test: probe: up' "$OUT/probe.log" 2>/dev/null; then
            ACCEL=kvm
        else
            say "/dev/kvm is there but a KVM guest did not reach its /init in $PROBE_S s; using TCG"
            sed 's/^/qemu-test: kvm probe: /' "$OUT/probe.out" | head -n 5
        fi
    else
        say "/dev/kvm not usable"
    fi
fi
if [ "$ACCEL" = kvm ]; then
    say "accelerator: kvm (hardware virtualization)"
else
    say "accelerator: $ACCEL (software emulation)"
fi

# ---- limits: one guest, 100,000 segments ---------------------------------------
if [ "$MODE" = limits ]; then
    SEGMENTS=${RSM_QEMU_SEGMENTS:-100000}
    rm -f "$OUT/limits.log"
    qemu_args "$ACCEL" "$OUT/limits.log" "rsm.role=limits rsm.rounds=$SEGMENTS"
    QARGS=("${QARGS[@]/256M/3G}")
    timeout -k 10 "${RSM_QEMU_TIMEOUT:-1200}" qemu-system-x86_64 "${QARGS[@]}" </dev/null \
        >"$OUT/limits.qemu" 2>&1 &
    PIDS=($!)
    say "guest started (pid ${PIDS[0]}): limits with $SEGMENTS segments"
    rc=0
    wait "${PIDS[0]}" || rc=$?
    PIDS=()
    echo "---- guest: serial console ----"
    tr -d '\r\033' <"$OUT/limits.log" || true
    [ -s "$OUT/limits.qemu" ] && { echo "---- guest: qemu ----"; cat "$OUT/limits.qemu"; }
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && say "the guest did not power off in time (killed)"
    say "accelerator $ACCEL; total $(elapsed) s"
    if grep -q "^rsm-qemu-test: node 0 (limits): PASS" <(tr -d '\r' <"$OUT/limits.log"); then
        say "PASS"
        exit 0
    fi
    die "no PASS line from the guest"
fi

# ---- the two guests ------------------------------------------------------------
rm -f "$SHM"
truncate -s 16M "$SHM"
T1=$(date +%s.%N)
roles=(export import)
for n in 0 1; do
    rm -f "$OUT/guest$n.log"
    qemu_args "$ACCEL" "$OUT/guest$n.log" \
        "rsm.node=$n rsm.role=${roles[$n]} rsm.rounds=$ROUNDS rsm.debug=$DEBUG" \
        -object "memory-backend-file,id=hmem,share=on,mem-path=$SHM,size=16M" \
        -device ivshmem-plain,memdev=hmem
    timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${QARGS[@]}" </dev/null >"$OUT/guest$n.qemu" 2>&1 &
    PIDS+=($!)
done
say "guests started (pids ${PIDS[*]}); waiting up to $TIMEOUT s"
status=()
for n in 0 1; do
    rc=0
    wait "${PIDS[$n]}" || rc=$?
    status+=("$rc")
done
PIDS=()
guests=$(awk -v a="$T1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

fail=0
for n in 0 1; do
    echo "---- guest $n (node $n, ${roles[$n]}): serial console ----"
    tr -d '\r\033' <"$OUT/guest$n.log" || true
    if [ -s "$OUT/guest$n.qemu" ]; then
        echo "---- guest $n: qemu ----"
        cat "$OUT/guest$n.qemu"
    fi
    if [ "${status[$n]}" = 124 ] || [ "${status[$n]}" = 137 ]; then
        say "guest $n did not power off within $TIMEOUT s (killed)"
    fi
    if grep -q "^rsm-qemu-test: node $n (${roles[$n]}): PASS" <(tr -d '\r' <"$OUT/guest$n.log"); then
        :
    else
        say "guest $n: no PASS line"
        fail=1
    fi
done
lat=$(tr -d '\r' <"$OUT/guest1.log" | sed -n 's/.* round trips through the mapping in .*: \([0-9.]* us\) per round trip.*/\1/p')
say "accelerator $ACCEL, $ROUNDS round trips, ${lat:-no figure} per round trip (informative); guests ran ${guests} s; total $(elapsed) s"
if [ $fail -ne 0 ]; then
    say "FAIL"
    exit 1
fi
say "PASS (both guests)"
