#!/bin/bash
# Kaniko's ignore list (--default-excludes, on by default when ROOT is /):
# /proc, /sys, /dev, /run and every mount point below ROOT are recorded as
# directories but not descended, and their base entries carry over, so that
# a mount coming or going between two steps whites nothing out and changes
# no setting of the manifest.  `scan /` succeeds and records nothing below
# /proc.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP

# jpaths MANIFEST: "PATH MOUNTPOINT?" per entry
jpaths() {
	"$L" dump --format json "$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["entries"]:
    print(e["path"], "mountpoint" if e.get("mountpoint") else "-")'
}

# ---- scan / -------------------------------------------------------------------
# The big trees are left out (-x) to keep this quick; /proc, /sys, /dev and
# /run are what would fail or never end.
big=()
for d in usr var work root old_root tmp home opt farm mnt srv lib lib32 lib64 boot; do
	[ -e "/$d" ] && big+=(-x "$d")
done
"$L" scan -v "${big[@]}" / -o "$T/root.m" 2>"$T/root.err" || { cat "$T/root.err" >&2; fail "scan / failed"; }
jpaths "$T/root.m" >"$T/root.paths"
for d in proc sys dev; do
	grep -qx "$d mountpoint" "$T/root.paths" || fail "scan /: $d is not recorded as a directory not descended"
	! grep -q "^$d/" "$T/root.paths" || fail "scan /: entries below /$d recorded"
	grep -qx "layersnap: /$d: not descended (a default exclude)" "$T/root.err" ||
		fail "scan / -v does not say why /$d was not descended: $(cat "$T/root.err")"
done
! grep -q '^run/' "$T/root.paths" || fail "scan /: entries below /run recorded"
"$L" scan --no-default-excludes -x proc -x sys -x dev -x run "${big[@]}" / -o "$T/root2.m" ||
	fail "scan --no-default-excludes / failed"
! grep -q 'mountpoint' <(jpaths "$T/root2.m" | grep -E '^(proc|sys|dev|run) ') ||
	fail "--no-default-excludes still records the default excludes"

# ---- a root file system of an image ------------------------------------------------
R=$T/rootfs
mkdir -p "$R"/dev "$R"/proc/1 "$R"/run/lock "$R"/etc "$R"/cache "$R"/app
echo console >"$R/dev/console-file"
echo status >"$R/proc/1/status"
echo nameserver 10.0.0.1 >"$R/etc/resolv.conf"
echo a >"$R/app/a"
echo cached >"$R/cache/old"
touch -d @1700000000 "$R"/cache/old "$R"/cache "$R"/dev/console-file "$R"/dev
# The image's manifest, as a builder records it: everything.
"$L" scan --no-default-excludes "$R" -o "$T/base.m" || fail "scan of the image failed"
grep -qx 'dev/console-file -' <(jpaths "$T/base.m") || fail "the base lacks dev/console-file"

# --default-excludes on another ROOT: dev, proc and run are not descended,
# their base entries are kept, nothing is whited out.
echo new >"$R/app/b"
"$L" diff -v --default-excludes --base "$T/base.m" "$R" -o "$T/l1.tar" --manifest-out "$T/m1" 2>"$T/l1.err" ||
	{ cat "$T/l1.err" >&2; fail "diff --default-excludes failed"; }
assert_eq $'app\napp/b' "$(tar -tf "$T/l1.tar" | sed 's|/$||')" "the layer with default excludes"
grep -q "^layersnap: $R/proc: not descended (a default exclude)$" "$T/l1.err" ||
	fail "-v does not list proc: $(cat "$T/l1.err")"
grep -qx 'dev/console-file -' <(jpaths "$T/m1") || fail "dev's base entries were not carried over"
grep -qx 'proc/1/status -' <(jpaths "$T/m1") || fail "proc's base entries were not carried over"
# Not a setting: the next diff takes the same base without --default-excludes.
"$L" diff -q --base "$T/m1" "$R" -o "$T/l1b.tar" || fail "a manifest made with default excludes is refused"

if ! is_root; then
	partial_skip root "not root: mount points coming and going between steps"
	echo "excludes: ok (mounts skipped)"
	exit 0
fi
cleanup_mounts() {
	umount "$R/etc/resolv.conf" 2>/dev/null
	umount "$R/cache" 2>/dev/null
	umount "$R/newmnt" 2>/dev/null
	return 0
}
trap cleanup_mounts EXIT
mkdir -p "$R/newmnt"
if ! mount -t tmpfs none "$R/cache" 2>/dev/null; then
	partial_skip mount "cannot mount a tmpfs: mount points coming and going between steps"
	echo "excludes: ok (mounts skipped)"
	exit 0
fi
echo secret >"$R/cache/secret"
echo mounted-resolver >"$T/resolv.bind"
mount --bind "$T/resolv.bind" "$R/etc/resolv.conf" || fail "bind mount of a file failed"
mount -t tmpfs none "$R/newmnt" || fail "second tmpfs mount failed"
echo x >"$R/newmnt/x"
"$L" diff -v --default-excludes --base "$T/m1" "$R" -o "$T/l2.tar" --manifest-out "$T/m2" 2>"$T/l2.err" ||
	{ cat "$T/l2.err" >&2; fail "diff with mounts failed"; }
# cache (mounted over) keeps its base subtree, resolv.conf (a file mounted
# over) its base entry; the new mount point is a directory, without contents.
assert_eq 'newmnt' "$(tar -tf "$T/l2.tar" | sed 's|/$||')" "the layer with mounts"
for p in cache/old etc/resolv.conf; do
	grep -qx "$p -" <(jpaths "$T/m2") || fail "$p: the base entry was not carried over"
done
! grep -q '^cache/secret' <(jpaths "$T/m2") || fail "the mounted cache was walked"
grep -qx 'newmnt mountpoint' <(jpaths "$T/m2") || fail "the new mount point is not recorded as not descended"
for p in cache etc/resolv.conf newmnt; do
	grep -q "^layersnap: $R/$p: not descended (a mount point in /proc/self/mountinfo)$" "$T/l2.err" ||
		fail "-v does not list $p: $(cat "$T/l2.err")"
done
# Unmounted again: nothing to white out, the real contents come back.
cleanup_mounts
"$L" diff --default-excludes --base "$T/m2" "$R" -o "$T/l3.tar" 2>/dev/null || fail "diff after the unmounts failed"
! tar -tf "$T/l3.tar" | grep -q '\.wh\.' || fail "unmounting whited something out: $(tar -tf "$T/l3.tar")"
echo "excludes: ok"
