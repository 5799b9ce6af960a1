#!/usr/bin/env bash
# test_dump.sh LSM_DUMP GOLDEN_STORE_DIR MAKE_BLOB_STORE - checks lsm-dump
# against the golden store and against a store with blob files written by
# MAKE_BLOB_STORE (tools/lsm-dump/make_blob_store.c): every kind of file
# decodes (exit 0) with the expected facts; damaged copies (flipped bytes,
# truncations) give exit 0 or 1, never a crash, and exit 1 comes with
# exactly one stderr line naming the file; a value whose checksum fails is
# printed BAD with exit 1; bad usage gives exit 2; the dumped files are
# never modified.
set -u
dump=$1
store=$2
blobgen=$3
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

# ---- blob files ----
bs="$tmp/bs"
"$blobgen" "$bs" >"$tmp/gen.out" 2>&1 || bad "make-blob-store failed: $(tail -3 "$tmp/gen.out")"
bs_before=$(cd "$bs" && sha256sum -- * | sort)
# The store as make_blob_store.c's invariant 2 describes it (file numbers
# are the engine's business: matched loosely).
N='[0-9]{6}'
expect_out 0 "^blob files: 2, 32154 bytes; linked 6/32000, garbage 3/15000" "$bs"
expect_out 0 "^  $N\.blob 20092 bytes linked 4/20000 garbage 3/15000 \(75%\)\$" "$bs"
expect_out 0 "^  $N\.blob 12062 bytes linked 2/12000 garbage 0/0 \(0%\)\$" "$bs"
expect_out 0 "\.log 84 bytes, 2 records, 2 entries, seq 9\.\.10, 1 blob values" "$bs"
expect_out 0 "other files: $N\.blob\(values of a WAL\)" "$bs"
man=$(cd "$bs" && ls MANIFEST-*)
expect_out 0 "^  blob file $N size 20092 linked 4/20000\$" "$bs/$man"
expect_out 0 "^  blob file $N size 12062 linked 2/12000\$" "$bs/$man"
expect_out 0 "^  blob garbage $N count 3 bytes 15000\$" "$bs/$man"
sst=$(ls "$bs"/*.sst)
expect_out 0 "^  \"big4\" @4 BLOB -> blob $N offset 15092 len 5000 checksum 0x[0-9a-f]{8}\$" "$sst"
expect_out 0 "^  \"big1\" @6 BLOB -> blob $N offset 47 len 6000 " --keys-only "$sst"
expect_out 0 "^  \"small1\" @5 PUT -> " "$sst"
wal=$(ls "$bs"/*.log)
expect_out 0 "^  @9 BLOB \"big5\" -> blob $N offset 47 len 7000 checksum 0x[0-9a-f]{8}\$" "$wal"
big=
for f in "$bs"/*.blob; do
  [ "$(stat -c %s "$f")" -eq 20092 ] && big=$f
done
[ -n "$big" ] || bad "no 20092-byte blob file in $bs"
bname=$(basename "$big")
expect_out 0 "^header: magic \"LSMBLOB1\" version 1 flags 0x0 number $((10#${bname%.blob})) reserved 0x0 checksum 0x[0-9a-f]{8} \(ok\)\$" "$big"
expect_out 0 '^  @5047 key "big2" value @5062 len 5000 checksum 0x[0-9a-f]{8} ok -> ' "$big"
expect_out 0 '^  @15077 key "big4" value @15092 len 5000 checksum 0x[0-9a-f]{8} ok$' --keys-only "$big"
expect_out 0 '^clean end at offset 20092 after 4 records, 20000 value bytes$' "$big"
expect_out 0 '^  @32 key 62696731 value @47 ' --hex "$big"
expect_out 0 'limit 2 reached' --limit 2 "$big"
cp "$big" "$tmp/blobcopy"
expect_out 2 '' "$tmp/blobcopy"
expect_out 0 '^clean end at offset 20092 after 4 records' --kind blob "$tmp/blobcopy"
# A flipped value byte: that record is BAD, the walk goes on, exit 1.
cp "$big" "$tmp/$bname"
printf '\xa5' | dd of="$tmp/$bname" bs=1 seek=5200 conv=notrunc 2>/dev/null
expect_out 1 '^  @5047 key "big2" value @5062 len 5000 checksum 0x[0-9a-f]{8} BAD$' --keys-only "$tmp/$bname"
grep -qE '^  @15077 key "big4" .* ok$' "$tmp/out" || bad "the dump stopped at the BAD record"
grep -q '^corrupt: 1 bad record (first at offset 5047)' "$tmp/out" || bad "no corrupt summary: $(tail -2 "$tmp/out")"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "$bname offset 5047" "$tmp/err" || bad "BAD record: stderr $(cat "$tmp/err")"
# A torn last record and zeros after the records are no damage.
head -c 12000 "$big" >"$tmp/$bname"
expect_out 0 '^torn tail at offset 10062 \(a record whose value is cut short' "$tmp/$bname"
cp "$big" "$tmp/$bname"
head -c 1000 /dev/zero >>"$tmp/$bname"
expect_out 0 '^clean end at offset 20092 after 4 records, 20000 value bytes; then 1000 zero bytes$' "$tmp/$bname"
# The header must name the file's own number.
cp "$big" "$tmp/000999.blob"
expect_out 1 '' "$tmp/000999.blob"
grep -q 'not 000999' "$tmp/err" || bad "wrong number: $(cat "$tmp/err")"
damaged "$big" "$bname"
# A store whose listed blob file is gone.
mkdir "$tmp/bs2"
cp "$bs"/* "$tmp/bs2/"
rm "$tmp/bs2/$bname"
expect_out 1 "^  $bname 20092 bytes .* MISSING\$" "$tmp/bs2"
bs_after=$(cd "$bs" && sha256sum -- * | sort)
[ "$bs_before" = "$bs_after" ] || bad "dumping changed the blob store"

after=$(cd "$store" && sha256sum -- * | sort)
[ "$before" = "$after" ] || bad "the golden store changed"
ls "$store" | grep -qE '^(LOCK|LOG)$' && bad "lsm-dump created LOCK or LOG"

if [ $fails -ne 0 ]; then
  echo "$fails failures"
  exit 1
fi
echo "lsm-dump: all checks passed"
