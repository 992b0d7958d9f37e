#!/bin/bash
# apply: layers written by other tools (GNU tar, bsdtar, umoci), plain, gzip
# and zstd, from a file or stdin, extract correctly over a prepared ROOT:
# contents, modes, owners, symlinks, hard links, fifos, xattrs, mtimes,
# explicit and opaque whiteouts, type changes; a "." entry sets ROOT's mode.
. "$(dirname "$0")/lib.sh"

MKTAR=$LS_BUILD/tools/mktar
[ -x "$MKTAR" ] || fail "$MKTAR is not built"
T=$LS_TMP
SRC=$T/src
E=1500000000   # mtime of everything in the source tree

# ---- the layer's source tree, whiteouts made by hand as empty files
mkdir -p "$SRC/dir1/nested" "$SRC/opq/keepdir" "$SRC/olddir" "$SRC/becomedir" "$SRC/empty"
printf 'one\n' >"$SRC/file1"
printf 'nested\n' >"$SRC/dir1/nested/file"
printf 'hard\n' >"$SRC/hard1"
ln "$SRC/hard1" "$SRC/dir1/hard2"
ln -s file1 "$SRC/link"
ln -s /nonexistent/target "$SRC/dangling"
mkfifo "$SRC/fifo"
printf 'new in opq\n' >"$SRC/opq/new"
printf 'k\n' >"$SRC/opq/keepdir/k"
printf 'now a file\n' >"$SRC/replaced"
printf 'in becomedir\n' >"$SRC/becomedir/child"
printf 'suid\n' >"$SRC/suid"
: >"$SRC/.wh.gone"
: >"$SRC/.wh.absent"
: >"$SRC/olddir/.wh.x"
: >"$SRC/opq/.wh..wh..opq"
chmod 0640 "$SRC/file1"
chmod 0750 "$SRC/dir1"
chmod 0700 "$SRC/dir1/nested"
chmod 0600 "$SRC/fifo"
chmod 4755 "$SRC/suid"
chmod 0751 "$SRC"
have_xattr=0
if ! command -v python3 >/dev/null; then
	partial_skip python3 "python3 not installed: xattrs (GNU tar, bsdtar, gzip, zstd, crafted layers)"
elif python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.test", b"v1\0bin")' "$SRC/file1" 2>"$T/xattr.err"; then
	have_xattr=1
else
	partial_skip xattr "no user.* xattrs on the scratch file system ($(tail -n 1 "$T/xattr.err" | sed "s/: '.*//")): xattrs (GNU tar, bsdtar, gzip, zstd, crafted layers)"
fi
if is_root; then
	chown 1234:5678 "$SRC/file1"
	chown 42:43 "$SRC/dir1"
	chown -h 7:8 "$SRC/link"
else
	partial_skip root "not root: owners of file1, dir1 and the symlink after apply"
fi
find "$SRC" -depth -exec touch -h -d "@$E" {} +

# ---- ROOT before the layer
prepare_root() {
	rm -rf "$1"
	mkdir -p "$1/gone/deep" "$1/olddir" "$1/opq/olddir" "$1/opq/keepdir" "$1/replaced/sub" "$1/untouched"
	printf 'old contents that are longer\n' >"$1/file1"
	printf 'x\n' >"$1/olddir/x"
	printf 'y\n' >"$1/olddir/y"
	printf 'g\n' >"$1/gone/deep/g"
	printf 'o\n' >"$1/opq/old1"
	printf 'o\n' >"$1/opq/olddir/f"
	printf 'old k\n' >"$1/opq/keepdir/oldk"
	printf 'r\n' >"$1/replaced/sub/r"
	printf 'was a file\n' >"$1/becomedir"
	printf 'u\n' >"$1/untouched/u"
	ln -s file1 "$1/dir1" # a symlink where the layer has a directory
	find "$1" -depth -exec touch -h -d @1000000000 {} +
}

# Everything about a tree but atimes and directory sizes, one line per path.
listing() {
	(cd "$1" && find . \( -type f -printf '%p %y %m %U %G %Ts %n %s\n' \) -o \
		-printf '%p %y %m %U %G %Ts %l\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
}

# Checks the result of applying the source layer over prepare_root.
check_result() {
	local R=$1 what=$2
	[ "$(cat "$R/file1")" = one ] || fail "$what: file1 content"
	assert_eq 640 "$(stat -c %a "$R/file1")" "$what: file1 mode"
	assert_eq "$E" "$(stat -c %Y "$R/file1")" "$what: file1 mtime"
	assert_eq 750 "$(stat -c %a "$R/dir1")" "$what: dir1 mode (symlink replaced)"
	[ -d "$R/dir1" ] && [ ! -L "$R/dir1" ] || fail "$what: dir1 is not a directory"
	assert_eq 700 "$(stat -c %a "$R/dir1/nested")" "$what: nested mode"
	assert_eq "$E" "$(stat -c %Y "$R/dir1")" "$what: dir1 mtime"
	assert_eq "$E" "$(stat -c %Y "$R/dir1/nested")" "$what: nested mtime"
	assert_eq "$E" "$(stat -c %Y "$R/opq")" "$what: opq mtime"
	assert_eq "$E" "$(stat -c %Y "$R/olddir")" "$what: olddir mtime"
	[ "$(cat "$R/dir1/nested/file")" = nested ] || fail "$what: nested file"
	assert_eq "$(stat -c %i "$R/hard1")" "$(stat -c %i "$R/dir1/hard2")" "$what: hard links share an inode"
	assert_eq 2 "$(stat -c %h "$R/hard1")" "$what: link count"
	assert_eq file1 "$(readlink "$R/link")" "$what: symlink"
	assert_eq /nonexistent/target "$(readlink "$R/dangling")" "$what: dangling symlink"
	assert_eq "$E" "$(stat -c %Y "$R/link")" "$what: symlink mtime"
	[ -p "$R/fifo" ] || fail "$what: fifo"
	assert_eq 600 "$(stat -c %a "$R/fifo")" "$what: fifo mode"
	assert_eq 4755 "$(stat -c %a "$R/suid")" "$what: suid mode"
	[ ! -e "$R/gone" ] || fail "$what: whiteout did not remove gone/"
	[ ! -e "$R/absent" ] || fail "$what: whiteout of an absent path made something"
	[ ! -e "$R/olddir/x" ] && [ "$(cat "$R/olddir/y")" = y ] || fail "$what: olddir/.wh.x"
	[ ! -e "$R/opq/old1" ] && [ ! -e "$R/opq/olddir" ] && [ ! -e "$R/opq/keepdir/oldk" ] ||
		fail "$what: opaque whiteout kept old entries"
	[ "$(cat "$R/opq/new")" = "new in opq" ] && [ "$(cat "$R/opq/keepdir/k")" = k ] ||
		fail "$what: opaque whiteout removed the layer's own entries"
	[ -f "$R/replaced" ] && [ "$(cat "$R/replaced")" = "now a file" ] || fail "$what: dir -> file"
	[ "$(cat "$R/becomedir/child")" = "in becomedir" ] || fail "$what: file -> dir"
	[ -d "$R/empty" ] || fail "$what: empty dir"
	[ "$(cat "$R/untouched/u")" = u ] || fail "$what: untouched"
	assert_eq 1000000000 "$(stat -c %Y "$R/untouched")" "$what: untouched dir mtime"
	assert_eq 751 "$(stat -c %a "$R")" "$what: ROOT mode from the ./ entry"
	if [ -n "$(find "$R" -name '.wh.*' -print -quit)" ]; then fail "$what: whiteout files left"; fi
	if is_root; then
		assert_eq 1234:5678 "$(stat -c %u:%g "$R/file1")" "$what: file1 owner"
		assert_eq 42:43 "$(stat -c %u:%g "$R/dir1")" "$what: dir1 owner"
		assert_eq 7:8 "$(stat -c %u:%g "$R/link")" "$what: symlink owner"
	fi
	if [ "$have_xattr" = 1 ] && [ "${3:-xattrs}" = xattrs ]; then
		assert_eq "b'v1\\x00bin'" \
			"$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.test"))' "$R/file1")" \
			"$what: xattr"
	fi
}

# apply_check LAYER WHAT [xattrs|noxattrs]
apply_check() {
	prepare_root "$T/root"
	expect_status 0 "$LAYERSNAP" apply "$1" "$T/root"
	check_result "$T/root" "$2" "${3:-xattrs}"
}

# ---- GNU tar
tar -C "$SRC" --sort=name --format=posix --xattrs -cf "$T/gnu.tar" . || fail "GNU tar"
apply_check "$T/gnu.tar" "GNU tar"
REF=$(listing "$T/root")
tar -C "$SRC" --sort=name --format=gnu -cf "$T/gnu-old.tar" . || fail "GNU tar (gnu format)"
apply_check "$T/gnu-old.tar" "GNU tar, gnu format" noxattrs

# ---- bsdtar (readdir order: the opaque whiteout may come after opq/new)
bsdtar -C "$SRC" -cf "$T/bsd.tar" . || fail bsdtar
apply_check "$T/bsd.tar" bsdtar
assert_eq "$REF" "$(listing "$T/root")" "bsdtar and GNU tar results differ"
bsdtar -C "$SRC" --format ustar -cf "$T/bsd-ustar.tar" . || fail "bsdtar ustar"
apply_check "$T/bsd-ustar.tar" "bsdtar ustar" noxattrs

# ---- compressed, and from stdin
gzip -c "$T/gnu.tar" >"$T/gnu.tar.gz"
zstd -q -c "$T/gnu.tar" >"$T/gnu.tar.zst"
apply_check "$T/gnu.tar.gz" "gzip"
assert_eq "$REF" "$(listing "$T/root")" "gzip result"
apply_check "$T/gnu.tar.zst" "zstd"
assert_eq "$REF" "$(listing "$T/root")" "zstd result"
prepare_root "$T/root"
expect_status 0 "$LAYERSNAP" apply - "$T/root" <"$T/gnu.tar.zst"
check_result "$T/root" "zstd from stdin"
prepare_root "$T/root"
expect_status 0 "$LAYERSNAP" apply - "$T/root" < <(cat "$T/gnu.tar.gz")
check_result "$T/root" "gzip from a pipe"
assert_eq "$REF" "$(listing "$T/root")" "pipe result"

# ---- onto an empty directory: the same tree as the source (whiteouts aside)
rm -rf "$T/fresh" "$T/srcnowh"
mkdir "$T/fresh"
expect_status 0 "$LAYERSNAP" apply "$T/bsd.tar" "$T/fresh"
cp -a "$SRC" "$T/srcnowh"
find "$T/srcnowh" -name '.wh.*' -delete
touch -d "@$E" "$T/srcnowh" "$T/srcnowh/olddir" "$T/srcnowh/opq"
assert_eq "$(listing "$T/srcnowh")" "$(listing "$T/fresh")" "fresh extraction differs from the source"

# ---- a "." entry sets ROOT's own metadata; "./" prefixes are stripped
rm -rf "$T/dot"
mkdir "$T/dot"
printf '%s\n' 'dir . mode=0705 mtime=1234567890' 'file ./x hi mode=0600' 'dir ./d/ mode=0711' |
	"$MKTAR" >"$T/dot.tar"
expect_status 0 "$LAYERSNAP" apply "$T/dot.tar" "$T/dot"
assert_eq 705 "$(stat -c %a "$T/dot")" "ROOT mode from '.'"
assert_eq 1234567890 "$(stat -c %Y "$T/dot")" "ROOT mtime from '.'"
assert_eq 600 "$(stat -c %a "$T/dot/x")" "./x"
assert_eq 711 "$(stat -c %a "$T/dot/d")" "./d/"

# ---- crafted: missing parents made, xattrs, devices, hard link to an earlier entry
rm -rf "$T/craft"
mkdir "$T/craft"
LONG=$(printf 'n%.0s' $(seq 120))
{
	echo 'file deep/er/f data mode=0604'
	# a long name makes a pax header, which carries the nanoseconds
	echo "file deep/$LONG ns mtime=1000000000.5"
	echo 'hardlink deep/h deep/er/f'
	echo 'fifo p mode=0640'
	echo 'char cdev 1 3 mode=0666'
	echo 'file x\sy\nz spaced'
	[ "$have_xattr" = 1 ] && echo 'dir xd xattr.user.a=1 xattr.user.b=\x00\xff'
} | "$MKTAR" -Z >"$T/craft.tar.zst"
expect_status 0 "$LAYERSNAP" apply "$T/craft.tar.zst" "$T/craft"
assert_eq data "$(cat "$T/craft/deep/er/f")" "file under missing parents"
assert_eq 1000000000.000000005 "$(stat -c %.9Y "$T/craft/deep/$LONG")" "nanosecond mtime"
assert_eq "$(stat -c %i "$T/craft/deep/er/f")" "$(stat -c %i "$T/craft/deep/h")" "hard link"
assert_eq "fifo 640" "$(stat -c '%F %a' "$T/craft/p")" "fifo"
assert_eq spaced "$(cat "$T/craft/x y"$'\n'z)" "name with a space and a newline"
if is_root; then
	assert_eq "1,3" "$(stat -c '%Hr,%Lr' "$T/craft/cdev")" "char device"
else
	partial_skip root "not root: a char device made by apply (its absence and the warning checked instead)"
	[ ! -e "$T/craft/cdev" ] || fail "device node made without root"
	assert_eq 1 "$(grep -c . "$T/stderr")" "one warning when not root"
fi
if [ "$have_xattr" = 1 ]; then
	assert_eq "b'1' b'\\x00\\xff'" "$(python3 -c 'import os,sys
print(os.getxattr(sys.argv[1], "user.a"), os.getxattr(sys.argv[1], "user.b"))' "$T/craft/xd")" "dir xattrs"
fi

# ---- not root: owners and devices skipped with one warning (as root, run as
# nobody; otherwise as ourselves)
mkdir -p "$T/nobody"
unpriv=() unpriv_uid=$(id -u)
if ! is_root; then
	:
elif ! command -v setpriv >/dev/null; then
	unpriv=(none)
	partial_skip setpriv "setpriv not installed: apply as a user that is not root"
elif chmod 0711 "$T" && chown 65534:65534 "$T/nobody" &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$LAYERSNAP" -a -w "$T/nobody" 2>/dev/null; then
	unpriv=(setpriv --reuid=65534 --regid=65534 --clear-groups) unpriv_uid=65534
else
	unpriv=(none)
	partial_skip setuid "nobody cannot run layersnap or write its scratch directory: apply as a user that is not root"
fi
if [ "${unpriv[*]}" != none ]; then
	printf '%s\n' 'dir d uid=1 gid=2' 'file d/f x uid=3' 'char d/c 1 3' 'block d/b 8 0' 'dir ro mode=0555' \
		'file ro/inside y mode=0444' | "$MKTAR" >"$T/nobody.tar"
	chmod 0644 "$T/nobody.tar"
	expect_status 0 ${unpriv[@]+"${unpriv[@]}"} "$LAYERSNAP" apply "$T/nobody.tar" "$T/nobody"
	assert_eq 1 "$(grep -c . "$T/stderr")" "not root: one warning"
	[ -f "$T/nobody/d/f" ] && [ ! -e "$T/nobody/d/c" ] && [ ! -e "$T/nobody/d/b" ] ||
		fail "not root: wrong result"
	assert_eq 555 "$(stat -c %a "$T/nobody/ro")" "not root: read-only dir mode"
	assert_eq y "$(cat "$T/nobody/ro/inside")" "not root: file in a read-only dir"
	assert_eq "$unpriv_uid" "$(stat -c %u "$T/nobody/d/f")" "not root: owner"
fi

# ---- umoci: two layers, the second with modifications and deletions
if ! command -v umoci >/dev/null; then
	partial_skip umoci "umoci not installed: applying umoci's layers"
else
	U=$T/umoci
	rootless=
	is_root || rootless=--rootless
	mkdir -p "$U"
	umoci init --layout "$U/img" >/dev/null 2>&1 || fail "umoci init"
	umoci new --image "$U/img:t0" >/dev/null 2>&1 || fail "umoci new"
	umoci unpack $rootless --image "$U/img:t0" "$U/b1" >/dev/null 2>&1 || fail "umoci unpack t0"
	RF=$U/b1/rootfs
	mkdir -p "$RF/etc" "$RF/d/sub" "$RF/gone/deeper"
	printf 'hi\n' >"$RF/etc/f"
	printf 'keep\n' >"$RF/etc/keep"
	printf 'bye\n' >"$RF/d/sub/g"
	printf 'x\n' >"$RF/gone/deeper/x"
	printf 'rm me\n' >"$RF/d/rmfile"
	ln -s ../etc/f "$RF/d/l"
	ln "$RF/etc/f" "$RF/etc/hard"
	mkfifo "$RF/fifo"
	chmod 4755 "$RF/etc/f"
	chmod 0700 "$RF/d/sub"
	if is_root; then
		chown 12:34 "$RF/d"
	else
		partial_skip root "not root (umoci --rootless): an owner from umoci's layers"
	fi
	# whole seconds: umoci (Go's archive/tar) rounds mtimes to the nearest one
	find "$RF" -depth -exec touch -h -d @1600000000 {} +
	umoci repack --image "$U/img:t1" "$U/b1" >/dev/null 2>&1 || fail "umoci repack t1"
	umoci unpack $rootless --image "$U/img:t1" "$U/b2" >/dev/null 2>&1 || fail "umoci unpack t1"
	RF=$U/b2/rootfs
	printf 'modified\n' >>"$RF/etc/f"
	rm -r "$RF/d/sub" "$RF/gone" "$RF/d/rmfile" "$RF/fifo"
	printf 'new\n' >"$RF/new"
	mkdir -p "$RF/nd/x"
	ln -s nd "$RF/ndlink"
	chmod 0711 "$RF/etc"
	find "$RF" -depth -newermt @1600000001 -exec touch -h -d @1700000000 {} +
	umoci repack --image "$U/img:t2" "$U/b2" >/dev/null 2>&1 || fail "umoci repack t2"
	layers=$(python3 - "$U/img" t2 <<'EOF'
import json, os, sys
img, tag = sys.argv[1], sys.argv[2]
with open(os.path.join(img, "index.json")) as f:
    index = json.load(f)
desc = [d for d in index["manifests"]
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
with open(os.path.join(img, "blobs", *desc["digest"].split(":"))) as f:
    manifest = json.load(f)
for layer in manifest["layers"]:
    print(os.path.join(img, "blobs", *layer["digest"].split(":")))
EOF
	) || fail "reading the umoci manifest"
	assert_eq 2 "$(printf '%s\n' "$layers" | grep -c .)" "umoci image has two layers"
	mkdir "$U/applied"
	for l in $layers; do
		expect_status 0 "$LAYERSNAP" apply "$l" "$U/applied"
	done
	diff -r --no-dereference "$RF" "$U/applied" >&2 || fail "umoci: trees differ"
	# ROOT's own mtime aside (umoci's second layer has no "." entry)
	assert_eq "$(listing "$RF" | grep -v '^\. ')" "$(listing "$U/applied" | grep -v '^\. ')" \
		"umoci: metadata differs"
	[ ! -e "$U/applied/gone" ] && [ ! -e "$U/applied/d/sub" ] || fail "umoci: whiteouts"
	assert_eq "$(stat -c %i "$U/applied/etc/f")" "$(stat -c %i "$U/applied/etc/hard")" "umoci: hard link"
fi

# ---- apply -v: each entry on stderr as diff -v prints a change (A, D, and
# "D DIR/" for an opaque whiteout), stdout clean; a layersnap diff layer with
# a deleted file, a name to quote and a directory emptied (--opaque)
V=$T/verbose
rm -rf "$V"
mkdir -p "$V/src/d" "$V/src/e"
printf 'k\n' >"$V/src/d/keep"
printf 'o\n' >"$V/src/d/old"
printf 'x\n' >"$V/src/e/x"
printf 'top\n' >"$V/src/top"
expect_status 0 "$LAYERSNAP" scan "$V/src" -o "$V/base.lsm"
cp -a "$V/src" "$V/lower"
rm "$V/src/d/old" "$V/src/e/x"
printf 'z\n' >"$V/src/e/z"
printf 't\n' >"$V/src/d/t"$'\t'"ab"
printf 'more\n' >>"$V/src/top"
expect_status 0 "$LAYERSNAP" diff --opaque "$V/src" --base "$V/base.lsm" -o "$V/layer.tar"
"$LAYERSNAP" apply -v "$V/layer.tar" "$V/lower" >"$V/stdout" 2>"$V/stderr" ||
	{ cat "$V/stderr" >&2; fail "apply -v failed"; }
assert_eq "$(printf '%s\n' 'A	d' 'D	d/old' 'A	"d/t\tab"' 'A	e' 'D	e/' 'A	e/z' 'A	top' \
	'layersnap: applied 7 entries, 2 whiteouts, 0 skipped')" "$(cat "$V/stderr")" "apply -v: stderr"
[ ! -s "$V/stdout" ] || fail "apply -v wrote to stdout: $(head -c 200 "$V/stdout")"
[ ! -e "$V/lower/d/old" ] && [ ! -e "$V/lower/e/x" ] && [ "$(cat "$V/lower/e/z")" = z ] ||
	fail "apply -v: wrong result"
# without -v: nothing on stderr; from stdin the same list
rm -rf "$V/lower2"
cp -a "$V/lower" "$V/lower2"
expect_status 0 "$LAYERSNAP" apply "$V/layer.tar" "$V/lower2"
[ ! -s "$T/stderr" ] || fail "apply without -v: stderr: $(cat "$T/stderr")"
rm -rf "$V/lower3"
cp -a "$V/src" "$V/lower3"
"$LAYERSNAP" apply -v - "$V/lower3" <"$V/layer.tar" >"$V/stdout" 2>"$V/stderr3" ||
	fail "apply -v from stdin failed"
assert_eq "$(cat "$V/stderr")" "$(cat "$V/stderr3")" "apply -v from stdin"
[ ! -s "$V/stdout" ] || fail "apply -v - wrote to stdout"

echo "apply_interop: ok"
