#!/bin/bash
# Faults while outputs are written and committed (DESIGN.md "Command line":
# outputs are committed layer, descriptor, manifest; a failed run leaves the
# previous files untouched).  The exact moments come from the CLI's fault
# hook LS_TEST_FAIL_AT=STEP[:SIG] (README "Tests"), never from a sleep.  Every
# case that commits outputs runs on the O_TMPFILE path and on the named
# fallback (LAYERSNAP_TEST_NO_TMPFILE=1).
#  (a) the hook itself: an unknown step or signal fails at once (exit 2, one
#      line, nothing written); a step the run never reaches fails the run;
#      `write` stops a layer to stdout after exactly 1 MiB.
#  (b) commit order: failing at write (also with gzip and zstd) or layer
#      leaves all three previous outputs (same bytes, same inode); at
#      descriptor the layer is the new one and the descriptor and manifest
#      the old; at manifest the layer and descriptor are new, the manifest
#      old.  Nothing left behind (no temporary, no lock).  scan fails at
#      manifest likewise.
#  (c) SIGTERM, SIGINT and SIGHUP at each step (write: mid-layer, 1 MiB in):
#      the run dies of the signal (128+N), the outputs are as in (b), and
#      nothing is left behind.
#  (d) SIGKILL at each step: what main.c says a SIGKILL leaves and no more
#      (the manifest's lock file; on the fallback, the named temporaries of
#      the outputs not committed, the layer's 1 MiB in at write); the next
#      run succeeds, removes them and leaves nothing.
#  (e) ENOSPC (a 1 MiB tmpfs): a layer larger than the file system, and a
#      manifest into a full one while the layer goes elsewhere: exit 2, one
#      line, every previous output byte-identical (the layer elsewhere too:
#      nothing is committed before everything is written), nothing left.
#  (f) -o - into a pipe closed early (exit 141, silent) and into /dev/full, each
#      compression: exit 2, one line, no hang, the descriptor and manifest
#      untouched.
#  (g) apply stopped after the first file's data is written and before it is
#      put in place (the padding held back, or the last byte when there is
#      no padding): with SIGTERM, SIGINT, SIGHUP, SIGKILL or an injected
#      failure, no partial file under its final name, the rest of ROOT
#      intact, nothing after it applied; only a signal on the named fallback
#      leaves the file's temporary (a name walks skip, see apply_hostile.sh);
#      applying the layer again then gives the same tree as a clean apply.
. "$(dirname "$0")/lib.sh"

for t in timeout cmp gzip; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
L=$LAYERSNAP
T=$LS_TMP
MOUNTED=
cleanup() {
	kill -KILL $(jobs -p) 2>/dev/null
	[ -z "$MOUNTED" ] || umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED"
}
trap cleanup EXIT

TEMP_RE='.*.layersnap-tmp.*'
# leftovers DIR...: every temporary and lock file in DIRs (not below them)
leftovers() { find "$@" -maxdepth 1 \( -name "$TEMP_RE" -o -name '*.lock' \) -print 2>/dev/null | sort; }
no_leftovers() { # WHAT DIR...
	local what=$1 left
	shift
	left=$(leftovers "$@")
	[ -z "$left" ] || fail "$what: left behind: $left"
}
sig_status() { echo $((128 + $(kill -l "$1"))); }
to_full() { "$@" >/dev/full; }

# ---- the tree, its previous outputs and the ones a good run writes now ------------
# ROOT $R (a 3 MiB file: the layer is well over the 1 MiB of the write step);
# PREV: the previous run's outputs; REF: the layer and descriptor a good run
# writes for the changed tree (byte-reproducible); O: where the runs write.
R=$T/root
PREV=$T/prev
REF=$T/ref
O=$T/out
mkdir -p "$R/d" "$PREV" "$REF" "$O"
echo one >"$R/f"
head -c 3000000 /dev/urandom >"$R/d/big"
"$L" diff "$R" -o "$PREV/layer.tar" --descriptor "$PREV/desc.json" --manifest-out "$PREV/M" -q ||
	fail "the first diff"
echo two >"$R/d/added"
echo changed >"$R/f"
"$L" diff "$R" -o "$REF/layer.tar" --descriptor "$REF/desc.json" -q || fail "the reference diff"
! cmp -s "$PREV/layer.tar" "$REF/layer.tar" && ! cmp -s "$PREV/desc.json" "$REF/desc.json" ||
	fail "the changed tree gives the same layer"
OUTS=(-o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/M")

# reset: O holds the previous outputs (fresh copies; their inodes recorded)
reset() {
	rm -rf "$O"
	mkdir -p "$O"
	cp "$PREV"/* "$O"/
	INODES=$(stat -c '%n %i' "$O/layer.tar" "$O/desc.json" "$O/M")
}
# committed STEP: the outputs a run stopped at STEP has committed
committed() {
	case $1 in
	write | layer) echo ;;
	descriptor) echo layer.tar ;;
	manifest) echo layer.tar desc.json ;;
	*) fail "committed: $1" ;;
	esac
}
# check_outputs WHAT STEP: the outputs committed before STEP are the new
# ones, the others still the previous files (bytes and inode)
check_outputs() {
	local f new
	new=" $(committed "$2") "
	for f in layer.tar desc.json M; do
		if [[ $new == *" $f "* ]]; then
			cmp -s "$O/$f" "$REF/$f" || fail "$1: $f is not the new one"
		else
			cmp -s "$O/$f" "$PREV/$f" || fail "$1: $f is not the previous one (committed too early?)"
			grep -qxF "$O/$f $(stat -c %i "$O/$f")" <<<"$INODES" || fail "$1: $f was replaced"
		fi
	done
}
# a good run after a failed one: new outputs, nothing left behind
next_run() { # WHAT
	timeout 60 "$L" diff "$R" "${OUTS[@]}" -v 2>"$T/next.err" ||
		fail "$1: the next run failed: $(cat "$T/next.err")"
	cmp -s "$O/layer.tar" "$REF/layer.tar" && cmp -s "$O/desc.json" "$REF/desc.json" ||
		fail "$1: the next run's layer or descriptor is not the new one"
	"$L" dump "$O/M" | grep -q '^\./d/added ' || fail "$1: the next run's manifest is not the new one"
	no_leftovers "$1, then a good run" "$O" "$T"
}

# ---- (a) the hook itself ------------------------------------------------------------
case_hook() {
	reset
	local spec
	for spec in bogus Layer layer: layer:TERMX layer:9 write:SIGTERM ':TERM' 'layer:TERM:INT'; do
		LS_TEST_FAIL_AT=$spec expect_error "$L" diff "$R" "${OUTS[@]}"
		grep -qF "layersnap: LS_TEST_FAIL_AT=$spec: unknown" "$T/stderr" || fail "hook '$spec': $(cat "$T/stderr")"
		check_outputs "hook '$spec'" write
	done
	no_leftovers "unknown steps" "$O" "$T"
	# a step this run never reaches
	LS_TEST_FAIL_AT=descriptor expect_error "$L" diff -q "$R" -o "$T/other.tar"
	assert_eq "layersnap: LS_TEST_FAIL_AT=descriptor: the run never reached that step" "$(cat "$T/stderr")" \
		"no --descriptor"
	LS_TEST_FAIL_AT=apply expect_error "$L" scan "$R" -o "$T/other.m"
	grep -q 'never reached' "$T/stderr" || fail "apply step in scan: $(cat "$T/stderr")"
	# a layer under 1 MiB never reaches write: failed before any commit
	mkdir -p "$T/small"
	echo small >"$T/small/f"
	LS_TEST_FAIL_AT=write expect_error "$L" diff "$T/small" "${OUTS[@]}"
	grep -q 'never reached' "$T/stderr" || fail "write step, small layer: $(cat "$T/stderr")"
	check_outputs "write step, small layer" write
	# write: exactly 1 MiB reaches the output
	local st n
	LS_TEST_FAIL_AT=write "$L" diff "$R" -o - 2>"$T/stderr" | wc -c >"$T/n"
	st=${PIPESTATUS[0]}
	n=$(cat "$T/n")
	[ "$st" = 2 ] && [ "$n" = 1048576 ] || fail "write step to stdout: status $st, $n bytes"
	assert_eq "layersnap: LS_TEST_FAIL_AT=write: injected failure" "$(cat "$T/stderr")" "write step to stdout"
	no_leftovers "hook errors" "$O" "$T"
	echo "ok: the hook's errors"
}

# ---- (b) commit order, (c) signals, (d) SIGKILL -----------------------------------
STEPS="write layer descriptor manifest"
case_order() {
	local step
	for step in $STEPS; do
		reset
		LS_TEST_FAIL_AT=$step expect_error "$L" diff "$R" "${OUTS[@]}"
		assert_eq "layersnap: LS_TEST_FAIL_AT=$step: injected failure" "$(cat "$T/stderr")" "$tag: fail at $step"
		check_outputs "$tag: fail at $step" "$step"
		no_leftovers "$tag: fail at $step" "$O" "$T"
	done
	# the layer compressed (its compressor threads see the EPIPE)
	for c in gzip zstd; do
		reset
		LS_TEST_FAIL_AT=write expect_error "$L" diff --compress $c "$R" "${OUTS[@]}"
		assert_eq "layersnap: LS_TEST_FAIL_AT=write: injected failure" "$(cat "$T/stderr")" "$tag: fail at write, $c"
		check_outputs "$tag: fail at write, $c" write
		no_leftovers "$tag: fail at write, $c" "$O" "$T"
	done
	reset
	LS_TEST_FAIL_AT=manifest expect_error "$L" scan "$R" -o "$O/M"
	check_outputs "$tag: scan, fail at manifest" write
	no_leftovers "$tag: scan, fail at manifest" "$O" "$T"
	echo "ok: $tag: commit order"
}

case_signals() {
	local step sig st
	for step in $STEPS; do
		for sig in TERM INT HUP; do
			reset
			LS_TEST_FAIL_AT=$step:$sig "$L" diff "$R" "${OUTS[@]}" 2>"$T/stderr"
			st=$?
			[ $st = "$(sig_status $sig)" ] || { cat "$T/stderr" >&2; fail "$tag: SIG$sig at $step: exit $st"; }
			check_outputs "$tag: SIG$sig at $step" "$step"
			no_leftovers "$tag: SIG$sig at $step" "$O" "$T"
		done
	done
	reset
	LS_TEST_FAIL_AT=manifest:TERM "$L" scan "$R" -o "$O/M" 2>"$T/stderr"
	st=$?
	[ $st = 143 ] || fail "$tag: scan, SIGTERM at manifest: exit $st"
	check_outputs "$tag: scan, SIGTERM at manifest" write
	no_leftovers "$tag: scan, SIGTERM at manifest" "$O" "$T"
	echo "ok: $tag: SIGTERM, SIGINT, SIGHUP at each step"
}

case_kill() {
	local step st f want left
	for step in $STEPS; do
		reset
		LS_TEST_FAIL_AT=$step:KILL "$L" diff "$R" "${OUTS[@]}" 2>"$T/stderr"
		st=$?
		[ $st = 137 ] || { cat "$T/stderr" >&2; fail "$tag: SIGKILL at $step: exit $st"; }
		check_outputs "$tag: SIGKILL at $step" "$step"
		# the lock file (its OFD lock died with the run), and on the
		# fallback the named temporary of each output not committed
		want="$O/M.lock"
		if [ "$nt" = 1 ]; then
			for f in layer.tar desc.json M; do
				[[ " $(committed "$step") " == *" $f "* ]] || want+=$'\n'"$O/.$f.layersnap-tmp.??????"
			done
		fi
		left=$(leftovers "$O" "$T")
		# shellcheck disable=SC2053
		[[ $left == $(sort <<<"$want") ]] || fail "$tag: SIGKILL at $step left: $left (expected: $want)"
		if [ "$step" = write ] && [ "$nt" = 1 ]; then
			assert_eq 1048576 "$(stat -c %s "$O"/.layer.tar.layersnap-tmp.*)" "$tag: the layer's temporary at write"
		fi
		next_run "$tag: SIGKILL at $step"
		if [ "$nt" = 1 ] && [ -z "$(committed "$step")" ]; then
			grep -q "$O/layer.tar: removed 1 stale temporary file" "$T/next.err" ||
				fail "$tag: SIGKILL at $step: the next run did not report the stale temporary: $(cat "$T/next.err")"
		fi
	done
	echo "ok: $tag: SIGKILL at each step"
}

# ---- (e) ENOSPC ---------------------------------------------------------------------
case_enospc() {
	local F=$T/full S=$T/smalltree M=$T/manytree f
	mkdir -p "$F" "$S" "$M"
	if ! is_root; then
		partial_skip root "not root, cannot mount a tmpfs: ENOSPC on the outputs"
		return 0
	fi
	if ! mount -t tmpfs -o size=1m tmpfs "$F" 2>"$T/mount.err"; then
		partial_skip mount "cannot mount a tmpfs here ($(cat "$T/mount.err")): ENOSPC on the outputs"
		return 0
	fi
	MOUNTED=$F
	echo small >"$S/f"
	"$L" diff "$S" -o "$F/layer.tar" --descriptor "$F/desc.json" --manifest-out "$F/M" -q ||
		fail "$tag: the small diff into the tmpfs"
	local before
	before=$(cd "$F" && ls -li && sha256sum layer.tar desc.json M)
	# the layer (3 MiB of random bytes) is larger than the file system
	for c in none gzip zstd; do
		expect_error "$L" diff --compress $c "$R" -o "$F/layer.tar" --descriptor "$F/desc.json" \
			--manifest-out "$F/M"
		assert_eq "layersnap: layer: write: No space left on device" "$(cat "$T/stderr")" "$tag: ENOSPC, --compress $c"
		assert_eq "$before" "$(cd "$F" && ls -li && sha256sum layer.tar desc.json M)" \
			"$tag: ENOSPC, --compress $c: the previous outputs"
		no_leftovers "$tag: ENOSPC, --compress $c" "$F"
	done
	# the manifest into a full file system, the layer elsewhere: the
	# layer must not be committed either
	for f in $(seq 4000); do : >"$M/file-with-a-longish-name-$f"; done
	reset
	"$L" scan "$M" -o "$F/M" || fail "$tag: scan into the tmpfs"
	dd if=/dev/zero of="$F/filler" bs=4k 2>/dev/null
	before=$(cd "$F" && ls -li && sha256sum layer.tar desc.json M)
	expect_error "$L" diff "$M" "${OUTS[@]::4}" --manifest-out "$F/M"
	grep -qx "layersnap: $F/M: .*No space left on device" "$T/stderr" || fail "$tag: ENOSPC, manifest: $(cat "$T/stderr")"
	check_outputs "$tag: ENOSPC, manifest" write
	expect_error "$L" scan "$M" -o "$F/M"
	grep -qx "layersnap: $F/M: .*No space left on device" "$T/stderr" || fail "$tag: ENOSPC, scan: $(cat "$T/stderr")"
	assert_eq "$before" "$(cd "$F" && ls -li && sha256sum layer.tar desc.json M)" "$tag: ENOSPC, manifest: the tmpfs"
	no_leftovers "$tag: ENOSPC, manifest" "$O" "$T" "$F"
	umount "$F" || fail "umount $F"
	MOUNTED=
	echo "ok: $tag: ENOSPC"
}

# ---- (f) EPIPE and /dev/full --------------------------------------------------------
case_stdout() {
	local c st
	for c in none gzip zstd; do
		reset
		timeout 60 "$L" diff --compress $c "$R" -o - "${OUTS[@]:2}" 2>"$T/stderr" | head -c 100 >/dev/null
		st=${PIPESTATUS[0]}
		# stdout's reader gone: as if SIGPIPE ended the run, silently
		[ "$st" = 141 ] || { cat "$T/stderr" >&2; fail "$tag: -o - | head, --compress $c: exit $st"; }
		assert_eq "" "$(cat "$T/stderr")" "$tag: -o - | head, --compress $c"
		check_outputs "$tag: EPIPE, --compress $c" write
		no_leftovers "$tag: EPIPE, --compress $c" "$O" "$T"
		[ -c /dev/full ] || continue
		expect_error to_full timeout 60 "$L" diff --compress $c "$R" -o - "${OUTS[@]:2}"
		assert_eq "layersnap: layer: write: No space left on device" "$(cat "$T/stderr")" "$tag: -o - >/dev/full"
		expect_error timeout 60 "$L" diff --compress $c "$R" -o /dev/full "${OUTS[@]:2}"
		assert_eq "layersnap: layer: write: No space left on device" "$(cat "$T/stderr")" "$tag: -o /dev/full"
		check_outputs "$tag: /dev/full, --compress $c" write
		no_leftovers "$tag: /dev/full, --compress $c" "$O" "$T"
	done
	[ -c /dev/full ] || partial_skip devfull "no /dev/full here: -o - >/dev/full and -o /dev/full"
	echo "ok: $tag: EPIPE and /dev/full"
}

# ---- (g) apply stopped mid-file ----------------------------------------------------
# A base layer (d/a, d/k, keep) applied onto $AR; the next layer replaces d/a
# (the first file with data in it) and adds d/z after it.
AS=$T/asrc
AR=$T/aroot
mkdir -p "$AS/d"
echo 'old a' >"$AS/d/a"
echo k >"$AS/d/k"
echo keep >"$AS/keep"
"$L" diff "$AS" -o "$T/base.tar" --manifest-out "$T/base.m" -q || fail "apply: the base layer"
# fresh_aroot: AR as the base layer makes it; its state in ASTATE
astate() { # DIR: everything but temporaries and directories' times and sizes
	(cd "$1" && find . -name "$TEMP_RE" -prune -o -printf '%p %y %m\n' | sort &&
		find . -type f ! -name "$TEMP_RE" -printf '%p %s %T@\n' | sort &&
		find . -type f ! -name "$TEMP_RE" -exec sha256sum {} + | sort)
}
fresh_aroot() {
	rm -rf "$AR"
	mkdir -p "$AR"
	"$L" apply "$T/base.tar" "$AR" || fail "apply: the base layer onto a fresh root"
	ASTATE=$(astate "$AR")
}
case_apply() {
	local size what st sig want left
	# 300001 bytes: padding follows the data; 262144: none (the last byte held)
	for size in 300001 262144; do
		head -c $size /dev/urandom >"$AS/d/a"
		echo z >"$AS/d/z"
		"$L" diff "$AS" --base "$T/base.m" -o "$T/next.tar" -q || fail "apply: the next layer"
		tar -tf "$T/next.tar" | grep -qx 'd/a' || fail "apply: d/a is not in the next layer"
		rm -rf "$T/aref"
		mkdir -p "$T/aref"
		"$L" apply "$T/base.tar" "$T/aref" && "$L" apply "$T/next.tar" "$T/aref" || fail "apply: the reference"
		want=$((size % 512 ? size : size - 1))
		for sig in TERM INT HUP KILL ""; do
			what="$tag: apply, $([ -n "$sig" ] && echo "SIG$sig" || echo failure) after $want of $size bytes"
			fresh_aroot
			LS_TEST_FAIL_AT=apply${sig:+:$sig} "$L" apply "$T/next.tar" "$AR" 2>"$T/stderr"
			st=$?
			if [ -n "$sig" ]; then
				[ $st = "$(sig_status $sig)" ] || { cat "$T/stderr" >&2; fail "$what: exit $st"; }
			else
				[ $st = 2 ] || fail "$what: exit $st"
				assert_eq "layersnap: LS_TEST_FAIL_AT=apply: injected failure" "$(cat "$T/stderr")" "$what"
			fi
			# d/a is still the old file, d/z is not there, nothing else moved
			assert_eq "$ASTATE" "$(astate "$AR")" "$what: ROOT changed"
			left=$(cd "$AR" && find . -name "$TEMP_RE")
			if [ -n "$sig" ] && [ "$nt" = 1 ]; then
				case $left in ./d/.a.layersnap-tmp.??????) ;; *) fail "$what: left: $left" ;; esac
				assert_eq $want "$(stat -c %s "$AR/$left")" "$what: the temporary's size"
			else
				[ -z "$left" ] || fail "$what: left: $left"
			fi
			"$L" apply "$T/next.tar" "$AR" 2>"$T/stderr" || fail "$what: applying again: $(cat "$T/stderr")"
			diff -r --exclude="$TEMP_RE" "$T/aref" "$AR" >&2 || fail "$what: applied again, not the reference tree"
		done
	done
	# the hook reads tar headers: a compressed layer is refused, not applied
	fresh_aroot
	gzip -c "$T/next.tar" >"$T/next.tar.gz"
	LS_TEST_FAIL_AT=apply expect_error "$L" apply "$T/next.tar.gz" "$AR"
	assert_eq "layersnap: LS_TEST_FAIL_AT=apply: the layer is not an uncompressed tar" "$(cat "$T/stderr")" \
		"$tag: apply hook, gzip layer"
	echo "ok: $tag: apply stopped mid-file"
}

# LS_FAULTS_CASES picks cases (default: all), e.g. "order kill".
for nt in 0 1; do
	export LAYERSNAP_TEST_NO_TMPFILE=$nt
	tag="tmpfile=$([ $nt = 1 ] && echo no || echo yes)"
	for c in ${LS_FAULTS_CASES:-hook order signals kill enospc stdout apply}; do
		# the hook's own checks need one pass
		[ "$c" = hook ] && [ $nt = 1 ] && continue
		case_$c
	done
done
echo ok
