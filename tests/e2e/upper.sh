#!/bin/bash
# diff --upper on real overlay mounts: random lower trees and random build
# steps (adds, rewrites with the same or other bytes, deletions of files and
# of whole directories, directories moved as mv does (copy and delete: an
# opaque directory), replaced by files and back, chmod-only copy-ups, hard
# links and symlinks), each step in a fresh overlay mount over the earlier
# steps' upper directories: the --upper layer is byte-identical to a walk
# diff's, and its manifest is the walk's.  Then the refusals.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
is_root || skip root "not root: overlay mounts"
command -v python3 >/dev/null || skip python3 "python3 is not installed: the random steps"
SEQS=${LS_UPPER_SEQS:-200}
STEPS=${LS_UPPER_STEPS:-2}

M=$T/mnt
mkdir -p "$M"
mount -t tmpfs none "$M" 2>/dev/null || skip mount "cannot mount a tmpfs"
mounted=("$M")
cleanup() {
	for ((k = ${#mounted[@]} - 1; k >= 0; k--)); do umount "${mounted[$k]}" 2>/dev/null; done
	return 0
}
trap cleanup EXIT
probe=$M/probe
mkdir -p "$probe"/{l,u,w,m}
mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" ||
	fail "overlayfs does not mount here"
umount "$probe/m"

cat >"$T/step.py" <<'PY'
import os, random, sys, shutil
cmd, root, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
def write(p, text):
    with open(p, "w") as f:
        f.write(text)
def entries():
    out = []
    for dp, dn, fn in os.walk(root):
        for x in dn + fn:
            out.append(os.path.relpath(os.path.join(dp, x), root))
    return sorted(out)
if cmd == "tree":
    def fill(d, depth):
        for i in range(rnd.randint(2, 5)):
            if depth < 3 and rnd.random() < 0.45:
                os.mkdir(os.path.join(d, "d%d" % i))
                fill(os.path.join(d, "d%d" % i), depth + 1)
            else:
                write(os.path.join(d, "f%d" % i), "x%d" % i * rnd.randint(0, 600))
        if rnd.random() < 0.3:
            os.symlink("f0", os.path.join(d, "sl"))
    fill(root, 0)
    files = [e for e in entries() if os.path.isfile(os.path.join(root, e)) and not os.path.islink(os.path.join(root, e))]
    for f in rnd.sample(files, min(2, len(files))):
        os.link(os.path.join(root, f), os.path.join(root, f) + ".hl")
    sys.exit(0)
for n in range(rnd.randint(1, 6)):
    es = entries()
    if not es:
        break
    e = rnd.choice(es)
    p = os.path.join(root, e)
    r = rnd.random()
    isdir = os.path.isdir(p) and not os.path.islink(p)
    try:
        if r < 0.15:
            write(os.path.join(p if isdir else os.path.dirname(p), "new%d" % n), "new %d" % seed)
        elif r < 0.3 and not isdir and not os.path.islink(p):
            with open(p) as f:
                old = f.read()
            write(p, old if rnd.random() < 0.5 else old + "more")   # same bytes, or others
        elif r < 0.45:
            shutil.rmtree(p) if isdir else os.unlink(p)
        elif r < 0.55 and isdir:
            dst = p + ".moved"
            if not os.path.exists(dst):
                os.system("mv '%s' '%s'" % (p, dst))                # EXDEV: copy and delete
        elif r < 0.65:
            if isdir:
                shutil.rmtree(p)
                write(p, "now a file")
            else:
                os.unlink(p)
                os.mkdir(p)
                write(os.path.join(p, "inner"), "i")
        elif r < 0.75:
            os.chmod(p, 0o700 if isdir else 0o600)                  # a chmod-only copy-up
        elif r < 0.85 and not isdir and not os.path.islink(p):
            os.link(p, p + ".l%d" % n)
        elif r < 0.92:
            d = p if isdir else os.path.dirname(p)
            if not os.path.lexists(os.path.join(d, "sym%d" % n)):
                os.symlink("../f1", os.path.join(d, "sym%d" % n))
        elif isdir:
            shutil.rmtree(p)                                        # deleted and made again
            os.mkdir(p)
            write(os.path.join(p, "again"), "a")
    except OSError:
        pass
PY

for seq in $(seq 1 "$SEQS"); do
	S=$M/s$seq
	mkdir -p "$S/lower"
	python3 "$T/step.py" tree "$S/lower" "$seq" || fail "seq $seq: tree failed"
	"$L" scan "$S/lower" -o "$S/man0" || fail "seq $seq: scan failed"
	lowers=$S/lower
	for step in $(seq 1 "$STEPS"); do
		U=$S/u$step W=$S/w$step R=$S/m$step
		mkdir -p "$U" "$W" "$R"
		mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$U,workdir=$W" "$R" ||
			fail "seq $seq step $step: overlay mount failed"
		mounted+=("$R")
		python3 "$T/step.py" change "$R" $((seq * 100 + step)) || fail "seq $seq step $step: change failed"
		prev=$S/man$((step - 1))
		"$L" diff -q "$R" --base "$prev" -o "$S/walk$step.tar" --manifest-out "$S/walkm$step" ||
			fail "seq $seq step $step: walk diff failed"
		"$L" diff -q --upper "$U" "$R" --base "$prev" -o "$S/up$step.tar" --manifest-out "$S/man$step" 2>"$T/err" ||
			{ cat "$T/err" >&2; fail "seq $seq step $step: diff --upper failed"; }
		cmp -s "$S/walk$step.tar" "$S/up$step.tar" || {
			diff <(tar -tvf "$S/walk$step.tar") <(tar -tvf "$S/up$step.tar") >&2
			fail "seq $seq step $step: the --upper layer differs from the walk diff's"
		}
		"$L" compare "$S/walkm$step" "$S/man$step" >"$T/cmp" ||
			{ cat "$T/cmp" >&2; fail "seq $seq step $step: the --upper manifest differs from the walk's"; }
		lowers=$U:$lowers
	done
done
echo "upper: $SEQS sequences of $STEPS steps give the walk diff's layers"

# ---- userxattr and metacopy mounts -------------------------------------------------
# userxattr keeps the markers under user.overlay.*; metacopy copies up only
# the metadata of a chmod'ed file: the layer still carries its bytes, read
# through ROOT.  A kernel refusing either mount fails the test.
for variant in userxattr metacopy; do
	S=$M/$variant
	mkdir -p "$S"/{lower/d/sub,u,w,m}
	for i in 1 2 3; do echo "lower $i" >"$S/lower/d/f$i"; done
	echo deep >"$S/lower/d/sub/x"
	"$L" scan "$S/lower" -o "$S/base" || fail "$variant: scan failed"
	case $variant in
	userxattr) opts=userxattr ;;
	metacopy) opts=metacopy=on,redirect_dir=on ;;
	esac
	mount -t overlay overlay -o "lowerdir=$S/lower,upperdir=$S/u,workdir=$S/w,$opts" "$S/m" ||
		fail "overlayfs refuses -o $opts here"
	mounted+=("$S/m")
	chmod 600 "$S/m/d/f1"                       # metadata only with metacopy
	echo more >>"$S/m/d/f2"
	rm "$S/m/d/f3"                              # a whiteout
	rm -r "$S/m/d/sub" && mkdir "$S/m/d/sub" && echo new >"$S/m/d/sub/y"   # opaque
	if [ $variant = userxattr ]; then
		getfattr -n user.overlay.opaque "$S/u/d/sub" >/dev/null 2>&1 || fail "userxattr: no user.overlay.opaque"
	else
		getfattr -n trusted.overlay.metacopy "$S/u/d/f1" >/dev/null 2>&1 || fail "metacopy: f1 was copied up whole"
	fi
	"$L" diff -q "$S/m" --base "$S/base" -o "$S/walk.tar" --manifest-out "$S/walk.m" || fail "$variant: walk diff failed"
	"$L" diff -q --upper "$S/u" "$S/m" --base "$S/base" -o "$S/up.tar" --manifest-out "$S/up.m" 2>"$T/err" ||
		{ cat "$T/err" >&2; fail "$variant: diff --upper failed"; }
	cmp -s "$S/walk.tar" "$S/up.tar" || fail "$variant: the --upper layer differs from the walk diff's"
	"$L" compare "$S/walk.m" "$S/up.m" >/dev/null || fail "$variant: the manifests differ"
	tar -xOf "$S/up.tar" d/f1 | grep -qx 'lower 1' || fail "$variant: the layer lacks f1's bytes"
done

# ---- a second mount of the same lower tree --------------------------------------
# Overlay mounts number devices apart; the stat cache leaves st_dev out, so a
# full diff through another mount reads only what changed.
S=$M/dev
mkdir -p "$S"/{lower,u1,w1,m1,u2,w2,m2}
for i in $(seq 1 50); do echo "file $i" >"$S/lower/f$i"; done
mount -t overlay overlay -o "lowerdir=$S/lower,upperdir=$S/u1,workdir=$S/w1" "$S/m1" || fail "mount 1 failed"
mounted+=("$S/m1")
mount -t overlay overlay -o "lowerdir=$S/lower,upperdir=$S/u2,workdir=$S/w2" "$S/m2" || fail "mount 2 failed"
mounted+=("$S/m2")
sleep 0.05  # past the racy window of the base scan
"$L" scan "$S/m1" -o "$S/base" || fail "scan through mount 1 failed"
sleep 0.05
echo changed >"$S/m2/f7"
if command -v strace >/dev/null; then
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e trace=openat -o "$T/strace" "$L" diff -q --io sync --upper "$S/u2" "$S/m2" --base "$S/base" \
		-o "$T/dev.tar" || fail "diff --upper through mount 2 failed"
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e trace=openat -o "$T/strace2" "$L" diff -q --io sync "$S/m2" --base "$S/base" -o "$T/dev2.tar" ||
		fail "walk diff through mount 2 failed"
	cmp -s "$T/dev.tar" "$T/dev2.tar" || fail "two mounts: --upper and walk layers differ"
	opened=$(grep -c 'openat([0-9]*, "f[0-9]*", O_RDONLY' "$T/strace2")
	# f7, read for the layer (twice when just written)
	[ "$opened" -le 2 ] && grep -q '"f7", O_RDONLY' "$T/strace2" ||
		fail "the walk diff through a second mount read $opened files: $(grep -o '"f[0-9]*", O_RDONLY' "$T/strace2" | tr '\n' ' ')"
else
	partial_skip strace "strace is not installed: counting the files read through a second mount"
fi

# ---- refusals ---------------------------------------------------------------
S=$M/r
mkdir -p "$S"/{lower/d/e,u,w,m,other}
echo x >"$S/lower/d/e/x"
"$L" scan "$S/lower" -o "$S/base" || fail "scan failed"
mount -t overlay overlay -o "lowerdir=$S/lower,upperdir=$S/u,workdir=$S/w" "$S/m" || fail "mount failed"
mounted+=("$S/m")
expect_error "$L" diff --upper "$S/other" "$S/m" --base "$S/base" -o "$T/x.tar"
grep -q 'not an overlay mount with this upper directory' "$T/stderr" || fail "an unrelated --upper: $(cat "$T/stderr")"
expect_error "$L" diff --upper "$S/u" "$S/lower" --base "$S/base" -o "$T/x.tar"
expect_error "$L" diff --upper "$S/u" "$S/m" -o "$T/x.tar"
# A character device with other numbers than 0/0 is an ordinary entry; a
# deleted directory with children is one whiteout.
mknod "$S/m/null" c 1 3 || fail "mknod in the merged view failed"
rm -r "$S/m/d"
"$L" diff -q --upper "$S/u" "$S/m" --base "$S/base" -o "$T/dev.tar" || fail "diff --upper with a device failed"
assert_eq $'.wh.d\nnull' "$(tar -tf "$T/dev.tar" | LC_ALL=C sort)" "a device and a deleted directory"
"$L" diff -q "$S/m" --base "$S/base" -o "$T/dev-walk.tar" || fail "walk diff with a device failed"
cmp -s "$T/dev.tar" "$T/dev-walk.tar" || fail "a device and a deleted directory: layers differ"
# An opaque marker on a file, in a copied upper directory.
mkdir -p "$S/copy"
echo f >"$S/copy/f"
setfattr -n trusted.overlay.opaque -v y "$S/copy/f" || fail "setfattr trusted.overlay.opaque on a file failed"
expect_error "$L" diff --upper "$S/copy" --upper-unchecked "$S/m" --base "$S/base" -o "$T/x.tar"
grep -q 'opaque marker on an entry that is not a directory' "$T/stderr" || fail "opaque file: $(cat "$T/stderr")"
# A redirect (a lower directory renamed under redirect_dir=on).
mkdir -p "$S"/{u2,w2,m2}
if mount -t overlay overlay -o "lowerdir=$S/lower,upperdir=$S/u2,workdir=$S/w2,redirect_dir=on" "$S/m2" 2>/dev/null; then
	mounted+=("$S/m2")
	mv "$S/m2/d/e" "$S/m2/d/renamed"
	expect_error "$L" diff --upper "$S/u2" "$S/m2" --base "$S/base" -o "$T/x.tar"
	grep -q 'renamed here (overlay redirect_dir).*diff without --upper' "$T/stderr" || fail "redirect: $(cat "$T/stderr")"
	"$L" diff -q "$S/m2" --base "$S/base" -o "$T/x.tar" || fail "the walk diff of a redirected tree failed"
else
	fail "overlayfs refuses redirect_dir=on here"
fi
[ ! -e "$T/x.tar" ] || [ -s "$T/x.tar" ] || fail "a refused --upper left an empty layer"
echo "upper: ok"
