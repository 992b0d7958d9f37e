#!/bin/bash
# compare OLD NEW|ROOT: one "X<TAB>path" line per change (A added, M
# modified, D deleted, T type change) in manifest order, every path of a
# deleted subtree listed, paths C-quoted as git does; -z raw NUL-ended
# records; --json a list of {"status", "path"}; exit 0 / 1 / 2 as diff(1);
# what each mode sees; --mtime-seconds for a tree restored from a layer;
# --source-date-epoch (and SOURCE_DATE_EPOCH) for one unpacked from a
# reproducible layer; -q (the exit status only); --stat (the counts).
. "$(dirname "$0")/lib.sh"
# compare reads it when --source-date-epoch is not given: only where a test sets it
unset SOURCE_DATE_EPOCH

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
T=$LS_TMP
R=$T/root
L() { "$LAYERSNAP" "$@"; }

mkdir -p "$R/a" "$R/d/e"
printf 'f\n' >"$R/a/f"
printf 'g\n' >"$R/a/g"
printf 'x\n' >"$R/d/e/f"
printf 'y\n' >"$R/d/g"
printf 'same\n' >"$R/s"
ln -s a/f "$R/l"
printf 't\n' >"$R/t"
printf 'u\n' >"$R/u"
find "$R" -mindepth 1 -exec touch -h -d @1600000000.123456789 {} +
L scan "$R" -o "$T/old.m" || fail "scan"
for m in redo time; do L scan --mode $m "$R" -o "$T/old.$m.m" || fail "scan --mode $m"; done

# ---- nothing changed ------------------------------------------------------------------
expect_status 0 L compare "$T/old.m" "$R"
assert_eq "" "$(L compare "$T/old.m" "$R")" "no changes: no output"
assert_eq "[]" "$(L compare --json "$T/old.m" "$R")" "no changes: --json"
[ -z "$(L compare -z "$T/old.m" "$R" | od -An -c)" ] || fail "no changes: -z prints something"
expect_status 0 L compare "$T/old.m" "$T/old.m"
for m in redo time; do expect_status 0 L compare --mode $m "$T/old.$m.m" "$R"; done
# -q: nothing at all, status 0; --stat: zero counts
expect_status 0 L compare -q "$T/old.m" "$R" >"$T/out"
[ ! -s "$T/out" ] && [ ! -s "$T/stderr" ] || fail "compare -q, no changes: printed something"
assert_eq "0 added, 0 modified, 0 deleted, 0 type changed" "$(L compare --stat "$T/old.m" "$R")" "no changes: --stat"
assert_eq '{"added": 0, "modified": 0, "deleted": 0, "type_changed": 0}' \
	"$(L compare --stat --json "$T/old.m" "$R")" "no changes: --stat --json"

# ---- changes -------------------------------------------------------------------------------
(
	cd "$R" || exit 1
	printf 'more\n' >>a/f
	printf 'n\n' >a/new
	chmod 0600 a/g
	rm -r d
	rm t && mkdir t && printf 'i\n' >t/i
	rm u && ln -s t u
	: >$'b\tc' && : >'back\slash' && : >$'new\nline' && : >'q"uote' && : >'sp ace' && : >$'\177del' &&
		: >$'\303\251' && : >$'\377'
	touch -r s "$T/ref" && printf 'SAME\n' >s && touch -r "$T/ref" s # same size, same mtime
) || fail "changing the tree"
L scan "$R" -o "$T/new.m" || fail "scan new"
# a deleted subtree lists every path; T then A for a file that became a
# directory; quoting as git's core.quotePath (octal for non-ASCII and DEL)
want='M	a
M	a/f
M	a/g
A	a/new
A	"b\tc"
A	"back\\slash"
D	d
D	d/e
D	d/e/f
D	d/g
A	"new\nline"
A	"q\"uote"
M	s
A	sp ace
T	t
A	t/i
T	u
A	"\177del"
A	"\303\251"
A	"\377"'
expect_status 1 L compare "$T/old.m" "$R" >/dev/null
assert_eq "$want" "$(L compare "$T/old.m" "$R")" "compare OLD ROOT"
assert_eq "$want" "$(L compare "$T/old.m" "$T/new.m")" "compare OLD NEW"
expect_status 1 L compare "$T/old.m" "$T/new.m" >/dev/null
# -q: nothing at all, status 1; an error still says why (status 2)
for new in "$R" "$T/new.m"; do
	expect_status 1 L compare -q "$T/old.m" "$new" >"$T/out"
	[ ! -s "$T/out" ] && [ ! -s "$T/stderr" ] || fail "compare -q $new: printed something"
	expect_status 1 L compare -q --stat --json "$T/old.m" "$new" >"$T/out"
	[ ! -s "$T/out" ] && [ ! -s "$T/stderr" ] || fail "compare -q --stat --json $new: printed something"
done
expect_error L compare -q "$T/old.m" "$T/nonexistent"
[ ! -s "$T/stdout" ] || fail "compare -q, an error: printed on stdout"
# --stat: the counts of the list above, status 1
assert_eq "10 added, 4 modified, 4 deleted, 2 type changed" "$(L compare --stat "$T/old.m" "$R")" "--stat"
expect_status 1 L compare --stat "$T/old.m" "$T/new.m" >/dev/null
assert_eq '{"added": 10, "modified": 4, "deleted": 4, "type_changed": 2}' \
	"$(L compare --stat --json "$T/old.m" "$T/new.m")" "--stat --json"
expect_status 1 L compare --json --stat "$T/old.m" "$R" >/dev/null
expect_error L compare --stat -z "$T/old.m" "$R"
# what redo and time see: no content, and time no permissions either
assert_eq "$(printf '%s\n' "$want" | grep -v '^M	s$')" "$(L compare --mode redo "$T/old.redo.m" "$R")" "compare --mode redo"
assert_eq "$(printf '%s\n' "$want" | grep -Ev '^M	(s|a/g)$')" "$(L compare --mode time "$T/old.time.m" "$R")" "compare --mode time"
# two manifests in different modes: what both recorded
assert_eq "$(L compare --mode redo "$T/old.redo.m" "$R")" "$(L compare "$T/old.redo.m" "$T/new.m")" "full against redo"
expect_error L compare --mode full "$T/old.redo.m" "$T/new.m"
grep -q redo "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"

# -z: the same records, raw, NUL-ended
$PY - "$T/old.m" "$R" "$LAYERSNAP" <<'EOF' || fail "compare -z / --json"
import json, os, subprocess, sys
old, root, exe = sys.argv[1:]
def run(*args):
    p = subprocess.run([exe, "compare", *args, old, root], stdout=subprocess.PIPE)
    assert p.returncode == 1, p.returncode
    return p.stdout
z = run("-z")
assert z.endswith(b"\0"), z
recs = [r.split(b"\t", 1) for r in z[:-1].split(b"\0")]
want = [(b"M", b"a"), (b"M", b"a/f"), (b"M", b"a/g"), (b"A", b"a/new"), (b"A", b"b\tc"),
        (b"A", b"back\\slash"), (b"D", b"d"), (b"D", b"d/e"), (b"D", b"d/e/f"), (b"D", b"d/g"),
        (b"A", b"new\nline"), (b"A", b'q"uote'), (b"M", b"s"), (b"A", b"sp ace"), (b"T", b"t"),
        (b"A", b"t/i"), (b"T", b"u"), (b"A", b"\177del"), (b"A", b"\303\251"), (b"A", b"\377")]
assert [tuple(r) for r in recs] == want, recs
for st, p in want:
    assert os.path.lexists(os.path.join(os.fsencode(root), p)) == (st != b"D"), p
j = json.loads(run("--json"))
assert isinstance(j, list) and all(sorted(e) == ["path", "status"] for e in j), j
assert [e["status"].encode() for e in j] == [s for s, _ in want], j
# every name comes back exactly: valid UTF-8 as is, other bytes as \udcXX
# (surrogateescape)
assert [e["path"].encode("utf-8", "surrogateescape") for e in j] == [p for _, p in want], j
EOF

# ---- exit status 2 -----------------------------------------------------------------------
expect_error L compare "$T/old.m"
expect_error L compare "$T/old.m" "$T/nonexistent"
expect_error L compare "$T/nonexistent" "$R"
head -c 100 "$T/old.m" >"$T/bad.m"
expect_error L compare "$T/bad.m" "$R"
expect_error L compare "$T/old.m" "$T/bad.m"
expect_error L compare "$T/old.m" "$R/a/f"
expect_error L compare -x a "$T/old.m" "$R"
grep -q exclude "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"
to_full() { "$@" >/dev/full; }
expect_error to_full L compare "$T/old.m" "$R"
expect_error to_full L compare --json "$T/old.m" "$R"

# ---- excludes: the same -x on both sides -------------------------------------------------
L scan -x a -x d "$R" -o "$T/x.m" || fail "scan -x"
expect_status 0 L compare -x a -x /d/ "$T/x.m" "$R"
: >"$R/a/more"
expect_status 0 L compare -x a -x d "$T/x.m" "$R"
rm "$R/a/more"

# ---- a tree unpacked from a reproducible layer: --source-date-epoch -------------------------
# A layer written with --source-date-epoch N keeps mtimes in whole seconds,
# a later one as N; compare --source-date-epoch N reads both sides so.
N=1700000000
E=$T/epoch
mkdir -p "$E/src/d" "$E/out"
for f in before at just_after after d/g; do printf '%s\n' "$f" >"$E/src/$f"; done
ln -s before "$E/src/l"
touch -h -d @$((N - 1)).5 "$E/src/before"
touch -h -d @$N "$E/src/at"
touch -h -d @$N.25 "$E/src/just_after"
touch -h -d @$((N + 1)).75 "$E/src/after" "$E/src/l"
touch -h -d @$((N + 86400)) "$E/src/d/g" "$E/src/d"
L scan "$E/src" -o "$E/src.m" || fail "scan (epoch)"
L diff --source-date-epoch $N "$E/src" -o "$E/layer.tar" -q || fail "diff --source-date-epoch"
L apply "$E/layer.tar" "$E/out" || fail "apply (epoch)"
expect_status 0 L compare --source-date-epoch $N "$E/src.m" "$E/out"
expect_status 0 L compare --source-date-epoch $N --mtime-seconds "$E/src.m" "$E/out"
# plain compare: every mtime but the one at exactly N differs (M, nothing else)
assert_eq "M	after
M	before
M	d
M	d/g
M	just_after
M	l" "$(L compare "$E/src.m" "$E/out")" "plain compare of the unpacked tree"
expect_status 1 L compare "$E/src.m" "$E/out" >/dev/null
# whole seconds alone: what was later than N
assert_eq "M	after
M	d
M	d/g
M	l" "$(L compare --mtime-seconds "$E/src.m" "$E/out")" "--mtime-seconds of the unpacked tree"
# another epoch is another clamp: N+1 keeps the second after N
assert_eq "M	after
M	d
M	d/g
M	l" "$(L compare --source-date-epoch $((N + 1)) "$E/src.m" "$E/out")" "--source-date-epoch N+1"
assert_eq "0 added, 6 modified, 0 deleted, 0 type changed" "$(L compare --stat "$E/src.m" "$E/out")" \
	"--stat of the unpacked tree"
assert_eq '{"added": 0, "modified": 0, "deleted": 0, "type_changed": 0}' \
	"$(L compare --stat --json --source-date-epoch $N "$E/src.m" "$E/out")" "--stat --json --source-date-epoch"
# two manifests, and SOURCE_DATE_EPOCH when the option is not given
L scan "$E/out" -o "$E/out.m" || fail "scan the unpacked tree"
expect_status 0 L compare --source-date-epoch $N "$E/src.m" "$E/out.m"
expect_status 0 env SOURCE_DATE_EPOCH=$N "$LAYERSNAP" compare "$E/src.m" "$E/out"
expect_status 0 env SOURCE_DATE_EPOCH=$N "$LAYERSNAP" compare -q "$E/src.m" "$E/out.m"
expect_status 0 env SOURCE_DATE_EPOCH=$((N + 5)) "$LAYERSNAP" compare --source-date-epoch $N "$E/src.m" "$E/out"
expect_status 1 env SOURCE_DATE_EPOCH=$((N + 5)) "$LAYERSNAP" compare -q "$E/src.m" "$E/out"
expect_status 1 env SOURCE_DATE_EPOCH= "$LAYERSNAP" compare -q "$E/src.m" "$E/out"
# the clamp is about mtimes only
chmod 0600 "$E/out/at"
assert_eq "M	at" "$(L compare --source-date-epoch $N "$E/src.m" "$E/out")" "--source-date-epoch, a chmod"
chmod 0644 "$E/out/at"
touch -h -d @$((N - 2)) "$E/out/before"
assert_eq "M	before" "$(L compare --source-date-epoch $N "$E/src.m" "$E/out")" "--source-date-epoch, a second before N"
expect_error L compare --source-date-epoch -1 "$E/src.m" "$E/out"
expect_error L compare --source-date-epoch 12x "$E/src.m" "$E/out"
expect_error env SOURCE_DATE_EPOCH=soon "$LAYERSNAP" compare "$E/src.m" "$E/out"
grep -q SOURCE_DATE_EPOCH "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"

# ---- a tree restored from a layer: --mtime-seconds -----------------------------------------
# A full layer extracted with GNU tar: same bytes, owners and modes, mtimes
# in whole seconds.  Only --mtime-seconds finds it equal.
for t in tar; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
find "$R" -mindepth 1 -exec touch -h -d @1600000000.123456789 {} +
L scan "$R" -o "$T/final.m" || fail "scan"
L diff "$R" -o "$T/full.tar" -q || fail "full layer"
X=$T/restored
mkdir "$X"
tar -xf "$T/full.tar" -C "$X" 2>"$T/tar.err" || { cat "$T/tar.err"; fail "GNU tar cannot extract the layer"; }
expect_status 0 L compare --mtime-seconds "$T/final.m" "$X"
expect_status 1 L compare "$T/final.m" "$X" >/dev/null
L compare "$T/final.m" "$X" | grep -v '^M	' && fail "only mtimes (M) should differ"
L scan "$X" -o "$T/restored.m" || fail "scan restored"
expect_status 0 L compare --mtime-seconds "$T/final.m" "$T/restored.m"
# whole seconds still see a change of a second
touch -h -d @1600000001 "$X/a/f"
assert_eq "M	a/f" "$(L compare --mtime-seconds "$T/final.m" "$X")" "--mtime-seconds, one second later"
# and content: a same-size edit with the mtime restored is seen by full
touch -r "$X/s" "$T/ref" && printf 'Same\n' >"$X/s" && touch -r "$T/ref" "$X/s"
assert_eq "M	a/f
M	s" "$(L compare --mtime-seconds "$T/final.m" "$X")" "--mtime-seconds, same-size edit"
echo ok
