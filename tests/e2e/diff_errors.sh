#!/bin/bash
# diff, failures: a corrupt or truncated base, a base recorded in another
# mode or with other settings, unwritable outputs, an unreadable file met
# while the layer is being written, a full stdout, an existing lock.  Each:
# exit 2 and one line "layersnap: ..." on stderr; the outputs of an earlier
# successful run (layer, descriptor, manifest) untouched byte for byte; no
# temporary ".NAME.tmp.*" or ".lock" file left behind.
. "$(dirname "$0")/lib.sh"

T=$LS_TMP
R=$T/root
O=$T/out
L() { "$LAYERSNAP" "$@"; }

mkdir -p "$R/a/b" "$O"
printf 'hello\n' >"$R/a/f"
printf 'x\n' >"$R/a/b/x"
ln -s a/f "$R/l"

# The earlier successful run whose outputs must survive every failure.
L scan "$R" -o "$T/base.m" || fail "scan"
L diff "$R" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m" -q || fail "first diff"
snapshot() { (cd "$O" && ls -lA --time-style=+%s | sed 1d && sha256sum layer.tar desc.json new.m); sha256sum "$T/base.m"; }
SNAP=$(snapshot)

# fails WHAT CMD...: exit 2, one line, nothing changed, nothing left behind
fails() {
	local what=$1
	shift
	expect_error "$@"
	assert_eq "$SNAP" "$(snapshot)" "$what: previous outputs changed"
	local left
	left=$(find "$T" "$R" -name '.*.tmp.*' -o -name '*.layersnap-tmp.*' -o -name '*.lock' | grep -v "${KEEP_LOCK:-^$}")
	[ -z "$left" ] || fail "$what: left behind: $left"
	echo "ok: $what: $(cat "$T/stderr")"
}
# the usual target paths, after the command's own options
diff_to_outputs() { L diff "$@" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m"; }

# ---- bad base manifests ---------------------------------------------------------
size=$(stat -c %s "$T/base.m")
for off in 0 9 20 40 $((size / 2)) $((size - 20)) $((size - 1)); do
	cp "$T/base.m" "$T/bad.m"
	byte=$(od -An -tu1 -j $off -N1 "$T/bad.m" | tr -d ' ')
	printf "$(printf '\\%03o' $(((byte ^ 0x10) & 255)))" | dd of="$T/bad.m" bs=1 seek=$off conv=notrunc status=none
	cmp -s "$T/base.m" "$T/bad.m" && fail "byte $off not flipped"
	fails "byte $off flipped" diff_to_outputs "$R" --base "$T/bad.m"
	grep -qF "$T/bad.m" "$T/stderr" || fail "error does not name the manifest: $(cat "$T/stderr")"
	fails "compare, byte $off flipped" L compare "$T/bad.m" "$R"
done
for n in 0 1 8 63 64 100 $((size - 8)) $((size - 1)); do
	head -c $n "$T/base.m" >"$T/bad.m"
	fails "truncated to $n bytes" diff_to_outputs "$R" --base "$T/bad.m"
done
cat "$T/base.m" "$T/base.m" >"$T/bad.m"
fails "trailing garbage" diff_to_outputs "$R" --base "$T/bad.m"
fails "missing base" diff_to_outputs "$R" --base "$T/nonexistent.m"
fails "base is a directory" diff_to_outputs "$R" --base "$T"

# ---- a base recorded in another mode or with other settings ---------------------------
for m in redo time; do
	L scan --mode $m "$R" -o "$T/$m.m" || fail "scan --mode $m"
	fails "full diff, $m base" diff_to_outputs --mode full "$R" --base "$T/$m.m"
	grep -q "$m" "$T/stderr" && grep -q full "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"
	fails "full compare, $m base" L compare --mode full "$T/$m.m" "$R"
done
# allowed: a base that recorded every field the mode compares
L scan --mode full "$R" -o "$T/full.m" || fail "scan"
for pair in redo:full time:full time:redo redo:redo time:time; do
	L diff --mode ${pair%%:*} "$R" --base "$T/${pair#*:}.m" -o "$T/ok.tar" --exit-code -q ||
		fail "diff --mode ${pair%%:*} against a ${pair#*:} base"
done

L scan -x a/b "$R" -o "$T/x.m" || fail "scan -x"
fails "base with excludes, diff without" diff_to_outputs "$R" --base "$T/x.m"
grep -q exclude "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"
fails "base with excludes, diff with others" diff_to_outputs -x a "$R" --base "$T/x.m"
fails "base without excludes, diff with" diff_to_outputs -x a/b "$R" --base "$T/base.m"
# the same exclude spelled differently is the same setting
L diff -x /a/b/ "$R" --base "$T/x.m" -o "$T/ok.tar" --exit-code -q || fail "-x /a/b/ against a -x a/b base"

L scan --xattrs all "$R" -o "$T/xa.m" || fail "scan --xattrs all"
fails "base --xattrs all" diff_to_outputs "$R" --base "$T/xa.m"
grep -q xattrs "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"
fails "base --xattrs capability, diff --xattrs none" diff_to_outputs --xattrs none "$R" --base "$T/base.m"
L scan --one-file-system "$R" -o "$T/ofs.m" || fail "scan --one-file-system"
fails "base --one-file-system" diff_to_outputs "$R" --base "$T/ofs.m"
grep -q one-file-system "$T/stderr" || fail "message does not say why: $(cat "$T/stderr")"
fails "base without --one-file-system" diff_to_outputs --one-file-system "$R" --base "$T/base.m"
fails "compare, other excludes" L compare "$T/x.m" "$R"

# ---- bad roots and arguments ------------------------------------------------------------
fails "missing ROOT" diff_to_outputs "$T/nonexistent" --base "$T/base.m"
fails "ROOT is a file" diff_to_outputs "$R/a/f" --base "$T/base.m"
fails "bad --mode" diff_to_outputs --mode fast "$R"
fails "bad --compress" diff_to_outputs --compress lz4 "$R"
fails "bad --source-date-epoch" diff_to_outputs --source-date-epoch yesterday "$R"
SOURCE_DATE_EPOCH=soon fails "bad SOURCE_DATE_EPOCH" diff_to_outputs "$R"

# ---- outputs that cannot be written --------------------------------------------------------
fails "layer in a missing directory" L diff "$R" -o "$T/no/such/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m"
fails "descriptor in a missing directory" L diff "$R" -o "$O/layer.tar" --descriptor "$T/no/desc.json" --manifest-out "$O/new.m"
fails "manifest in a missing directory" L diff "$R" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$T/no/new.m"
fails "layer is a directory" L diff "$R" -o "$T" --descriptor "$O/desc.json" --manifest-out "$O/new.m"
to_full() { "$@" >/dev/full; }
fails "full stdout" to_full L diff "$R" -o - --descriptor "$O/desc.json" --manifest-out "$O/new.m"
fails "full stdout, gzip" to_full L diff "$R" -o - --compress gzip --manifest-out "$O/new.m"
fails "full stdout, descriptor" to_full L diff "$R" -o "$O/layer.tar" --descriptor - --manifest-out "$O/new.m"

# As an unprivileged user: a read-only output directory, an unreadable file
# found while the layer is written (after the outputs were opened).
if is_root; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
	command -v setpriv >/dev/null || as_nobody() { runuser -u nobody -- "$@"; }
else
	as_nobody() { "$@"; }
fi
chmod 0755 "$T"
U=$T/user
mkdir -p "$U/out" "$U/root/d"
printf 'secret\n' >"$U/root/d/f"
printf 'fine\n' >"$U/root/e"
is_root && chown -R 65534:65534 "$U"
as_nobody "$LAYERSNAP" diff "$U/root" -o "$U/out/layer.tar" --descriptor "$U/out/desc.json" \
	--manifest-out "$U/out/new.m" -q || fail "diff as an unprivileged user"
O_SAVED=$O
O=$U/out
SNAP=$(snapshot)
chmod 0555 "$U/out"
fails "read-only output directory" as_nobody "$LAYERSNAP" diff "$U/root" -o "$U/out/layer.tar"
fails "read-only output directory (manifest)" as_nobody "$LAYERSNAP" diff "$U/root" -o "$U/out/../l.tar" --manifest-out "$U/out/new.m"
chmod 0755 "$U/out"
rm -f "$U/l.tar"
chmod 0000 "$U/root/d/f"
fails "unreadable file" as_nobody "$LAYERSNAP" diff "$U/root" -o "$U/out/layer.tar" --descriptor "$U/out/desc.json" --manifest-out "$U/out/new.m"
grep -qF "d/f" "$T/stderr" || fail "error does not name the file: $(cat "$T/stderr")"
fails "unreadable file, gzip to a pipe" as_nobody "$LAYERSNAP" diff "$U/root" -o - --compress gzip --manifest-out "$U/out/new.m"
chmod 0644 "$U/root/d/f"
chmod 0000 "$U/root/d"
fails "unreadable directory" as_nobody "$LAYERSNAP" diff "$U/root" -o "$U/out/layer.tar" --descriptor "$U/out/desc.json" --manifest-out "$U/out/new.m"
grep -qF "root/d" "$T/stderr" || fail "error does not name the directory: $(cat "$T/stderr")"
# unless --ignore-errors: a warning, and its base entries carry over (no whiteout), the
# directory's own base metadata included: nothing changes in the layer
as_nobody "$LAYERSNAP" diff "$U/root" --base "$U/out/new.m" --ignore-errors -o "$U/l.tar" 2>"$T/stderr" ||
	fail "--ignore-errors: $(cat "$T/stderr")"
grep -q 'warning: .*root/d' "$T/stderr" || fail "--ignore-errors: no warning naming the directory: $(cat "$T/stderr")"
assert_eq "" "$(tar -tvf "$U/l.tar")" "--ignore-errors layer"
rm "$U/l.tar"
chmod 0755 "$U/root/d"
O=$O_SAVED
SNAP=$(snapshot)

# ---- a held lock ------------------------------------------------------------------------
# NEW.lock held (an OFD lock, as a running layersnap holds it) by
# tools/outputs while the command runs.
held() { "$LS_BUILD/tools/outputs" hold-lock "$1" "${@:2}"; }
: >"$O/new.m.lock"
SNAP=$(snapshot)
KEEP_LOCK="$O/new.m.lock" fails "held NEW.lock" held "$O/new.m.lock" "$LAYERSNAP" diff "$R" \
	-o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m"
grep -qF "new.m.lock: another layersnap run is writing" "$T/stderr" || fail "lock message does not name the lock: $(cat "$T/stderr")"
[ -e "$O/new.m.lock" ] || fail "someone else's lock was removed"
KEEP_LOCK="$O/new.m.lock" fails "held NEW.lock, base = NEW" held "$O/new.m.lock" "$LAYERSNAP" diff "$R" \
	--base "$O/new.m" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m"
: >"$R/.wh.x"  # the lock is checked before the walk would find this
KEEP_LOCK="$O/new.m.lock" fails "held NEW.lock, before the walk" held "$O/new.m.lock" "$LAYERSNAP" diff "$R" \
	-o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m"
grep -qF "new.m.lock" "$T/stderr" || fail "the walk ran before the lock was taken: $(cat "$T/stderr")"
rm "$R/.wh.x"
# the lock file of a dead run (nobody holds it) blocks nothing
L diff "$R" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m" -q ||
	fail "diff beside a stale lock file"
[ ! -e "$O/new.m.lock" ] || fail "the stale lock file was not removed"
SNAP=$(snapshot)

# ---- an interrupted run -----------------------------------------------------------------
# The layer goes to a FIFO nobody reads: the run blocks in a write, with the
# descriptor's temporary file and the manifest's lock and temporary file made.
I=$T/big
mkdir -p "$I"
head -c 1000000 /dev/urandom >"$I/big"
mkfifo "$T/fifo"
exec 3<>"$T/fifo"
"$LAYERSNAP" diff "$I" -o "$T/fifo" --descriptor "$O/desc.json" --manifest-out "$O/new.m" 2>"$T/stderr" 3>&- &
pid=$!
for _ in $(seq 100); do [ -e "$O/new.m.lock" ] && break; sleep 0.05; done
[ -e "$O/new.m.lock" ] || fail "the interrupted run never took its lock"
sleep 0.2
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -0 $pid 2>/dev/null && { kill -KILL $pid; fail "SIGTERM did not stop the run"; }
wait $pid
st=$?
exec 3<&-
[ $st = 143 ] || fail "interrupted diff exited $st, expected 143 (SIGTERM)"
assert_eq "$SNAP" "$(snapshot)" "interrupted run: previous outputs changed"
left=$(find "$T" -name '.*.tmp.*' -o -name '*.layersnap-tmp.*' -o -name '*.lock')
[ -z "$left" ] || fail "interrupted run left behind: $left"
: >"$T/base.m.lock"
KEEP_LOCK="$T/base.m.lock" fails "scan with a held lock" held "$T/base.m.lock" "$LAYERSNAP" scan "$R" -o "$T/base.m"
rm "$T/base.m.lock"

# and a good run still works afterwards, replacing the outputs
L diff "$R" --base "$T/base.m" -o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/new.m" -q ||
	fail "diff after the failures"
[ -z "$(find "$T" -name '.*.tmp.*' -o -name '*.layersnap-tmp.*' -o -name '*.lock')" ] || fail "left behind by a good run"
echo ok
