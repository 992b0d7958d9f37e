#!/bin/bash
# Regenerates the seed corpora of the fuzz targets, tests/fuzz/corpus/TARGET/,
# from a small tree with every kind of entry and awkward name:
#   manifest  real manifests of it (full, redo, time; excludes; --xattrs all
#             and none; --one-file-system; an empty tree), and one with
#             exclude patterns (the option block rewritten: no CLI flag yet)
#   apply     our layers (full and diff, plain, gzip and zstd, --opaque), GNU
#             tar (pax, gnu and pax with a sparse file, ustar), bsdtar (pax with
#             xattrs, ustar, gnutar), umoci layers (two, the second with
#             whiteouts), and every crafted case of tests/e2e/apply_escape.sh
#             (its `refuse` and `mklayer` lines, built with tests/tools/mktar)
#   dump      the manifests above in fuzz_dump.c's input encoding
#   tests/fuzz/make-corpus.sh BUILD     (BUILD/layersnap, BUILD/tools/mktar)
# Tools that are missing (bsdtar, umoci, setcap) leave their seeds out.  The
# seeds are committed: rerun this only to refresh them.
set -u
cd "$(dirname "$0")/../.." || exit 2
B=${1:-build}
L=$PWD/$B/layersnap
MKTAR=$PWD/$B/tools/mktar
[ -x "$L" ] && [ -x "$MKTAR" ] || { echo "make-corpus.sh: build $B first (make test-build)" >&2; exit 2; }
OUT=$PWD/tests/fuzz/corpus
T=$(mktemp -d /tmp/layersnap-corpus.XXXXXX)
trap 'rm -rf "$T"' EXIT
export LC_ALL=C SOURCE_DATE_EPOCH=1700000000
mkdir -p "$OUT/manifest" "$OUT/apply" "$OUT/dump"
rm -f "$OUT"/manifest/* "$OUT"/apply/* "$OUT"/dump/*

# ---- the tree ----------------------------------------------------------------
R=$T/tree
mkdir -p "$R/d/sub/deeper" "$R/d-x" "$R/d.x" "$R/empty" "$R/sticky" "$R/ex/cluded" "$R/names"
echo one >"$R/d/f"
printf 'two\n%.0s' 1 2 3 >"$R/d/sub/g"
: >"$R/d/empty-file"
head -c 3000 /dev/zero | tr '\0' 'x' >"$R/d/sub/deeper/medium"
echo linked >"$R/d/h1"
ln "$R/d/h1" "$R/d/h2"
ln "$R/d/h1" "$R/d-x/h3"
ln -s f "$R/d/rel-link"
ln -s /etc/passwd "$R/d/abs-link"
ln -s ../nowhere/at/all "$R/d/dangling"
ln -s sub "$R/d/dir-link"
mkfifo "$R/d/fifo"
chmod 4755 "$R/d/f"
chmod 1777 "$R/sticky"
chmod 0700 "$R/d/sub"
echo x >"$R/ex/cluded/file"
echo y >"$R/d.x/y"
for n in 'sp ace' $'new\nline' $'tab\there' 'star*' 'q?' 'br[acket' 'ha#sh' 'eq=ual' 'back\slash' \
	$'\xff\xfe-not-utf8' $'caf\xc3\xa9' '.wh.lookalike-not' '-dash' "$(printf 'L%.0s' $(seq 200))"; do
	echo "$n" >"$R/names/$n" 2>/dev/null || true
done
rm -f "$R/names/.wh.lookalike-not"  # a layer cannot carry it: diff refuses
touch -h -d @-1000 "$R/d/dangling" 2>/dev/null || true
touch -d @4102444800 "$R/d/sub/g"
if [ "$(id -u)" = 0 ]; then
	mknod "$R/d/null" c 1 3 && mknod "$R/d/loop" b 7 0
	chown 3000000:4000000 "$R/d/f"
	chown -h 7:8 "$R/d/rel-link"
	command -v setcap >/dev/null && setcap cap_net_bind_service+ep "$R/d/sub/g" 2>/dev/null
fi
setfattr -n user.k -v v1 "$R/d/f" 2>/dev/null
setfattr -n user.bin -v 0x00ff00 "$R/d/f" 2>/dev/null
setfattr -n user.dir -v d "$R/d" 2>/dev/null
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$R/d/sock" 2>/dev/null

# ---- manifests -------------------------------------------------------------------
M=$OUT/manifest
"$L" scan "$R" -o "$M/full.lsm"
"$L" scan --mode redo "$R" -o "$M/redo.lsm"
"$L" scan --mode time "$R" -o "$M/time.lsm"
"$L" scan -x ex/cluded -x /names -x d/sub/deeper "$R" -o "$M/excludes.lsm"
"$L" scan --xattrs all "$R" -o "$M/xattrs-all.lsm"
"$L" scan --xattrs none --one-file-system "$R/d" -o "$M/xattrs-none-ofs.lsm"
"$L" scan "$R/empty" -o "$M/empty.lsm"
"$L" scan "$R/d/sub" -o "$M/small.lsm"
# patterns: the option block of small.lsm rewritten with three of them (the
# checksum too, though the target recomputes it)
python3 - "$M/small.lsm" "$M/patterns.lsm" <<'EOF'
import struct, subprocess, sys, tempfile
b = open(sys.argv[1], 'rb').read()
hl = struct.unpack_from('<I', b, 12)[0]
ne, el, npat, pl = struct.unpack_from('<IIII', b, 32)
excl = b[48:48 + el]
pats = b'*.o\0!keep.o\0/build/\0'
opts = struct.pack('<IIII', ne, el, 3, len(pats)) + excl + pats
used = 32 + len(opts)
nhl = (used + 7) & ~7
head = bytearray(b[:32])
struct.pack_into('<I', head, 12, nhl)
body = bytes(head) + opts + b'\0' * (nhl - used) + b[hl:-8]
with tempfile.NamedTemporaryFile() as f:
    f.write(body); f.flush()
    h = subprocess.run(['xxhsum', '-H3', f.name], capture_output=True, text=True).stdout.split()[-1]
open(sys.argv[2], 'wb').write(body + bytes.fromhex(h)[::-1])
EOF
"$L" dump "$M/patterns.lsm" >/dev/null || echo "make-corpus.sh: patterns.lsm is not accepted" >&2

# ---- layers ------------------------------------------------------------------------
A=$OUT/apply
# without the device nodes: a root apply stops at the first one when it
# cannot make devices, as under the fuzz target (crafted-devices has them)
rm -f "$R/d/null" "$R/d/loop"
"$L" diff "$R" -o "$A/ours-full.tar" -q --manifest-out "$T/base.lsm" --xattrs all
"$L" diff "$R" -o "$A/ours-full.tar.gz" --compress gzip -q --xattrs all
"$L" diff "$R" -o "$A/ours-full.tar.zst" --compress zstd -q --xattrs all
# a build step: deletions, a type change, edits, a new subtree
rm -r "$R/d/sub/deeper" "$R/d/h2" "$R/names"
rm "$R/d/rel-link" && mkdir "$R/d/rel-link" && echo now-a-dir >"$R/d/rel-link/x"
echo edited >>"$R/d/f"
rm -r "$R/ex" && echo was-a-dir >"$R/ex"
mkdir -p "$R/new/deep" && echo new >"$R/new/deep/file"
rm -f "$R/d-x/h3" "$R/d.x/y"
"$L" diff "$R" --base "$T/base.lsm" -o "$A/ours-diff.tar" -q --xattrs all
"$L" diff "$R" --base "$T/base.lsm" -o "$A/ours-diff-opaque.tar.gz" --compress gzip --opaque -q --xattrs all
"$L" diff "$R" --base "$T/base.lsm" -o "$A/ours-diff.tar.zst" --compress zstd -q --xattrs all

S=$T/src
mkdir -p "$S/dir/sub"
echo hello >"$S/dir/file"
ln -s file "$S/dir/link"
ln "$S/dir/file" "$S/dir/hard"
mkfifo "$S/dir/fifo"
mkdir -p "$S/sparse"
dd if=/dev/zero of="$S/sparse/file" bs=1 count=0 seek=1M status=none
printf 'data' | dd of="$S/sparse/file" bs=1 seek=65536 conv=notrunc status=none
echo long >"$S/dir/sub/$(printf 'n%.0s' $(seq 150))"
setfattr -n user.t -v tv "$S/dir/file" 2>/dev/null
tar -C "$S" --format=pax --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner \
	-cf "$A/gnutar-pax.tar" dir
tar -C "$S" --format=gnu --sparse -cf "$A/gnutar-gnu-sparse.tar" dir sparse
tar -C "$S" --format=pax --sparse -cf "$A/gnutar-pax-sparse.tar" sparse
tar -C "$S" --format=ustar -cf "$A/gnutar-ustar.tar" dir/file dir/link dir/hard dir/fifo
tar -C "$S" --format=pax --xattrs -czf "$A/gnutar-xattrs.tar.gz" dir/file dir/link
if command -v bsdtar >/dev/null; then
	bsdtar -C "$S" --format=pax --xattrs -cf "$A/bsdtar-pax.tar" dir
	bsdtar -C "$S" --format=ustar -cf "$A/bsdtar-ustar.tar" dir/file dir/link dir/hard
	bsdtar -C "$S" --format=gnutar -cf "$A/bsdtar-gnutar.tar" dir
	bsdtar -C "$S" --format=pax --zstd -cf "$A/bsdtar-pax.tar.zst" dir/file dir/sub
fi
if command -v umoci >/dev/null; then
	U=$T/umoci
	rootless=
	[ "$(id -u)" = 0 ] || rootless=--rootless
	if umoci init --layout "$U/img" >/dev/null 2>&1 && umoci new --image "$U/img:t0" >/dev/null 2>&1 &&
		umoci unpack $rootless --image "$U/img:t0" "$U/b" >/dev/null 2>&1; then
		RF=$U/b/rootfs
		mkdir -p "$RF/etc" "$RF/gone/deeper" "$RF/opq/x"
		echo hi >"$RF/etc/f"
		ln "$RF/etc/f" "$RF/etc/hard"
		ln -s ../etc/f "$RF/gone/l"
		echo x >"$RF/gone/deeper/x"
		echo o >"$RF/opq/x/o"
		umoci repack --image "$U/img:t1" "$U/b" >/dev/null 2>&1
		# the next change in a bundle of t1, whose mtree the diff is against
		umoci unpack $rootless --image "$U/img:t1" "$U/b2" >/dev/null 2>&1
		RF=$U/b2/rootfs
		rm -r "$RF/gone" "$RF/opq/x"
		echo more >>"$RF/etc/f"
		echo n >"$RF/new"
		umoci repack --image "$U/img:t2" "$U/b2" >/dev/null 2>&1
		i=0
		# the layer blobs: the gzip'd ones among the blobs
		for blob in "$U"/img/blobs/sha256/*; do
			if [ "$(head -c 2 "$blob" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
				i=$((i + 1))
				cp "$blob" "$A/umoci-layer-$i.tar.gz"
			fi
		done
	fi
fi

# the crafted cases of apply_escape.sh: each `refuse NAME SPEC...` and
# `mklayer SPEC...` line, with the layer built as that script builds it
# shellcheck disable=SC2034  # used by the eval'd lines
SENT=/tmp/layersnap-sentinel
n=0
mklayer() {
	n=$((n + 1))
	{ echo 'file before 1'; printf '%s\n' "$@"; echo 'file after 2'; } | "$MKTAR" >"$A/escape-$(printf %02d $n).tar" ||
		echo "make-corpus.sh: mktar failed on: $*" >&2
}
refuse() { shift; mklayer "$@"; }
while IFS= read -r line; do
	eval "$line"
done < <(sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' tests/e2e/apply_escape.sh | grep -E '^(refuse|mklayer) ')
# and a few hand-made ones: devices, whiteouts in many shapes, metadata
# (the real devices last: apply stops there under the fuzz target)
printf '%s\n' 'dir d uid=1 gid=2 mode=0750' 'char d/wh 0 0' 'fifo d/p' \
	'file d/.wh.gone' 'file .wh..wh..opq' 'file d/x data=a=b xattr.user.k=v xattr.security.capability=\x01\x00\x00\x02' \
	'hardlink d/hl d/x' 'symlink d/s ../d/x' 'dir . mode=0711 mtime=1.5' 'char d/c 1 3' 'block d/b 8 0' |
	"$MKTAR" -z >"$A/crafted-devices.tar.gz"
printf '%s\n' 'dir a' 'file a/f 1' 'file a/.wh..wh..opq' 'dir a/b' 'file a/b/.wh.c' 'file ./a/g 2' \
	'symlink l a' 'file .wh.l' 'file l/f x' | "$MKTAR" -Z >"$A/crafted-whiteouts.tar.zst"

# ---- dump seeds: the manifests in fuzz_dump.c's encoding -------------------------------
for m in "$M"/*.lsm; do
	"$L" dump "$m" --format json >"$T/m.json" || continue
	python3 - "$T/m.json" "$OUT/dump/$(basename "$m" .lsm).bin" <<'EOF'
import json, re, struct, sys
text = open(sys.argv[1], encoding='utf-8').read()
# \u00XX for XX >= 0x80 is a raw byte (valid UTF-8 passes through as is):
# mark those before json.loads, which would make both the same character
text = re.sub(r'(\\\\)|\\u00([89a-fA-F][0-9a-fA-F])',
              lambda m: m.group(1) or '\\u%04x' % (0xf700 + int(m.group(2), 16)), text)
doc = json.loads(text)
def raw(s):
    out = bytearray()
    for ch in s:
        c = ord(ch)
        out += bytes([c - 0xf700]) if 0xf780 <= c <= 0xf7ff else ch.encode('utf-8')
    return bytes(out)
modes = {'time': 0, 'redo': 1, 'full': 2}
pols = {'capability': 0, 'all': 1, 'none': 2}
types = {'file': 0, 'dir': 1, 'link': 2, 'fifo': 3, 'char': 4, 'block': 5, 'socket': 6}
ex = [raw(e) for e in doc['excludes']][:3]
pat = [raw(p) for p in doc['patterns']][:3]
sec, _, nsec = str(doc['scan_start']).partition('.')
out = bytearray(struct.pack('<BBB', modes[doc['mode']], pols[doc['xattrs']],
                            int(doc['one_file_system']) | len(ex) << 1 | len(pat) << 3))
out += struct.pack('<qI', int(sec), int((nsec + '000000000')[:9]))
for s in ex + pat:
    out += struct.pack('<B', min(len(s), 255)) + s[:255]
def makedev(ma, mi):
    return ((ma & 0xfffff000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffffff00) << 12) | (mi & 0xff)
for e in doc['entries']:
    kind = types[e['type']] | (8 if 'xxh3_128' in e else 0) | (16 if e.get('mountpoint') else 0)
    path = raw(e['path'])[:65535]
    link = raw(e.get('link', ''))[:255]
    xb = b''
    for name, val in sorted(e.get('xattrs', {}).items()):
        n, v = raw(name), bytes.fromhex(val)
        xb += struct.pack('<HI', len(n), len(v)) + n + v
    out += struct.pack('<BH', kind, len(path)) + path + struct.pack('<B', len(link)) + link
    out += struct.pack('<H', len(xb)) + xb
    rdev = makedev(*e['rdev']) if 'rdev' in e else 0
    out += struct.pack('<QqqQQQHIII', e['size'], e['mtime_ns'], e['ctime_ns'], e['dev'], e['ino'], rdev,
                       int(e['mode'], 8), e['uid'], e['gid'], e['nlink'])
    out += bytes.fromhex(e.get('xxh3_128', '00' * 16))
open(sys.argv[2], 'wb').write(out)
EOF
done
printf '\x02\x01\x1f\x00\x00\x00\x80\x00\x00\x00\x80\x00\x00\x00\x00\x03a/b\x02..\x01*\x01!\x06/x/y/z' >"$OUT/dump/options-only.bin"

# inconsistent manifests: each a seed above with one invariant broken, the
# checksum recomputed (the reader refuses every one)
python3 tests/fuzz/bad-manifests.py "$OUT/manifest" || echo "make-corpus.sh: bad-manifests.py failed" >&2

for d in manifest apply dump; do
	echo "$d: $(find "$OUT/$d" -type f | wc -l) seeds, $(du -sk "$OUT/$d" | cut -f1) KiB"
done
