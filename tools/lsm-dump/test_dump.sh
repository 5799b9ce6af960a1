#!/usr/bin/env bash
# test_dump.sh LSM_DUMP GOLDEN_STORE_DIR - checks lsm-dump against the
# golden store: every kind of file decodes (exit 0) with the expected
# facts; damaged copies (flipped bytes, truncations) give exit 0 or 1,
# never a crash, and exit 1 comes with exactly one stderr line naming the
# file; bad usage gives exit 2; the golden files are never modified.
set -u
dump=$1
store=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_out WANT_RC PATTERN ARGS... : exit code and a stdout pattern
expect_out() {
  local want=$1 pat=$2; shift 2
  "$dump" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ $rc -eq "$want" ] || bad "lsm-dump $* -> exit $rc, want $want: $(head -3 "$tmp/err")"
  [ -z "$pat" ] || grep -qE -- "$pat" "$tmp/out" || bad "lsm-dump $*: no '$pat' in output"
}

before=$(cd "$store" && sha256sum -- * | sort)

expect_out 0 'level 0: 2 files, 3218 bytes' "$store"
expect_out 0 '000007.log 218 bytes, 4 records, 6 entries, seq 81\.\.86' "$store"
expect_out 0 'current .*: MANIFEST-000006$' "$store/CURRENT"
expect_out 0 'compression 1 \(lz4\)' "$store/000004.sst"
expect_out 0 'block 7: offset 858 size 47 lz4' "$store/000004.sst"
expect_out 0 '39 entries' "$store/000004.sst"
expect_out 0 '\["key020", "key025"\) @45' "$store/000004.sst"
expect_out 0 '"\\x00\\x01bin\\xff" @47 PUT' "$store/000004.sst"
expect_out 0 'compression 2 \(zstd\)' "$store/000008.sst"
expect_out 0 'filter: bloom, 1 lines of 64 bytes, 7 probes' "$store/000008.sst"
expect_out 0 '6b6579303330 @49 PUT$' --hex --keys-only "$store/000008.sst"
expect_out 0 'limit 2 reached' --limit 2 "$store/000008.sst"
expect_out 0 '@84 RANGE_DEL \["key205", "key210"\)' "$store/000007.log"
expect_out 0 'clean end after 4 records' "$store/000007.log"
expect_out 0 'new L0 000008.sst 1438 bytes \["key000" @max SENTINEL' "$store/MANIFEST-000006"
expect_out 0 'clean end after 2 records' --kind manifest "$store/MANIFEST-000006"

# Bad usage.
expect_out 2 '' ; expect_out 2 '' --bogus "$store"
expect_out 2 '' --limit 0 "$store/000004.sst"
expect_out 2 '' --kind nope "$store/000004.sst"
expect_out 2 '' --kind sst "$store"
cp "$store/000004.sst" "$tmp/noname"
expect_out 2 '' "$tmp/noname"
expect_out 0 'compression 1' --kind sst "$tmp/noname"
expect_out 1 '' "$tmp/missing.sst"

# A torn WAL tail is not an error.
head -c 150 "$store/000007.log" >"$tmp/000009.log"
expect_out 0 'torn tail at offset 131' "$tmp/000009.log"

# damaged FILE: flips and truncations; exit 0 or 1, one stderr line.
damaged() {
  local src=$1 name=$2 size off n=0
  size=$(stat -c %s "$src")
  for off in 0 1 5 9 13 20 40 60 100 200 400 700 900 1000 1200 1400 \
      $((size - 64)) $((size - 60)) $((size - 40)) $((size - 12)) \
      $((size - 8)) $((size - 1)); do
    [ "$off" -ge 0 ] && [ "$off" -lt "$size" ] || continue
    cp "$src" "$tmp/$name"
    printf '\xa5' | dd of="$tmp/$name" bs=1 seek="$off" conv=notrunc 2>/dev/null
    check_damaged "$tmp/$name" "flip@$off"
    n=$((n + 1))
  done
  for len in 0 1 12 13 30 64 $((size / 2)) $((size - 65)) $((size - 1)); do
    [ "$len" -ge 0 ] && [ "$len" -lt "$size" ] || continue
    head -c "$len" "$src" >"$tmp/$name"
    check_damaged "$tmp/$name" "cut@$len"
  done
}
check_damaged() {
  "$dump" "$1" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  case $rc in
    0) ;;
    1) [ "$(wc -l <"$tmp/err")" -eq 1 ] || bad "$2 $1: want one stderr line: $(cat "$tmp/err")"
       grep -q "$(basename "$1")" "$tmp/err" || bad "$2 $1: stderr does not name the file: $(cat "$tmp/err")";;
    *) bad "$2 $1: exit $rc: $(tail -5 "$tmp/err")";;
  esac
}
damaged "$store/000004.sst" 000004.sst
damaged "$store/000008.sst" 000008.sst
damaged "$store/000007.log" 000007.log
damaged "$store/MANIFEST-000006" MANIFEST-000006
damaged "$store/CURRENT" CURRENT

# A damaged store directory.
mkdir "$tmp/st"
cp "$store"/* "$tmp/st/"
rm "$tmp/st/000008.sst"
expect_out 1 '000008.sst .*MISSING' "$tmp/st"
echo junk >"$tmp/st/CURRENT"
expect_out 1 '' "$tmp/st"

after=$(cd "$store" && sha256sum -- * | sort)
[ "$before" = "$after" ] || bad "the golden store changed"
ls "$store" | grep -qE '^(LOCK|LOG)$' && bad "lsm-dump created LOCK or LOG"

if [ $fails -ne 0 ]; then
  echo "$fails failures"
  exit 1
fi
echo "lsm-dump: all checks passed"
