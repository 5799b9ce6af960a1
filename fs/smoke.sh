#!/bin/sh
# smoke.sh BUILD_DIR - mounts a fresh lsmfs in a temp dir, exercises the
# basics, remounts, compares, unmounts. Exit 0 on success.
set -eu
bin="${1:-build}/fs/lsmfs"
tmp=$(mktemp -d)
trap 'fusermount3 -u "$tmp/m" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir "$tmp/m"
"$bin" "$tmp/store" "$tmp/m"
mkdir -p "$tmp/m/d/e"
printf hello > "$tmp/m/d/e/f"
ln -s e/f "$tmp/m/d/s"
cp -r /usr/include/linux "$tmp/m/linux"
fusermount3 -u "$tmp/m"
"$bin" "$tmp/store" "$tmp/m"
test "$(cat "$tmp/m/d/s")" = hello
diff -r /usr/include/linux "$tmp/m/linux"
test "$(stat -c %h "$tmp/m/d")" = 3
fusermount3 -u "$tmp/m"
echo "smoke: ok"
