#!/bin/bash
# diff --only against a full-walk diff: on random trees and random change
# sets confined to random listed paths (files, subtrees, paths new since the
# base, hard links reaching out of them), the two layers are byte-identical,
# the two manifests equal and the two change lists the same.  Then the rules
# one by one: a deletion inside a listed subtree is whited out, nothing
# outside is, --only-from and -z, and the refusals.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
command -v python3 >/dev/null || skip python3 "python3 is not installed: the random trees"
SEEDS=${LS_ONLY_SEEDS:-24}

# gen.py tree ROOT SEED / change ROOT SEED LIST: a random tree; random
# changes under random paths, the listed paths written to LIST one a line.
cat >"$T/gen.py" <<'PY'
import os, random, sys
cmd, root, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed * 7919 + (cmd == "change"))
def names(n): return ["d%d" % i for i in range(n)] + ["f%d" % i for i in range(n)]
def write(p, text):
    with open(p, "w") as f:
        f.write(text)
def tree():
    os.makedirs(root)
    def fill(d, depth):
        for i in range(rnd.randint(1, 5)):
            if depth < 3 and rnd.random() < 0.4:
                sub = os.path.join(d, "d%d" % i)
                os.mkdir(sub)
                fill(sub, depth + 1)
            else:
                write(os.path.join(d, "f%d" % i), "x" * rnd.randint(0, 3000))
        if rnd.random() < 0.2:
            os.symlink("f0", os.path.join(d, "ln"))
    fill(root, 0)
    files = [os.path.join(dp, f) for dp, dn, fn in os.walk(root) for f in fn if not os.path.islink(os.path.join(dp, f))]
    for f in rnd.sample(files, min(3, len(files))):
        os.link(f, f + ".hl")
def change(listfile):
    entries = sorted(os.path.relpath(os.path.join(dp, x), root) for dp, dn, fn in os.walk(root) for x in dn + fn)
    listed = rnd.sample(entries, min(len(entries), rnd.randint(1, 3)))
    listed.append("new%d/deep" % rnd.randint(0, 9))      # new since the base, parents too
    outside = [e for e in entries if not any(e == l or e.startswith(l + "/") or l.startswith(e + "/") for l in listed)]
    for l in listed:
        p = os.path.join(root, l)
        if not os.path.lexists(p):
            os.makedirs(p)
            write(os.path.join(p, "added"), "new")
            continue
        r = rnd.random()
        if os.path.isdir(p) and not os.path.islink(p):
            kids = os.listdir(p)
            if r < 0.25:
                os.system("rm -rf '%s'" % p)                # gone: whited out
            elif r < 0.5 and kids:
                k = os.path.join(p, rnd.choice(kids))
                os.system("rm -rf '%s'" % k)
                write(os.path.join(p, "added2"), "y" * 10)
            elif r < 0.75:
                os.makedirs(os.path.join(p, "nd/nd2"), exist_ok=True)
                write(os.path.join(p, "nd/nd2/z"), "z")
                files = [o for o in outside if os.path.isfile(os.path.join(root, o)) and not os.path.islink(os.path.join(root, o))]
                if files:                                  # a hard link reaching out
                    os.link(os.path.join(root, rnd.choice(files)), os.path.join(p, "nd/link"))
            else:
                os.chmod(p, 0o700)
        else:
            if r < 0.3:
                os.unlink(p)
            elif r < 0.6 and not os.path.islink(p):
                write(p, "changed %d" % seed)
            elif r < 0.8:
                os.unlink(p)
                os.mkdir(p)                                # a file becomes a directory
                write(os.path.join(p, "inner"), "i")
            elif not os.path.islink(p):
                os.chmod(p, 0o600)
    with open(listfile, "w") as f:
        f.write("\n".join(listed) + "\n")
if cmd == "tree": tree()
else: change(sys.argv[4])
PY

for seed in $(seq 1 "$SEEDS"); do
	R=$T/t$seed
	python3 "$T/gen.py" tree "$R" "$seed" || fail "seed $seed: gen tree failed"
	"$L" scan "$R" -o "$T/base$seed" || fail "seed $seed: scan failed"
	python3 "$T/gen.py" change "$R" "$seed" "$T/list$seed" || fail "seed $seed: gen change failed"
	mapfile -t listed <"$T/list$seed"
	args=()
	for p in "${listed[@]}"; do args+=(--only "$p"); done
	"$L" diff -v -q "$R" --base "$T/base$seed" -o "$T/full$seed.tar" --manifest-out "$T/fullm$seed" \
		2>"$T/full$seed.v" || fail "seed $seed: full diff failed"
	"$L" diff -v -q "${args[@]}" "$R" --base "$T/base$seed" -o "$T/only$seed.tar" --manifest-out "$T/onlym$seed" \
		2>"$T/only$seed.v" || { cat "$T/only$seed.v" >&2; fail "seed $seed: diff --only failed"; }
	cmp -s "$T/full$seed.tar" "$T/only$seed.tar" || {
		diff <(tar -tvf "$T/full$seed.tar") <(tar -tvf "$T/only$seed.tar") >&2
		fail "seed $seed: the --only layer differs from the full diff's (listed: ${listed[*]})"
	}
	"$L" compare "$T/fullm$seed" "$T/onlym$seed" >"$T/cmp$seed" ||
		{ cat "$T/cmp$seed" >&2; fail "seed $seed: the --only manifest differs from the full diff's"; }
	assert_eq "$(cat "$T/full$seed.v")" "$(cat "$T/only$seed.v")" "seed $seed: the change lists"
	# Without --manifest-out, the same list.
	"$L" diff -v -q "${args[@]}" "$R" --base "$T/base$seed" -o /dev/null 2>"$T/only$seed.v2" ||
		fail "seed $seed: diff --only without --manifest-out failed"
	assert_eq "$(cat "$T/full$seed.v")" "$(cat "$T/only$seed.v2")" "seed $seed: the change list without --manifest-out"
done
echo "only: $SEEDS random change sets give the full diff's layer"

# ---- the rules one by one -------------------------------------------------------
R=$T/r
mkdir -p "$R/app/src" "$R/lib" "$R/etc"
echo a >"$R/app/src/a"
echo b >"$R/app/src/b"
echo l >"$R/lib/l"
echo c >"$R/etc/c"
"$L" scan "$R" -o "$T/b.m" || fail "scan failed"
rm "$R/app/src/b" "$R/lib/l"   # lib/l is gone too, but not listed
echo new >"$R/app/src/n"
"$L" diff -q --only app/src "$R" --base "$T/b.m" -o "$T/o.tar" --manifest-out "$T/o.m" || fail "diff --only app/src failed"
assert_eq $'app/\napp/src/\napp/src/.wh.b\napp/src/n' "$(tar -tf "$T/o.tar")" "the layer of --only app/src"
grep -q '"path": "lib/l"' <("$L" dump --format json "$T/o.m") || fail "an unlisted path was not carried over"
# --only-from, also NUL-separated, gives the same layer.
printf 'app/src\n' >"$T/list"
"$L" diff -q --only-from "$T/list" "$R" --base "$T/b.m" -o "$T/o2.tar" || fail "--only-from failed"
cmp -s "$T/o.tar" "$T/o2.tar" || fail "--only-from and --only differ"
printf 'app/src\0' >"$T/list0"
"$L" diff -q -z --only-from "$T/list0" "$R" --base "$T/b.m" -o "$T/o3.tar" || fail "--only-from -z failed"
cmp -s "$T/o.tar" "$T/o3.tar" || fail "--only-from -z and --only differ"
# A path that is ROOT asks for the full diff.
"$L" diff -q --only . "$R" --base "$T/b.m" -o "$T/o4.tar" || fail "--only . failed"
"$L" diff -q "$R" --base "$T/b.m" -o "$T/o5.tar" || fail "full diff failed"
cmp -s "$T/o4.tar" "$T/o5.tar" || fail "--only . is not the full diff"
# A listed hard link whose partner's xattrs changed: the partner is read
# again, xattrs too, as the walk reads it.
X=$T/x
mkdir -p "$X/bin" "$X/app"
echo tool >"$X/bin/tool"
ln "$X/bin/tool" "$X/app/tool-link"
if setfattr -n user.before -v 1 "$X/bin/tool" 2>/dev/null; then
	"$L" scan --xattrs all "$X" -o "$T/x.m" || fail "scan --xattrs all failed"
	setfattr -x user.before "$X/bin/tool"
	setfattr -n user.after -v 2 "$X/bin/tool"
	"$L" diff -q --xattrs all --only app/tool-link "$X" --base "$T/x.m" -o "$T/x-only.tar" --manifest-out "$T/x-only.m" ||
		fail "diff --only of a hard link failed"
	"$L" diff -q --xattrs all "$X" --base "$T/x.m" -o "$T/x-full.tar" --manifest-out "$T/x-full.m" || fail "full diff failed"
	cmp -s "$T/x-only.tar" "$T/x-full.tar" || fail "a hard link's new xattrs: the --only layer differs"
	"$L" compare "$T/x-full.m" "$T/x-only.m" || fail "a hard link's new xattrs: the manifests differ"
	"$L" dump --format json "$T/x-only.m" | grep '"bin/tool"' | grep -q 'user.after' ||
		fail "the partner kept its old xattrs: $("$L" dump --format json "$T/x-only.m" | grep '"bin/tool"')"
else
	partial_skip xattr "no user.* xattrs here: a hard link's xattrs under --only"
fi

# A .wh. name among the carried entries is refused as the walk refuses it
# (the base's check records that it has one), and nothing is written; a
# base without one carries everything.
W2=$T/wh
mkdir -p "$W2/keep" "$W2/app"
: >"$W2/keep/.wh.old"
echo a >"$W2/app/a"
"$L" scan "$W2" -o "$T/wh.m" || fail "scan of a tree with a .wh. name failed"
echo b >"$W2/app/a"
expect_error "$L" diff --only app "$W2" --base "$T/wh.m" -o "$T/wh.tar"
grep -qF 'keep/.wh.old' "$T/stderr" || fail "--only: the carried .wh. name is not named: $(cat "$T/stderr")"
expect_error "$L" diff "$W2" --base "$T/wh.m" -o "$T/wh.tar"
grep -qF 'keep/.wh.old' "$T/stderr" || fail "walk: the .wh. name is not named: $(cat "$T/stderr")"
[ ! -e "$T/wh.tar" ] || fail "a refused diff left a layer"
rm "$W2/keep/.wh.old"
"$L" scan "$W2" -o "$T/wh.m" || fail "scan failed"
echo c >"$W2/app/a"
"$L" diff -q --only app "$W2" --base "$T/wh.m" -o "$T/wh.tar" || fail "--only over a clean base failed"

# Refusals: no base, '..', an empty list.
expect_error "$L" diff --only app "$R" -o "$T/x.tar"
expect_error "$L" diff --only ../x "$R" --base "$T/b.m" -o "$T/x.tar"
: >"$T/empty"
expect_error "$L" diff --only-from "$T/empty" "$R" --base "$T/b.m" -o "$T/x.tar"
[ ! -e "$T/x.tar" ] || fail "a refused --only left a layer"
echo "only: ok"
