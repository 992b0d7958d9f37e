#!/bin/bash
# diff, round trip through a real consumer: a full layer of a tree, then a
# diff layer after changes (add, modify, delete a file and a directory, type
# changes, chmod, chown, links), stacked into an OCI image and unpacked by
# umoci; the rootfs must be the changed tree: contents, types, modes, owners,
# link targets, hard links, mtimes in whole seconds.  Uncompressed layers go
# through `umoci raw add-layer`; gzip layers are put into the image by hand
# from --descriptor, so umoci also checks our digests and diff_ids.
. "$(dirname "$0")/lib.sh"

for t in umoci python3; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
is_root || skip root "umoci unpack keeps owners only as root"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
T=$LS_TMP
R=$T/root
L() { "$LAYERSNAP" "$@"; }
U() { umoci "$@" 2>"$T/umoci.err" || { cat "$T/umoci.err" >&2; fail "umoci $*"; }; }

mkdir -p "$R/etc" "$R/bin" "$R/var/lib/app/data" "$R/old/deep" "$R/tmp" "$R/home/user" "$R/t2d"
(
	cd "$R" || exit 1
	printf 'root:x:0:0\n' >etc/passwd
	printf 'secret\n' >etc/shadow && chmod 0600 etc/shadow
	head -c 70000 /dev/urandom >bin/tool && chmod 0755 bin/tool
	cp bin/tool bin/suid && chmod 4755 bin/suid
	ln bin/tool bin/tool-alias
	ln -s tool bin/link
	ln -s ../etc/passwd bin/passwd-link
	ln -s /nowhere dangling
	chmod 1777 tmp
	chmod 0700 home/user
	printf 'hi\n' >home/user/.profile
	chown -R 1000:1000 home/user
	printf 'data\n' >var/lib/app/data/db
	chown 12345:54321 var/lib/app/data/db
	printf 'o\n' >old/deep/file && printf 'o\n' >old/file
	printf 'file\n' >f2d
	printf 'x\n' >t2d/x
	printf 'keep\n' >keep
	mkfifo fifo
	find . -mindepth 1 -exec touch -h -d @1600000000.5 {} +
) || fail "making the tree"

# --- layer 1: the whole tree ----------------------------------------------------------------
L diff "$R" -o "$T/l1.tar" --manifest-out "$T/m1" -q || fail "full layer"
L diff "$R" -o "$T/l1.tar.gz" --compress gzip --descriptor "$T/l1.desc" -q || fail "full layer, gzip"

# --- changes --------------------------------------------------------------------------------
(
	cd "$R" || exit 1
	printf 'new\n' >etc/new
	printf 'root:x:0:0\nuser:x:1000:1000\n' >etc/passwd # modified
	rm bin/suid                                         # delete a file (and it was a copy)
	rm -r old                                           # delete a directory
	rm f2d && mkdir f2d && printf 'in\n' >f2d/in        # file -> directory
	rm -r t2d && ln -s etc t2d                          # directory -> symlink
	chmod 0640 etc/passwd && chmod 0711 var/lib/app     # chmod
	chown 2000:3000 var/lib/app/data/db                 # chown
	ln etc/new home/new-link                            # hard link to a new file
	ln keep var/keep-link                               # hard link to an old file
	ln -sfn tool-alias bin/link                         # retarget
	printf 'more data\n' >>bin/tool                     # the hard-linked file's content
	touch -h -d @1700000000.25 etc/new etc/passwd f2d/in bin/link
) || fail "changing the tree"
L diff "$R" --base "$T/m1" -o "$T/l2.tar" --manifest-out "$T/m2" -q || fail "diff layer"
L diff "$R" --base "$T/m1" -o "$T/l2.tar.gz" --compress gzip --descriptor "$T/l2.desc" -q || fail "diff layer, gzip"

# state DIR: what both trees must agree on
state() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %l\n' | sort) || fail "listing $1"
	# mtimes in whole seconds.  umoci restores a directory's mtime after
	# changing its children, so directories agree too: the layers carry each
	# changed directory with its current mtime.
	(cd "$1" && find . -mindepth 1 -printf '%p %T@\n' | sed -E 's/\.[0-9]+$//' | sort)
	# hard-link groups, by the first path of each inode
	(cd "$1" && find . -type f -links +1 -printf '%i %p\n' | sort -k2 |
		awk '{ if (!($1 in g)) g[$1] = $2; print $2, g[$1] }' | sort)
}
WANT=$(state "$R")

check_bundle() { # BUNDLE WHAT
	local rootfs=$1/rootfs
	assert_eq "$WANT" "$(state "$rootfs")" "$2: rootfs metadata"
	diff -r --no-dereference --exclude=fifo "$R" "$rootfs" >&2 || fail "$2: rootfs contents differ (diff -r)"
	[ -p "$rootfs/fifo" ] || fail "$2: fifo lost"
}

# --- uncompressed: umoci raw add-layer ----------------------------------------------------------
IMG=$T/img
U init --layout "$IMG"
U new --image "$IMG:t"
U raw add-layer --image "$IMG:t" "$T/l1.tar"
U raw add-layer --image "$IMG:t" "$T/l2.tar"
U unpack --image "$IMG:t" "$T/bundle"
check_bundle "$T/bundle" "umoci, uncompressed layers"

# --- gzip: the blobs and descriptors as layersnap wrote them -----------------------------------
IMG=$T/img-gz
U init --layout "$IMG"
U new --image "$IMG:t"
cp -a "$IMG" "$T/img-bad"
# add.py IMG TAG BLOB DESCRIPTOR...: appends layers to the image by hand
cat >"$T/add.py" <<'EOF'
import hashlib, json, os, shutil, sys
img, tag, *layers = sys.argv[1:]
def blob_path(digest):
    return os.path.join(img, "blobs", *digest.split(":"))
def load(digest):
    with open(blob_path(digest)) as f:
        return json.load(f)
def store(obj):
    data = json.dumps(obj).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(blob_path(digest), "wb") as f:
        f.write(data)
    return digest, len(data)
with open(os.path.join(img, "index.json")) as f:
    index = json.load(f)
entry = next(m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
manifest = load(entry["digest"])
config = load(manifest["config"]["digest"])
for blob, desc_path in zip(layers[::2], layers[1::2]):
    with open(desc_path) as f:
        desc = json.load(f)
    shutil.copyfile(blob, blob_path(desc["descriptor"]["digest"]))
    manifest["layers"].append(desc["descriptor"])
    config["rootfs"]["diff_ids"].append(desc["diffID"])
    config.setdefault("history", []).append({"created_by": "layersnap diff"})
manifest["config"]["digest"], manifest["config"]["size"] = store(config)
entry["digest"], entry["size"] = store(manifest)
with open(os.path.join(img, "index.json"), "w") as f:
    json.dump(index, f)
EOF
$PY "$T/add.py" "$IMG" t "$T/l1.tar.gz" "$T/l1.desc" "$T/l2.tar.gz" "$T/l2.desc" || fail "adding gzip layers by hand"
U unpack --image "$IMG:t" "$T/bundle-gz"
check_bundle "$T/bundle-gz" "umoci, gzip layers"

# The control: umoci does check digests and diff_ids, so ours were right.
zeros=$(printf '0%.0s' $(seq 64))
sed "s/\"diffID\": \"sha256:[0-9a-f]*\"/\"diffID\": \"sha256:$zeros\"/" "$T/l2.desc" >"$T/bad.desc"
grep -q "$zeros" "$T/bad.desc" || fail "bad descriptor not made"
$PY "$T/add.py" "$T/img-bad" t "$T/l1.tar.gz" "$T/l1.desc" "$T/l2.tar.gz" "$T/bad.desc" || fail "adding gzip layers by hand"
umoci unpack --image "$T/img-bad:t" "$T/bundle-bad" 2>"$T/umoci.err" && fail "umoci accepted a wrong diffID"
grep -qi 'diffid mismatch' "$T/umoci.err" || fail "umoci failed otherwise: $(cat "$T/umoci.err")"

# --- a third layer with --opaque: directories emptied of their old children
(
	cd "$R" || exit 1
	rm -r etc/* && printf 'fresh\n' >etc/fresh && rm home/user/.profile
) || fail "changing the tree"
L diff "$R" --base "$T/m2" --opaque -o "$T/l3.tar" -q || fail "diff layer --opaque"
tar -tf "$T/l3.tar" 2>/dev/null | grep -qx 'etc/.wh..wh..opq' || fail "no opaque whiteout in etc/"
tar -tf "$T/l3.tar" 2>/dev/null | grep -qx 'home/user/.wh..wh..opq' || fail "no opaque whiteout in home/user/"
U raw add-layer --image "$T/img:t" "$T/l3.tar"
WANT=$(state "$R")
U unpack --image "$T/img:t" "$T/bundle3"
check_bundle "$T/bundle3" "umoci, three layers, --opaque"

echo ok
