#!/bin/bash
# apply: crafted layers that try to write outside ROOT are refused (exit 2,
# one line naming the entry); entries before the bad one stay applied,
# nothing after it is, and nothing outside ROOT changes.  Symlinks as the last
# component are replaced or removed, never followed.  Corrupt layers fail
# cleanly.
. "$(dirname "$0")/lib.sh"

MKTAR=$LS_BUILD/tools/mktar
[ -x "$MKTAR" ] || fail "$MKTAR is not built"
T=$LS_TMP
R=$T/root
SENT=$T/sentinel

# The sentinel: a directory next to ROOT that must never change.
mkdir -p "$SENT/sub"
echo secret >"$SENT/secret"
echo inner >"$SENT/sub/f"
ln -s secret "$SENT/link"
touch -d @1500000000 "$SENT/sub" "$SENT"
snap_outside() {
	(cd "$SENT" && find . -printf '%p %y %m %U %G %s %T@ %i %n %l\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
	# and nothing new next to ROOT
	find "$T" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -Ev '^(root|layer\.tar|stdout|stderr)$' | sort
}
SNAP0=$(snap_outside)
check_outside() { assert_eq "$SNAP0" "$(snap_outside)" "outside ROOT changed ($1)"; }

# A fresh ROOT: symlinks pointing at the sentinel (relative, absolute, to a
# file) and an old directory.
new_root() {
	rm -rf "$R"
	mkdir -p "$R/a"
	ln -s ../sentinel "$R/out"
	ln -s "$SENT" "$R/abs"
	ln -s "$SENT/secret" "$R/victim"
	echo old >"$R/a/old"
}

# mklayer SPEC-LINE...: the layer is "file before 1", the lines, "file after 2"
mklayer() {
	{ echo 'file before 1'; printf '%s\n' "$@"; echo 'file after 2'; } | "$MKTAR" >"$T/layer.tar" ||
		fail "mktar failed on: $*"
}

# refuse NAME SPEC-LINE...: applying must fail naming NAME
refuse() {
	local name=$1
	shift
	new_root
	mklayer "$@"
	expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
	grep -qF -- "$name" "$T/stderr" || fail "message does not name '$name': $(cat "$T/stderr")"
	[ "$(cat "$R/before" 2>/dev/null)" = 1 ] || fail "$name: the entry before was not applied"
	[ ! -e "$R/after" ] || fail "$name: an entry after the refused one was applied"
	[ "$(cat "$R/a/old")" = old ] || fail "$name: ROOT's old content changed"
	check_outside "$name"
}

# ".." and absolute paths
refuse '../evil: path escapes the root' 'file ../evil x'
refuse '../sentinel/secret' 'file ../sentinel/secret pwned'
refuse 'a/../../sentinel/new' 'file a/../../sentinel/new x'
refuse 'a/..' 'dir a/..'
refuse 'a/b/../c' 'file a/b/../c x'
refuse "$SENT/new" "file $SENT/new x"
refuse '/abs_dir' 'dir /abs_dir'
refuse "$SENT/secret" "symlink $SENT/secret x"

# through a symlink already in ROOT
refuse 'out/evil: path goes through a symlink' 'file out/evil x'
refuse 'abs/sub/f' 'file abs/sub/f pwned'
refuse 'abs/newdir' 'dir abs/newdir'
refuse 'out/sub/deep/x' 'file out/sub/deep/x y'
refuse 'victim/x' 'file victim/x y'
# through a symlink made earlier in the same layer
refuse 'l/evil' "symlink l $SENT" 'file l/evil x'
refuse 'd/l/sub/f' 'dir d' 'symlink d/l ../../sentinel' 'file d/l/sub/f pwned'
refuse 'ldir/x' 'dir realdir' 'symlink ldir realdir' 'file ldir/x y'
[ -L "$R/ldir" ] && [ -d "$R/realdir" ] || fail "symlink made before the refused entry is missing"
[ ! -e "$R/realdir/x" ] || fail "file written through a symlink of the layer"

# hard links out of ROOT or through symlinks
refuse 'hl_dotdot: hard link target ../sentinel/secret escapes the root' 'hardlink hl_dotdot ../sentinel/secret'
refuse 'hl_abs' "hardlink hl_abs $SENT/secret"
refuse 'hl_mid' 'hardlink hl_mid a/../../sentinel/secret'
refuse 'hl_sym: hard link target out/secret goes through a symlink' 'hardlink hl_sym out/secret'
refuse 'hl_sym2' 'symlink s ../sentinel' 'hardlink hl_sym2 s/sub/f'
refuse 'a/hl_up' 'hardlink a/hl_up ../a/old'
refuse '../hl_escape' 'hardlink ../hl_escape a/old'
refuse 'hl_root' 'hardlink hl_root .'

# whiteouts that escape, go through symlinks or name nothing
refuse 'a/.wh..' 'file a/.wh..'
refuse 'a/.wh...' 'file a/.wh...'
refuse '../.wh.sentinel' 'file ../.wh.sentinel'
refuse "$SENT/.wh.secret" "file $SENT/.wh.secret"
refuse 'out/.wh.secret' 'file out/.wh.secret'
refuse 'abs/sub/.wh.f' 'file abs/sub/.wh.f'
refuse 'out/.wh..wh..opq' 'file out/.wh..wh..opq'
refuse 'a/.wh.' 'file a/.wh.'
refuse '.wh.' 'file .wh.'
refuse '.wh.x/y' 'file .wh.x/y z'

# duplicate entries (same normalised path)
refuse 'dup: duplicate entry' 'file dup one' 'file dup two'
[ "$(cat "$R/dup")" = one ] || fail "first of a duplicate not applied"
refuse './d2/' 'dir d2' 'dir ./d2/'
refuse './a/.wh.nothing' 'file a/.wh.nothing' 'file ./a/.wh.nothing'
refuse 'a//x' 'file a/x 1' 'file a//x 2'

# the root itself can only be a directory
refuse '.: the root can only be a directory' 'file . x'
refuse '.: the root can only be a directory' 'hardlink . before'

# ---- allowed: a symlink as the last component is replaced, never followed
new_root
mklayer 'file victim new' 'dir out mode=0700' 'file out/inside x' 'file .wh.abs' \
	'symlink s2 ../sentinel/secret' 'hardlink h2 s2' 'file a/.wh.nothing' 'file nowhere/.wh.x' \
	'file a/.wh..wh..opq'
expect_status 0 "$LAYERSNAP" apply "$T/layer.tar" "$R"
[ -f "$R/victim" ] && [ ! -L "$R/victim" ] && [ "$(cat "$R/victim")" = new ] ||
	fail "symlink last component not replaced by a file"
[ -d "$R/out" ] && [ ! -L "$R/out" ] && [ "$(cat "$R/out/inside")" = x ] ||
	fail "symlink last component not replaced by a directory"
[ ! -e "$R/abs" ] && [ ! -L "$R/abs" ] || fail "whiteout of a symlink not removed"
[ -L "$R/h2" ] && [ "$(stat -c %i "$R/h2")" = "$(stat -c %i "$R/s2")" ] ||
	fail "hard link to a symlink is not the symlink itself"
[ ! -e "$R/a/old" ] || fail "opaque whiteout did not empty a/"
[ ! -e "$R/nowhere" ] || fail "whiteout in an absent directory made it"
[ "$(cat "$R/after")" = 2 ] || fail "entries after the whiteouts not applied"
check_outside "replace symlinks"

# an existing directory (with a symlink out inside) replaced by a file
new_root
ln -s "$SENT" "$R/a/esc"
mklayer 'file a content'
expect_status 0 "$LAYERSNAP" apply "$T/layer.tar" "$R"
[ "$(cat "$R/a")" = content ] || fail "directory not replaced by a file"
check_outside "directory replaced by a file"

# ---- corrupt and truncated layers: exit 2, one line, no crash
new_root
printf '%s\n' 'dir big' 'file big/f1 0123456789abcdef0123456789' 'file big/f2 xyz' | "$MKTAR" >"$T/good.tar"
printf '%s\n' 'dir big' 'file big/f1 0123456789abcdef0123456789' 'file big/f2 xyz' | "$MKTAR" -z >"$T/good.tgz"
size=$(stat -c %s "$T/good.tar")
for cut in 100 600 1030 $((size - 1100)); do
	head -c "$cut" "$T/good.tar" >"$T/layer.tar"
	new_root
	expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
done
head -c $(($(stat -c %s "$T/good.tgz") - 10)) "$T/good.tgz" >"$T/layer.tar"
expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
head -c 5000 /dev/urandom >"$T/layer.tar"
expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
# a header with a broken checksum
cp "$T/good.tar" "$T/layer.tar"
printf 'XXXX' | dd of="$T/layer.tar" bs=1 seek=520 conv=notrunc status=none
expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
: >"$T/layer.tar"
expect_error "$LAYERSNAP" apply "$T/layer.tar" "$R"
expect_error "$LAYERSNAP" apply "$T/missing.tar" "$R"
expect_error "$LAYERSNAP" apply "$T/good.tar" "$T/no-such-root"
rm -f "$T/good.tar" "$T/good.tgz"
check_outside "corrupt layers"

echo "apply_escape: ok"
