#!/bin/bash
# diff --compress gzip|zstd: the blob does not depend on -j (gzip: members of
# fixed-size chunks compressed in parallel; zstd: workers and a fixed job
# size), and every reader takes it: gzip -t, zstd -t, Python's gzip and
# tarfile, umoci (Go), Go's compress/gzip when go is installed, and apply,
# which gives the tree back.  --descriptor's digest is the blob's sha256 and
# its diffID the uncompressed layer's.
. "$(dirname "$0")/lib.sh"

T=$LS_TMP
R=$T/root
L() { "$LAYERSNAP" "$@"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
command -v $PY >/dev/null || skip python3 "python3 not installed"

# About 12 MiB of tar: a dozen gzip members, two zstd jobs; compressible
# text, noise, many small files, links, a fifo.
mkdir -p "$R/text/deep" "$R/bin" "$R/small" "$R/empty"
(
	cd "$R" || exit 1
	seq 1 1500000 >text/deep/numbers.txt
	head -c 1500000 /dev/urandom >bin/noise
	ln bin/noise bin/noise-link
	ln -s ../bin/noise small/to-noise
	for i in $(seq 1 300); do printf 'small file %d\n' "$i" >"small/f$i"; done
	printf '#!/bin/sh\n' >bin/run && chmod 0755 bin/run
	mkfifo small/fifo
	find . -mindepth 1 -exec touch -h -d @1600000000.5 {} +
) || fail "making the tree"

L diff "$R" -o "$T/plain.tar" --manifest-out "$T/m" --descriptor "$T/plain.desc" -q ||
	fail "uncompressed layer"
TAR_SHA=$(sha "$T/plain.tar")
[ "$(stat -c %s "$T/plain.tar")" -gt $((9 * 1024 * 1024)) ] || fail "the tree is too small"

desc_field() { # FILE KEY...: a field of a --descriptor file
	$PY -c 'import json,sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d = d[k]
print(d)' "$@"
}

for c in gzip zstd; do
	for j in 1 2 4; do
		L diff "$R" --compress $c -j $j -o "$T/l.$c.$j" --descriptor "$T/d.$c.$j" -q ||
			fail "--compress $c -j $j"
		cmp -s "$T/l.$c.1" "$T/l.$c.$j" || fail "--compress $c: -j $j gives other bytes than -j 1"
		cmp -s "$T/d.$c.1" "$T/d.$c.$j" || fail "--compress $c: -j $j gives another descriptor"
	done
	B=$T/l.$c.1
	D=$T/d.$c.1
	assert_eq "sha256:$(sha "$B")" "$(desc_field "$D" descriptor digest)" "$c: descriptor digest"
	assert_eq "$(stat -c %s "$B")" "$(desc_field "$D" descriptor size)" "$c: descriptor size"
	assert_eq "sha256:$TAR_SHA" "$(desc_field "$D" diffID)" "$c: diffID"
	assert_eq "application/vnd.oci.image.layer.v1.tar+$c" "$(desc_field "$D" descriptor mediaType)" \
		"$c: media type"
	# the level changes the blob, never the tar in it; nor does -j at another level
	L diff "$R" --compress $c --level 1 -j 1 -o "$T/l1.$c" -q || fail "--compress $c --level 1"
	L diff "$R" --compress $c --level 1 -j 4 -o "$T/l1.$c.4" -q || fail "--compress $c --level 1 -j 4"
	cmp -s "$T/l1.$c" "$T/l1.$c.4" || fail "--compress $c --level 1: -j 4 gives other bytes than -j 1"
	cmp -s "$T/l1.$c" "$B" && fail "--compress $c: --level 1 gives the default level's blob"
done

# --- the command-line tools ---------------------------------------------------------------
gzip -t "$T/l.gzip.1" || fail "gzip -t"
gzip -dc "$T/l.gzip.1" | cmp -s - "$T/plain.tar" || fail "gzip -dc is not the uncompressed layer"
gzip -dc "$T/l1.gzip" | cmp -s - "$T/plain.tar" || fail "gzip -dc of --level 1 is not the uncompressed layer"
if command -v zstd >/dev/null; then
	zstd -q -t "$T/l.zstd.1" || fail "zstd -t"
	zstd -q -dc "$T/l.zstd.1" | cmp -s - "$T/plain.tar" || fail "zstd -dc is not the uncompressed layer"
	zstd -q -dc "$T/l1.zstd" | cmp -s - "$T/plain.tar" || fail "zstd -dc of --level 1 is not the uncompressed layer"
else
	partial_skip zstd "zstd not installed: zstd -t not run"
fi

# --- Python: gzip.decompress, tarfile; the member headers ------------------------------------
$PY -c 'import gzip,sys; gzip.decompress(open(sys.argv[1],"rb").read())' "$T/l.gzip.1" ||
	fail "python gzip.decompress"
$PY - "$T/l.gzip.1" "$T/plain.tar" <<'EOF' || fail "python: gzip members and tarfile"
import gzip, hashlib, sys, tarfile, zlib
blob = open(sys.argv[1], "rb").read()
plain = open(sys.argv[2], "rb").read()
assert gzip.decompress(blob) == plain, "gzip.decompress differs from the tar"
# walk the members: each one complete, with a fixed header
pos, members, out = 0, 0, []
while pos < len(blob):
    head = blob[pos:pos + 10]
    assert head == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "member %d header %r" % (members, head)
    d = zlib.decompressobj(16 + 15)
    out.append(d.decompress(blob[pos:]))
    assert d.eof, "member %d is truncated" % members
    pos = len(blob) - len(d.unused_data)
    members += 1
assert b"".join(out) == plain
want = (len(plain) + (1 << 20) - 1) >> 20
assert members == want, "%d members, expected one per MiB: %d" % (members, want)
with tarfile.open(sys.argv[1], "r:gz") as gz, tarfile.open(sys.argv[2], "r:") as t:
    a = [(m.name, m.type, m.size, m.mtime, m.linkname) for m in gz]
    b = [(m.name, m.type, m.size, m.mtime, m.linkname) for m in t]
assert a == b and len(a) > 300, "tarfile lists differ"
EOF

# --- Go's compress/gzip, when there is a go toolchain ---------------------------------------
if command -v go >/dev/null; then
	mkdir -p "$T/gz"
	cat >"$T/gz/main.go" <<'EOF'
package main

import (
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	r, err := gzip.NewReader(f)
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", h.Sum(nil))
}
EOF
	got=$(cd "$T/gz" && GOCACHE=$T/gocache GO111MODULE=off GOFLAGS= go run main.go "$T/l.gzip.1") ||
		fail "go: compress/gzip"
	assert_eq "$TAR_SHA" "$got" "go: compress/gzip reads the whole tar"
else
	partial_skip go "go not installed: Go's compress/gzip not run (umoci below reads with Go)"
fi

# --- apply: each layer onto an empty directory gives the tree -------------------------------
for b in "l.gzip.1" "l.zstd.1" "l1.gzip" "l1.zstd"; do
	rm -rf "$T/out"
	mkdir "$T/out"
	L apply -q "$T/$b" "$T/out" || fail "apply $b"
	expect_status 0 L compare --mode full --mtime-seconds "$T/m" "$T/out"
done
rm -rf "$T/out"
mkdir "$T/out"
L apply -q - "$T/out" <"$T/l.gzip.1" || fail "apply - <gzip layer"
expect_status 0 L compare --mode full --mtime-seconds "$T/m" "$T/out"

# --- umoci: an image made by hand around the gzip blob and its descriptor -------------------
if ! command -v umoci >/dev/null; then
	partial_skip umoci "umoci not installed: umoci unpack not run"
else
	IMG=$T/img
	$PY - "$IMG" "$T/l.gzip.1" "$T/d.gzip.1" <<'EOF' || fail "making an OCI image"
import hashlib, json, os, shutil, sys
img, blob, desc_path = sys.argv[1:]
desc = json.load(open(desc_path))
os.makedirs(os.path.join(img, "blobs", "sha256"))
def put(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(img, "blobs", *digest.split(":")), "wb") as f:
        f.write(data)
    return digest, len(data)
shutil.copyfile(blob, os.path.join(img, "blobs", *desc["descriptor"]["digest"].split(":")))
config = {"architecture": "amd64", "os": "linux", "config": {},
          "rootfs": {"type": "layers", "diff_ids": [desc["diffID"]]}}
cd, cs = put(json.dumps(config).encode())
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [desc["descriptor"]]}
md, ms = put(json.dumps(manifest).encode())
index = {"schemaVersion": 2, "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
     "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
json.dump(index, open(os.path.join(img, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(img, "oci-layout"), "w"))
EOF
	rootless=
	is_root || rootless=--rootless
	umoci unpack $rootless --image "$IMG:t" "$T/bundle" 2>"$T/umoci.err" ||
		{ cat "$T/umoci.err" >&2; fail "umoci unpack of the gzip layer"; }
	cmp -s "$R/text/deep/numbers.txt" "$T/bundle/rootfs/text/deep/numbers.txt" ||
		fail "umoci: numbers.txt differs"
	cmp -s "$R/bin/noise" "$T/bundle/rootfs/bin/noise" || fail "umoci: noise differs"
	diff -r --no-dereference --exclude=fifo "$R" "$T/bundle/rootfs" >&2 || fail "umoci: rootfs differs"
fi

echo ok
