#!/bin/sh
# Prints the reliability figures from the outputs `make reliability` left
# in $1 (one file per test program).
d=$1
last() { grep -h "$2" "$d/$1.out" | tail -n 1; }
echo "faults:   $(last faults 'kills (')"
echo "threads:  $(last threads 'passed')"
echo "bad handles and arguments: $(last handles 'passed') (every bad handle kind to every function)"
echo "hostile clients: $(last hostile 'passed')"
echo "leaks:    $(last leaks 'passed'); $(last linger 'passed') (exporter at 64 descriptors, 40,000 connects)"
fails=$(cat "$d"/*.out | grep -c 'failed: ' || true)
# Leaks: what faults counted, plus failed checks of the leak tests (each
# compares descriptors, mappings and /dev/shm names with the start).
fault_leaks=$(last faults 'kills (' | sed -n 's/.* \([0-9][0-9]*\) leaks.*/\1/p')
leak_fails=$(cat "$d/leaks.out" "$d/linger.out" | grep -c 'failed: ' || true)
echo "reliability: leaks found $(( ${fault_leaks:-1} + leak_fails )), checks failed $fails"
test "$fails" -eq 0 && test "${fault_leaks:-1}" -eq 0
