#!/bin/bash
# A live tree: diff while something else changes the tree, with --io sync
# and --io uring.  Three races, each against a helper from tests/tools that
# runs only while a diff runs (SIGCONT before it, SIGSTOP after) and counts
# what it did; a race whose helper did nothing fails.
#
# 1. Nothing from outside ROOT.  A directory d/ and a symlink s -> OUTSIDE
#    trade places (renameat2 RENAME_EXCHANGE, tests/tools/exchanger) while
#    `diff --mode full ROOT` runs.  OUTSIDE mirrors d/'s names and sizes with
#    files full of a secret marker, and holds files named after it: in no
#    layer (nor manifest, nor error message) may the marker appear.  A run
#    may fail with exit 2 (one "layersnap: " line); any other status fails.
# 2. No torn entries.  Files of 1-4 MiB rewritten in place, all 'A' then all
#    'B' (one pwrite from offset 0, tests/tools/rewriter), while full layers
#    (no --base) are written: in every layer of a run that exited 0, every
#    file is all 'A' or all 'B'.  A run that exits 2 prints exactly one line,
#    "layersnap: PATH: changed while being read" (PATH relative or ROOT/PATH).
#    The rewriter pauses between rounds (20 ms on average) so that some runs
#    can finish: at least one layer (of all the runs) must have been checked.
# 3. Create/delete churn (tests/tools/churn: new files and directories appear
#    and vanish, the tree's first entries are deleted) while
#    `diff --base B --manifest-out M2` runs: every diff exits 0 (an entry that
#    vanished after the walk is absent, not an error), and the base tree's
#    extraction with the layer applied is exactly the tree M2 describes:
#    `compare --mode redo --mtime-seconds M2 TREE` and, stronger (contents
#    too), `compare --mode full --mtime-seconds M2 TREE` both exit 0.
#
# LS_RACE_RUNS overrides the number of diffs per race and --io (defaults:
# 30, 20 and 30).  The trees are small so that each diff is quick, under
# ASan too; the helpers race every diff from its start to its end.
. "$(dirname "$0")/lib.sh"

for t in tar bsdtar; do command -v $t >/dev/null || skip "$t" "$t not installed"; done
L=$LAYERSNAP
T=$LS_TMP
TOOLS=$LS_BUILD/tools
for t in exchanger rewriter churn; do [ -x "$TOOLS/$t" ] || fail "$TOOLS/$t is not built"; done
RUNS_LEAK=${LS_RACE_RUNS:-30}
RUNS_TORN=${LS_RACE_RUNS:-20}
RUNS_CHURN=${LS_RACE_RUNS:-30}

io_engines "--io uring races"

# ---- the racing helper: one at a time, paused between diffs -------------------------
RACER=
RACER_LOG=
start_racer() { # LOG CMD...: CMD, stderr to LOG, stopped until the first race
	RACER_LOG=$1
	shift
	(
		kill -STOP $BASHPID
		exec "$@"
	) 2>"$RACER_LOG" &
	RACER=$!
	local i
	for i in $(seq 500); do
		[ "$(sed "s/.*) //; s/ .*//" /proc/$RACER/stat 2>/dev/null)" = T ] && return 0
		sleep 0.01
	done
	fail "the racer did not stop before its first race: $(cat "$RACER_LOG")"
}
stop_racer() { # waits for the racer's summary line; fails if it did not run well
	local pid=$RACER st
	RACER=
	[ -n "$pid" ] || return 0
	kill -TERM $pid 2>/dev/null
	kill -CONT $pid 2>/dev/null
	wait $pid
	st=$?
	[ $st -eq 0 ] || fail "racer exited $st: $(cat "$RACER_LOG")"
}
cleanup() {
	if [ -n "$RACER" ]; then
		kill -TERM $RACER 2>/dev/null
		kill -CONT $RACER 2>/dev/null
		wait $RACER 2>/dev/null
	fi
}
trap cleanup EXIT
race() { # CMD...: runs CMD while the racer runs; its status in $st, stderr in $T/err
	kill -CONT $RACER 2>/dev/null || fail "the racer is gone: $(cat "$RACER_LOG")"
	"$@" 2>"$T/err"
	st=$?
	kill -STOP $RACER
}
# racer_count: $n, the first number of the racer's summary line (fails when 0)
racer_count() {
	n=$(sed -n 's/^[a-z]*: \([0-9][0-9]*\) .*/\1/p' "$RACER_LOG" | tail -n 1)
	[ -n "$n" ] || fail "no summary from the racer: $(cat "$RACER_LOG")"
	[ "$n" -gt 0 ] || fail "the racer did nothing during the runs: $(cat "$RACER_LOG")"
}
# one_line_error: $T/err is exactly one line "layersnap: ..."
one_line_error() {
	[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^layersnap: ' "$T/err"
}

problems=0
problem() { echo "PROBLEM: $*"; problems=$((problems + 1)); }

# ---- 1. nothing from outside ROOT ------------------------------------------------------
SECRET="ls-secret-$$-$RANDOM$RANDOM-never-in-a-layer"
R=$T/leak/root
X=$T/leak/elsewhere   # outside ROOT; its own path holds no secret (s's target is in the layer)
mkdir -p "$R/d/sub/deeper" "$X/sub/deeper" "$R/other"
# fill PATH SIZE WORD: PATH holds SIZE bytes of WORD lines
fill() { yes "$3" | head -c "$2" >"$1"; }
for rel in f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 sub/g0 sub/g1 sub/g2 sub/g3 sub/g4 sub/g5 \
	sub/deeper/h0 sub/deeper/h1 sub/deeper/h2 sub/deeper/h3; do
	size=$((1000 + ${#rel} * 500))
	fill "$R/d/$rel" $size inside
	fill "$X/$rel" $size "$SECRET"
done
for dir in "$X" "$X/sub" "$X/sub/deeper"; do
	: >"$dir/$SECRET.name"
	ln -s "$SECRET" "$dir/$SECRET.link"
done
fill "$R/other/a" 5000 other
ln -s "$X" "$R/s"
grep -rqa "$SECRET" "$R" && fail "the secret is inside ROOT before the race"

for io in $IOS; do
	start_racer "$T/exchanger.log" "$TOOLS/exchanger" "$R/d" "$R/s" 600
	ok=0 err=0 bad=0 leaked=0
	: >"$T/leak.msgs"
	for i in $(seq "$RUNS_LEAK"); do
		rm -f "$T/leak.tar" "$T/leak.m"
		race "$L" diff --mode full --io $io "$R" -o "$T/leak.tar" --manifest-out "$T/leak.m"
		case $st in
		0)
			ok=$((ok + 1))
			bsdtar -tf "$T/leak.tar" >/dev/null || problem "leak $io run $i: the layer does not list"
			if grep -qa "$SECRET" "$T/leak.tar"; then
				leaked=$((leaked + 1))
				problem "leak $io run $i: the layer holds bytes from outside ROOT: $(bsdtar -tf "$T/leak.tar" | tr '\n' ' ')"
			elif grep -qa "$SECRET" "$T/leak.m"; then
				leaked=$((leaked + 1))
				problem "leak $io run $i: the manifest records entries from outside ROOT"
			fi
			;;
		2)
			err=$((err + 1))
			one_line_error || problem "leak $io run $i: exit 2 without one 'layersnap: ' line: $(cat "$T/err")"
			if grep -qa "$SECRET" "$T/err"; then
				leaked=$((leaked + 1))
				problem "leak $io run $i: the error names something outside ROOT: $(cat "$T/err")"
			fi
			[ -e "$T/leak.tar" ] && problem "leak $io run $i: exit 2 but a layer was written"
			sed "s|$R/||; s/[0-9]\+/N/g" "$T/err" >>"$T/leak.msgs"
			;;
		*)
			bad=$((bad + 1))
			problem "leak $io run $i: exit status $st: $(head -c 2000 "$T/err")"
			;;
		esac
	done
	stop_racer
	racer_count
	echo "leak --io $io: $RUNS_LEAK runs: $ok exited 0, $err exited 2, $bad other; $leaked leaked; $n exchanges ($(cat "$RACER_LOG"))"
	[ -s "$T/leak.msgs" ] && sort "$T/leak.msgs" | uniq -c | sed 's/^/    exit 2: /'
done

# ---- 2. no torn entries --------------------------------------------------------------------
R=$T/torn/root
REF=$T/torn/ref
mkdir -p "$R/small" "$REF"
BIG="big1 big2 big3 big4"
for k in 1 2 3 4; do
	size=$((k * 1048576 + k * 4096 + 17))
	head -c $size /dev/zero | tr '\0' A >"$REF/big$k.A"
	head -c $size /dev/zero | tr '\0' B >"$REF/big$k.B"
	cp "$REF/big$k.A" "$R/big$k"
done
for k in 1 2 3; do echo "small file $k" >"$R/small/s$k"; done
: >"$T/torn.allowed"
for b in $BIG; do
	printf 'layersnap: %s: changed while being read\n' "$b" "$R/$b" >>"$T/torn.allowed"
done

checked=0
for io in $IOS; do
	start_racer "$T/rewriter.log" "$TOOLS/rewriter" -t 600 -p 20 $(for b in $BIG; do printf '%s ' "$R/$b"; done)
	ok=0 err=0 bad=0 torn=0 a=0 b=0
	for i in $(seq "$RUNS_TORN"); do
		rm -f "$T/torn.tar"
		race "$L" diff --mode full --io $io "$R" -o "$T/torn.tar"
		case $st in
		0)
			ok=$((ok + 1))
			rm -rf "$T/torn/x"
			mkdir "$T/torn/x"
			tar -xf "$T/torn.tar" -C "$T/torn/x" || { problem "torn $io run $i: tar cannot extract the layer"; continue; }
			for f in $BIG; do
				got=$T/torn/x/$f
				if [ ! -f "$got" ]; then
					problem "torn $io run $i: $f is not in the layer"
				elif cmp -s "$got" "$REF/$f.A"; then
					a=$((a + 1))
				elif cmp -s "$got" "$REF/$f.B"; then
					b=$((b + 1))
				else
					torn=$((torn + 1))
					problem "torn $io run $i: $f is torn: $(stat -c %s "$got") bytes," \
						"$(tr -cd A <"$got" | wc -c) A, $(tr -cd B <"$got" | wc -c) B"
				fi
			done
			;;
		2)
			err=$((err + 1))
			if ! one_line_error || ! grep -qxFf "$T/torn.allowed" "$T/err"; then
				problem "torn $io run $i: exit 2, not one line 'layersnap: PATH: changed while being read': $(cat "$T/err")"
			fi
			[ -e "$T/torn.tar" ] && problem "torn $io run $i: exit 2 but a layer was written"
			;;
		*)
			bad=$((bad + 1))
			problem "torn $io run $i: exit status $st: $(head -c 2000 "$T/err")"
			;;
		esac
	done
	stop_racer
	racer_count
	checked=$((checked + ok))
	echo "torn --io $io: $RUNS_TORN runs: $ok exited 0, $err exited 2, $bad other;" \
		"files in layers: $a all-A, $b all-B, $torn torn; $n rewrites ($(cat "$RACER_LOG"))"
done

[ $checked -gt 0 ] || problem "torn: no run exited 0: no layer could be checked for torn files"

# ---- 3. create/delete churn --------------------------------------------------------------
R=$T/churn/root
STAGE=$T/churn/stage   # same file system, outside ROOT
E=$T/churn/base-tree
mkdir -p "$R/keep" "$STAGE"
CDIRS=
for c in 0 1 2 3 4 5; do
	mkdir -p "$R/c$c/sub0" "$R/c$c/sub1"
	for f in $(seq 30); do echo "c$c file $f" >"$R/c$c/f$f"; done
	for f in 1 2 3 4; do echo "c$c sub file $f" >"$R/c$c/sub0/g$f"; echo "$f" >"$R/c$c/sub1/g$f"; done
	CDIRS="$CDIRS $R/c$c"
done
for f in 1 2 3; do echo "keep $f" >"$R/keep/k$f"; done
ln -s keep/k1 "$R/link"
"$L" diff "$R" -o "$T/churn.l0.tar" --manifest-out "$T/churn.base.m" -q || fail "churn: the base diff failed"
mkdir "$E"
"$L" apply -q "$T/churn.l0.tar" "$E" || fail "churn: applying the base layer failed"
"$L" compare --mode redo --mtime-seconds "$T/churn.base.m" "$E" >"$T/cmp.out" ||
	fail "churn: the base tree's extraction differs from the base manifest: $(head -n 20 "$T/cmp.out")"
"$L" compare --mode full --mtime-seconds "$T/churn.base.m" "$E" >"$T/cmp.out" ||
	fail "churn: the base tree's extraction differs from the base manifest (full): $(head -n 20 "$T/cmp.out")"

for io in $IOS; do
	# one entry from the start removed every 30 ms of racing: they last beyond 30 diffs
	start_racer "$T/churn.log" "$TOOLS/churn" -t 600 -r 33 "$STAGE" $CDIRS
	ok=0 err=0 bad=0 applyfail=0 redo_diff=0 full_diff=0 changes=0
	: >"$T/churn.msgs"
	for i in $(seq "$RUNS_CHURN"); do
		rm -f "$T/churn.tar" "$T/churn.m2"
		race "$L" diff --io $io "$R" --base "$T/churn.base.m" -o "$T/churn.tar" \
			--manifest-out "$T/churn.m2" -q
		case $st in
		0) ok=$((ok + 1)) ;;
		2)
			err=$((err + 1))
			one_line_error || problem "churn $io run $i: exit 2 without one 'layersnap: ' line: $(cat "$T/err")"
			problem "churn $io run $i: diff exited 2: $(head -c 2000 "$T/err")"
			sed "s|$R/||; s/[0-9]\+/N/g" "$T/err" >>"$T/churn.msgs"
			continue
			;;
		*)
			bad=$((bad + 1))
			problem "churn $io run $i: exit status $st: $(head -c 2000 "$T/err")"
			continue
			;;
		esac
		changes=$((changes + $(bsdtar -tf "$T/churn.tar" | wc -l)))
		rm -rf "$T/churn/applied"
		cp -a "$E" "$T/churn/applied"
		if ! "$L" apply -q "$T/churn.tar" "$T/churn/applied" 2>"$T/err"; then
			applyfail=$((applyfail + 1))
			problem "churn $io run $i: apply failed: $(cat "$T/err")"
			continue
		fi
		"$L" compare --mode redo --mtime-seconds "$T/churn.m2" "$T/churn/applied" >"$T/cmp.out" 2>"$T/err"
		cst=$?
		if [ $cst -ne 0 ]; then
			redo_diff=$((redo_diff + 1))
			problem "churn $io run $i: base tree + layer != the new manifest (compare --mode redo exited $cst):" \
				"$(head -n 8 "$T/cmp.out" | tr '\t\n' ' ') $(cat "$T/err")"
		fi
		"$L" compare --mode full --mtime-seconds "$T/churn.m2" "$T/churn/applied" >"$T/cmp.out" 2>"$T/err"
		cst=$?
		if [ $cst -ne 0 ]; then
			full_diff=$((full_diff + 1))
			problem "churn $io run $i: base tree + layer != the new manifest (compare --mode full exited $cst):" \
				"$(head -n 8 "$T/cmp.out" | tr '\t\n' ' ') $(cat "$T/err")"
		fi
	done
	stop_racer
	racer_count
	echo "churn --io $io: $RUNS_CHURN runs: $ok exited 0, $err exited 2, $bad other;" \
		"$applyfail apply failures, $redo_diff redo and $full_diff full mismatches;" \
		"$changes layer entries in all; $n operations ($(cat "$RACER_LOG"))"
	[ -s "$T/churn.msgs" ] && sort "$T/churn.msgs" | uniq -c | sed 's/^/    exit 2: /'
done

[ $problems -eq 0 ] || fail "$problems problem(s), see above"
echo ok
