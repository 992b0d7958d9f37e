#!/bin/bash
# Any depth: no PATH_MAX limit anywhere.  A tree holds a path of more than
# 8 KiB (45 nested directories of 200-byte names, a file and a symlink at
# the bottom) beside a short one.  With --io sync and --io uring: scan
# records it (dump lists it, in JSON and mtree), diff writes a full layer
# holding it and its ancestors, a change of the deep file is a modification
# in diff --base and in compare, apply recreates it (checked by cd-ing down
# relative steps), and compare finds the applied tree equal.  An error on a
# long path keeps its reason: the deep file unreadable to an unprivileged
# user gives one line ending in ": Permission denied", at most about 1 KB
# (the middle of the path may be shortened), naming the file.
. "$(dirname "$0")/lib.sh"

command -v bsdtar >/dev/null || skip bsdtar "bsdtar not installed"
L=$LAYERSNAP
T=$LS_TMP
R=$T/root
mkdir -p "$R/short"
echo "short file" >"$R/short/file"

LEVELS=45
filler=$(printf 'd%.0s' $(seq 198))
DEEP_DIR=
for i in $(seq -w $LEVELS); do DEEP_DIR=${DEEP_DIR:+$DEEP_DIR/}$i$filler; done
DEEP_FILE=$DEEP_DIR/deep-file
DEEP_LINK=$DEEP_DIR/deep-link
[ ${#DEEP_FILE} -gt 8192 ] || fail "the deep path is only ${#DEEP_FILE} bytes"
echo "deep path: ${#DEEP_FILE} bytes, $LEVELS levels"

# at_bottom TOP CMD...: runs CMD in TOP's deepest directory, reached by
# relative steps (a path string that long cannot be opened)
at_bottom() {
	(
		cd "$1" || exit 1
		for i in $(seq -w $LEVELS); do cd "$i$filler" || exit 1; done
		shift
		"$@"
	)
}
mkdeep() {
	for i in $(seq -w $LEVELS); do mkdir "$i$filler" && cd "$i$filler" || return 1; done
	echo "deep content v1" >deep-file && ln -s ../../link-target deep-link
}
(cd "$R" && mkdeep) || fail "cannot make the deep tree"

IOS="sync uring"
if ! "$L" scan --io uring "$R/short" -o "$T/probe.m" 2>"$T/probe.err"; then
	grep -q 'io_uring' "$T/probe.err" || fail "--io uring failed oddly: $(cat "$T/probe.err")"
	IOS=sync
	partial_skip uring "io_uring unavailable ($(cat "$T/probe.err")): --io uring"
fi
json() { "$L" dump "$1" --format json | sed 's/"scan_start": [0-9.-]*, //'; }

for io in $IOS; do
	at_bottom "$R" sh -c 'echo "deep content v1" >deep-file' || fail "cannot reset the deep file"
	# ---- scan and dump ----------------------------------------------------------------
	expect_status 0 "$L" scan --io $io "$R" -o "$T/scan.$io.m"
	"$L" dump "$T/scan.$io.m" --format json >"$T/dump.json" || fail "$io: dump --format json failed"
	grep -qF "{\"path\": \"$DEEP_FILE\", \"type\": \"file\"" "$T/dump.json" ||
		fail "$io: dump --format json does not list the deep file"
	grep -F "{\"path\": \"$DEEP_LINK\", " "$T/dump.json" | grep -qF '"../../link-target"' ||
		fail "$io: dump --format json does not list the deep symlink and its target"
	grep -qF '{"path": "short/file", ' "$T/dump.json" || fail "$io: dump --format json lacks short/file"
	[ "$(grep -c '"type": "dir"' "$T/dump.json")" -eq $((LEVELS + 1)) ] ||
		fail "$io: dump does not hold the $LEVELS deep directories and short/"
	"$L" dump "$T/scan.$io.m" >"$T/dump.mtree" || fail "$io: dump (mtree) failed"
	grep -qF "./$DEEP_FILE type=file " "$T/dump.mtree" || fail "$io: the mtree dump does not list the deep file"
	expect_status 0 "$L" compare --io $io "$T/scan.$io.m" "$R"

	# ---- a full layer ---------------------------------------------------------------------
	rm -f "$T/full.tar" "$T/m1"
	expect_status 0 "$L" diff --io $io "$R" -o "$T/full.tar" --manifest-out "$T/m1" -q
	bsdtar -tf "$T/full.tar" >"$T/list" || fail "$io: bsdtar cannot list the full layer"
	grep -qxF "$DEEP_FILE" "$T/list" || fail "$io: the full layer does not hold the deep file"
	grep -qxF "$DEEP_LINK" "$T/list" || fail "$io: the full layer does not hold the deep symlink"
	grep -qxF "short/file" "$T/list" || fail "$io: the full layer does not hold short/file"
	[ "$(grep -c '/$' "$T/list")" -eq $((LEVELS + 1)) ] || fail "$io: the full layer lacks deep directories"
	assert_eq "deep content v1" "$(bsdtar -xOf "$T/full.tar" "$DEEP_FILE")" "$io: the deep file's bytes in the layer"
	assert_eq "$(json "$T/scan.$io.m")" "$(json "$T/m1")" "$io: diff's manifest against scan's"

	# ---- apply ------------------------------------------------------------------------------
	A=$T/applied.$io
	mkdir "$A"
	expect_status 0 "$L" apply -q "$T/full.tar" "$A"
	assert_eq "deep content v1" "$(at_bottom "$A" cat deep-file)" "$io: the applied deep file"
	assert_eq "../../link-target" "$(at_bottom "$A" readlink deep-link)" "$io: the applied deep symlink"
	assert_eq "short file" "$(cat "$A/short/file")" "$io: the applied short/file"
	expect_status 0 "$L" compare --io $io --mtime-seconds "$T/m1" "$A"

	# ---- a change of the deep file ------------------------------------------------------------
	at_bottom "$R" sh -c 'echo "deep content, changed ($1)" >deep-file' sh $io || fail "cannot change the deep file"
	rm -f "$T/d.tar" "$T/m2"
	"$L" diff --io $io "$R" --base "$T/m1" -o "$T/d.tar" --manifest-out "$T/m2" --json >"$T/d.json" 2>"$T/stderr" ||
		fail "$io: diff --base exited $?: $(cat "$T/stderr")"
	grep -q '"added": 0, "modified": 1, "deleted": 0,' "$T/d.json" ||
		fail "$io: diff --base does not count one modification: $(cat "$T/d.json")"
	bsdtar -tf "$T/d.tar" >"$T/list" || fail "$io: bsdtar cannot list the diff layer"
	grep -qxF "$DEEP_FILE" "$T/list" || fail "$io: the diff layer does not hold the deep file"
	grep -qxF "$DEEP_LINK" "$T/list" && fail "$io: the diff layer holds the unchanged deep symlink"
	grep -qxF "short/file" "$T/list" && fail "$io: the diff layer holds the unchanged short/file"
	assert_eq "$(printf 'M\t%s' "$DEEP_FILE")" "$("$L" compare "$T/m1" "$T/m2")" "$io: compare between the manifests"
	expect_status 0 "$L" apply -q "$T/d.tar" "$A"
	assert_eq "deep content, changed ($io)" "$(at_bottom "$A" cat deep-file)" "$io: the deep file after applying the diff"
	expect_status 0 "$L" compare --io $io --mtime-seconds "$T/m2" "$A"
	echo "ok: --io $io"
done

# ---- an error on the long path keeps its reason ---------------------------------------
if is_root; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
	chmod 0755 "$T"
	mkdir -p "$T/out"
	chown 65534:65534 "$T/out"
	at_bottom "$R" chmod 0000 deep-file || fail "cannot chmod the deep file"
	MAX_ERR=1200
	for io in $IOS; do
		for cmd in scan diff; do
			expect_error as_nobody "$L" $cmd --io $io "$R" -o "$T/out/x"
			line=$(cat "$T/stderr")
			echo "$cmd --io $io, unreadable deep file: ${#line} bytes: ${line:0:120}...${line: -80}"
			case $line in
			*": Permission denied") ;;
			*) fail "$cmd --io $io: the error does not end with ': Permission denied': $line" ;;
			esac
			[ ${#line} -le $MAX_ERR ] || fail "$cmd --io $io: the error line is ${#line} bytes (at most $MAX_ERR)"
			grep -qF "deep-file" "$T/stderr" || fail "$cmd --io $io: the error does not name the file: $line"
		done
	done
else
	partial_skip root "not root: the unreadable-file check needs another user"
fi
echo ok
