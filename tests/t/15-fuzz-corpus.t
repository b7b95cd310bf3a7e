#!/bin/sh
# Replays every committed fuzz corpus (tests/fuzz/corpus/<harness>/) once through its
# harness, built with the suite's own compiler and flags ($ROTATOR_BUILD/fuzz-replay/):
# an input that once crashed or broke a harness check must not do so again.
root=${ROTATOR_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${ROTATOR_BUILD:-$root/build}
harnesses=$(ls "$root"/tests/fuzz/fuzz_*.c | sed 's#.*/##; s#\.c$##')
n=0
for h in $harnesses; do n=$((n + 1)); done
echo "1..$n"
i=0
for h in $harnesses; do
  i=$((i + 1))
  bin="$build/fuzz-replay/$h"
  corpus="$root/tests/fuzz/corpus/$h"
  if [ ! -x "$bin" ]; then echo "not ok $i - $h: $bin is missing (make all builds it)"; continue; fi
  if [ ! -d "$corpus" ] || [ -z "$(ls "$corpus")" ]; then echo "not ok $i - $h: no corpus in $corpus"; continue; fi
  if out=$("$bin" "$corpus" 2>&1); then
    echo "ok $i - $h: $(echo "$out" | tail -n 1)"
  else
    echo "not ok $i - $h: the corpus replay failed"
    echo "$out" | tail -n 20 | sed 's/^/# /'
  fi
done
