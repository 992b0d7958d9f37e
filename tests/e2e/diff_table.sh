#!/bin/bash
# diff, table-driven: for each kind of change and each mode (full, redo,
# time), a fresh base tree is scanned, changed and diffed; the layer must hold
# exactly the expected entries and whiteouts, in order, as listed by GNU tar
# and by libarchive (bsdtar).  Every entry's metadata is checked against the
# changed tree, whiteouts against the OCI rules, the JSON counts against the
# change, and the layer, extracted with GNU tar onto a copy of the base tree
# (whiteout targets removed first: that is not tar's job), must give the
# changed tree back (or the base tree, when the mode cannot see the change).
. "$(dirname "$0")/lib.sh"

for t in tar bsdtar python3; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
T=$LS_TMP
CK=$T/ck.py
# Debian's python3 directly: version-manager shims cost 0.1 s a call.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

cat >"$CK" <<'EOF'
import json, os, stat, sys, tarfile

def fail(msg):
    sys.exit("FAIL: " + msg)

def check(layer, tree, policy):
    """Every entry agrees with the tree; whiteouts follow the OCI rules."""
    allowed = {"path", "linkpath", "hdrcharset", "size", "uid", "gid"}
    with tarfile.open(layer) as tf:
        for m in tf:
            name = m.name
            base = os.path.basename(name)
            for k in m.pax_headers:
                if k not in allowed and not k.startswith("SCHILY.xattr."):
                    fail("%r: unexpected pax record %s" % (name, k))
            if m.uname or m.gname:
                fail("%r: uname/gname not empty" % name)
            if base.startswith(".wh."):
                if not (m.isreg() and m.mode == 0 and m.uid == 0 and m.gid == 0 and
                        m.mtime == 0 and m.size == 0 and not m.pax_headers):
                    fail("%r: whiteout is not an empty file, mode 0, 0:0, mtime 0" % name)
                continue
            p = os.path.join(tree, name)
            st = os.lstat(p)
            if m.islnk():
                tgt = os.lstat(os.path.join(tree, m.linkname))
                if not stat.S_ISREG(st.st_mode) or st.st_ino != tgt.st_ino:
                    fail("%r: hard link to %r, but not the same inode in the tree" % (name, m.linkname))
            else:
                kinds = {tarfile.REGTYPE: stat.S_ISREG, tarfile.DIRTYPE: stat.S_ISDIR,
                         tarfile.SYMTYPE: stat.S_ISLNK, tarfile.FIFOTYPE: stat.S_ISFIFO,
                         tarfile.CHRTYPE: stat.S_ISCHR, tarfile.BLKTYPE: stat.S_ISBLK}
                if m.type not in kinds or not kinds[m.type](st.st_mode):
                    fail("%r: type %r does not match the tree" % (name, m.type))
            want = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns // 10**9)
            got = (m.mode, m.uid, m.gid, m.mtime)
            if want != got:
                fail("%r: mode/uid/gid/mtime %r, tree has %r" % (name, got, want))
            if m.issym() and m.linkname != os.readlink(p):
                fail("%r: symlink target %r, tree has %r" % (name, m.linkname, os.readlink(p)))
            if m.isreg():
                with open(p, "rb") as f:
                    if tf.extractfile(m).read() != f.read():
                        fail("%r: content differs from the tree" % name)
            # xattrs: SCHILY.xattr.* only, sorted by name, as the policy says
            got = [(k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape"))
                   for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")]
            if got != sorted(got):
                fail("%r: xattrs not sorted by name: %r" % (name, got))
            if policy == "all":
                want = sorted((n, os.getxattr(p, n, follow_symlinks=False))
                              for n in os.listxattr(p, follow_symlinks=False))
            else:
                try:
                    want = [("security.capability",
                             os.getxattr(p, "security.capability", follow_symlinks=False))]
                except OSError:
                    want = []
                if not stat.S_ISREG(st.st_mode):
                    want = []
            if not m.islnk() and got != want:
                fail("%r: xattrs %r, tree has %r" % (name, got, want))

def whiteouts(layer, dst):
    """Removes what the layer's whiteouts delete (before tar extracts it)."""
    import shutil
    with tarfile.open(layer) as tf:
        for m in tf:
            d, base = os.path.split(m.name)
            if base == ".wh..wh..opq":
                for c in os.listdir(os.path.join(dst, d)):
                    rm(os.path.join(dst, d, c))
            elif base.startswith(".wh."):
                rm(os.path.join(dst, d, base[4:]))

def rm(p):
    import shutil
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)

def state(top):
    """Type, mode, owner, mtime (s), target, content, xattrs and hard-link
    group (first path of the inode) of every path below top."""
    import hashlib
    top = os.fsencode(top)
    paths = []
    for d, dirs, files in os.walk(top):
        paths += [os.path.join(d, n) for n in dirs + files]
    first = {}
    for p in sorted(paths):
        st = os.lstat(p)
        if stat.S_ISSOCK(st.st_mode):
            continue  # a layer cannot carry it
        rel = os.path.relpath(p, top)
        extra = ""
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                extra = "%d %s" % (st.st_size, hashlib.sha256(f.read()).hexdigest()[:16])
            extra += " link-group=%r" % first.setdefault((st.st_dev, st.st_ino), rel)
        elif stat.S_ISLNK(st.st_mode):
            extra = "-> %r" % os.readlink(p)
        xa = sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in os.listxattr(p, follow_symlinks=False))
        print("%r %o %d:%d %d %s %r" % (rel, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns // 10**9, extra, xa))

def state_lines(top):
    import contextlib, io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        state(top)
    return buf.getvalue().splitlines()

def same_state(want, got):
    """The trees agree on everything a layer carries."""
    import difflib
    a, b = state_lines(want), state_lines(got)
    if a != b:
        sys.stderr.writelines(l + "\n" for l in difflib.unified_diff(a, b, want, got, lineterm=""))
        fail("trees differ")

def verify_all(listing):
    """Per line (tab-separated) WHAT LAYER TREE JSON DST POLICY COUNTS:
    check the layer against the tree, the --json counts, and apply the
    layer's whiteouts to DST (before GNU tar extracts the rest)."""
    global fail
    plain_fail = fail
    with open(listing) as f:
        for line in f:
            what, layer, tree, json_path, dst, policy, want = line.rstrip("\n").split("\t")
            fail = lambda msg: plain_fail("%s: %s" % (what, msg))
            check(layer, tree, policy)
            with open(json_path) as jf:
                j = json.load(jf)
            got = "%d %d %d %d" % (j["added"], j["modified"], j["deleted"], j["entries"])
            if got != want:
                fail("added modified deleted entries: %s, expected %s" % (got, want))
            whiteouts(layer, dst)

def same_state_all(listing):
    """Per line WHAT WANT_TREE GOT_TREE: the trees agree."""
    with open(listing) as f:
        for line in f:
            what, want, got = line.rstrip("\n").split("\t")
            try:
                same_state(want, got)
            except SystemExit:
                fail("%s: the extracted tree %s is not %s" % (what, got, want))

globals()[sys.argv[1]](*sys.argv[2:])
EOF

# The base tree.  Fixed, distinct mtimes (with nanoseconds) on everything.
mk_base() {
	mkdir -p "$1/a/sub" "$1/b" "$1/d/e" "$1/u"
	(
		cd "$1" || exit 1
		printf 'hello\n' >a/f
		printf 'gone\n' >a/g
		printf 'x\n' >a/sub/x
		printf 'y\n' >b/y
		printf 'f\n' >d/e/f
		printf 'g\n' >d/g
		ln -s a/f l
		printf 't\n' >t
		printf 'v\n' >u/v
		printf 'z\n' >z
		chmod 0750 b
		find . -depth -exec touch -h -d @1600000000.123456789 {} +
	)
}

# listing with GNU tar and with bsdtar, reduced to "TYPE NAME[ -> T| link to X]"
list_gnu() {
	tar -tvf "$1" --numeric-owner --quoting-style=escape 2>"$T/tar.err" |
		sed -E 's/^(.)[^ ]* [^ ]* +[^ ]* [^ ]* [^ ]* /\1 /'
}
list_bsd() {
	bsdtar -tvf "$1" | sed -E 's/^(.)[^ ]* +[^ ]* +[^ ]* +[^ ]* +[^ ]* +[^ ]* +[^ ]* +[^ ]* /\1 /'
}

# ---- the table -------------------------------------------------------------
# expect CASE MODES A M D [ENTRY...]: for the modes listed (comma-separated),
# the layer holds exactly ENTRY... and --json reports A added, M modified,
# D deleted; the other modes must see nothing (empty layer, all zero).
declare -A EXP CNT OPTS SOPTS
CASES=()
expect() {
	local c=$1 modes=$2 a=$3 m=$4 d=$5
	shift 5
	CASES+=("$c")
	for mode in full redo time; do
		case ",$modes," in
		*",$mode,"*)
			EXP[$c.$mode]=$(printf '%s\n' "$@")
			CNT[$c.$mode]="$a $m $d $#" ;;
		*)
			EXP[$c.$mode]=
			CNT[$c.$mode]="0 0 0 0" ;;
		esac
	done
}

ch_append() { printf 'more\n' >>a/f; }
expect append full,redo,time 0 1 0 'd a/' '- a/f'

ch_edit_restored() { touch -r a/f "$T/ref" && printf 'HELLO\n' >a/f && touch -r "$T/ref" a/f; }
expect edit_restored full 0 1 0 'd a/' '- a/f'

# Rewritten (same bytes, same mtime) just before the scan and edited right
# after it: the base record is racy, only the racy rule may save full here.
pre_same_second() { touch -r a/f "$T/ref" && printf 'hello\n' >a/f && touch -r "$T/ref" a/f; }
ch_same_second() { printf 'HELLO\n' >a/f && touch -r "$T/ref" a/f; }
expect same_second full 0 1 0 'd a/' '- a/f'

ch_chmod() { chmod 0600 a/f; }
expect chmod full,redo 0 1 0 'd a/' '- a/f'

ch_chmod_dir() { chmod 0700 a/sub; }
expect chmod_dir full,redo 0 1 0 'd a/' 'd a/sub/'

ch_chown() { chown 1000:1000 a/f; }
expect chown full,redo 0 1 0 'd a/' '- a/f'

ch_touch() { touch a/f; }
expect touch full,redo,time 0 1 0 'd a/' '- a/f'

ch_rm_file() { rm a/g; }
expect rm_file full,redo,time 0 1 1 'd a/' '- a/.wh.g'

ch_rm_deep() { rm a/sub/x; }
expect rm_deep full,redo,time 0 1 1 'd a/' 'd a/sub/' '- a/sub/.wh.x'

ch_rm_dir() { rm -rf d; }
expect rm_dir full,redo,time 0 0 4 '- .wh.d'

ch_file_to_dir() { rm t && mkdir t && printf 'i\n' >t/i; }
expect file_to_dir full,redo,time 1 1 0 '- .wh.t' 'd t/' '- t/i'

ch_dir_to_file() { rm -r u && printf 'u\n' >u; }
expect dir_to_file full,redo,time 0 1 1 '- .wh.u' '- u'

ch_file_to_symlink() { rm z && ln -s a/f z; }
expect file_to_symlink full,redo,time 0 1 0 '- .wh.z' 'l z -> a/f'

ch_dir_to_symlink() { rm -r a/sub && ln -s ../b a/sub; }
expect dir_to_symlink full,redo,time 0 2 1 'd a/' '- a/.wh.sub' 'l a/sub -> ../b'

ch_retarget() { ln -sfn b/y l; }
expect retarget full,redo,time 0 1 0 'l l -> b/y'

ch_hardlink() { ln a/f b/hl; }
expect hardlink full,redo,time 1 1 0 'd a/' '- a/f' 'd b/' 'h b/hl link to a/f'

ch_hardlink_new() { printf 'n\n' >b/n1 && ln b/n1 b/n2; }
expect hardlink_new full,redo,time 2 1 0 'd b/' '- b/n1' 'h b/n2 link to b/n1'

# The new name comes first in walk order: it carries the content, the old
# name becomes the hard-link entry.
ch_hardlink_before() { ln b/y a/aa; }
expect hardlink_before full,redo,time 1 1 0 'd a/' '- a/aa' 'd b/' 'h b/y link to a/aa'

ch_setcap() { setcap cap_net_raw+ep a/f; }
expect setcap full 0 1 0 'd a/' '- a/f'

# Caught by its mtime in every mode: redo and time write the xattr too.
ch_setcap_touch() { setcap cap_net_raw+ep a/f && touch a/f; }
expect setcap_touch full,redo,time 0 1 0 'd a/' '- a/f'

# --xattrs all: any xattr, on any type, sorted by name in the layer.
ch_xattr_all() {
	$PY -c 'import os
os.setxattr("a/f", "user.b", b"2")
os.setxattr("a/f", "user.a", b"1\0\xff")
os.setxattr("a/sub", "user.d", b"dir")'
}
SOPTS[xattr_all]="--xattrs all"
expect xattr_all full 0 2 0 'd a/' '- a/f' 'd a/sub/'

ch_xattr_all_touch() { $PY -c 'import os; os.setxattr("a/f", "user.b", b"2"); os.setxattr("a/f", "user.a", b"1")' && touch a/f; }
SOPTS[xattr_all_touch]="--xattrs all"
expect xattr_all_touch full,redo,time 0 1 0 'd a/' '- a/f'

ch_fifo() { mkfifo a/p; }
expect fifo full,redo,time 1 1 0 'd a/' 'p a/p'

# A socket cannot be carried: the directory changed, the socket is skipped.
ch_socket() { $PY -c 'import socket; socket.socket(socket.AF_UNIX).bind("a/s")'; }
expect socket full,redo,time 0 1 0 'd a/'

ch_socket_root() { $PY -c 'import socket; socket.socket(socket.AF_UNIX).bind("s")'; }
expect socket_root full,redo,time 0 0 0

ch_empty_dir() { mkdir b/new; }
expect empty_dir full,redo,time 1 1 0 'd b/' 'd b/new/'

LONG=$(printf 'L%.0s' $(seq 150))
ch_odd_names() {
	: >"b/sp ace" && : >b/$'nl\nx' && : >b/$'\303\251' && : >b/$'\377x' && : >b/$'t\tab' &&
		printf 'long\n' >"b/$LONG"
}
expect odd_names full,redo,time 6 1 0 'd b/' "- b/$LONG" '- b/nl\nx' '- b/sp ace' '- b/t\tab' \
	'- b/\303\251' '- b/\377x'

# A directory emptied of its old children: one whiteout each, or with
# --opaque a single opaque whiteout.
ch_emptied() { rm -r a/f a/g a/sub && printf 'new\n' >a/new; }
expect emptied full,redo,time 1 1 4 'd a/' '- a/.wh.f' '- a/.wh.g' '- a/.wh.sub' '- a/new'
ch_opaque() { ch_emptied; }
OPTS[opaque]=--opaque
expect opaque full,redo,time 1 1 4 'd a/' '- a/.wh..wh..opq' '- a/new'

# Everything at once: whiteouts first in each directory, ancestors first.
ch_mix() { rm -r d && rm a/g && printf 'more\n' >>a/sub/x && ln -sfn b/y l && mkdir -p n/m && : >n/m/k; }
expect mix full,redo,time 3 3 5 '- .wh.d' 'd a/' '- a/.wh.g' 'd a/sub/' '- a/sub/x' 'l l -> b/y' \
	'd n/' 'd n/m/' '- n/m/k'

is_root || skip root "needs root (chown, setcap, owners in layers)"
command -v setcap >/dev/null || skip setcap "setcap not installed"

# ---- running it --------------------------------------------------------------
TEMPLATE=$T/template
mk_base "$TEMPLATE"
# Fresh base trees for every case, made first: after one second, the scans
# are not racy (only same_second makes its own racy file).
for c in "${CASES[@]}"; do
	for mode in full redo time; do
		cp -a "$TEMPLATE" "$T/r.$c.$mode"
	done
done
sleep 1

# 1. scan, change, diff; the listings; a copy of the base tree to extract on
: >"$T/verify.list"
: >"$T/state.list"
for c in "${CASES[@]}"; do
	for mode in full redo time; do
		R=$T/r.$c.$mode
		X=$T/x.$c.$mode
		LAYER=$T/l.$c.$mode.tar
		what="$c/$mode"
		(cd "$R" && if declare -F "pre_$c" >/dev/null; then "pre_$c"; fi) || fail "$what: pre-step failed"
		"$LAYERSNAP" scan --mode $mode ${SOPTS[$c]:-} "$R" -o "$T/base.m" || fail "$what: scan failed"
		(cd "$R" && "ch_$c") || fail "$what: change failed"
		"$LAYERSNAP" diff --mode $mode "$R" --base "$T/base.m" ${SOPTS[$c]:-} ${OPTS[$c]:-} -o "$LAYER" \
			--json >"$T/json.$c.$mode" || fail "$what: diff failed"
		assert_eq "${EXP[$c.$mode]}" "$(list_gnu "$LAYER")" "$what: layer (GNU tar)"
		# GNU tar knows no hdrcharset (non-UTF-8 names), and says so; nothing else
		grep -v "Ignoring unknown extended header keyword 'hdrcharset'" "$T/tar.err" >&2 &&
			fail "$what: GNU tar complained"
		assert_eq "${EXP[$c.$mode]}" "$(list_bsd "$LAYER")" "$what: layer (bsdtar)"
		if [ -z "${EXP[$c.$mode]}" ]; then
			[ "$(stat -c %s "$LAYER")" = 1024 ] || fail "$what: empty layer is not 1024 bytes"
		fi
		cp -a "$TEMPLATE" "$X"
		policy=capability
		case " ${SOPTS[$c]:-} " in *" --xattrs all "*) policy=all ;; esac
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$what" "$LAYER" "$R" "$T/json.$c.$mode" "$X" $policy \
			"${CNT[$c.$mode]}" >>"$T/verify.list"
		# what the extraction must give: the changed tree, or the base tree
		# when the mode sees nothing
		want=$R
		[ -n "${EXP[$c.$mode]}" ] || want=$TEMPLATE
		printf '%s\t%s\t%s\n' "$what" "$want" "$X" >>"$T/state.list"
	done
done
# 2. every entry against the tree, the counts; whiteouts applied to the copies
$PY "$CK" verify_all "$T/verify.list" || fail "layers do not match the trees"
# 3. GNU tar extracts the rest
for c in "${CASES[@]}"; do
	for mode in full redo time; do
		tar -xf "$T/l.$c.$mode.tar" -C "$T/x.$c.$mode" --exclude='.wh.*' --xattrs --xattrs-include='*' \
			2>"$T/tar.err" || { cat "$T/tar.err" >&2; fail "$c/$mode: GNU tar cannot extract the layer"; }
	done
done
# 4. and the result is the changed tree (or the base tree)
$PY "$CK" same_state_all "$T/state.list" || fail "extracted trees differ"
for mode in full redo time; do
	X=$T/x.hardlink.$mode
	[ "$(stat -c %i "$X/a/f")" = "$(stat -c %i "$X/b/hl")" ] || fail "hardlink/$mode: not one inode"
	X=$T/x.hardlink_before.$mode
	[ "$(stat -c %i "$X/a/aa")" = "$(stat -c %i "$X/b/y")" ] || fail "hardlink_before/$mode: not one inode"
done
[ "$(cd "$T/x.setcap.full" && getcap a/f)" = "a/f cap_net_raw=ep" ] || fail "setcap/full: capability lost"

# 5. No base and no new manifest: the walk leaves xattrs to the layer, which
# reads them from the files it opens.  Every entry of a full layer carries
# the tree's xattrs under the policy, in every mode (with a new manifest the
# walk reads them: the same layer).
NB=$T/nobase
cp -a "$T/r.setcap.full" "$NB"
$PY -c 'import os; os.setxattr("'"$NB"'/a/g", "user.k", b"v\0\xff"); os.setxattr("'"$NB"'/a/sub", "user.d", b"dir")'
for mode in full redo time; do
	for policy in capability all none; do
		"$LAYERSNAP" diff -q --mode $mode --xattrs $policy "$NB" -o "$T/nb.tar" ||
			fail "no base/$mode/$policy: diff failed"
		"$LAYERSNAP" diff -q --mode $mode --xattrs $policy "$NB" -o "$T/nb-m.tar" \
			--manifest-out "$T/nb.m" || fail "no base/$mode/$policy: diff --manifest-out failed"
		cmp -s "$T/nb.tar" "$T/nb-m.tar" || fail "no base/$mode/$policy: another layer with --manifest-out"
		$PY - "$T/nb.tar" "$NB" $policy <<'PYEOF' || fail "no base/$mode/$policy: xattrs differ from the tree"
import os, stat, sys, tarfile
layer, root, policy = sys.argv[1:]
seen = 0
with tarfile.open(layer, encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        p = os.path.join(root, m.name.rstrip("/"))
        got = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
               for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        st = os.lstat(p)
        names = os.listxattr(p, follow_symlinks=False) if policy == "all" else \
            ["security.capability"] if policy == "capability" and stat.S_ISREG(st.st_mode) else []
        want = {}
        for n in names:
            try:
                want[n] = os.getxattr(p, n, follow_symlinks=False)
            except OSError:
                pass
        if got != want:
            sys.exit("%s: layer %r, tree %r" % (m.name, got, want))
        seen += bool(want)
want_seen = {"all": 3, "capability": 1, "none": 0}[policy]
if seen != want_seen:
    sys.exit("%d entries with xattrs, not %d" % (seen, want_seen))
PYEOF
	done
done
echo "ok: $(wc -l <"$T/verify.list") diffs"
