#!/usr/bin/env bash
# test_bench.sh LSM_BENCH - a small run of lsm-bench against every engine
# it was built with: exit 0; the report has each selected workload, a
# settled write amplification and a memory line for every engine, lsm's
# per-level table with its write columns, and the answers of the reads
# were checked (lsm-bench exits 1 on any wrong answer); bad arguments give
# exit 2 and a message. Figures are not judged: timing belongs to runs on
# a quiet machine, not to tests.
set -u
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$bench" --large --num=30000 --db-dir="$tmp/db" >"$tmp/large" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || bad "--large: exit $rc: $(tail -3 "$tmp/err")"
grep -q "lsm W-amp once its flushes and compactions finished: [0-9.]*" \
  "$tmp/large" || bad "--large: no settled W-amp for lsm"
grep -qE "^  lsm: [0-9.]+ MiB \(during fillrandom\); budget" "$tmp/large" ||
  bad "--large: no memory line with the budget for lsm"
grep -qE "^level +files +bytes +runs +read_bytes +written_bytes +w-amp" \
  "$tmp/large" || bad "--large: no lsm level table with write columns"
for e in rocksdb leveldb; do # the peers this build has ran too
  grep -qE "^  $e +[0-9]" "$tmp/large" || continue
  grep -q "$e W-amp once its flushes and compactions finished" "$tmp/large" ||
    bad "--large: no settled W-amp for $e"
done

"$bench" --engines=lsm --benchmarks=fillrandom,readrandom,readseq \
  --num=20000 --runs=1 --l0-size-percent=100 --db-dir="$tmp/db" \
  >"$tmp/small" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || bad "small run: exit $rc: $(tail -3 "$tmp/err")"
for w in fillrandom readrandom readseq; do
  grep -q "^$w:" "$tmp/small" || bad "small run: no $w section"
done
grep -q "L0 waits for 100% of the base level" "$tmp/small" ||
  bad "small run: --l0-size-percent not in lsm's settings line"

"$bench" --engines=lsm --benchmarks=fillrandom,readrandom --compaction=tiered \
  --min-merge-width=8 --size-amp-percent=300 --num=20000 --runs=1 \
  --db-dir="$tmp/db" >"$tmp/tiered" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || bad "tiered run: exit $rc: $(tail -3 "$tmp/err")"
grep -q "size-tiered compaction (min merge width 8, space bound 300%)" \
  "$tmp/tiered" || bad "tiered run: merge width and space bound not in lsm's settings line"

for args in "--l0-size-percent=1001" "--num=0" "--engines=nosuch" "--bogus" \
  "--min-merge-width=1" "--size-amp-percent=0"; do
  "$bench" $args >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ $rc -eq 2 ] || bad "$args: exit $rc, want 2"
  [ -s "$tmp/err" ] || bad "$args: no message"
done

[ $fails -eq 0 ] && echo "lsm-bench: all checks passed"
exit $((fails > 0))
