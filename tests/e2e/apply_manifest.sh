#!/bin/bash
# apply LAYER... ROOT --manifest-out M: several layers in order, as a builder
# unpacks a base image, and the manifest of the tree they made, recorded with
# the hashes of the bytes as they were written: it is the manifest a scan of
# ROOT afterwards records, and the files it took from the apply are not read
# again.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
S=$T/src
mkdir -p "$S/d/e" "$S/sparse"
for i in 1 2 3 4; do head -c $((i * 70000)) "$L" >"$S/f$i"; done
echo x >"$S/d/x"
ln "$S/f1" "$S/d/hard"
ln -s ../f2 "$S/d/link"
truncate -s 1M "$S/sparse/hole"
printf 'end' >>"$S/sparse/hole"
mkfifo "$S/d/fifo"
"$L" diff -q "$S" -o "$T/l1.tar" --manifest-out "$T/m1" || fail "diff 1 failed"
echo more >"$S/d/e/y"
rm "$S/f2"
echo changed >"$S/f3"
"$L" diff -q "$S" --base "$T/m1" --compress gzip -o "$T/l2.tar.gz" --manifest-out "$T/m2" || fail "diff 2 failed"
rm -r "$S/d/e"
echo z >"$S/z"
head -c 64M /dev/urandom >"$S/big"   # its write puts f4 out of the racy window
"$L" diff -q "$S" --base "$T/m2" --compress zstd -o "$T/l3.tar.zst" || fail "diff 3 failed"

for mode in full redo time; do
	O=$T/out-$mode
	mkdir "$O"
	"$L" apply --mode $mode "$T/l1.tar" "$T/l2.tar.gz" "$T/l3.tar.zst" "$O" --manifest-out "$T/applied-$mode" ||
		fail "apply --manifest-out ($mode) failed"
	"$L" scan --mode $mode "$O" -o "$T/scanned-$mode" || fail "scan ($mode) failed"
	"$L" compare "$T/applied-$mode" "$T/scanned-$mode" || fail "$mode: apply's manifest differs from the scan's"
	assert_eq "$("$L" dump --format json "$T/scanned-$mode" | sed 's/"scan_start": [0-9.-]*, //')" \
		"$("$L" dump --format json "$T/applied-$mode" | sed 's/"scan_start": [0-9.-]*, //')" \
		"$mode: apply's manifest, entry by entry, against the scan's"
	"$L" compare --mode $mode --mtime-seconds "$T/applied-$mode" "$S" || fail "$mode: the applied tree is not the source"
done

# The scan after the applies read only what it could not take from them: the
# hard link (its ctime moved when linked) and the files written in the racy
# window at the end; never f1..f4 written long before, as a scan without a
# base would.
if command -v strace >/dev/null; then
	O=$T/out-strace
	mkdir "$O"
	"$L" apply "$T/l1.tar" "$T/l2.tar.gz" "$T/l3.tar.zst" "$O" --manifest-out "$T/unused" || fail "apply failed"
	rm -rf "$O" "$T/unused"
	mkdir "$O"
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e trace=openat -o "$T/strace" \
		"$L" apply --jobs 1 --io sync "$T/l1.tar" "$T/l2.tar.gz" "$T/l3.tar.zst" "$O" --manifest-out "$T/traced" ||
		fail "apply under strace failed"
	# f4 comes from the first layer; the last one's 64 MiB file is written
	# after it, but the layers after f4 could still take less than the racy
	# window (walk.h: a few ticks of the coarse clock),
	# and then f4 is racy against the manifest's scan start and rightly
	# read again: the check holds for an f4 written well before the start.
	racy=$(python3 -c '
import json, sys
m = json.load(sys.stdin)
start = round(m["scan_start"] * 1e9)
f4 = [e for e in m["entries"] if e["path"] == "f4"][0]
print(1 if f4["ctime_ns"] >= start - 10_000_000 else 0)' < <("$L" dump --format json "$T/traced")) ||
		fail "dump of the traced manifest failed"
	if [ "$racy" = 1 ]; then
		partial_skip timing "f4 was written within 10 ms of the apply's scan start (racy): its reuse was not checked"
	else
		grep -q 'openat([0-9]*, "f4", O_RDONLY' "$T/strace" && fail "the scan read f4 again: $(grep '"f4"' "$T/strace")"
	fi
	"$L" compare "$T/traced" "$T/scanned-full" || fail "the traced apply's manifest differs"
else
	partial_skip strace "strace is not installed: the check that apply's hashes are reused"
fi

# Refusals, nothing written.
expect_error "$L" apply "$T/l1.tar" - - "$T/out-full"
expect_error "$L" apply "$T/l1.tar" "$T/out-full" --manifest-out -
expect_error "$L" apply "$T/no-such-layer" "$T/out-full" --manifest-out "$T/none"
[ ! -e "$T/none" ] || fail "a failed apply wrote a manifest"
echo "apply --manifest-out: ok"
