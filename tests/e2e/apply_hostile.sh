#!/bin/bash
# apply: hostile layers that do not escape ROOT but must still be refused
# (exit 2, one line "layersnap: ...", the entries before the refused part
# applied, nothing after it, no temporary left): gzip members with a bad
# CRC32 or ISIZE, cut short or followed by garbage; zstd frames with a bad
# checksum, cut short or needing too big a window; tars without their two
# end blocks or with data after them; sparse maps that reach past the size,
# go backwards, overlap, overflow or name more data than is stored; ids that
# cannot be represented.  And what must be accepted: concatenated gzip
# members and zstd frames, zstd without checksums, zero padding after the
# end blocks, sparse files (written sparse).  Not root, setuid and setgid are
# dropped with a warning unless --keep-setid; a SIGTERM mid-file leaves no
# partial file under its final name; a decompression bomb keeps memory small.
#
# Every case runs on its own, so that `LS_HOSTILE_ALL=1` with an older binary
# lists every case it fails instead of stopping at the first.
. "$(dirname "$0")/lib.sh"

MKTAR=$LS_BUILD/tools/mktar
[ -x "$MKTAR" ] || fail "$MKTAR is not built"
command -v python3 >/dev/null || skip python3 "python3 is not installed"
command -v zstd >/dev/null || skip zstd "zstd is not installed"
command -v tar >/dev/null || skip tar "GNU tar is not installed"
T=$LS_TMP
R=$T/root
L=$T/l
mkdir -p "$L"

# ---- the crafted layers -----------------------------------------------------
# base.tar holds before (1), mid (3000 bytes) and after (2), then exactly two
# zero blocks; base.part{1,2,3} are its bytes up to the end of before, of mid,
# and the rest, for layers made of one gzip member or zstd frame per part.
cat >"$T/craft.py" <<'EOF'
import io, os, sys, tarfile, time, zlib

def tar_bytes(specs, fmt=tarfile.PAX_FORMAT):
    """specs: (name, data, kw).  Returns (tar with exactly two end blocks,
    [offset where each entry ends])."""
    buf = io.BytesIO()
    ends = []
    tf = tarfile.open(fileobj=buf, mode='w', format=fmt)
    for name, data, kw in specs:
        ti = tarfile.TarInfo(name)
        ti.size = kw.get('size', len(data))
        ti.mtime = 1600000000
        ti.mode = kw.get('mode', 0o644)
        ti.uid, ti.gid = kw.get('uid', 0), kw.get('gid', 0)
        ti.pax_headers = kw.get('pax', {})
        tf.addfile(ti, io.BytesIO(data))
        ends.append(buf.tell())
    tf.close()
    return buf.getvalue()[:ends[-1] + 1024], ends

def member(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, 31)   # 31: a gzip member
    return c.compress(data) + c.flush()

def patch(b, off, xor):
    b = bytearray(b)
    b[off] ^= xor
    return bytes(b)

def sparse10(name, realsize, chunks):
    """A GNU 1.0 sparse entry: the map leads the data; chunk bytes are 'x'."""
    m = ('%d\n' % len(chunks) + ''.join('%d\n%d\n' % c for c in chunks)).encode()
    data = m + b'\0' * (-len(m) % 512) + b''.join(b'x' * n for _, n in chunks)
    pax = {'GNU.sparse.major': '1', 'GNU.sparse.minor': '0',
           'GNU.sparse.name': name, 'GNU.sparse.realsize': str(realsize)}
    return ('GNUSparseFile.0/' + name, data, {'pax': pax})

B = ('before', b'1', {})
A = ('after', b'2', {})

def craft(out):
    def w(name, data):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
    base, ends = tar_bytes([B, ('mid', b'm' * 3000, {}), A])
    parts = [base[:ends[0]], base[ends[0]:ends[1]], base[ends[1]:]]
    w('base.tar', base)
    for i, p in enumerate(parts):
        w('base.part%d' % (i + 1), p)
    m = [member(p) for p in parts]
    # gzip trailer: CRC32 then ISIZE, little-endian, the member's last 8 bytes
    w('gz_crc.tgz', m[0] + patch(m[1], len(m[1]) - 8, 1) + m[2])
    w('gz_isize.tgz', m[0] + patch(m[1], len(m[1]) - 1, 0x80) + m[2])
    w('gz_trunc.tgz', m[0] + (m[1] + m[2])[:-len(m[2]) - 4])
    w('gz_trunc_last.tgz', m[0] + m[1] + m[2][:-3])
    w('gz_garbage.tgz', member(base) + b'garbage\n')
    w('gz_zeros.tgz', member(base) + b'\0' * 512)
    # members of 700 bytes and an empty one: what a chunked writer makes
    chunks = [base[i:i + 700] for i in range(0, len(base), 700)]
    w('gz_multi.tgz', b''.join(member(c, 1) for c in chunks[:2]) + member(b'') +
      b''.join(member(c, 9) for c in chunks[2:]))
    # end blocks
    w('tar_noend.tar', base[:ends[-1]])
    w('tar_oneend.tar', base[:ends[-1] + 512])
    w('tar_cut.tar', base[:ends[1]])
    w('tar_cut.tgz', member(base[:ends[1]]))
    w('tar_pad.tar', base + b'\0' * 8192)
    w('tar_padjunk.tar', base + b'\0' * 1024 + b'x' + b'\0' * 511)
    w('tar_concat.tar', base + tar_bytes([('extra', b'3', {})])[0])
    # sparse maps (the issue's: realsize 4096 with a chunk at 2^40; a
    # negative offset in a 0.1 map that libarchive only warns about)
    def sp(name, entry):
        w(name, tar_bytes([B, entry, A])[0])
    sp('sp_beyond.tar', sparse10('sp', 4096, [(1 << 40, 512)]))
    sp('sp_overlap.tar', sparse10('sp', 4096, [(0, 1024), (512, 512)]))
    sp('sp_backwards.tar', sparse10('sp', 4096, [(2048, 512), (0, 512)]))
    sp('sp_overflow.tar', sparse10('sp', 4096, [((1 << 63) - 1, 512)]))
    sp('sp_neg01.tar', ('sp', b'x' * 1024, {'pax': {'GNU.sparse.map': '-512,512,0,512',
                                                  'GNU.sparse.realsize': '100'}}))
    sp('sp_neg00.tar', ('sp', b'x' * 512, {'pax': {
        'GNU.sparse.numblocks': '1', 'GNU.sparse.offset': '-512',
        'GNU.sparse.numbytes': '512', 'GNU.sparse.size': '4096'}}))
    short = sparse10('sp', 4096, [(0, 512), (2048, 2048)])
    sp('sp_short.tar', (short[0], short[1][:-1536], short[2]))   # map names 2560, 1024 stored
    long_ = sparse10('sp', 4096, [(0, 512)])
    sp('sp_long.tar', (long_[0], long_[1] + b'y' * 100, long_[2]))   # 100 bytes the map does not name
    # stored data past the map, read by libarchive as a header of its own
    hidden = tarfile.TarInfo('smuggled')
    hidden.mtime = 1600000000
    sm = sparse10('sp', 4096, [(0, 512)])
    sp('sp_smuggle.tar', (sm[0], sm[1] + hidden.tobuf(tarfile.PAX_FORMAT), sm[2]))
    sp('sp_ok.tar', sparse10('sp', 1 << 26, [(0, 512), (1 << 20, 4096), (1 << 26, 0)]))
    # ids
    w('uid_max.tar', tar_bytes([B, ('bad', b'x', {'uid': 4294967295}), A])[0])
    w('gid_max.tar', tar_bytes([B, ('bad', b'x', {'gid': 4294967295}), A])[0])
    w('uid_big.tar', tar_bytes([B, ('bad', b'x', {'uid': 1 << 32}), A])[0])
    w('uid_ok.tar', tar_bytes([B, ('ok', b'x', {'uid': 4294967294, 'gid': 70000}), A])[0])
    # big entries: whole (4 MiB), and the head of one of 4 GiB for a feeder
    w('big.tar', tar_bytes([B, ('big', b'z' * (4 << 20), {}), A])[0])
    head, ends = tar_bytes([B])
    big = tarfile.TarInfo('big')
    big.size, big.mtime = 4 << 30, 1600000000
    w('bighead.tar', head[:ends[0]] + big.tobuf(tarfile.PAX_FORMAT))

def feed(path, head):
    """Writes head and 1 MiB of the big entry's data to the fifo, then holds
    it open (at most 30 s) so that the reader waits in the middle."""
    with open(path, 'wb') as f:
        f.write(open(head, 'rb').read())
        f.write(b'z' * (1 << 20))
        f.flush()
        time.sleep(30)

if sys.argv[1] == 'craft':
    craft(sys.argv[2])
elif sys.argv[1] == 'feed':
    feed(sys.argv[2], sys.argv[3])
EOF
python3 "$T/craft.py" craft "$L" || fail "crafting the layers"

# zstd: one frame per part; a checksum is the frame's last 4 bytes
for i in 1 2 3; do zstd -q -c "$L/base.part$i" >"$L/z$i" || fail zstd; done
cp "$L/z2" "$L/z2bad"
printf '\x5a' | dd of="$L/z2bad" bs=1 seek=$(($(stat -c %s "$L/z2") - 1)) conv=notrunc status=none
cat "$L/z1" "$L/z2bad" "$L/z3" >"$L/zs_badsum.tzst"
cat "$L/z1" "$L/z2" "$L/z3" >"$L/zs_multi.tzst"
zstd -q --no-check -c "$L/base.tar" >"$L/zs_nocheck.tzst"
python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit((d[4] >> 2) & 1)' "$L/zs_nocheck.tzst" ||
	fail "zstd --no-check wrote a checksum"
zstd -q -c "$L/base.tar" | head -c -3 >"$L/zs_trunc.tzst"
{ cat "$L/z1" "$L/z2" "$L/z3"; printf 'garbage\n'; } >"$L/zs_garbage.tzst"
# a window of 2^30 (the frame says so when the input size is unknown)
cat "$L/base.tar" | zstd -q --long=30 -c >"$L/zs_window.tzst"

# ---- helpers ----------------------------------------------------------------
new_root() {
	rm -rf "$R"
	mkdir -p "$R"
	echo old >"$R/old"
}

no_leftovers() {
	local left
	left=$(find "$R" -name '*layersnap-tmp*' -print)
	[ -z "$left" ] || fail "$1: temporaries left: $left"
}

# refuse LAYER WHY "APPLIED..." "ABSENT...": exit 2 and one line with WHY;
# APPLIED are there with their content, ABSENT are not.
refuse() {
	local layer=$1 why=$2 p
	new_root
	expect_error "$LAYERSNAP" apply "$L/$layer" "$R"
	grep -qF -- "$why" "$T/stderr" || fail "$layer: message lacks '$why': $(cat "$T/stderr")"
	for p in $3; do
		case $p in
		before) [ "$(cat "$R/before" 2>/dev/null)" = 1 ] ;;
		mid) [ "$(cat "$R/mid" 2>/dev/null)" = "$(printf 'm%.0s' $(seq 3000))" ] ;;
		after) [ "$(cat "$R/after" 2>/dev/null)" = 2 ] ;;
		*) [ -f "$R/$p" ] ;;
		esac || fail "$layer: $p (before the refused part) not applied"
	done
	for p in $4; do
		[ ! -e "$R/$p" ] || fail "$layer: $p (at or after the refused part) applied"
	done
	[ "$(cat "$R/old")" = old ] || fail "$layer: ROOT's old file changed"
	no_leftovers "$layer"
}

# accept LAYER: applies with exit 0, nothing on stderr, base.tar's entries there
accept() {
	new_root
	expect_status 0 "$LAYERSNAP" apply "$L/$1" "$R"
	[ ! -s "$T/stderr" ] || fail "$1: stderr: $(cat "$T/stderr")"
	[ "$(cat "$R/before")" = 1 ] && [ "$(cat "$R/after")" = 2 ] && [ "$(stat -c %s "$R/mid")" = 3000 ] ||
		fail "$1: wrong result"
	no_leftovers "$1"
}

failed=()
run() { # NAME: runs case_NAME in a subshell, records a failure
	if ("case_$1") >"$T/case.log" 2>&1; then
		echo "ok   $1"
		sed 's/^/     /' "$T/case.log"
	else
		echo "FAIL $1"
		sed 's/^/     /' "$T/case.log"
		failed+=("$1")
	fi
}

# ---- gzip -------------------------------------------------------------------
# One member per part: a bad member spoils nothing decoded before it.
case_gzip_crc() { refuse gz_crc.tgz 'CRC32 mismatch' before 'mid after'; }
case_gzip_isize() { refuse gz_isize.tgz 'ISIZE' before 'mid after'; }
case_gzip_truncated() { refuse gz_trunc.tgz 'truncated' before 'mid after'; }
case_gzip_truncated_last() { refuse gz_trunc_last.tgz 'truncated' 'before mid' after; }
# Bytes after the last member are refused: gzip(1) ignores them with a
# warning, but a digest-addressed blob has no use for bytes nobody reads.
# They are seen after the tar's end, so every entry was applied.
case_gzip_garbage() { refuse gz_garbage.tgz 'not a gzip member' 'before mid after' ''; }
case_gzip_trailing_zeros() { refuse gz_zeros.tgz 'not a gzip member' 'before mid after' ''; }
case_gzip_multi_member() { accept gz_multi.tgz; }
case_gzip_pipe() {
	accept gz_multi.tgz
	new_root
	expect_status 0 "$LAYERSNAP" apply - "$R" < <(cat "$L/gz_multi.tgz")
	[ "$(cat "$R/after")" = 2 ] || fail "multi-member gzip from a pipe"
	new_root
	expect_error "$LAYERSNAP" apply - "$R" < <(cat "$L/gz_crc.tgz")
	grep -q 'CRC32 mismatch' "$T/stderr" || fail "bad CRC from a pipe: $(cat "$T/stderr")"
	[ "$(cat "$R/before")" = 1 ] && [ ! -e "$R/after" ] || fail "bad CRC from a pipe: wrong result"
}

# ---- zstd -------------------------------------------------------------------
case_zstd_bad_checksum() { refuse zs_badsum.tzst 'checksum mismatch' before 'mid after'; }
case_zstd_no_checksum() { accept zs_nocheck.tzst; }
case_zstd_multi_frame() { accept zs_multi.tzst; }
case_zstd_truncated() { refuse zs_trunc.tzst 'truncated' '' ''; }
case_zstd_garbage() { refuse zs_garbage.tzst 'not a zstd frame' 'before mid after' ''; }
case_zstd_window() { refuse zs_window.tzst 'zstd frame at byte 0' '' 'before mid after'; }

# ---- the tar's end ----------------------------------------------------------
case_tar_no_end_blocks() { refuse tar_noend.tar 'no end-of-archive blocks' 'before mid after' ''; }
case_tar_one_end_block() { refuse tar_oneend.tar 'end-of-archive blocks cut short' 'before mid after' ''; }
# cut at an entry boundary: it looks whole, but is not
case_tar_cut() { refuse tar_cut.tar 'no end-of-archive blocks' 'before mid' after; }
case_tar_cut_gzip() { refuse tar_cut.tgz 'no end-of-archive blocks' 'before mid' after; }
case_tar_zero_padding() {
	accept tar_pad.tar
	# GNU tar pads to 10240 bytes
	rm -rf "$T/src"
	mkdir -p "$T/src"
	echo 1 >"$T/src/before"
	echo 2 >"$T/src/after"
	tar -C "$T/src" -cf "$L/gnu.tar" before after || fail "GNU tar"
	assert_eq 10240 "$(stat -c %s "$L/gnu.tar")" "GNU tar's padding"
	new_root
	expect_status 0 "$LAYERSNAP" apply "$L/gnu.tar" "$R"
	[ "$(cat "$R/after")" = 2 ] || fail "GNU tar layer"
}
case_tar_data_after_end() { refuse tar_padjunk.tar 'data after the end-of-archive blocks' 'before mid after' ''; }
case_tar_concatenated() { refuse tar_concat.tar 'data after the end-of-archive blocks' 'before mid after' extra; }

# ---- sparse maps ------------------------------------------------------------
case_sparse_beyond_size() {
	refuse sp_beyond.tar 'reaches past the size' before 'sp after'
	[ -z "$(find "$R" -size +1M)" ] || fail "a big file was made"
}
case_sparse_overlap() { refuse sp_overlap.tar 'overlap' before 'sp after'; }
case_sparse_backwards() { refuse sp_backwards.tar 'out of order' before 'sp after'; }
case_sparse_overflow() { refuse sp_overflow.tar 'sparse map' before 'sp after'; }
case_sparse_negative_01() { refuse sp_neg01.tar 'sp: bad layer' before 'sp after'; }
case_sparse_negative_00() { refuse sp_neg00.tar 'sparse map' before 'sp after'; }
case_sparse_short() { refuse sp_short.tar 'sp: bad layer' before 'sp after'; }
case_sparse_long() { refuse sp_long.tar 'sparse map and stored size disagree' before 'sp after'; }
case_sparse_smuggled_entry() {
	refuse sp_smuggle.tar 'sparse map and stored size disagree' before 'sp smuggled after'
	# what other extractors see
	assert_eq "$(printf '%s\n' before sp after)" "$(tar -tf "$L/sp_smuggle.tar")" "GNU tar's view"
}
# the headers are read again from the stream: the largest libarchive takes
# (a pax header of nearly 1 MiB) is still at hand
case_large_header() {
	python3 -c 'print("file before 1"); print("file big x xattr.user.k=" + "v" * 740000); print("file after 2")' |
		"$MKTAR" >"$L/bighdr.tar" || fail mktar
	local z
	for z in cat "gzip -c" "zstd -q -c"; do
		$z "$L/bighdr.tar" >"$L/bighdr.layer"
		new_root
		expect_status 0 "$LAYERSNAP" apply "$L/bighdr.layer" "$R"
		[ "$(cat "$R/big")" = x ] && [ "$(cat "$R/after")" = 2 ] || fail "large header ($z)"
		grep -v 'xattr user.k not restored' "$T/stderr" && fail "large header ($z): stderr"
	done
	return 0
}
case_sparse_written_sparse() {
	new_root
	expect_status 0 "$LAYERSNAP" apply "$L/sp_ok.tar" "$R"
	assert_eq $((1 << 26)) "$(stat -c %s "$R/sp")" "sparse size"
	python3 - "$R/sp" <<'EOF' || fail "sparse content"
import sys
d = open(sys.argv[1], 'rb').read()
want = bytearray(1 << 26)
want[0:512] = b'x' * 512
want[1 << 20:(1 << 20) + 4096] = b'x' * 4096
sys.exit(d != bytes(want))
EOF
	[ "$(stat -c %b "$R/sp")" -lt 1024 ] || fail "holes were written: $(stat -c %b "$R/sp") blocks"
	# GNU tar's sparse formats: pax 1.0, 0.1, 0.0 and the old gnu one
	rm -rf "$T/src"
	mkdir -p "$T/src"
	python3 - "$T/src/s" <<'EOF'
import sys
with open(sys.argv[1], 'wb') as f:
    for off in (0, 5 << 20, 20 << 20):
        f.seek(off)
        f.write(bytes(range(256)) * 64)
    f.truncate(32 << 20)
EOF
	local v
	for v in posix:1.0 posix:0.1 posix:0.0 gnu; do
		case $v in
		posix:*) tar -C "$T/src" --format=posix --sparse-version="${v#*:}" -cf "$L/gs.tar" s ;;
		gnu) tar -C "$T/src" --format=gnu --sparse -cf "$L/gs.tar" s ;;
		esac || fail "GNU tar $v"
		new_root
		expect_status 0 "$LAYERSNAP" apply "$L/gs.tar" "$R"
		cmp "$T/src/s" "$R/s" || fail "GNU tar $v sparse: content"
		[ "$(stat -c %b "$R/s")" -lt 2048 ] || fail "GNU tar $v sparse: holes written"
	done
}

# ---- ids --------------------------------------------------------------------
case_uid_max() { refuse uid_max.tar 'bad: bad layer: uid 4294967295 cannot be represented' before 'bad after'; }
case_gid_max() { refuse gid_max.tar 'gid 4294967295' before 'bad after'; }
case_uid_big() { refuse uid_big.tar 'uid 4294967296' before 'bad after'; }
case_uid_largest() {
	new_root
	expect_status 0 "$LAYERSNAP" apply "$L/uid_ok.tar" "$R"
	if is_root; then
		assert_eq 4294967294:70000 "$(stat -c %u:%g "$R/ok")" "largest uid"
	else
		partial_skip root "not root: the largest uid and a large gid (4294967294:70000) set by apply"
	fi
}

# ---- setuid and setgid when not root ----------------------------------------
case_setid_not_root() {
	is_root || { partial_skip root "setuid/setgid as another user"; return 0; }
	command -v setpriv >/dev/null || { partial_skip setpriv "setuid/setgid as another user"; return 0; }
	local n=$T/nobody
	local as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	rm -rf "$n"
	mkdir -p "$n"
	chmod 0711 "$T"
	chown 65534:65534 "$n"
	$as_nobody test -x "$LAYERSNAP" -a -w "$n" 2>/dev/null ||
		{ partial_skip setuid "nobody cannot run $LAYERSNAP: setuid/setgid as another user"; return 0; }
	printf '%s\n' 'file s x mode=4755 uid=65534 gid=65534' 'file g x mode=2755 uid=65534 gid=65534' \
		'file n x mode=0755 uid=65534 gid=65534' | "$MKTAR" >"$L/setid.tar"
	chmod 0644 "$L/setid.tar"
	chmod 0755 "$L"
	expect_status 0 $as_nobody "$LAYERSNAP" apply "$L/setid.tar" "$n"
	assert_eq 1 "$(grep -c . "$T/stderr")" "one warning"
	grep -q '^layersnap: warning: .*setuid and setgid bits are dropped' "$T/stderr" ||
		fail "warning: $(cat "$T/stderr")"
	assert_eq "755 755 755" "$(stat -c %a "$n/s" "$n/g" "$n/n" | tr '\n' ' ' | sed 's/ $//')" "dropped"
	rm -rf "$n"/*
	expect_status 0 $as_nobody "$LAYERSNAP" apply --keep-setid "$L/setid.tar" "$n"
	[ ! -s "$T/stderr" ] || fail "--keep-setid: stderr: $(cat "$T/stderr")"
	assert_eq "4755 2755 755" "$(stat -c %a "$n/s" "$n/g" "$n/n" | tr '\n' ' ' | sed 's/ $//')" "kept"
	# root keeps them without a word
	rm -rf "$n"/*
	expect_status 0 "$LAYERSNAP" apply "$L/setid.tar" "$n"
	[ ! -s "$T/stderr" ] || fail "root: stderr: $(cat "$T/stderr")"
	assert_eq "4755 2755" "$(stat -c %a "$n/s" "$n/g" | tr '\n' ' ' | sed 's/ $//')" "root"
}

# ---- SIGTERM in the middle of a file ----------------------------------------
# The layer comes through a fifo that stops 1 MiB into a 4 GiB entry; the
# apply is killed while it waits there.
sigterm_once() { # WHAT [ENV=VALUE]
	local what=$1 pid feeder st i
	new_root
	rm -f "$T/fifo"
	mkfifo "$T/fifo"
	python3 "$T/craft.py" feed "$T/fifo" "$L/bighead.tar" &
	feeder=$!
	env ${2:+"$2"} "$LAYERSNAP" apply "$T/fifo" "$R" 2>"$T/stderr" &
	pid=$!
	# wait until the file the big entry goes to (whatever its name) has
	# its megabyte
	for i in $(seq 200); do
		if [ -f "$R/before" ]; then
			local f got=0
			for f in $(find "/proc/$pid/fd" -lname "$R/*" 2>/dev/null); do
				[ -f "$f" ] && [ "$(stat -L -c %s "$f" 2>/dev/null || echo 0)" -ge $((1 << 20)) ] && got=1
			done
			[ $got = 1 ] && break
		fi
		sleep 0.05
	done
	[ "$i" -lt 200 ] || { kill "$pid" "$feeder"; fail "$what: apply never got into the big entry"; }
	kill -TERM "$pid"
	wait "$pid"
	st=$?
	kill "$feeder" 2>/dev/null
	wait "$feeder" 2>/dev/null
	assert_eq 143 "$st" "$what: killed by SIGTERM"
	[ ! -e "$R/big" ] || fail "$what: partial file under its final name ($(stat -c %s "$R/big") bytes)"
	[ "$(cat "$R/before")" = 1 ] || fail "$what: the entry before is missing"
}
case_sigterm() {
	sigterm_once "O_TMPFILE"
	no_leftovers "SIGTERM"
	# a later apply finds nothing in its way
	expect_status 0 "$LAYERSNAP" apply "$L/big.tar" "$R"
	assert_eq $((4 << 20)) "$(stat -c %s "$R/big")" "big after a new apply"
	no_leftovers "re-apply"
}
case_sigterm_named_temporary() {
	sigterm_once "named temporary" LAYERSNAP_TEST_NO_TMPFILE=1
	# what a kill leaves is a name walks skip, and no apply trips on
	local left
	left=$(cd "$R" && find . -name '*layersnap-tmp*')
	case $left in ./.big.layersnap-tmp.??????) ;; *) fail "unexpected leftovers: $left" ;; esac
	LAYERSNAP_TEST_NO_TMPFILE=1 expect_status 0 "$LAYERSNAP" apply "$L/big.tar" "$R"
	assert_eq $((4 << 20)) "$(stat -c %s "$R/big")" "big after a new apply"
	expect_status 0 "$LAYERSNAP" scan --mode time "$R" -o "$T/m"
	"$LAYERSNAP" dump "$T/m" >"$T/dump" || fail "dump"
	! grep -q 'layersnap-tmp' "$T/dump" || fail "the scan saw the temporary"
	grep -q '^\./big ' "$T/dump" || fail "the scan lacks big"
	assert_eq "$left" "$(cd "$R" && find . -name '*layersnap-tmp*')" "the new apply left no temporary of its own"
}
# the named fallback cleans up after a refused entry too
case_named_temporary_refused() {
	new_root
	LAYERSNAP_TEST_NO_TMPFILE=1 expect_error "$LAYERSNAP" apply "$L/sp_short.tar" "$R"
	no_leftovers "refused with named temporaries"
	LAYERSNAP_TEST_NO_TMPFILE=1 expect_status 0 "$LAYERSNAP" apply "$L/base.tar" "$R"
	[ "$(cat "$R/mid" | wc -c)" = 3000 ] || fail "named temporaries: content"
	no_leftovers "named temporaries"
}

# ---- bombs keep memory bounded ----------------------------------------------
# 256 MiB of zeros after the end blocks, all decompressed and checked.
case_bomb_memory() {
	[ -x /usr/bin/time ] || { partial_skip time "/usr/bin/time: peak memory of a bomb"; return 0; }
	{ cat "$L/base.tar"; head -c 256M /dev/zero; } | gzip -1 >"$L/bomb.tgz"
	{ cat "$L/base.tar"; head -c 256M /dev/zero; } | zstd -q -1 >"$L/bomb.tzst"
	local b kb
	for b in bomb.tgz bomb.tzst; do
		new_root
		/usr/bin/time -f %M -o "$T/rss" "$LAYERSNAP" apply "$L/$b" "$R" 2>"$T/stderr" ||
			fail "$b: $(cat "$T/stderr")"
		kb=$(tail -n 1 "$T/rss")
		echo "$b: peak RSS ${kb} KiB"
		[ "$kb" -lt 40000 ] || fail "$b: peak RSS $kb KiB"
	done
	rm -f "$L/bomb.tgz" "$L/bomb.tzst"
}

for c in $(declare -F | sed -n 's/^declare -f case_//p'); do
	run "$c"
	[ ${#failed[@]} -eq 0 ] || [ "${LS_HOSTILE_ALL:-}" = 1 ] || break
done
if [ ${#failed[@]} -gt 0 ]; then
	fail "${#failed[@]} case(s) failed: ${failed[*]}"
fi
echo "apply_hostile: ok"
