#!/bin/bash
# scan and dump end to end: walk order with tricky names, symlink loops and
# special files, --exclude, --one-file-system, identical results whatever
# --io says (also with io_uring refused by seccomp), mtree specs that
# mtree-netbsd accepts, the three modes' hashes, and the stat cache of
# scan --base.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
NO_URING=$LS_BUILD/tools/no-uring
EVICT=$LS_BUILD/tools/evict
[ -x "$NO_URING" ] && [ -x "$EVICT" ] || fail "$NO_URING or $EVICT is not built"
command -v xxh128sum >/dev/null && command -v xxhsum >/dev/null ||
	fail "xxh128sum and xxhsum are needed (Debian package xxhash; see make deps)"

# paths MANIFEST: the JSON dump's paths in order, one per line, JSON-escaped
paths() {
	"$L" dump "$1" --format json >"$T/paths.json" || fail "dump $1 failed"
	sed -n 's/^  {"path": \("\([^"\\]\|\\.\)*"\), .*/\1/p' "$T/paths.json"
}
# json MANIFEST: the JSON dump without the scan start time
json() { "$L" dump "$1" --format json | sed 's/"scan_start": [0-9.-]*, //'; }
# jdump MANIFEST: the name of its JSON dump, made once per scan (see scan)
jdump() {
	[ -e "$1.json" ] || "$L" dump "$1" --format json >"$1.json" || fail "dump $1 failed"
	printf '%s' "$1.json"
}
# entry MANIFEST JSON-PATH: that entry's line of the JSON dump
entry() { grep -F "  {\"path\": $2, " "$(jdump "$1")"; }
# field MANIFEST JSON-PATH KEY: one value of an entry ("" when absent)
field() { entry "$1" "$2" | sed -n "s/.*\"$3\": \(\"[^\"]*\"\|\[[^]]*\]\|[^,}]*\).*/\1/p"; }
# scan ARGS...: layersnap scan, which must succeed; drops the -o target's cached dump
scan() {
	local a prev='' out=''
	for a in "$@"; do
		[ "$prev" = -o ] && out=$a
		prev=$a
	done
	[ -z "$out" ] || rm -f "$out.json"
	"$L" scan "$@" || fail "scan $* failed"
}

# ---- trees -------------------------------------------------------------------

# names/: the walk-order tree.  "a" has children; its siblings "a\tb", "a\nb",
# "a b", "a-b", "a.b" and "a0" sort before "a/" bytewise but after a's
# subtree in walk order.
N=$T/tree/names
mkdir -p "$N/a/b"
touch "$N/a/b/c" "$N/a/x" "$N/Z" "$N"/a$'\t'b "$N"/a$'\n'b "$N/a b" "$N/a-b" "$N/a.b" "$N/a0" \
	"$N/sp ace" "$N"/new$'\n'line "$N"/'back\slash' "$N"/tab$'\t'x "$N"/$'\xff\xfe' \
	"$N"/$'\xc3\xa9' "$N"/$'\xe6\x97\xa5\xe6\x9c\xac' || fail "cannot create the names"
echo hello >"$N/a/x"

# odd/: names that need vis(3) escapes in an mtree spec.
O=$T/tree/odd
mkdir -p "$O/d ir"
for n in 'h#sh' '#start' 'eq=ual' 'st*ar' 'q?m' 'br[ack]' 'br]' $'cr\rx' 'dq"x' "sq'x" '$dol' '~til' \
	'{br}' '%pct' $'\001ctl' $'del\x7f' 'tr ' ' lead' 'a\nb' '\040oct' 'bs\' $'vt\vx' $'\xc3' \
	'd ir/f#1' 'x\\' '.hidden' '-dash'; do
	touch "$O/$n" || fail "cannot create '$n'"
done
ln -s 'sp ace#x=y*' "$O/l1"
ln -s $'nl\nx\ttab\\\xff' "$O/l2"
ln -s $'\xc3\xa9/\xe6\x97\xa5*?[' "$O/l3"

# special/: symlink loops, a fifo, a socket, device nodes.
S=$T/tree/special
mkdir -p "$S/dir"
ln -s lb "$S/la"
ln -s la "$S/lb"
ln -s . "$S/dir/self"
ln -s ../dir "$S/dir/up"
ln -s /nonexistent/target "$S/dangling"
mkfifo "$S/fifo"
have_sock=false
if command -v python3 >/dev/null &&
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$S/sock" 2>/dev/null; then
	have_sock=true
elif command -v nc >/dev/null; then
	(timeout 1 nc -lU "$S/sock" >/dev/null 2>&1 &)
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -S "$S/sock" ] && break; sleep 0.1; done
	[ -S "$S/sock" ] && have_sock=true
fi
$have_sock || partial_skip python3 "no python3 or nc to make a unix socket: socket checks"
have_dev=false
if is_root && mknod "$S/null" c 1 3 2>/dev/null && mknod "$S/loop" b 7 0 2>/dev/null; then
	have_dev=true
else
	if is_root; then partial_skip mknod "cannot mknod: device checks"; else partial_skip root "not root, cannot mknod: device checks"; fi
	rm -f "$S/null" "$S/loop"
fi

# content/: files for the hashing paths: more than a ring's depth in one
# directory, more files than hash slots, files larger than the read chunks,
# hard links, an empty file.
C=$T/tree/content
mkdir -p "$C/many"
for i in $(seq 1 300); do echo "file $i" >"$C/many/f$i"; done
head -c 1100000 /dev/urandom >"$C/big"
head -c 262144 /dev/urandom >"$C/chunk"
: >"$C/empty"
echo linked >"$C/h1"
ln "$C/h1" "$C/h2"
chmod 4755 "$C/chunk"
chmod 1777 "$C/many"

# ---- walk order ------------------------------------------------------------------

EXPECTED_ORDER=$(cat <<'EOF'
"Z"
"a"
"a/b"
"a/b/c"
"a/x"
"a\tb"
"a\nb"
"a b"
"a-b"
"a.b"
"a0"
"back\\slash"
"new\nline"
"sp ace"
"tab\tx"
"é"
"日本"
"\udcff\udcfe"
EOF
)
for io in auto sync; do
	for j in 1 4; do
		scan --io "$io" -j "$j" "$N" -o "$T/names.m"
		assert_eq "$EXPECTED_ORDER" "$(paths "$T/names.m")" "walk order (--io $io -j $j)"
	done
done

# JSON paths round-trip: a byte that is not UTF-8 (0xE9) and the character é
# (C3 A9) stay distinct, and surrogateescape gives every name's bytes back.
if command -v python3 >/dev/null; then
	E=$T/tree/e9
	mkdir -p "$E"
	: >"$E/$(printf 'x\351')"
	: >"$E/$(printf 'x\303\251')"
	: >"$E/$(printf 'bad\355\240\200surrogate')"
	scan "$E" -o "$T/e9.m"
	"$L" dump "$T/e9.m" --format json >"$T/e9.json" || fail "dump --format json failed"
	python3 - "$T/e9.json" "$E" <<'PY' || fail "JSON paths do not round-trip"
import json, os, sys
doc = json.load(open(sys.argv[1]))
got = sorted(e["path"].encode("utf-8", "surrogateescape") for e in doc["entries"])
want = sorted(os.listdir(os.fsencode(sys.argv[2])))
sys.exit(0 if got == want and len(set(got)) == 3 else f"got {got}, want {want}")
PY
else
	partial_skip python3 "python3 missing: JSON paths are not decoded"
fi

# ---- symlink loops and special files -----------------------------------------------------

timeout 60 "$L" scan "$S" -o "$T/special.m" || fail "scan of symlink loops failed or hung"
assert_eq '"link"' "$(field "$T/special.m" '"la"' type)" "la type"
assert_eq '"lb"' "$(field "$T/special.m" '"la"' link)" "la target"
assert_eq '"la"' "$(field "$T/special.m" '"lb"' link)" "lb target"
assert_eq '"."' "$(field "$T/special.m" '"dir/self"' link)" "dir/self target"
assert_eq '"../dir"' "$(field "$T/special.m" '"dir/up"' link)" "dir/up target"
assert_eq '"/nonexistent/target"' "$(field "$T/special.m" '"dangling"' link)" "dangling target"
assert_eq 1 "$(field "$T/special.m" '"dir/self"' size)" "a symlink's size is its target's length"
assert_eq '"fifo"' "$(field "$T/special.m" '"fifo"' type)" "fifo type"
# nothing below the loops: they were not followed
assert_eq '"dangling" "dir" "dir/self" "dir/up" "fifo" "la" "lb"' \
	"$(paths "$T/special.m" | grep -v -e '^"sock"$' -e '^"null"$' -e '^"loop"$' | tr '\n' ' ' | sed 's/ $//')" \
	"special entries"
if $have_sock; then
	assert_eq '"socket"' "$(field "$T/special.m" '"sock"' type)" "socket type"
fi
if $have_dev; then
	assert_eq '"char"' "$(field "$T/special.m" '"null"' type)" "char type"
	assert_eq '[1, 3]' "$(field "$T/special.m" '"null"' rdev)" "char rdev"
	assert_eq '"block"' "$(field "$T/special.m" '"loop"' type)" "block type"
	assert_eq '[7, 0]' "$(field "$T/special.m" '"loop"' rdev)" "block rdev"
	"$L" dump "$T/special.m" | grep -q '^\./null type=char .* device=native,1,3$' || fail "mtree dump: null's device"
	"$L" dump "$T/special.m" | grep -q '^\./loop type=block .* device=native,7,0$' || fail "mtree dump: loop's device"
fi
for f in la lb dir/self fifo; do
	entry "$T/special.m" "\"$f\"" | grep -q xxh3_128 && fail "$f has a content hash"
done

# ---- --exclude ---------------------------------------------------------------------------

E=$T/ex
mkdir -p "$E/a/y" "$E/c/d" "$E/ab"
touch "$E/a/x" "$E/a/y/z" "$E/b" "$E/c/d/e" "$E/a b" "$E/ab/y" "$E/c/dd"
scan "$E" -x a/y --exclude /b -x 'c//d/' -x ./nonexistent -x /b -o "$T/ex.m"
assert_eq '"a" "a/x" "a b" "ab" "ab/y" "c" "c/dd"' "$(paths "$T/ex.m" | tr '\n' ' ' | sed 's/ $//')" \
	"excluded paths and their subtrees are absent"
grep -q '"excludes": \["a/y", "b", "c/d", "nonexistent"\]' "$T/paths.json" ||
	fail "excludes not recorded normalised: $(head -c 300 "$T/paths.json")"
for bad in ../x a/../b .. /..; do
	expect_error "$L" scan "$E" -x "$bad" -o "$T/exbad.m"
	grep -q "'\.\.'" "$T/stderr" || fail "-x $bad: message does not name '..': $(cat "$T/stderr")"
	[ ! -e "$T/exbad.m" ] && [ ! -e "$T/exbad.m.lock" ] || fail "-x $bad left an output behind"
done
expect_error "$L" scan "$E" -x / -o "$T/exbad.m"
[ -z "$(find "$T" -maxdepth 1 -name '.exbad*')" ] || fail "a temporary file was left behind"

# ---- --one-file-system -------------------------------------------------------------------

F=$T/fs
mkdir -p "$F/mnt" "$F/src" "$F/bind" "$F/plain"
echo s >"$F/src/s"
echo p >"$F/plain/p"
mounted=()
cleanup() {
	local m
	for m in "${mounted[@]+"${mounted[@]}"}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	mounted=()
}
trap cleanup EXIT
if mount -t tmpfs none "$F/mnt" 2>"$T/mount.err"; then
	mounted+=("$F/mnt")
	mkdir "$F/mnt/sub"
	echo inside >"$F/mnt/inside"
	echo deeper >"$F/mnt/sub/deeper"
	if mount --bind "$F/src" "$F/bind" 2>/dev/null; then
		mounted+=("$F/bind")
		have_bind=true
	else
		have_bind=false
		partial_skip mount "bind mount refused: the same-file-system mount point check"
	fi
	for io in auto sync uring; do
		if [ $io = uring ] && ! "$L" scan --io uring "$F/plain" -o "$T/probe.m" 2>"$T/probe.err"; then
			partial_skip uring "io_uring unavailable ($(cat "$T/probe.err")): --one-file-system --io uring"
			continue
		fi
		scan --io $io --one-file-system "$F" -o "$T/ofs.m"
		want='"bind" "mnt" "plain" "plain/p" "src" "src/s"'
		assert_eq "$want" "$(paths "$T/ofs.m" | tr '\n' ' ' | sed 's/ $//')" "--one-file-system --io $io"
		entry "$T/ofs.m" '"mnt"' | grep -q '"mountpoint": true' || fail "mnt not marked as a mount point"
		if $have_bind; then
			entry "$T/ofs.m" '"bind"' | grep -q '"mountpoint": true' || fail "bind mount not marked (--io $io)"
		fi
		grep -q '"one_file_system": true' "$T/paths.json" || fail "one_file_system not recorded"
		"$L" dump "$T/ofs.m" | grep -q '^./mnt type=dir ' || fail "mtree dump lacks the mount point"
	done
	scan "$F" -o "$T/all.m"
	got=$(paths "$T/all.m" | tr '\n' ' ' | sed 's/ $//')
	want='"bind" "mnt" "mnt/inside" "mnt/sub" "mnt/sub/deeper" "plain" "plain/p" "src" "src/s"'
	$have_bind && want='"bind" "bind/s" "mnt" "mnt/inside" "mnt/sub" "mnt/sub/deeper" "plain" "plain/p" "src" "src/s"'
	assert_eq "$want" "$got" "without --one-file-system, mounts are walked"
	entry "$T/all.m" '"mnt"' | grep -q mountpoint && fail "mnt marked as a mount point without the flag"
	cleanup
else
	if is_root; then
		partial_skip mount "cannot mount a tmpfs ($(head -n 1 "$T/mount.err")): --one-file-system checks"
	else
		partial_skip root "not root, cannot mount a tmpfs: --one-file-system checks"
	fi
fi

# ---- --io: identical results -------------------------------------------------------------

R=$T/tree
have_uring=true
if ! "$L" scan --io uring "$N" -o "$T/probe.m" 2>"$T/probe.err"; then
	grep -q 'io_uring' "$T/probe.err" || fail "--io uring failed oddly: $(cat "$T/probe.err")"
	have_uring=false
	partial_skip uring "io_uring unavailable ($(cat "$T/probe.err")): --io uring comparisons"
fi
for mode in full redo time; do
	scan --mode $mode --io sync -j 1 "$R" -o "$T/ref.m"
	json "$T/ref.m" >"$T/ref.json"
	"$L" dump "$T/ref.m" >"$T/ref.mtree" || fail "dump mtree"
	grep -q "\"mode\": \"$mode\"" "$T/ref.json" || fail "mode $mode not recorded"
	runs="auto:1 auto:3 sync:4"
	$have_uring && runs="$runs uring:1 uring:2"
	for run in $runs; do
		io=${run%:*} j=${run#*:}
		scan --mode $mode --io "$io" -j "$j" "$R" -o "$T/io.m"
		assert_eq "$(cat "$T/ref.json")" "$(json "$T/io.m")" "json dump, --mode $mode --io $io -j $j"
		assert_eq "$(cat "$T/ref.mtree")" "$("$L" dump "$T/io.m")" "mtree dump, --mode $mode --io $io -j $j"
	done
done

# io_uring refused by seccomp (as in Docker since 25.0).
if "$NO_URING" true 2>"$T/nu.err"; then
	for mode in full redo time; do
		scan --mode $mode --io sync "$R" -o "$T/ref.m"
		# --io auto reads cached files with plain syscalls and sets up
		# a ring only for a cold one: evict the tree, so that it tries.
		cold=false
		if [ $mode = full ]; then
			"$EVICT" "$R"
			case $? in
			0) cold=true ;;
			3) partial_skip cold "the page cache of $R cannot be dropped: the fallback message of --io auto" ;;
			*) fail "evict $R failed" ;;
			esac
		fi
		"$NO_URING" "$L" scan --mode $mode --io auto -v "$R" -o "$T/nu.m" 2>"$T/nu.err" ||
			fail "--io auto under seccomp failed: $(cat "$T/nu.err")"
		assert_eq "$(json "$T/ref.m")" "$(json "$T/nu.m")" "json dump, --mode $mode --io auto without io_uring"
		assert_eq "$("$L" dump "$T/ref.m")" "$("$L" dump "$T/nu.m")" "mtree dump, --mode $mode without io_uring"
		if $cold; then
			grep -q 'io_uring set-up failed' "$T/nu.err" || fail "-v does not say it fell back: $(cat "$T/nu.err")"
		elif grep -q 'io_uring' "$T/nu.err"; then
			# a warm tree, or a mode that reads no contents: no ring
			fail "--io auto tried io_uring with nothing cold to read ($mode): $(cat "$T/nu.err")"
		fi
		grep -v -e 'io_uring set-up failed' -e '^layersnap: scanned ' "$T/nu.err" | grep -q . &&
			fail "unexpected stderr: $(cat "$T/nu.err")"
		# silent without -v, cold as well
		if $cold; then "$EVICT" "$R" || fail "evict $R failed"; fi
		"$NO_URING" "$L" scan --mode $mode --io auto "$R" -o "$T/nu.m" 2>"$T/nu.err" || fail "--io auto quiet"
		[ ! -s "$T/nu.err" ] || fail "fallback not silent without -v: $(cat "$T/nu.err")"
	done
	cp "$T/nu.m" "$T/nu.keep"
	expect_error "$NO_URING" "$L" scan --io uring "$R" -o "$T/nu.m"
	grep -q 'io_uring' "$T/stderr" || fail "--io uring error does not name io_uring: $(cat "$T/stderr")"
	cmp -s "$T/nu.m" "$T/nu.keep" || fail "a failed --io uring scan replaced the manifest"
	[ ! -e "$T/nu.m.lock" ] || fail "lock left behind"
else
	partial_skip seccomp "cannot install the seccomp filter ($(cat "$T/nu.err")): no-io_uring checks"
fi

# ---- mtree -----------------------------------------------------------------------------

if command -v mtree >/dev/null; then
	for sub in names odd special content; do
		scan "$R/$sub" -o "$T/mt.m"
		"$L" dump "$T/mt.m" --format mtree >"$T/spec" || fail "dump --format mtree"
		[ "$(head -n 1 "$T/spec")" = "#mtree" ] || fail "spec lacks its #mtree line"
		grep -q 'xxh\|XXH' "$T/spec" && fail "mtree spec carries a hash keyword"
		mtree -f "$T/spec" -p "$R/$sub" >"$T/mtree.out" 2>&1
		st=$?
		[ $st -eq 0 ] && [ ! -s "$T/mtree.out" ] ||
			{ cat "$T/spec" >&2; cat "$T/mtree.out" >&2; fail "mtree rejects the spec of $sub (status $st)"; }
	done
	# and mtree does check: a change is reported
	scan "$O" -o "$T/mt.m"
	"$L" dump "$T/mt.m" >"$T/spec"
	chmod 600 "$O/h#sh"
	mtree -f "$T/spec" -p "$O" >"$T/mtree.out" 2>&1 && fail "mtree does not see a mode change"
	chmod 644 "$O/h#sh"
	grep -q 'h#sh' "$T/mtree.out" || fail "mtree's complaint does not name h#sh: $(cat "$T/mtree.out")"
else
	partial_skip mtree "mtree (mtree-netbsd) not installed: mtree checks"
fi

# ---- modes and hashes --------------------------------------------------------------------

xxh() { xxh128sum "$1" 2>/dev/null | cut -d' ' -f1; }
scan --mode full "$C" -o "$T/full.m"
for f in big chunk empty h1 many/f1 many/f300; do
	assert_eq "\"$(xxh "$C/$f")\"" "$(field "$T/full.m" "\"$f\"" xxh3_128)" "xxh3_128 of $f"
done
n_files=$("$L" dump "$T/full.m" --format json | grep -c '"type": "file"')
n_hashed=$("$L" dump "$T/full.m" --format json | grep -c '"xxh3_128": "[0-9a-f]\{32\}"')
assert_eq "$n_files" "$n_hashed" "every regular file is hashed in full mode"
assert_eq 305 "$n_files" "regular files in content/"
assert_eq '"4755"' "$(field "$T/full.m" '"chunk"' mode)" "suid bit recorded"
assert_eq '"1777"' "$(field "$T/full.m" '"many"' mode)" "sticky bit recorded"
assert_eq 2 "$(field "$T/full.m" '"h2"' nlink)" "hard link count"
assert_eq "$(field "$T/full.m" '"h1"' ino)" "$(field "$T/full.m" '"h2"' ino)" "hard links share an inode"
assert_eq 1100000 "$(field "$T/full.m" '"big"' size)" "size"
for mode in redo time; do
	scan --mode $mode "$C" -o "$T/$mode.m"
	"$L" dump "$T/$mode.m" --format json | grep -q xxh3_128 && fail "$mode mode recorded a content hash"
	assert_eq "$n_files" "$("$L" dump "$T/$mode.m" --format json | grep -c '"type": "file"')" "$mode: files"
done

# ---- scan --base: the stat cache -----------------------------------------------------------

# Byte-level helpers for the manifest format (little-endian; header fields at
# fixed offsets: header_len at 12, start_sec at 24; 96-byte records with the
# hash at 64; a trailing XXH3-64 of everything before it).
u32_at() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
put_hex() { printf "$(printf '%s' "$3" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# le_hex HEX: the bytes of a big-endian hex number in little-endian order
le_hex() { printf '%s' "$1" | sed 's/../& /g' | awk '{ for (i = NF; i > 0; i--) printf "%s", $i }'; }
le64() { le_hex "$(printf '%016x' "$1")"; }
fix_checksum() {
	local n sum
	n=$(stat -c %s "$1")
	sum=$(head -c $((n - 8)) "$1" | xxhsum -H3 2>/dev/null | grep -oE '[0-9a-f]{16}' | head -n 1)
	[ ${#sum} -eq 16 ] || fail "xxhsum -H3 gave no hash"
	put_hex "$1" $((n - 8)) "$(le_hex "$sum")"
}
index_of() { paths "$1" | grep -nxF "$2" | cut -d: -f1; }

K=$T/cache
mkdir -p "$K"
echo "same content" >"$K/keep"
echo aaaa >"$K/edit"
touch -d @1500000000 "$K/keep" "$K/edit"
scan --mode full "$K" -o "$T/base.m"
scan --mode redo "$K" -o "$T/base-redo.m"
keep_hash=$(field "$T/base.m" '"keep"' xxh3_128)
edit_hash=$(field "$T/base.m" '"edit"' xxh3_128)
assert_eq "\"$(xxh "$K/keep")\"" "$keep_hash" "keep's hash"

# Unchanged: the same hashes (from the cache or, when racy, re-read).
scan --base "$T/base.m" "$K" -o "$T/new.m"
assert_eq "$keep_hash" "$(field "$T/new.m" '"keep"' xxh3_128)" "unchanged file keeps its hash"
assert_eq "$edit_hash" "$(field "$T/new.m" '"edit"' xxh3_128)" "unchanged file keeps its hash"
expect_status 0 "$L" compare "$T/base.m" "$T/new.m"

# The cache is really used: a base whose scan "started" later than every stamp
# in the tree and whose hash for keep was replaced by a marker hands the marker
# on without reading keep.
cp "$T/base.m" "$T/marked.m"
hl=$(u32_at "$T/marked.m" 12)
i=$(index_of "$T/marked.m" '"keep"')
put_hex "$T/marked.m" $((hl + (i - 1) * 96 + 64)) 0123456789abcdef0123456789abcdef
put_hex "$T/marked.m" 24 "$(le64 $(($(date +%s) + 1000)))"
fix_checksum "$T/marked.m"
scan --base "$T/marked.m" "$K" -o "$T/new.m"
assert_eq '"0123456789abcdef0123456789abcdef"' "$(field "$T/new.m" '"keep"' xxh3_128)" "stat cache hit"
assert_eq "$edit_hash" "$(field "$T/new.m" '"edit"' xxh3_128)" "edit, unchanged"
scan --base "$T/marked.m" --mode redo "$K" -o "$T/new.m"  # redo: no hashes at all
entry "$T/new.m" '"keep"' | grep -q xxh3_128 && fail "redo scan with a full base recorded a hash"

# Same size, mtime restored: ctime moved, so full mode re-hashes and sees it
# (even against the marked base that would otherwise trust its record).
old_ctime=$(stat -c %z "$K/edit")
for _ in $(seq 1 100); do
	echo bbbb >"$K/edit"
	touch -d @1500000000 "$K/edit"
	[ "$(stat -c %z "$K/edit")" != "$old_ctime" ] && break
	sleep 0.01
done
for b in base.m marked.m; do
	scan --base "$T/$b" "$K" -o "$T/new.m"
	assert_eq "\"$(xxh "$K/edit")\"" "$(field "$T/new.m" '"edit"' xxh3_128)" "edited file re-hashed (base $b)"
	[ "$(field "$T/new.m" '"edit"' xxh3_128)" != "$edit_hash" ] || fail "edit kept its old hash"
	assert_eq "$(field "$T/base.m" '"edit"' mtime_ns)" "$(field "$T/new.m" '"edit"' mtime_ns)" "mtime restored"
	assert_eq "$(field "$T/base.m" '"edit"' size)" "$(field "$T/new.m" '"edit"' size)" "same size"
done
# full sees the edit; redo and time do not, by definition
scan "$K" -o "$T/new.m"
expect_status 1 "$L" compare "$T/base.m" "$T/new.m"
[ "$("$L" compare "$T/base.m" "$T/new.m")" = "$(printf 'M\tedit')" ] || fail "compare full: $("$L" compare "$T/base.m" "$T/new.m")"
expect_status 0 "$L" compare --mode redo "$T/base-redo.m" "$K"
expect_status 0 "$L" compare --mode time "$T/base-redo.m" "$K"
expect_status 1 "$L" compare --mode full "$T/base.m" "$K"

echo "scan: all checks passed"
