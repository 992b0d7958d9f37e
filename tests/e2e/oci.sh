#!/bin/bash
# diff --oci-layout DIR[:TAG] (README "Images"): images built step by step
# in an OCI image layout, read back by umoci and skopeo.
#  (a) three steps (a full layer, then two diffs, with --history, --config
#      and --source-date-epoch N) into two tags of one layout, gzip and
#      zstd: each tag's manifest has the three layers with the media type,
#      size and digest diff reported, the config their diff_ids and three
#      history entries (created N, created_by the step); `umoci unpack`
#      gives a rootfs that `compare --mode full --source-date-epoch N` finds
#      equal to the tree (umoci without zstd: through `skopeo copy
#      --dest-compress-format gzip` first); `skopeo inspect` accepts both
#      and `skopeo copy oci:DIR:TAG dir:OUT` keeps layersnap's blob digests.
#  (b) the same steps into a second layout: index.json byte for byte the
#      same, and so every manifest and config digest.
#  (c) an empty diff: an empty_layer history entry and no blob; with
#      --keep-empty, a layer.
#  (d) a run stopped at the blob write and at the index write (the fault
#      hook, failing and SIGKILL): index.json and the layersnap manifest
#      unchanged, the previous image still unpacks to the previous tree; a
#      good run then adds the step and leaves no temporary or lock.
#  (e) a second writer is refused by index.json's lock; a broken layout
#      (index.json, a manifest blob) is refused with one line, exit 2,
#      nothing written.
#  (f) Kaniko's --single-snapshot recipe: a base image unpacked, scanned,
#      changed by several steps, one diff against its manifest with
#      --base-image into another layout (the base's blobs copied, digests
#      kept), which unpacks to the final tree.
#  (g) -o next to --oci-layout is a copy of the blob; --platform; a layout
#      inside ROOT is not walked; the options that need --oci-layout.
. "$(dirname "$0")/lib.sh"

for t in umoci python3; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
is_root || skip root "umoci unpack keeps owners only as root"
HAVE_SKOPEO=1
command -v skopeo >/dev/null || HAVE_SKOPEO=
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
T=$LS_TMP
R=$T/root
N=1700000000
L() { "$LAYERSNAP" "$@"; }
U() { umoci "$@" 2>"$T/umoci.err" || { cat "$T/umoci.err" >&2; fail "umoci $*"; }; }
S() { skopeo --insecure-policy "$@" 2>"$T/skopeo.err" || { cat "$T/skopeo.err" >&2; fail "skopeo $*"; }; }
TEMP_RE='.*.layersnap-tmp.*'
no_leftovers() { # WHAT DIR...
	local what=$1 left
	shift
	left=$(find "$@" \( -name "$TEMP_RE" -o -name '*.lock' \) -print 2>/dev/null)
	[ -z "$left" ] || fail "$what: left behind: $left"
}

# q LAYOUT TAG EXPR: EXPR (Python) of the image at TAG, with index, m
# (its manifest) and c (its config), read from the layout's blobs
q() {
	$PY - "$1" "$2" "$3" <<'EOF'
import json, os, sys
lay, tag, expr = sys.argv[1:]
def blob(d):
    with open(os.path.join(lay, "blobs", *d.split(":")), "rb") as f:
        return json.loads(f.read())
with open(os.path.join(lay, "index.json")) as f:
    index = json.load(f)
e = [d for d in index["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
assert len(e) == 1, e
m = blob(e[0]["digest"])
c = blob(m["config"]["digest"])
r = eval(expr)
print(r if isinstance(r, str) else json.dumps(r))
EOF
}
# field JSON KEY: a string field of diff --json's output
field() { $PY -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# unpacked LAYOUT TAG MANIFEST WHAT: the image unpacks to the tree MANIFEST
# records (umoci; for zstd layers umoci cannot read, a gzip copy by skopeo)
unpacked() {
	local lay=$1 tag=$2 b=$T/bundle
	rm -rf "$b" "$T/conv"
	if ! umoci unpack --image "$lay:$tag" "$b" 2>"$T/umoci.err"; then
		grep -q 'zstd' "$T/umoci.err" || { cat "$T/umoci.err" >&2; fail "$4: umoci unpack"; }
		[ -n "$HAVE_SKOPEO" ] || { partial_skip skopeo "skopeo missing: $4: umoci cannot read zstd layers"; return 0; }
		S copy --dest-compress --dest-compress-format gzip "oci:$lay:$tag" "oci:$T/conv:$tag"
		rm -rf "$b"
		U unpack --image "$T/conv:$tag" "$b"
	fi
	L compare --mode full --source-date-epoch $N "$3" "$b/rootfs" >"$T/cmp.out" 2>&1 ||
		{ cat "$T/cmp.out" >&2; fail "$4: the unpacked rootfs is not the tree"; }
}

# ---- the tree and its steps ------------------------------------------------------------
mkdir -p "$R/etc" "$R/bin" "$R/var/lib/app" "$R/old/deep" "$R/home/u"
(
	cd "$R" || exit 1
	printf 'root:x:0:0\n' >etc/passwd
	printf 'secret\n' >etc/shadow && chmod 0600 etc/shadow
	head -c 200000 /dev/urandom >bin/tool && chmod 0755 bin/tool
	ln bin/tool bin/tool-alias
	ln -s tool bin/link
	printf 'data\n' >var/lib/app/db && chown 123:456 var/lib/app/db
	printf 'o\n' >old/deep/file
	: >empty
	chown 1000:1000 home/u
	# some mtimes before N, the rest now (after N: clamped to N)
	touch -h -d @1600000000 etc/passwd bin/link old/deep/file
) || fail "making the tree"
step2() {
	(
		cd "$R" || exit 1
		printf 'root:x:0:0\nu:x:1000:1000\n' >etc/passwd
		rm -r old
		printf 'new\n' >etc/new
		chmod 0700 var/lib/app
		ln -sfn tool-alias bin/link
	) || fail "step 2"
}
step3() {
	(
		cd "$R" || exit 1
		printf 'more\n' >>bin/tool
		rm etc/shadow
		mkdir -p srv/www && printf '<html>\n' >srv/www/index.html
	) || fail "step 3"
}
cat >"$T/config.json" <<'EOF'
{"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "APP=1"], "Cmd": ["/bin/tool", "--serve"],
 "WorkingDir": "/srv/www", "User": "1000", "Labels": {"org.example.step": "3"}, "ExposedPorts": {"8080/tcp": {}}}
EOF

# run_step K OPTS...: the step into img and img2, tags gz (gzip) and zst
# (zstd); JSON results in $T/res-LAYOUT-TAG-K
run_step() {
	local k=$1 lay tag c base
	shift
	for lay in img img2; do
		for tag in gz zst; do
			c=gzip
			[ $tag = zst ] && c=zstd
			base=()
			[ "$k" = 1 ] || base=(--base "$T/$lay-$tag.m")
			L diff "$R" "${base[@]}" --oci-layout "$T/$lay:$tag" --compress $c --source-date-epoch $N \
				--history "step $k" --manifest-out "$T/$lay-$tag.m" --json "$@" >"$T/res-$lay-$tag-$k" 2>"$T/err" ||
				{ cat "$T/err" >&2; fail "step $k into $lay:$tag"; }
		done
	done
}

# ---- (a), (b): three steps ----------------------------------------------------------------
run_step 1
step2
run_step 2
step3
run_step 3 --config "$T/config.json"
cp "$T/img-gz.m" "$T/final.m"

for tag in gz zst; do
	mt=application/vnd.oci.image.layer.v1.tar+gzip
	[ $tag = zst ] && mt=application/vnd.oci.image.layer.v1.tar+zstd
	want_layers=
	want_ids=
	for k in 1 2 3; do
		res=$(cat "$T/res-img-$tag-$k")
		want_layers+="$mt $(field "$res" digest) $(field "$res" size);"
		want_ids+="$(field "$res" diff_id);"
	done
	assert_eq "$want_layers" "$(q "$T/img" $tag '"".join(l["mediaType"] + " " + l["digest"] + " " + str(l["size"]) + ";" for l in m["layers"])')" \
		"$tag: the manifest's layers"
	assert_eq "$want_ids" "$(q "$T/img" $tag '"".join(d + ";" for d in c["rootfs"]["diff_ids"])')" "$tag: diff_ids"
	assert_eq '[["2023-11-14T22:13:20Z", "step 1", false], ["2023-11-14T22:13:20Z", "step 2", false], ["2023-11-14T22:13:20Z", "step 3", false]]' \
		"$(q "$T/img" $tag '[[h["created"], h["created_by"], h.get("empty_layer", False)] for h in c["history"]]')" "$tag: history"
	assert_eq "$(field "$(cat "$T/res-img-$tag-3")" image_digest)" \
		"$(q "$T/img" $tag '[d["digest"] for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == "'$tag'"][0]')" \
		"$tag: the image digest diff reported"
	assert_eq '["2023-11-14T22:13:20Z", "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json", 2, "layers"]' \
		"$(q "$T/img" $tag '[c["created"], m["mediaType"], m["config"]["mediaType"], m["schemaVersion"], c["rootfs"]["type"]]')" \
		"$tag: media types, created"
	assert_eq '{"Cmd": ["/bin/tool", "--serve"], "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "APP=1"], "ExposedPorts": {"8080/tcp": {}}, "Labels": {"org.example.step": "3"}, "User": "1000", "WorkingDir": "/srv/www"}' \
		"$(q "$T/img" $tag 'json.dumps(c["config"], sort_keys=True)')" "$tag: --config"
	unpacked "$T/img" $tag "$T/final.m" "$tag: three steps"
done
# both tags in one index; the layout and its blobs
assert_eq '["gz", "zst"]' "$($PY -c 'import json, sys; print(json.dumps([d["annotations"]["org.opencontainers.image.ref.name"] for d in json.load(open(sys.argv[1]))["manifests"]]))' "$T/img/index.json")" \
	"both tags in index.json"
assert_eq '{"imageLayoutVersion":"1.0.0"}' "$(cat "$T/img/oci-layout")" "oci-layout"
for f in "$T"/img/blobs/sha256/*; do
	assert_eq "${f##*/}" "$(sha256sum "$f" | cut -d' ' -f1)" "blob ${f##*/}: its name is its digest"
done
# canonical JSON: sorted keys, no whitespace, no newline
$PY - "$T/img" <<'EOF' || fail "documents are not canonical JSON"
import json, os, sys
lay = sys.argv[1]
paths = [os.path.join(lay, "index.json")]
for n in os.listdir(os.path.join(lay, "blobs", "sha256")):
    p = os.path.join(lay, "blobs", "sha256", n)
    with open(p, "rb") as f:
        if f.read(1) == b"{":
            paths.append(p)
# index.json, a manifest for each step of each tag, and a config for each
# step: the tags' configs are the same document (the uncompressed tars, so
# the diff_ids, are), one blob
assert len(paths) == 1 + 2 * 3 + 3, paths
for p in paths:
    raw = open(p, "rb").read()
    canon = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert raw == canon, (p, raw[:200])
EOF
# (b) the same steps, the same bytes
cmp -s "$T/img/index.json" "$T/img2/index.json" || fail "the second layout's index.json differs"
for tag in gz zst; do
	assert_eq "$(q "$T/img" $tag 'm["config"]["digest"]')" "$(q "$T/img2" $tag 'm["config"]["digest"]')" "$tag: config digests"
	for k in 1 2 3; do
		assert_eq "$(field "$(cat "$T/res-img-$tag-$k")" image_digest)" "$(field "$(cat "$T/res-img2-$tag-$k")" image_digest)" \
			"$tag step $k: manifest digests"
	done
done
no_leftovers "three steps" "$T/img" "$T/img2" "$T"
echo "ok: three steps, gzip and zstd, umoci unpack, reproducible"

if [ -n "$HAVE_SKOPEO" ]; then
	for tag in gz zst; do
		S inspect "oci:$T/img:$tag" >"$T/inspect.json"
		assert_eq "$(q "$T/img" $tag '[l["digest"] for l in m["layers"]]')" \
			"$($PY -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["Layers"]))' "$T/inspect.json")" \
			"skopeo inspect $tag: the layers"
		rm -rf "$T/dir-$tag"
		S copy "oci:$T/img:$tag" "dir:$T/dir-$tag"
		for d in $(q "$T/img" $tag '" ".join(l["digest"][7:] for l in m["layers"]) + " " + m["config"]["digest"][7:]'); do
			cmp -s "$T/dir-$tag/$d" "$T/img/blobs/sha256/$d" || fail "skopeo copy $tag: blob $d not kept"
		done
	done
	echo "ok: skopeo inspect and copy"
else
	partial_skip skopeo "skopeo missing: skopeo inspect and copy of the images"
fi

# ---- (c) an empty diff ---------------------------------------------------------------------
nblobs() { find "$T/img/blobs/sha256" -type f | wc -l; }
before=$(nblobs)
L diff "$R" --base "$T/img-gz.m" --oci-layout "$T/img:gz" --compress gzip --source-date-epoch $N \
	--history "nothing" --manifest-out "$T/img-gz.m" -q || fail "the empty diff"
assert_eq $((before + 2)) "$(nblobs)" "an empty diff: a config and a manifest, no layer blob"
assert_eq '3 4 true 3' "$(q "$T/img" gz '"%d %d %s %d" % (len(m["layers"]), len(c["history"]), str(c["history"][-1]["empty_layer"]).lower(), len(c["rootfs"]["diff_ids"]))')" \
	"an empty diff: history only"
L diff "$R" --base "$T/img-gz.m" --oci-layout "$T/img:gz" --compress gzip --source-date-epoch $N \
	--history "kept" --keep-empty --manifest-out "$T/img-gz.m" -q || fail "the empty diff, --keep-empty"
assert_eq '4 5 false' "$(q "$T/img" gz '"%d %d %s" % (len(m["layers"]), len(c["history"]), str("empty_layer" in c["history"][-1]).lower())')" \
	"--keep-empty: a layer"
unpacked "$T/img" gz "$T/final.m" "after empty steps"
echo "ok: empty diffs"

# ---- (d) stopped at the blob and at the index ------------------------------------------------
printf 'step 4\n' >"$R/etc/step4"
cp "$T/img/index.json" "$T/index.before"
cp "$T/img-gz.m" "$T/m.before"
for nt in 0 1; do
	for spec in blob index index:TERM blob:KILL index:KILL; do
		what="LS_TEST_FAIL_AT=$spec (tmpfile=$([ $nt = 1 ] && echo no || echo yes))"
		LAYERSNAP_TEST_NO_TMPFILE=$nt LS_TEST_FAIL_AT=$spec L diff "$R" --base "$T/img-gz.m" --oci-layout "$T/img:gz" \
			--compress gzip --source-date-epoch $N --manifest-out "$T/img-gz.m" -q 2>"$T/err"
		st=$?
		case $spec in
		*:KILL) [ $st = 137 ] || fail "$what: exit $st" ;;
		*:TERM) [ $st = 143 ] || fail "$what: exit $st" ;;
		*) [ $st = 2 ] && assert_eq "layersnap: LS_TEST_FAIL_AT=$spec: injected failure" "$(cat "$T/err")" "$what" ;;
		esac
		# a failure or a caught signal leaves nothing; SIGKILL the locks
		# (and on the named fallback the temporaries), for the next run
		case $spec in *:KILL) ;; *) no_leftovers "$what" "$T/img" "$T/img-gz.m" "$T/img-gz.m.lock" ;; esac
		cmp -s "$T/img/index.json" "$T/index.before" || fail "$what: index.json changed"
		cmp -s "$T/img-gz.m" "$T/m.before" || fail "$what: the layersnap manifest changed"
		unpacked "$T/img" gz "$T/final.m" "$what: the previous image"
	done
done
# the last, SIGKILL at the index on the named fallback, left index.json's
# temporary, which the next run removes
ls -A "$T/img" | grep -q '^\.index\.json\.layersnap-tmp\.' || fail "SIGKILL at index left no temporary of index.json"
L diff "$R" --base "$T/img-gz.m" --oci-layout "$T/img:gz" --compress gzip --source-date-epoch $N \
	--history "step 4" --manifest-out "$T/img-gz.m" -v 2>"$T/err" || { cat "$T/err" >&2; fail "the run after the faults"; }
grep -q "$T/img/index.json: removed 1 stale temporary file" "$T/err" ||
	fail "the killed run's temporary was not removed: $(cat "$T/err")"
no_leftovers "faults, then a good run" "$T/img" "$T/img-gz.m"
assert_eq '5 step 4' "$(q "$T/img" gz '"%d %s" % (len(m["layers"]), c["history"][-1]["created_by"])')" "the step after the faults"
unpacked "$T/img" gz "$T/img-gz.m" "after the faults"
echo "ok: a run stopped at the blob or the index leaves the previous image"

# ---- (e) a second writer; broken layouts ---------------------------------------------------
cp "$T/img/index.json" "$T/index.before"
expect_error "$LS_BUILD/tools/outputs" hold-lock "$T/img/index.json.lock" "$LAYERSNAP" diff "$R" --oci-layout "$T/img:gz"
assert_eq "layersnap: $T/img/index.json.lock: another layersnap run is writing $T/img/index.json" "$(cat "$T/stderr")" \
	"a second writer"
cmp -s "$T/img/index.json" "$T/index.before" || fail "a refused writer changed index.json"
rm "$T/img/index.json.lock"  # the holder's, left by it
broken() { # WHAT EXPECTED-PART: the layout in $T/bad is refused, nothing written
	local before
	before=$(cd "$T/bad" && find . ! -type d -printf '%p %s %T@\n' | sort)
	expect_error L diff "$R" --oci-layout "$T/bad:gz" --manifest-out "$T/bad.m"
	grep -qF -- "$2" "$T/stderr" || fail "$1: $(cat "$T/stderr")"
	assert_eq "$before" "$(cd "$T/bad" && find . ! -type d -printf '%p %s %T@\n' | sort)" "$1: the layout changed"
	[ ! -e "$T/bad.m" ] || fail "$1: the manifest was written"
}
rm -rf "$T/bad"
cp -a "$T/img" "$T/bad"
printf '{"schemaVersion": 2, "manifests": [' >"$T/bad/index.json"
broken "index.json cut short" "$T/bad/index.json: line 1 column"
printf '{"schemaVersion": 1, "manifests": []}' >"$T/bad/index.json"
broken "schemaVersion 1" "$T/bad/index.json: schemaVersion is not 2"
cp "$T/img/index.json" "$T/bad/index.json"
d=$(q "$T/img" gz '[d["digest"][7:] for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == "gz"][0]')
sed -i 's/schemaVersion/schemaVersioN/' "$T/bad/blobs/sha256/$d"
broken "a manifest blob changed" "blob sha256:$d does not have that digest"
printf '{}' >"$T/bad/blobs/sha256/$d"
broken "a manifest blob cut short" "blob sha256:$d has 2 bytes, not"
rm "$T/bad/blobs/sha256/$d"
broken "a manifest blob missing" "is missing"
rm "$T/bad/oci-layout"
broken "no oci-layout" "an index.json but no oci-layout"
echo "ok: a second writer and broken layouts refused"

# ---- (f) Kaniko's --single-snapshot: one diff at the end against the base image -------------
B=$T/kaniko
rm -rf "$B"
U unpack --image "$T/img:gz" "$B"
L scan "$B/rootfs" -o "$T/base.lsm" || fail "scanning the unpacked base image"
(
	cd "$B/rootfs" || exit 1
	printf 'RUN 1\n' >etc/run1
	printf 'RUN 2\n' >>etc/passwd
	rm -r srv
	mkdir -p opt/app && printf 'app\n' >opt/app/main
) || fail "the build's steps"
L diff "$B/rootfs" --base "$T/base.lsm" --oci-layout "$T/app:v1" --base-image "$T/img:gz" --compress gzip \
	--source-date-epoch $N --history "single snapshot" --platform linux/amd64 --manifest-out "$T/app.m" -q ||
	fail "the single-snapshot diff"
assert_eq "$(q "$T/img" gz '[l["digest"] for l in m["layers"]]' | sed 's/]$//')" \
	"$(q "$T/app" v1 '[l["digest"] for l in m["layers"][:-1]]' | sed 's/]$//')" "--base-image: the base's layers first"
assert_eq '6 6 single snapshot' "$(q "$T/app" v1 '"%d %d %s" % (len(m["layers"]), len(c["rootfs"]["diff_ids"]), c["history"][-1]["created_by"])')" \
	"--base-image: one layer more"
assert_eq "$(q "$T/img" gz 'c["config"]')" "$(q "$T/app" v1 'c["config"]')" "--base-image: the base's config"
for dg in $(q "$T/app" v1 '" ".join(l["digest"][7:] for l in m["layers"][:-1])'); do
	cmp -s "$T/app/blobs/sha256/$dg" "$T/img/blobs/sha256/$dg" || fail "--base-image: blob $dg not copied as it is"
done
unpacked "$T/app" v1 "$T/app.m" "--base-image"
# the base in the same layout: nothing to copy
L diff "$B/rootfs" --base "$T/base.lsm" --oci-layout "$T/img:app" --base-image "$T/img:gz" --source-date-epoch $N -q ||
	fail "--base-image in the same layout"
assert_eq 6 "$(q "$T/img" app 'len(m["layers"])')" "--base-image in the same layout"
no_leftovers "--base-image" "$T/app" "$T/img"
echo "ok: --base-image, Kaniko's single snapshot"

# ---- (g) -o beside it, --platform, a layout inside ROOT, options ---------------------------------
P=$T/plat
rm -rf "$P"
res=$(L diff "$R" --oci-layout "$P" -o "$T/copy.tar.zst" --compress zstd --platform linux/arm/v7 --json) ||
	fail "-o with --oci-layout"
dg=$(field "$res" digest)
cmp -s "$T/copy.tar.zst" "$P/blobs/sha256/${dg#sha256:}" || fail "-o is not a copy of the blob"
assert_eq '["arm", "linux", "v7", "latest"]' \
	"$(q "$P" latest '[c["architecture"], c["os"], c["variant"], index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]]')" \
	"--platform, the default tag"
assert_eq '{"architecture": "arm", "os": "linux", "variant": "v7"}' "$(q "$P" latest 'index["manifests"][0]["platform"]')" \
	"the index entry's platform"
L diff "$R" --oci-layout "$R/inner:t" -q || fail "a layout inside ROOT"
L diff "$R" --oci-layout "$R/inner:t" --manifest-out "$T/inner.m" -q || fail "a layout inside ROOT, again"
! L dump "$T/inner.m" | grep -q '^\./inner' || fail "a layout inside ROOT was walked"
assert_eq 2 "$(q "$R/inner" t 'len(m["layers"])')" "a layout inside ROOT: two steps"
rm -rf "$R/inner"
for opt in "--history x" --keep-empty "--platform linux/amd64" "--config $T/config.json" "--base-image $T/img:gz"; do
	# shellcheck disable=SC2086
	expect_error L diff "$R" -o "$T/x.tar" $opt
	assert_eq "layersnap: diff: ${opt%% *} needs --oci-layout" "$(cat "$T/stderr")" "$opt without --oci-layout"
done
expect_error L diff "$R" --oci-layout "$T/img:bad/tag"
expect_error L diff "$R" --oci-layout "$T/img:-x"
grep -qF "tag '-x'" "$T/stderr" || fail "a bad tag: $(cat "$T/stderr")"
expect_error L diff "$R" --oci-layout "$T/img:"
expect_error L diff "$R" --oci-layout "$T/img:t" --platform amd64
grep -qF "platform 'amd64'" "$T/stderr" || fail "a bad platform: $(cat "$T/stderr")"
printf '{"cmd": []}' >"$T/bad.json"
expect_error L diff "$R" --oci-layout "$T/img:t" --config "$T/bad.json"
grep -qF "$T/bad.json: unknown key \"cmd\"" "$T/stderr" || fail "a bad --config: $(cat "$T/stderr")"
expect_error L diff "$R" --oci-layout "$T/img:t" --base-image "$T/img:nope"
grep -qF "no image tagged nope" "$T/stderr" || fail "a missing base image: $(cat "$T/stderr")"
expect_error L diff "$R" --oci-layout "$T/missing/parent/img"
expect_error L diff "$R" --oci-layout "$R"
assert_eq "layersnap: $R: the OCI layout cannot be ROOT itself" "$(cat "$T/stderr")" "the layout is ROOT"
[ ! -e "$R/blobs" ] && [ ! -e "$R/index.json.lock" ] || fail "the layout refused as ROOT was made"
printf '{"Env": ["FROM_A_PIPE=1"]}' >"$T/pipe.json"
L diff "$R" --oci-layout "$T/piped" --config <(cat "$T/pipe.json") -q || fail "--config from a pipe"
assert_eq '["FROM_A_PIPE=1"]' "$(q "$T/piped" latest 'c["config"]["Env"]')" "--config from a pipe"
[ -z "$(q "$T/img" gz 'sorted(d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == "t")' | tr -d '[]')" ] ||
	fail "a refused run tagged t"
echo "ok: -o, --platform, a layout inside ROOT, option errors"
echo ok
