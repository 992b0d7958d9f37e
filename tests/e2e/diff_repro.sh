#!/bin/bash
# diff, reproducibility and the layer's envelope: the same input gives the
# same bytes whatever the path, inode numbers, atimes, locale, --io or -j;
# gzip and zstd blobs are valid and their digests, sizes and media types are
# reported right (--json, --descriptor); the tar ends with exactly two zero
# blocks, to a file and to a pipe; an unchanged tree gives the 1024-byte
# empty layer; --exit-code; --manifest-out equal to --base; .wh. names are
# refused; outputs inside ROOT stay out of the layer.
. "$(dirname "$0")/lib.sh"

for t in tar gzip zstd python3 sha256sum; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
T=$LS_TMP
L() { "$LAYERSNAP" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# json FILE KEY: one value of a JSON object
json() { $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# A tree with a bit of everything; fixed mtimes, some in the future of the
# epoch used below, some before it.
mk_tree() {
	mkdir -p "$1/dir/sub" "$1/empty" "$1/odd"
	(
		cd "$1" || exit 1
		printf 'hello\n' >dir/f
		head -c 300000 /dev/zero | tr '\0' x >dir/big
		printf 'x\n' >dir/sub/x
		ln dir/f dir/f2
		ln -s sub/x dir/lnk
		ln -s /nowhere dangling
		mkfifo fifo
		: >"odd/sp ace" && : >odd/$'nl\nx' && : >odd/$'\303\251' && : >odd/$'\377x'
		printf 'L\n' >"odd/$(printf 'L%.0s' $(seq 120))"
		chown -h 1000:1000 dir/lnk 2>/dev/null
		chown 123456789:987654321 dir/sub/x 2>/dev/null
		chmod 4755 dir/sub/x
		chmod 1777 empty
		find . -depth -exec touch -h -d @1500000000.5 {} +
		touch -h -d @2000000000.25 dir/f dir/sub
	)
}

# check_end LAYER: a tar that ends with exactly two zero blocks, no padding:
# the end of the last member (rounded to 512) plus 1024 is the size.
check_end() {
	$PY - "$1" <<'EOF' || fail "$1: tar end"
import sys, tarfile
path = sys.argv[1]
data = open(path, "rb").read()
assert len(data) % 512 == 0, "size %d not a multiple of 512" % len(data)
assert data[-1024:] == bytes(1024), "last 1024 bytes not zero"
end = 0
with tarfile.open(path) as tf:
    for m in tf:
        end = m.offset_data + (m.size + 511) // 512 * 512 if m.isreg() else m.offset_data
assert end + 1024 == len(data), "%d bytes after the last member, expected 1024" % (len(data) - end)
EOF
}

A=$T/a
mk_tree "$A"

# ---- a full layer (no --base) ------------------------------------------------
L diff "$A" -o "$T/full.tar" --json >"$T/full.json" || fail "full layer"
# -v lists names with GNU tar's escapes; permissions, owners, links
got=$(tar -tvf "$T/full.tar" --numeric-owner --quoting-style=escape 2>/dev/null |
	sed -E 's/^([^ ]*) ([^ ]*) +[^ ]* [^ ]* [^ ]* /\1 \2 /')
LONG=$(printf 'L%.0s' $(seq 120))
want="lrwxrwxrwx 0/0 dangling -> /nowhere
drwxr-xr-x 0/0 dir/
-rw-r--r-- 0/0 dir/big
-rw-r--r-- 0/0 dir/f
hrw-r--r-- 0/0 dir/f2 link to dir/f
lrwxrwxrwx 1000/1000 dir/lnk -> sub/x
drwxr-xr-x 0/0 dir/sub/
-rwsr-xr-x 123456789/987654321 dir/sub/x
drwxrwxrwt 0/0 empty/
prw-r--r-- 0/0 fifo
drwxr-xr-x 0/0 odd/
-rw-r--r-- 0/0 odd/$LONG
-rw-r--r-- 0/0 odd/nl\\nx
-rw-r--r-- 0/0 odd/sp ace
-rw-r--r-- 0/0 odd/\\303\\251
-rw-r--r-- 0/0 odd/\\377x"
# not root, mk_tree's chowns failed: owners are left out of the comparison
if ! is_root; then
	partial_skip root "not root: owners (chown) in the full layer listing"
	want=$(printf '%s\n' "$want" | sed -E 's| [0-9]+/[0-9]+ | X |')
	got=$(printf '%s\n' "$got" | sed -E 's| [0-9]+/[0-9]+ | X |')
fi
assert_eq "$want" "$got" "full layer listing"
assert_eq "16 0 0 16" "$(for k in added modified deleted entries; do json "$T/full.json" $k; done | xargs)" "full layer counts"
check_end "$T/full.tar"
# mtimes are whole seconds, uname/gname empty, no atime/ctime
$PY - "$T/full.tar" <<'EOF' || fail "full layer headers"
import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    assert m.uname == "" and m.gname == "", m.name
    assert not any(k in m.pax_headers for k in ("atime", "ctime", "mtime")), (m.name, m.pax_headers)
    assert not any(k.startswith("LIBARCHIVE.") for k in m.pax_headers), (m.name, m.pax_headers)
    want = 2000000000 if m.name in ("dir/f", "dir/f2", "dir/sub") else 1500000000
    assert m.mtime == want, (m.name, m.mtime)
EOF

# ---- the same diff twice; same tree elsewhere; locale; --io; -j -------------
L diff "$A" -o "$T/again.tar" -q || fail "second diff"
cmp "$T/full.tar" "$T/again.tar" || fail "the same diff twice differs"

B=$T/elsewhere/deeper/b
mkdir -p "$(dirname "$B")"
cp -a "$A" "$B"
cat "$B/dir/f" "$B/dir/big" "$A/dir/f" >/dev/null # atimes differ now (if the mount updates them)
[ "$(stat -c %i "$A/dir/f")" != "$(stat -c %i "$B/dir/f")" ] || fail "copy shares inodes"
for epoch in --source-date-epoch=1700000000 env; do
	if [ $epoch = env ]; then
		SOURCE_DATE_EPOCH=1700000000 L diff "$A" -o "$T/ea.tar" -q || fail "diff (env)"
		SOURCE_DATE_EPOCH=1700000000 L diff "$B" -o "$T/eb.tar" -q || fail "diff (env)"
	else
		L diff "$A" $epoch -o "$T/ea.tar" -q || fail "diff $epoch"
		L diff "$B" $epoch -o "$T/eb.tar" -q || fail "diff $epoch"
	fi
	cmp "$T/ea.tar" "$T/eb.tar" || fail "two copies of a tree give different layers ($epoch)"
	# clamped: 2000000000 -> 1700000000, 1500000000 kept
	$PY - "$T/ea.tar" <<'EOF' || fail "mtimes not clamped ($epoch)"
import sys, tarfile
for m in tarfile.open(sys.argv[1]):
    assert m.mtime == (1700000000 if m.name in ("dir/f", "dir/f2", "dir/sub") else 1500000000), (m.name, m.mtime)
EOF
done
cmp "$T/ea.tar" "$T/eb.tar" || fail "--source-date-epoch and SOURCE_DATE_EPOCH differ"

for v in "LC_ALL=C.UTF-8" "LC_ALL=en_US.UTF-8" "LC_ALL=POSIX" "LANG=C.UTF-8 LC_ALL="; do
	env $v "$LAYERSNAP" diff "$A" -o "$T/loc.tar" -q 2>"$T/stderr" || { cat "$T/stderr" >&2; fail "diff under $v"; }
	cmp "$T/full.tar" "$T/loc.tar" || fail "layer differs under $v"
done

for opt in "--io sync" "--io auto" "-j 1" "-j 4" "--io sync -j 1" "--io sync -j 4"; do
	L diff $opt "$A" -o "$T/io.tar" -q || fail "diff $opt"
	cmp "$T/full.tar" "$T/io.tar" || fail "layer differs with $opt"
done
if L diff --io uring "$A" -o "$T/io.tar" -q 2>"$T/stderr"; then
	cmp "$T/full.tar" "$T/io.tar" || fail "layer differs with --io uring"
else
	grep -q 'io_uring' "$T/stderr" || fail "--io uring failed without saying why: $(cat "$T/stderr")"
	partial_skip uring "io_uring unavailable ($(cat "$T/stderr")): --io uring layer check"
fi

# The same change on two more copies, diffed against each one's own base.
cp -a "$A" "$T/ca"
cp -a "$A" "$T/elsewhere/cb"
for r in "$T/ca" "$T/elsewhere/cb"; do
	L scan "$r" -o "$r.m" || fail "scan $r"
done
for r in "$T/ca" "$T/elsewhere/cb"; do
	(cd "$r" && rm dir/big && printf 'new\n' >dir/new && chmod 0700 empty && touch -h -d @1600000000 dir dir/new empty) ||
		fail "change $r"
	L diff "$r" --base "$r.m" -o "$r.diff.tar" -q || fail "diff $r"
done
cmp "$T/ca.diff.tar" "$T/elsewhere/cb.diff.tar" || fail "the same change on two copies gives different layers"
assert_eq "drwxr-xr-x dir/
---------- dir/.wh.big
-rw-r--r-- dir/new
drwx------ empty/" "$(tar -tvf "$T/ca.diff.tar" | sed -E 's/^([^ ]*) [^ ]* +[^ ]* [^ ]* [^ ]* /\1 /')" "diff of the copies"

# ---- compression ----------------------------------------------------------------
for c in none gzip zstd; do
	for j in 1 4; do
		L diff "$A" --compress $c -j $j -o "$T/c.$c.$j" --json --descriptor "$T/c.$c.$j.desc" >"$T/c.$c.$j.json" ||
			fail "diff --compress $c -j $j"
	done
	cmp "$T/c.$c.1" "$T/c.$c.4" || fail "--compress $c: -j 1 and -j 4 differ"
	L diff "$A" --compress $c -o "$T/c.$c.again" -q || fail "diff --compress $c"
	cmp "$T/c.$c.1" "$T/c.$c.again" || fail "--compress $c: not reproducible"
	blob=$T/c.$c.1
	case $c in
	none) cp "$blob" "$T/plain"; mt=application/vnd.oci.image.layer.v1.tar ;;
	gzip)
		gzip -t "$blob" || fail "gzip -t rejects the blob"
		gzip -dc "$blob" >"$T/plain" || fail "gzip -d"
		# RFC 1952: MTIME (bytes 4-7) zero, no FNAME flag
		assert_eq "1f8b0800000000" "$(od -An -tx1 -N8 "$blob" | tr -d ' \n' | cut -c1-14)" "gzip header"
		mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
	zstd)
		zstd -tq "$blob" || fail "zstd -t rejects the blob"
		zstd -dcq "$blob" >"$T/plain" || fail "zstd -d"
		mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
	esac
	cmp "$T/plain" "$T/full.tar" || fail "--compress $c: the tar inside differs from the uncompressed layer"
	js=$T/c.$c.1.json
	assert_eq "sha256:$(sha "$T/plain")" "$(json "$js" diff_id)" "$c: diff_id"
	assert_eq "sha256:$(sha "$blob")" "$(json "$js" digest)" "$c: digest"
	assert_eq "$(stat -c %s "$blob")" "$(json "$js" size)" "$c: size"
	assert_eq "$(stat -c %s "$T/plain")" "$(json "$js" bytes)" "$c: bytes"
	assert_eq "$mt" "$(json "$js" media_type)" "$c: media_type"
	$PY - "$T/c.$c.1.desc" "$js" <<'EOF' || fail "$c: descriptor"
import json, sys
d = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
assert sorted(d) == ["descriptor", "diffID"], d
assert sorted(d["descriptor"]) == ["digest", "mediaType", "size"], d
assert d["descriptor"] == {"mediaType": r["media_type"], "digest": r["digest"], "size": r["size"]}, (d, r)
assert d["diffID"] == r["diff_id"], (d, r)
assert isinstance(d["descriptor"]["size"], int)
assert sorted(r) == sorted(["mode", "added", "modified", "deleted", "entries", "bytes", "diff_id",
                            "digest", "size", "media_type", "elapsed_ms"]), r
EOF
done

# --level changes the blob, never the tar inside
L diff "$A" --compress gzip --level 1 -o "$T/g1" --json >"$T/g1.json" || fail "--level 1"
L diff "$A" --compress zstd --level 19 -o "$T/z19" --json >"$T/z19.json" || fail "--level 19"
cmp -s "$T/g1" "$T/c.gzip.1" && fail "gzip --level 1 gives the default level's blob"
cmp -s "$T/z19" "$T/c.zstd.1" && fail "zstd --level 19 gives the default level's blob"
for js in "$T/g1.json" "$T/z19.json"; do
	assert_eq "$(json "$T/c.none.1.json" diff_id)" "$(json "$js" diff_id)" "diff_id with --level"
done
expect_error L diff "$A" --compress gzip --level 10 -o "$T/bad.gz"
[ ! -e "$T/bad.gz" ] || fail "a refused --level left a blob"

# ---- -o - ----------------------------------------------------------------------
L diff "$A" -o - -q | cat >"$T/pipe.tar" || fail "diff -o - to a pipe"
cmp "$T/full.tar" "$T/pipe.tar" || fail "-o - to a pipe differs from -o FILE"
check_end "$T/pipe.tar"
L diff "$A" -o - -q >"$T/redir.tar" || fail "diff -o - to a file"
cmp "$T/full.tar" "$T/redir.tar" || fail "-o - to a file differs from -o FILE"
L diff "$A" -o - --compress gzip --json 2>"$T/pipe.json" | cat >"$T/pipe.gz" || fail "diff -o - --compress gzip"
cmp "$T/c.gzip.1" "$T/pipe.gz" || fail "gzip to a pipe differs"
assert_eq "sha256:$(sha "$T/pipe.gz")" "$(json "$T/pipe.json" digest)" "--json goes to stderr with -o -"

# ---- an unchanged tree; --exit-code ----------------------------------------------
C=$T/c
cp -a "$A" "$C"
L scan "$C" -o "$T/c.m" || fail "scan"
for mode in full redo time; do
	L scan --mode $mode "$C" -o "$T/c.$mode.m" || fail "scan --mode $mode"
	expect_status 0 L diff --mode $mode "$C" --base "$T/c.$mode.m" -o "$T/empty.tar" --exit-code
	grep -q 'no changes: empty layer' "$LS_TMP/stderr" || fail "$mode: the summary does not say the layer is empty: $(cat "$LS_TMP/stderr")"
	[ "$(stat -c %s "$T/empty.tar")" = 1024 ] || fail "$mode: empty layer is $(stat -c %s "$T/empty.tar") bytes"
	cmp "$T/empty.tar" <(head -c 1024 /dev/zero) || fail "$mode: empty layer is not 1024 zero bytes"
	L diff --mode $mode "$C" --base "$T/c.$mode.m" -o - --exit-code -q | cat >"$T/empty.pipe"
	cmp "$T/empty.tar" "$T/empty.pipe" || fail "$mode: empty layer to a pipe differs"
	L diff --mode $mode "$C" --base "$T/c.$mode.m" -o "$T/empty.tar" --json >"$T/empty.json" || fail "diff --json"
	assert_eq "0 0 0 0 1024" "$(for k in added modified deleted entries bytes; do json "$T/empty.json" $k; done | xargs)" \
		"$mode: empty layer counts"
done
touch "$C/dir/f"
expect_status 1 L diff "$C" --base "$T/c.m" -o "$T/ne.tar" --exit-code
[ "$(stat -c %s "$T/ne.tar")" -gt 1024 ] || fail "--exit-code 1 but the layer is empty"
expect_status 0 L diff "$C" --base "$T/c.m" -o "$T/ne.tar"
rm -f "$C/dir/new"

# ---- --manifest-out equal to --base -------------------------------------------------
cp "$T/c.m" "$T/same.m"
L diff "$C" --base "$T/same.m" --manifest-out "$T/same.m" -o "$T/s1.tar" -q || fail "--manifest-out = --base"
[ "$(stat -c %s "$T/s1.tar")" -gt 1024 ] || fail "first diff empty"
expect_status 0 L diff "$C" --base "$T/same.m" --manifest-out "$T/same.m" -o "$T/s2.tar" --exit-code
[ "$(stat -c %s "$T/s2.tar")" = 1024 ] || fail "a diff against the manifest just written is not empty"
L compare "$T/same.m" "$C" >"$T/cmp.out" || fail "compare against the new manifest: $(cat "$T/cmp.out")"
ls -A "$T" | grep -E '\.(lock|tmp\.)' && fail "temporary or lock files left"

# ---- .wh. names ------------------------------------------------------------------
W=$T/w
mkdir -p "$W/d"
: >"$W/d/.wh.foo"
expect_error L diff "$W" -o "$T/w.tar"
grep -qF 'd/.wh.foo' "$T/stderr" || fail ".wh. error does not name the path: $(cat "$T/stderr")"
[ ! -e "$T/w.tar" ] || fail "a refused diff left a layer"
rm "$W/d/.wh.foo" && mkdir "$W/.wh..wh..opq"
expect_error L diff "$W" -o "$T/w.tar"
grep -qF '.wh..wh..opq' "$T/stderr" || fail ".wh. error does not name the path: $(cat "$T/stderr")"

# ---- outputs inside ROOT ---------------------------------------------------------
I=$T/inside
cp -a "$A" "$I"
# At ROOT's top level (ROOT is no entry, its mtime is not in the layer)...
for run in 1 2; do # the second run finds the first run's outputs there
	L diff "$I" -o "$I/layer.tar" --manifest-out "$I/m" --descriptor "$I/desc.json" -q ||
		fail "diff with outputs inside ROOT (run $run)"
	cmp "$I/layer.tar" "$T/full.tar" || fail "outputs inside ROOT got into the layer (run $run)"
done
L diff "$I" --base "$I/m" --manifest-out "$I/m" -o "$I/layer.tar" --descriptor "$I/desc.json" --exit-code -q ||
	fail "outputs inside ROOT make the next diff non-empty"
(cd "$I" && L diff . -o layer.tar --manifest-out m --descriptor desc.json -q) || fail "relative outputs inside ROOT"
cmp "$I/layer.tar" "$T/full.tar" || fail "relative outputs inside ROOT got into the layer"
# ... and deeper (only the directory's mtime changes)
rm "$I/layer.tar" "$I/m" "$I/desc.json"
for run in 1 2; do
	L diff "$I" -o "$I/dir/sub/l.tar" --manifest-out "$I/dir/m" --descriptor "$I/empty/d" -q ||
		fail "diff with outputs deeper inside ROOT"
	names=$(tar -tf "$I/dir/sub/l.tar" 2>/dev/null)
	assert_eq "$(tar -tf "$T/full.tar" 2>/dev/null)" "$names" "outputs deeper inside ROOT (run $run)"
done

echo ok
