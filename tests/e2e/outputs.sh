#!/bin/bash
# Outputs leave nothing stale behind (DESIGN.md "Command line": output files
# and locks).  Every case runs on the O_TMPFILE path and on the named fallback
# (LAYERSNAP_TEST_NO_TMPFILE=1), with --io sync and --io uring:
#  (a) a run killed with SIGKILL mid-write, its outputs inside ROOT (the layer
#      to a FIFO nobody reads; then the layer a regular file being compressed
#      slowly): the killed run leaves its lock file (and, on the fallback, its
#      named temporaries; with O_TMPFILE none); the next run succeeds at once,
#      its layer and manifest name no temporary and no lock, and no temporary
#      remains.  SIGTERM leaves nothing at all.
#  (b) a file size limit (prlimit --fsize) on the layer, the manifest of a
#      diff and of a scan: exit 2 and one line "... File too large" (no
#      SIGXFSZ), the previous outputs byte-identical, nothing left behind, and
#      the next run works.
#  (c) two runs writing the same manifest: the second (diff or scan) fails at
#      once, "layersnap: M.lock: another layersnap run is writing M", leaves
#      the first's lock alone, and the first then commits.
#  (d) outputs named through symlinks (relative, from another directory, a
#      chain, dangling): the lock is the real target's, so a run through a
#      link is refused while another holds the target; on success the link
#      is still a link and its target holds the new file.
#  (e) stale `.NAME.layersnap-tmp.*` files beside the outputs are removed by
#      the next run that writes NAME (and only those: other names, other
#      bases, directories and symlinks stay); a live run's temporary (another
#      run writing the same unlocked layer) is neither removed nor walked.
. "$(dirname "$0")/lib.sh"

for t in tar prlimit timeout mkfifo; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
L=$LAYERSNAP
T=$LS_TMP
# A failed check must not leave a run blocked on a FIFO behind.
trap 'kill -KILL $(jobs -p) 2>/dev/null' EXIT

# ---- which names are temporaries (ls_output_is_temp_name, the glob
# `.*.layersnap-tmp.*`) ---------------------------------------------------------------
TOOL=$LS_BUILD/tools/outputs
[ -x "$TOOL" ] || fail "$TOOL is not built"
assert_eq "1 .M.layersnap-tmp.abc123
1 .layer.tar.layersnap-tmp.Zz9876
1 .M.layersnap-tmp.
1 ..layersnap-tmp.
1 .a.b.layersnap-tmp.c.d
0 M.layersnap-tmp.abc123
0 .layersnap-tmp.abc123
0 .M.tmp.abc123
0 .M.layersnap-tmpabc123
0 .M.layersnap_tmp.abc123
0 M.lock
0 .
0 
0 .a|.layersnap-tmp.x
0 .a.layersnap-tmp|.x
1 .a.layersnap-tmp.|x" "$("$TOOL" is-temp .M.layersnap-tmp.abc123 .layer.tar.layersnap-tmp.Zz9876 \
	.M.layersnap-tmp. ..layersnap-tmp. .a.b.layersnap-tmp.c.d M.layersnap-tmp.abc123 .layersnap-tmp.abc123 \
	.M.tmp.abc123 .M.layersnap-tmpabc123 .M.layersnap_tmp.abc123 M.lock . '' '.a|.layersnap-tmp.x' \
	'.a.layersnap-tmp|.x' '.a.layersnap-tmp.|x')" "ls_output_is_temp_name"

io_engines "--io uring"

# leftovers DIR...: every temporary (old or new style) and lock file in DIRs
leftovers() { find "$@" \( -name '*.layersnap-tmp.*' -o -name '.*.tmp.*' -o -name '*.lock' \) -print 2>/dev/null; }
no_leftovers() { # WHAT DIR...
	local what=$1 left
	shift
	left=$(leftovers "$@")
	[ -z "$left" ] || fail "$what: left behind: $left"
}
# names_clean WHAT LAYER MANIFEST: neither names a temporary or a lock
names_clean() {
	local names
	names=$(tar -tf "$2") || fail "$1: layer unreadable"
	! grep -E 'layersnap-tmp|\.tmp\.|\.lock' <<<"$names" || fail "$1: the layer holds the names above"
	names=$("$L" dump "$3") || fail "$1: manifest unreadable"
	! grep -E 'layersnap-tmp|\.tmp\.|\.lock' <<<"$names" || fail "$1: the manifest holds the names above"
}
# temp_names WHAT LAYER MANIFEST: neither names a temporary (a walk skips them)
temp_names() {
	local re='(^|/)\.[^/]*\.layersnap-tmp\.'
	! tar -tf "$2" | grep -E "$re" || fail "$1: the layer holds the temporaries above"
	! "$L" dump "$3" | grep -E "$re" || fail "$1: the manifest holds the temporaries above"
}
outputs_state() { (cd "$1" && ls -lA --time-style=+%s && sha256sum layer.tar desc.json M); }
ms_now() { date +%s%3N; }
to_null() { "$@" >/dev/null; }

# ---- a run blocked on a FIFO layer output ------------------------------------
# start_blocked CMD...: runs CMD (whose layer output is $T/fifo) in the
# background, PID in $BLOCKED, and returns once it has opened the FIFO: its
# manifest lock (taken before any other output is opened) is then held.  The
# FIFO is held open read-write on fd 3, so the run's open does not wait, and
# nobody reads it: once the pipe is full, the run is stuck in a write.
BLOCKED=
EXE=$(realpath "$L")
start_blocked() {
	rm -f "$T/fifo"
	mkfifo "$T/fifo"
	exec 3<>"$T/fifo"
	"$@" 2>"$T/blocked.err" 3>&- &
	BLOCKED=$!
	local i fd
	for i in $(seq 400); do
		# (before its exec, the child still has fd 3)
		[ "$(readlink /proc/$BLOCKED/exe 2>/dev/null)" = "$EXE" ] &&
		for fd in /proc/$BLOCKED/fd/*; do
			[ "$(readlink "$fd" 2>/dev/null)" = "$T/fifo" ] && return 0
		done
		kill -0 $BLOCKED 2>/dev/null || { cat "$T/blocked.err" >&2; fail "the blocked run exited early: $*"; }
		sleep 0.025
	done
	kill -KILL $BLOCKED
	fail "the blocked run never opened its FIFO: $*"
}
# wait_full PID: until a thread of PID (an io-wq worker with --io uring) is
# stuck writing to the full pipe
wait_full() {
	local i
	for i in $(seq 400); do
		grep -qs pipe_write /proc/$1/task/*/wchan && return 0
		sleep 0.025
	done
	partial_skip wchan "pid $1 was not seen blocked in a pipe write (no wchan?): the blocked-writer check"
}
# release_blocked OUT: lets the blocked run finish, its layer read to OUT;
# returns its exit status
release_blocked() {
	# A read end is open before ours (read-write) closes: the writer never
	# sees the pipe without a reader (EPIPE); cat holds no write end.
	exec 4<"$T/fifo"
	cat <&4 >"$1" 3>&- 4<&- &
	local cat_pid=$! st
	exec 3>&- 4<&-
	wait $BLOCKED
	st=$?
	wait $cat_pid
	return $st
}
# kill_blocked SIG: kills the blocked run, checks it died of SIG
kill_blocked() {
	local st
	kill -"$1" $BLOCKED
	wait $BLOCKED
	st=$?
	exec 3>&-
	[ $st = $((128 + $(kill -l "$1"))) ] || { cat "$T/blocked.err" >&2; fail "run killed with $1 exited $st"; }
}

# temp_size PID DIR NAME: the size of the largest temporary in DIR that PID
# has open (an unlinked O_TMPFILE "DIR/#ino (deleted)" or ".NAME.layersnap-tmp.*")
temp_size() {
	local fd link size max=0
	for fd in /proc/$1/fd/*; do
		link=$(readlink "$fd" 2>/dev/null) || continue
		case $link in
		"$2/#"*" (deleted)" | "$2/.$3.layersnap-tmp."*)
			size=$(stat -L -c %s "$fd" 2>/dev/null) || continue
			[ "$size" -gt $max ] && max=$size ;;
		esac
	done
	echo $max
}

# ---- the cases -------------------------------------------------------------------------
# Each case runs in a fresh directory D: ROOT is $R, with the outputs in $O
# inside it; $nt, $io and $tag name the pass.
setup() { # CASE
	D=$T/$nt-$io-$1
	R=$D/root
	O=$R/out
	mkdir -p "$R/d" "$O"
	printf 'one\n' >"$R/f"
	printf 'two\n' >"$R/d/g"
	head -c 1000000 /dev/urandom >"$R/d/big"
	outs=(-o "$O/layer.tar" --descriptor "$O/desc.json" --manifest-out "$O/M")
	"$L" diff --io "$io" "$R" "${outs[@]}" -q || fail "$tag: first diff"
	names_clean "$tag: first diff" "$O/layer.tar" "$O/M"
}

# next_run WHAT: the run after a killed one succeeds at once, its layer and
# manifest clean, and nothing is left after it
next_run() {
	local t0 t1
	t0=$(ms_now)
	timeout 30 "$L" diff --io "$io" "$R" --base "$O/M" "${outs[@]}" 2>"$T/stderr" ||
		fail "$tag: $1: the next diff failed: $(cat "$T/stderr")"
	t1=$(ms_now)
	[ $((t1 - t0)) -lt 10000 ] || fail "$tag: $1: the next diff took $((t1 - t0)) ms"
	names_clean "$tag: $1" "$O/layer.tar" "$O/M"
	no_leftovers "$tag: $1, then a good run" "$D"
}

# (a) SIGKILL mid-write, outputs inside ROOT
case_a() {
	setup a
	# the layer to a FIFO, blocked: a new layer larger than the pipe holds
	head -c 1000000 /dev/urandom >"$R/d/big"
	start_blocked "$L" diff --io "$io" "$R" --base "$O/M" -o "$T/fifo" --descriptor "$O/desc.json" --manifest-out "$O/M"
	wait_full $BLOCKED
	kill_blocked KILL
	[ -e "$O/M.lock" ] || fail "$tag: the killed run left no lock file (the case is not tested)"
	local temps
	temps=$(find "$O" -name '.*.layersnap-tmp.*' | wc -l)
	if [ "$nt" = 1 ]; then
		[ "$temps" = 2 ] || fail "$tag: expected the killed run's 2 named temporaries, found: $(leftovers "$O")"
	else
		[ "$temps" = 0 ] || fail "$tag: SIGKILL left temporaries with O_TMPFILE: $(leftovers "$O")"
	fi
	next_run "after SIGKILL (layer to a FIFO)"
	echo "ok: $tag: SIGKILL while writing to a FIFO"

	# the layer a regular file, killed while it is being compressed (slowly:
	# zstd level 19 of random bytes), a full layer
	head -c 8000000 /dev/urandom >"$R/d/slow"
	"$L" diff --io "$io" --compress zstd --level 19 "$R" "${outs[@]}" 2>"$T/killed.err" &
	local pid=$! i size=0
	for i in $(seq 800); do
		size=$(temp_size $pid "$O" layer.tar)
		[ "$size" -ge 262144 ] && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.025
	done
	[ "$size" -ge 262144 ] || { kill -KILL $pid; cat "$T/killed.err" >&2; fail "$tag: the layer's temporary never grew"; }
	kill -KILL $pid
	wait $pid
	[ $? = 137 ] || fail "$tag: the slow run was not killed mid-write"
	[ -e "$O/M.lock" ] || fail "$tag: the killed run left no lock file"
	if [ "$nt" = 1 ]; then
		temps=$(find "$O" -name '.layer.tar.layersnap-tmp.*' -size +255k | wc -l)
		[ "$temps" = 1 ] || fail "$tag: expected the killed run's layer temporary, found: $(leftovers "$O")"
	else
		[ -z "$(find "$O" -name '.*.layersnap-tmp.*')" ] || fail "$tag: SIGKILL left temporaries with O_TMPFILE: $(leftovers "$O")"
	fi
	next_run "after SIGKILL (layer file)"
	tar -tf "$O/layer.tar" | grep -qx 'd/slow' || fail "$tag: the new file is not in the next layer"
	echo "ok: $tag: SIGKILL while writing the layer file"

	# SIGTERM: the handler removes the named temporaries and the lock
	head -c 1000000 /dev/urandom >"$R/d/big"
	start_blocked "$L" diff --io "$io" "$R" --base "$O/M" -o "$T/fifo" --descriptor "$O/desc.json" --manifest-out "$O/M"
	wait_full $BLOCKED
	kill_blocked TERM
	no_leftovers "$tag: SIGTERM" "$D"
	echo "ok: $tag: SIGTERM"
}

# (b) a file size limit
case_b() {
	setup b
	local before
	before=$(outputs_state "$O")
	echo more >>"$R/f"
	expect_error prlimit --fsize=100000 "$L" diff --io "$io" "$R" "${outs[@]}"
	assert_eq "layersnap: layer: write: File too large" "$(cat "$T/stderr")" "$tag: --fsize message"
	assert_eq "$before" "$(outputs_state "$O")" "$tag: --fsize: previous outputs changed"
	no_leftovers "$tag: --fsize" "$D"
	# the manifest over the limit (the layer to a pipe, which has none)
	expect_error to_null prlimit --fsize=100 "$L" diff --io "$io" "$R" -o - --manifest-out "$O/M"
	grep -q "^layersnap: $O/M: .*File too large$" "$T/stderr" || fail "$tag: --fsize, manifest: $(cat "$T/stderr")"
	expect_error prlimit --fsize=100 "$L" scan --io "$io" "$R" -o "$O/M"
	grep -q "^layersnap: $O/M: .*File too large$" "$T/stderr" || fail "$tag: --fsize, scan: $(cat "$T/stderr")"
	assert_eq "$before" "$(outputs_state "$O")" "$tag: --fsize, manifest: previous outputs changed"
	no_leftovers "$tag: --fsize, manifest" "$D"
	"$L" diff --io "$io" "$R" "${outs[@]}" -q || fail "$tag: diff after --fsize failures"
	names_clean "$tag: after --fsize" "$O/layer.tar" "$O/M"
	no_leftovers "$tag: after --fsize and a good run" "$D"
	echo "ok: $tag: file size limit"
}

# (c) two runs writing the same manifest
case_c() {
	setup c
	local P=$D/out t0 t1
	mkdir -p "$P"
	start_blocked "$L" diff --io "$io" "$R" -o "$T/fifo" --manifest-out "$P/M"
	t0=$(ms_now)
	expect_error timeout 10 "$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$P/M"
	t1=$(ms_now)
	assert_eq "layersnap: $P/M.lock: another layersnap run is writing $P/M" "$(cat "$T/stderr")" "$tag: lock message"
	[ $((t1 - t0)) -lt 5000 ] || fail "$tag: the second run took $((t1 - t0)) ms to fail"
	expect_error timeout 10 "$L" scan --io "$io" "$R" -o "$P/M"
	assert_eq "layersnap: $P/M.lock: another layersnap run is writing $P/M" "$(cat "$T/stderr")" "$tag: lock message (scan)"
	[ -e "$P/M.lock" ] || fail "$tag: the refused run removed the lock"
	[ ! -e "$P/other.tar" ] || fail "$tag: the refused run wrote its layer"
	release_blocked "$T/first.tar" || fail "$tag: the first run failed: $(cat "$T/blocked.err")"
	tar -tf "$T/first.tar" >/dev/null || fail "$tag: the first run's layer"
	"$L" dump "$P/M" >/dev/null || fail "$tag: the first run's manifest"
	no_leftovers "$tag: two runs" "$D"
	"$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$P/M" -q || fail "$tag: diff once the lock is free"
	no_leftovers "$tag: two runs, then one" "$D"

	# the lock held by another process (tools/outputs hold-lock), which then
	# dies: its lock file stays and blocks nothing
	"$TOOL" hold-lock "$P/M.lock" sleep 60 &
	local holder=$! i
	for i in $(seq 400); do
		[ -e "$P/M.lock" ] && grep -q "OFDLCK .* WRITE .*:$(stat -c %i "$P/M.lock") 0 EOF" /proc/locks && break
		sleep 0.025
	done
	expect_error "$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$P/M"
	assert_eq "layersnap: $P/M.lock: another layersnap run is writing $P/M" "$(cat "$T/stderr")" "$tag: lock held elsewhere"
	kill -KILL $holder
	wait $holder 2>/dev/null
	[ -e "$P/M.lock" ] || fail "$tag: the refused run removed the lock"
	"$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$P/M" -q || fail "$tag: diff beside a dead holder's lock file"
	no_leftovers "$tag: a dead holder's lock file, then a run" "$D"
	echo "ok: $tag: concurrent runs"
}

# (d) symlinked outputs
case_d() {
	setup d
	local P=$D/out Q=$D/other PR via sum
	mkdir -p "$P" "$Q"
	"$L" scan --io "$io" "$R" -o "$P/M" || fail "$tag: scan"
	ln -s M "$P/Mlink"
	ln -s ../out/M "$Q/rel"
	ln -s "$P/Mlink" "$Q/chain"
	PR=$(realpath "$P")  # messages name the real file
	start_blocked "$L" diff --io "$io" "$R" -o "$T/fifo" --manifest-out "$P/M"
	for via in "$P/Mlink" "$Q/rel" "$Q/chain"; do
		expect_error "$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$via"
		assert_eq "layersnap: $PR/M.lock: another layersnap run is writing $PR/M" "$(cat "$T/stderr")" \
			"$tag: --manifest-out $via while M is locked"
		expect_error "$L" scan --io "$io" "$R" -o "$via"
		assert_eq "layersnap: $PR/M.lock: another layersnap run is writing $PR/M" "$(cat "$T/stderr")" \
			"$tag: scan -o $via while M is locked"
	done
	release_blocked /dev/null || fail "$tag: the run holding M failed: $(cat "$T/blocked.err")"
	echo new >"$R/added"
	"$L" diff --io "$io" "$R" -o "$P/other.tar" --manifest-out "$P/Mlink" -q || fail "$tag: diff --manifest-out Mlink"
	[ -L "$P/Mlink" ] && [ "$(readlink "$P/Mlink")" = M ] || fail "$tag: Mlink is no longer the symlink it was"
	"$L" dump "$P/M" | grep -q '^\./added ' || fail "$tag: M does not hold the new manifest"
	rm "$R/added"
	sum=$(sha256sum <"$P/M")
	"$L" scan --io "$io" "$R" -o "$Q/chain" || fail "$tag: scan -o a chain of links"
	[ -L "$Q/chain" ] && [ -L "$P/Mlink" ] || fail "$tag: a link of the chain was replaced"
	[ "$sum" != "$(sha256sum <"$P/M")" ] && ! "$L" dump "$P/M" | grep -q '^\./added ' ||
		fail "$tag: M does not hold the manifest written through the chain"
	ln -s ../out/layer2.tar "$Q/layerlink"
	ln -s D "$P/dangling"
	"$L" diff --io "$io" "$R" -o "$Q/layerlink" --descriptor "$Q/layerlink.json" --manifest-out "$P/dangling" -q ||
		fail "$tag: outputs through a dangling link"
	[ -L "$Q/layerlink" ] && [ -f "$P/layer2.tar" ] || fail "$tag: -o through a dangling link: not written to its target"
	[ -L "$P/dangling" ] && [ -f "$P/D" ] || fail "$tag: --manifest-out a dangling link: not written to its target"
	tar -tf "$P/layer2.tar" >/dev/null && "$L" dump "$P/D" >/dev/null || fail "$tag: outputs through links unreadable"
	no_leftovers "$tag: symlinked outputs" "$D"
	echo "ok: $tag: symlinked outputs"
}

# (e) stale temporaries
case_e() {
	setup e
	# stale: ours, removed.  other: another base's temporary (kept, not
	# walked).  plain: ordinary files that merely look alike (kept, walked).
	local stale=(".M.layersnap-tmp.abc123" ".layer.tar.layersnap-tmp.abc123" ".desc.json.layersnap-tmp.Zz9876"
		".M.layersnap-tmp.x" ".M.layersnap-tmp.")
	local other=(".Mx.layersnap-tmp.abc123" ".x.M.layersnap-tmp.abc123")
	local plain=(".M.tmp.abc123" "M.layersnap-tmp.abc123" ".M.layersnap-tmpabc123" "M.lock.x")
	local n
	for n in "${stale[@]}" "${other[@]}" "${plain[@]}"; do printf 'stale %s\n' "$n" >"$O/$n"; done
	mkdir "$O/.M.layersnap-tmp.dir"
	ln -s ../f "$O/.M.layersnap-tmp.lnk"
	echo edit >>"$R/f"
	"$L" diff -v --io "$io" "$R" --base "$O/M" "${outs[@]}" 2>"$T/stderr" ||
		fail "$tag: diff beside stale temporaries: $(cat "$T/stderr")"
	for n in "${stale[@]}"; do [ ! -e "$O/$n" ] || fail "$tag: stale $n not removed"; done
	for n in "${other[@]}" "${plain[@]}" .M.layersnap-tmp.dir .M.layersnap-tmp.lnk; do
		[ -e "$O/$n" ] || [ -L "$O/$n" ] || fail "$tag: $n removed (not a stale temporary of ours)"
	done
	grep -q "$O/M: removed 3 stale temporary files" "$T/stderr" ||
		fail "$tag: -v does not report the removal: $(cat "$T/stderr")"
	temp_names "$tag: beside stale temporaries" "$O/layer.tar" "$O/M"
	for n in "${plain[@]}"; do
		tar -tf "$O/layer.tar" | grep -qxF "out/$n" || fail "$tag: the ordinary file $n is not in the layer"
	done
	! tar -tf "$O/layer.tar" | grep -E '^out/M\.lock$' || fail "$tag: the lock is in the layer"
	for n in "${other[@]}" "${plain[@]}"; do rm "$O/$n"; done
	rm -r "$O/.M.layersnap-tmp.dir" "$O/.M.layersnap-tmp.lnk"
	# scan too
	: >"$O/.M.layersnap-tmp.abc123"
	"$L" scan --io "$io" "$R" -o "$O/M" || fail "$tag: scan beside a stale temporary"
	[ ! -e "$O/.M.layersnap-tmp.abc123" ] || fail "$tag: scan did not remove the stale temporary"
	"$L" diff --io "$io" "$R" "${outs[@]}" -q || fail "$tag: diff"
	echo "ok: $tag: stale temporaries"

	# A live temporary: another run writing the same (unlocked) layer, on the
	# named fallback, stopped while opening its descriptor (a FIFO nobody
	# opens).  A run writing that layer meanwhile neither removes it nor
	# walks it (it is inside ROOT); the first run then commits.
	rm -f "$T/dfifo"
	mkfifo "$T/dfifo"
	LAYERSNAP_TEST_NO_TMPFILE=1 "$L" diff --io "$io" "$R" -o "$O/layer.tar" --descriptor "$T/dfifo" -q \
		2>"$T/live.err" 3>&- &
	local live=$! live_tmp= ino= i
	for i in $(seq 400); do
		live_tmp=$(find "$O" -name '.layer.tar.layersnap-tmp.*' | head -n 1)
		if [ -n "$live_tmp" ]; then
			ino=$(stat -c %i "$live_tmp")
			grep -q "OFDLCK .* WRITE .*:$ino 0 EOF" /proc/locks && break
		fi
		kill -0 $live 2>/dev/null || break
		sleep 0.025
	done
	grep -q "OFDLCK .* WRITE .*:$ino 0 EOF" /proc/locks || {
		kill $live
		fail "$tag: the live run's temporary never appeared locked"
	}
	"$L" diff --io "$io" "$R" --base "$O/M" -o "$O/layer.tar" 2>"$T/stderr" ||
		fail "$tag: diff beside a live temporary: $(cat "$T/stderr")"
	[ -e "$live_tmp" ] && [ "$(stat -c %i "$live_tmp")" = "$ino" ] || fail "$tag: a live run's temporary was removed"
	! tar -tf "$O/layer.tar" | grep 'layersnap-tmp' || fail "$tag: a live run's temporary was walked"
	# (read-write: never waits for a writer; the descriptor fits the pipe)
	exec 4<>"$T/dfifo"
	wait $live || fail "$tag: the run beside the other failed: $(cat "$T/live.err")"
	exec 4<&-
	no_leftovers "$tag: live temporary" "$D"
	echo "ok: $tag: a live temporary"
}

# LS_OUTPUTS_CASES picks cases (default: all), e.g. "a c".
for io in $IOS; do
	for nt in 0 1; do
		export LAYERSNAP_TEST_NO_TMPFILE=$nt
		tag="tmpfile=$([ $nt = 1 ] && echo no || echo yes) io=$io"
		for c in ${LS_OUTPUTS_CASES:-a b c d e}; do
			case_$c
		done
	done
done
echo ok
