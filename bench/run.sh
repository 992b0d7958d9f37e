#!/usr/bin/env bash
# bench/run.sh MODE BUILD: the side-by-side benchmark of DESIGN.md "Performance".
#
#   MODE  quick: one 20k-entry synthetic tree, 3 runs (+1 warm-up) per command, 1 cold run;
#                what CI runs.
#         full:  synthetic 100k (5 runs), the npm tree (bench/npm-tree, when the registry
#                is reachable or it is cached; before the 1M tree, not in its wake) and
#                synthetic 1M (3 runs).
#   BUILD the build directory holding layersnap and bench/{gen-tree,mutate,timeit,floor-hash,floor-upper,floor-layer}.
#
# Every scenario runs beside its peers in the same loop, alternating commands within each
# run, the rounds going forwards and backwards through them in turn:
#   - scan, metadata (redo, time; --io auto, sync, uring) vs bfs and find -printf of the
#     same fields, and the floor loops: of the cached tree (warm, a warm-up run first),
#     and (with scan --mode full vs xxh128sum) of the diff scenarios' work tree right
#     after it was written, warm as a build leaves it, its writeback pending (no warm-up,
#     no sync);
#   - scan, full vs find | xargs xxh128sum, mtree -K sha256digest and the floor loops, and
#   - the full layer, plain, gzip and zstd, vs GNU tar with the reproducible-builds
#     options, alone and piped into pigz -6 -n and zstd -3 -T0:
#     each warm (after a warm-up run) and cold (caches dropped before each run, no warm-up;
#     only as root), beside its peers in the same state;
#   - diff after a build step (bench/mutate) vs tar --listed-incremental and umoci repack,
#     with bases scanned after a pause and one scanned right after the tree was written
#     (its racy window holds the tree's last writes: the full diff must read them again).
# Peers write their output to a file, as layersnap writes a manifest or a layer; every
# output is removed and the disk synced before each run (ext4 flushes a file that replaces
# another, by rename or O_TRUNC, inside the run).  The floor loops are bench/floor-hash:
# getdents64 + statx of every entry, and open + 256 KiB reads + XXH3-128 + close of every
# file, with one thread and with one per CPU; bench/floor-upper, the syscalls of the
# overlay step; bench/floor-layer, a full layer's unavoidable work (read every file,
# SHA-256 the stream, with -z zstd it and hash the blob, write it) on three threads, with
# no walk, no tar headers and no checks: a lower bound, beside the layer rows.
#
# Reports the median wall time, median CPU time (user+sys), peak RSS, ratios against the
# peers and a table of the targets (DESIGN.md "Performance", the performance issue), as
# Markdown on stdout and in bench/results/YYYY-MM-DD-MODE[-GROUP...].md (quick: under the
# cache).
# Trees are cached under ${LAYERSNAP_BENCH_CACHE:-/var/tmp/layersnap-bench}; scratch space
# is a directory there, removed at the end.  Speed is never asserted: the run fails (exit
# 1) only when a layersnap command or a floor loop fails, two runs of one diff disagree on
# the layer (entry count or diff_id), the diffs against the two full bases disagree, the
# full layers disagree on the tar, or a full layer's entry count differs from the tree's.
# A missing peer is noted and skipped.  Environment: LAYERSNAP_BENCH_RUNS=N overrides the
# run count, LAYERSNAP_BENCH_SHORT_RUNS=N that of the rows of under a second (metadata
# scans, warm full scans, the just-written scans, the diffs, the COPY and overlay steps;
# default 2N+1 on trees below BIG_ENTRIES: such rows swing by a fifth from run to run on a
# small VM, and their medians are what the targets compare),
# LAYERSNAP_BENCH_TREES="synth:SEED:ENTRIES ... npm" the trees;
# LAYERSNAP_BENCH_COLD=0 skips the cold rows, LAYERSNAP_BENCH_COLD_RUNS=N caps their runs;
# LAYERSNAP_BENCH_REPORTING=keep leaves a VM's free page reporting on (see below);
# LAYERSNAP_BENCH_GROUPS="GROUP ..." (space- or comma-separated) runs only those scenario
# groups on every tree (default: all of them), preparing what they need (the work tree,
# the build step, their bases) and nothing else:
#   scan     scan, metadata and full, of the cached tree (warm, cold) and of the
#            just-written work tree;
#   layer    the full layers, plain, gzip and zstd (warm, cold);
#   diff     diff after the build step, vs tar --listed-incremental and umoci repack;
#   copy     the COPY of 50 files: diff --only vs the full-walk diff;
#   overlay  the build step in an overlay mount: diff --upper (also with --manifest-out)
#            vs the walk diff (as root).
# The report then holds only those groups' rows and targets, and names the groups.
set -uo pipefail

die() { echo "bench: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: bench/run.sh quick|full BUILD"
MODE=$1
BUILD=$(cd "$2" 2>/dev/null && pwd) || die "no build directory $2"
case $MODE in quick|full) ;; *) die "MODE must be quick or full" ;; esac
# LAYERSNAP_BENCH_GROUPS: want GROUP is true when GROUP runs
ALL_GROUPS="scan layer diff copy overlay"
declare -A WANT
GROUPS_SEL=""   # the selected groups, when the variable is set
if [ -n "${LAYERSNAP_BENCH_GROUPS:-}" ]; then
	read -ra _gs <<<"${LAYERSNAP_BENCH_GROUPS//,/ }"
	for _g in "${_gs[@]}"; do
		case " $ALL_GROUPS " in
		*" $_g "*) WANT[$_g]=1 ;;
		*) die "LAYERSNAP_BENCH_GROUPS: unknown group '$_g' (groups: ${ALL_GROUPS// /, })" ;;
		esac
	done
	for _g in $ALL_GROUPS; do [ -n "${WANT[$_g]:-}" ] && GROUPS_SEL+="${GROUPS_SEL:+, }$_g"; done
	[ -n "$GROUPS_SEL" ] || die "LAYERSNAP_BENCH_GROUPS names no group (groups: ${ALL_GROUPS// /, })"
else
	for _g in $ALL_GROUPS; do WANT[$_g]=1; done
fi
want() { [ -n "${WANT[$1]:-}" ]; }
[ -n "$GROUPS_SEL" ] && echo "bench: scenario groups: $GROUPS_SEL (LAYERSNAP_BENCH_GROUPS)" >&2

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LS=$BUILD/layersnap
GEN=$BUILD/bench/gen-tree
MUT=$BUILD/bench/mutate
TIMEIT=$BUILD/bench/timeit
FLOOR=$BUILD/bench/floor-hash
FLOOR_UP=$BUILD/bench/floor-upper
FLOOR_LAYER=$BUILD/bench/floor-layer
for b in "$LS" "$GEN" "$MUT" "$TIMEIT" "$FLOOR" "$FLOOR_UP" "$FLOOR_LAYER"; do
	[ -x "$b" ] || die "$b is missing: run 'make bench' or 'make bench-quick'"
done
export LC_ALL=C
NPROC=$(nproc)

CACHE=${LAYERSNAP_BENCH_CACHE:-/var/tmp/layersnap-bench}
case $(mkdir -p "$CACHE" && cd "$CACHE" && pwd)/ in
"$REPO"/*) die "LAYERSNAP_BENCH_CACHE must be outside the repository" ;;
esac
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d "$CACHE/run.XXXXXX") || die "cannot make a scratch directory in $CACHE"
# Free page reporting (virtio-balloon): a VM's kernel hands memory that has stayed free
# for about two seconds back to its host, and the first write into such memory costs the
# host's fault and zeroing; here ~1.3 s a GB, in system time.  Which command found its
# pages handed back depended on what ran before it: one full layer took 0.9 s or 2.0 s in
# turn (16 of 16 runs at 1.0 s with reporting paused).  The run pauses it, as a benchmark
# pins a CPU governor, by raising the order of the blocks reported above the largest
# there is, and puts the setting back at exit.
PR_ORDER=/sys/module/page_reporting/parameters/page_reporting_order
PR_SAVED=
restore_reporting() { [ -z "$PR_SAVED" ] || echo "$PR_SAVED" >"$PR_ORDER" 2>/dev/null || true; }
trap 'umount "$WORK/ov/m" 2>/dev/null; chmod -R u+rwX "$WORK" 2>/dev/null; rm -rf "$WORK"; restore_reporting' EXIT
PR_MODE=${LAYERSNAP_BENCH_REPORTING:-pause}
case $PR_MODE in
pause | keep) ;;
*) die "LAYERSNAP_BENCH_REPORTING: '$PR_MODE': pause or keep" ;;
esac
if [ ! -e "$PR_ORDER" ]; then
	REPORTING="no free page reporting"
elif [ "$PR_MODE" = keep ]; then
	REPORTING="free page reporting left on (LAYERSNAP_BENCH_REPORTING=keep): write-heavy rows may swing"
elif [ ! -w "$PR_ORDER" ]; then
	REPORTING="free page reporting left on (not root): write-heavy rows may swing"
else
	PR_SAVED=$(cat "$PR_ORDER")
	pr_off=$(awk 'NR == 1 { print NF - 4; exit }' /proc/buddyinfo)   # max order + 1
	# A run killed before its exit left it paused: put back the kernel's default then
	# (pageblock_order).
	if [ -n "$pr_off" ] && [ "$PR_SAVED" -ge "$pr_off" ] 2>/dev/null; then
		PR_SAVED=$(awk '/^Page block order:/ { print $4; exit }' /proc/pagetypeinfo 2>/dev/null)
	fi
	if [ -n "$pr_off" ] && (echo "$pr_off" >"$PR_ORDER") 2>/dev/null; then
		REPORTING="free page reporting paused for the run (page_reporting_order $PR_SAVED -> $pr_off)"
	else
		PR_SAVED=
		REPORTING="free page reporting could not be paused: write-heavy rows may swing"
	fi
fi
mkdir -p "$WORK/m" "$WORK/o" "$WORK/log"

if [ "$MODE" = quick ]; then
	RUNS=${LAYERSNAP_BENCH_RUNS:-3}
	COLD_RUNS=${LAYERSNAP_BENCH_COLD_RUNS:-1}   # cold runs cost seconds each: a smoke test
	TREES=${LAYERSNAP_BENCH_TREES:-synth:1:20000}
else
	COLD_RUNS=${LAYERSNAP_BENCH_COLD_RUNS:-999}
	RUNS=${LAYERSNAP_BENCH_RUNS:-5}
	# npm before the 1M tree: not in the wake of its 2M entries written and removed
	TREES=${LAYERSNAP_BENCH_TREES:-synth:1:100000 npm synth:1:1000000}
fi
UMOCI_RUNS=3           # umoci is slow: at most this many timed runs, no warm-up
UMOCI_MAX_ENTRIES=300000
BIG_ENTRIES=500000     # trees this large get fewer runs
BIG_RUNS=3

START=$(date +%s)
NOTES=()
FAILS=()
note() { NOTES+=("$*"); echo "bench: $*" >&2; }
fail() { FAILS+=("$*"); echo "bench: FAIL: $*" >&2; }
q() { printf '%q ' "$@"; }

have() { command -v "$1" >/dev/null 2>&1; }
for t in bfs find xxh128sum mtree tar umoci pigz zstd; do
	have "$t" || note "peer '$t' is not installed: its rows are skipped"
done

# Cold rows for the scenarios that read contents, when we may drop caches.
COLD=0
if [ "${LAYERSNAP_BENCH_COLD:-1}" = 0 ]; then
	note "LAYERSNAP_BENCH_COLD=0: no cold rows"
elif [ "$(id -u)" = 0 ] && sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	COLD=1
else
	note "page cache cannot be dropped here (/proc/sys/vm/drop_caches not writable): no cold rows, warm only"
fi
DROP="echo 3 > /proc/sys/vm/drop_caches"   # after the set-up step's sync

# io_uring available?  --io uring is an error when the ring cannot be set up.
URING=1
mkdir -p "$WORK/probe/d"
if ! "$LS" scan --mode time --io uring "$WORK/probe/d" -o "$WORK/probe/m" >/dev/null 2>"$WORK/probe/err"; then
	URING=0
	note "io_uring unavailable ($(head -c 200 "$WORK/probe/err" | tr '\n' ' ')): --io uring rows skipped"
fi

# ---------------------------------------------------------------- trees

gen_key=$(sha256sum "$HERE/gen-tree.c" | cut -c1-16)

# synth_tree SEED ENTRIES -> path of a cached pristine tree
synth_tree() {
	local d=$CACHE/trees/gen-s$1-n$2
	if [ -d "$d" ] && [ "$(cat "$d.stamp" 2>/dev/null)" = "$gen_key" ]; then
		echo "$d"
		return 0
	fi
	mkdir -p "$CACHE/trees"
	# keep at most one big tree in the cache
	if [ "$2" -ge "$BIG_ENTRIES" ]; then
		local o
		for o in "$CACHE"/trees/gen-s*-n*; do
			[ -d "$o" ] || continue
			[ "${o##*-n}" -ge "$BIG_ENTRIES" ] && [ "$o" != "$d" ] && rm -rf "$o" "$o.stamp"
		done
	fi
	rm -rf "$d" "$d.stamp" "$d.tmp"
	"$GEN" --seed "$1" --entries "$2" "$d.tmp" >&2 || return 1
	mv "$d.tmp" "$d" && echo "$gen_key" >"$d.stamp" && echo "$d"
}

# warm_cold WHAT DEFS WARM COLD [WARM_RUNS]: the scenarios DEFS defines (called with -w
# warm "" and -c cold "; $DROP"), run warm (WARM_RUNS times, $runs by default) and, unless
# LAYERSNAP_BENCH_COLD=0, cold; their ids go into the arrays named WARM and COLD.
warm_cold() {
	local what=$1 defs=$2 wruns=${5:-$runs}
	local -n warm_ids=$3 cold_ids=$4
	IDS=()
	"$defs" -w warm ""
	warm_ids=("${IDS[@]}")
	echo "bench: $TREE_NAME: $what, warm" >&2
	run_group "$wruns" 1 "${warm_ids[@]}"
	if [ $COLD = 1 ]; then
		IDS=()
		"$defs" -c cold "; $DROP"
		cold_ids=("${IDS[@]}")
		echo "bench: $TREE_NAME: $what, cold" >&2
		run_group "$cruns" 0 "${cold_ids[@]}"
	fi
}

# tree_shape ROOT -> one line: what a tree is made of (entry types, fan-out, depth)
tree_shape() {
	find "$1" -mindepth 1 -printf '%y %d %n %h\n' | awk -v sum="$WORK/shape.sum" '
		{ t[$1]++; n++; dep += $2; if ($2 > maxd) maxd = $2; if ($1 == "f" && $3 > 1) hl++
		  sub(/^[^ ]+ [^ ]+ [^ ]+ /, ""); c[$0]++ }
		END {
			for (k in c) { print c[k]; keys++ }
			for (i = keys; i < t["d"] + 1; i++) print 0   # empty directories, the root counted
			line = sprintf("%d dirs (%.1f%%), %d files (%d with more than one name), %d symlinks; depth mean %.1f, max %d",
				t["d"], 100 * t["d"] / (n ? n : 1), t["f"], hl, t["l"], dep / (n ? n : 1), maxd)
			print line >sum
		}' | sort -n | awk -v sum="$WORK/shape.sum" '
		{ v[NR] = $1; s += $1 }
		END {
			getline line <sum
			if (NR == 0) { print line; exit }
			p90 = int(0.9 * NR); if (p90 < 1) p90 = 1
			printf "%s; entries per directory: mean %.1f, median %d, 90th percentile %d, max %d\n",
				line, s / NR, v[int((NR + 1) / 2)], v[p90], v[NR]
		}'
}

# ---------------------------------------------------------------- measuring

declare -A CMD PRE LABEL SCEN JSONCHK CAP ARGV STDOUT
IDS=()
# def ID SCENARIO LABEL COMMAND-STRING [PRE-STRING]
# A command string "exec WORDS" or "exec WORDS >FILE" (words quoted by q, no
# other shell syntax) is run by timeit itself, without a shell: bash's
# start-up (~2 ms) is no part of a command's cost and weighs on the small
# ones (the overlay step).  Pipelines and the rest run under bash -c.
def() {
	IDS+=("$1")
	SCEN[$1]=$2 LABEL[$1]=$3 CMD[$1]=$4 PRE[$1]=${5:-} JSONCHK[$1]=0 CAP[$1]=999
	unset 'ARGV[$1]' 'STDOUT[$1]'
	local c=$4 out=
	if [[ $c == "exec "* ]]; then
		c=${c#exec }
		if [[ $c == *" >"* ]]; then
			out=${c##* >}
			c=${c% >*}
		fi
		# q quotes every shell character: a word list parses as an array,
		# anything else (a pipe, a second redirection) is a syntax error.
		local -a words=() outw=()
		if eval "words=( $c )" 2>/dev/null && [ ${#words[@]} -gt 0 ] &&
			{ [ -z "$out" ] || { eval "outw=( $out )" 2>/dev/null && [ ${#outw[@]} -eq 1 ]; }; }; then
			ARGV[$1]=$c
			[ -n "$out" ] && STDOUT[$1]=${outw[0]}
		fi
	fi
	: >"$WORK/m/$1"
	: >"$WORK/m/$1.json"
}

# run_group RUNS WARMUP ID... : with WARMUP=1 run 0 is a warm-up, not recorded.  The
# rounds go through the commands forwards and backwards in turn (the first timed round
# forwards), so that each command follows one neighbour in half of its runs and the other
# in the rest: on this kind of machine a command pays for the one before it (the CPU time
# it used up; the memory it freed, with free page reporting on), and in one fixed order
# --io auto's warm full scan measured 1.05x --io sync where interleaving them by hand
# gave 1.00x.  (A rotation would not do: it keeps every predecessor but at the turn of a
# round.)
run_group() {
	local runs=$1 warm=$2 r id rc k n=$(($# - 2))
	shift 2
	local -a order=("$@")
	for ((r = 1 - warm; r <= runs; r++)); do
		for ((k = 0; k < n; k++)); do
			if ((r % 2)); then id=${order[k]}; else id=${order[n - 1 - k]}; fi
			[ -n "${FAILED[$id]:-}" ] && continue
			if [ "${CAP[$id]}" -lt 999 ]; then
				# capped (umoci): no warm-up, at most CAP timed runs
				{ [ $r -eq 0 ] || [ $r -gt "${CAP[$id]}" ]; } && continue
			fi
			if [ -n "${PRE[$id]}" ]; then
				bash -c "${PRE[$id]}" >>"$WORK/log/$id.pre" 2>&1 || { FAILED[$id]=1; fail "$TREE_NAME: ${LABEL[$id]}: set-up step failed: $(tail -n 3 "$WORK/log/$id.pre")"; continue; }
			fi
			if [ -n "${ARGV[$id]+set}" ]; then
				local -a argv=()
				eval "argv=( ${ARGV[$id]} )"
				"$TIMEIT" "$WORK/t.out" ${STDOUT[$id]+-o "${STDOUT[$id]}"} "${argv[@]}" >"$WORK/log/$id.out" 2>"$WORK/log/$id.err"
			else
				"$TIMEIT" "$WORK/t.out" bash -c "${CMD[$id]}" >"$WORK/log/$id.out" 2>"$WORK/log/$id.err"
			fi
			rc=$?
			if [ $rc -ne 0 ]; then
				FAILED[$id]=1
				local msg="$TREE_NAME: ${LABEL[$id]} exited $rc: $(tail -n 3 "$WORK/log/$id.err" | tr '\n' ' ')"
				case $id in ls-*|floor-*) fail "$msg" ;; *) note "peer failed, row skipped: $msg" ;; esac
				continue
			fi
			[ $r -gt 0 ] && cat "$WORK/t.out" >>"$WORK/m/$id"
			if [ "${JSONCHK[$id]}" = 1 ]; then
				local j
				j=$(tr -d '\n' <"$WORK/log/$id.out")
				printf '%s %s\n' "$(sed -n 's/.*"entries": *\([0-9]*\).*/\1/p' <<<"$j")" \
					"$(sed -n 's/.*"diff_id": *"\([^"]*\)".*/\1/p' <<<"$j")" >>"$WORK/m/$id.json"
			fi
		done
	done
}

# stat ID -> "N WALL CPU RSS_MB" medians (RSS: max)
stats() {
	awk '{ w[NR] = $1; c[NR] = $2 + $3; if ($4 > m) m = $4 }
	function med(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	END { if (NR == 0) { print 0, 0, 0, 0; exit } printf "%d %.4f %.4f %.1f\n", NR, med(w, NR), med(c, NR), m / 1024 }' "$WORK/m/$1"
}

wall_of() { stats "$1" | awk '{print $2}'; }

# warm_disk_reads ID... -> one sentence: which of these (warm or just-written)
# rows' timed runs read from storage (timeit's INBLOCK), and how much.  A warm
# row that did was partly cold: something evicted the tree meanwhile.
warm_disk_reads() {
	local id amount list=
	for id; do
		amount=$(awk '{ b += $6 * 512 } END { if (b >= 0.1 * 1048576) printf "%.1f MB", b / 1048576;
			else if (b > 0) printf "%d KiB", (b + 1023) / 1024 }' "$WORK/m/$id")
		[ -n "$amount" ] && list+="${list:+, }$id $amount"
	done
	echo "Storage reads during the warm and just-written rows' timed runs (rusage ru_inblock${list:+, all runs together}): ${list:-none}."
}

fmt_s() { awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else if (x >= 1) printf "%.2f", x; else printf "%.3f", x }'; }

# ratio A B -> "0.42x"
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0 || a <= 0) print "n/a"; else printf "%.2f×", a / b }'
}

# peer_wall "ID[|ID...]" -> the smallest median wall time of those with runs, or nothing
peer_wall() {
	local id best=
	for id in ${1//|/ }; do
		[ -s "$WORK/m/$id" ] || continue
		best=$(awk -v a="$(wall_of "$id")" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
	done
	echo "$best"
}

ROWS=()
# row ID "peer-ID[|peer-ID...][:name] ..." : one table row; a|b is the faster of a and b
row() {
	local id=$1 peers=$2 n w c m p pw pname rat=""
	if [ -n "${FAILED[$id]:-}" ] && [ ! -s "$WORK/m/$id" ]; then
		ROWS+=("| ${SCEN[$id]} | ${LABEL[$id]} | – | failed | | | |")
		return
	fi
	[ -s "$WORK/m/$id" ] || return
	read -r n w c m < <(stats "$id")
	for p in $peers; do
		pname=${p#*:}
		pw=$(peer_wall "${p%%:*}")
		[ -n "$pw" ] || continue
		rat+="${rat:+, }$(ratio "$w" "$pw") ${pname//_/ }"
	done
	ROWS+=("| ${SCEN[$id]} | ${LABEL[$id]} | $n | $(fmt_s "$w") | $(fmt_s "$c") | $m | ${rat:-} |")
}

TROWS=()
# trow TARGET LS-ID "PEER-ID[|PEER-ID...]" PEER-TEXT LIMIT : a row of the targets table
trow() {
	local name=$1 id=$2 peer=$3 ptext=$4 lim=$5 w pw r met
	[ -s "$WORK/m/$id" ] || return
	pw=$(peer_wall "$peer")
	[ -n "$pw" ] || return
	w=$(wall_of "$id")
	r=$(awk -v a="$w" -v b="$pw" 'BEGIN { printf "%.3f", a / b }')
	met=
	[ -n "$lim" ] && met=$(awk -v r="$r" -v l="$lim" 'BEGIN { print (r <= l + 0.0005) ? "yes" : "no" }')
	TROWS+=("| $name | $(fmt_s "$w") | $(fmt_s "$pw") ($ptext) | $(ratio "$w" "$pw") | ${lim:+≤ ${lim}×} | $met |")
}

# consistent ID [EXPECTED_ENTRIES]: every run of a diff wrote the same layer; sets ENTRIES
consistent() {
	local id=$1 want=${2:-} k
	ENTRIES=?
	[ "${JSONCHK[$id]:-0}" = 1 ] || return 0
	[ -n "${FAILED[$id]:-}" ] && return 0
	k=$(sort -u "$WORK/m/$id.json" | wc -l)
	if [ ! -s "$WORK/m/$id.json" ]; then
		fail "$TREE_NAME: ${LABEL[$id]}: no --json output"
	elif [ "$k" != 1 ]; then
		fail "$TREE_NAME: ${LABEL[$id]}: runs disagree: $(sort -u "$WORK/m/$id.json" | tr '\n' ';')"
	elif [ -n "$want" ] && [ "$(cut -d' ' -f1 "$WORK/m/$id.json" | head -1)" != "$want" ]; then
		fail "$TREE_NAME: ${LABEL[$id]}: $(cut -d' ' -f1 "$WORK/m/$id.json" | head -1) entries, the tree has $want"
	fi
	ENTRIES=$(awk '{print $1}' "$WORK/m/$id.json" | head -1)
}

# ---------------------------------------------------------------- one tree

declare -A FAILED
TABLES=()
COMMANDS=()

bench_tree() {  # NAME KIND ROOT RUNS [SEED ENTRIES]
	TREE_NAME=$1
	local kind=$2 root=$3 runs=$4 seed=${5:-} entries=${6:-}
	local t0 nent bytes shape W umoci=0 o=$WORK/o cruns=$runs m mut=
	local meta_jw=() meta=() full_w=() full_c=() diff=() ovl=() layer_w=() layer_c=()
	[ "$COLD_RUNS" -lt "$cruns" ] && cruns=$COLD_RUNS
	t0=$(date +%s)
	IDS=()
	FAILED=() CMD=() PRE=() LABEL=() SCEN=() JSONCHK=() CAP=()
	rm -f "$WORK/m"/*  # a peer skipped on this tree must not lend it the last tree's times
	nent=$(($(find "$root" | wc -l) - 1))
	bytes=$(du -s --apparent-size --block-size=1M "$root" | cut -f1)
	shape=$(tree_shape "$root")
	# the rows of under a second: more runs, on trees where they are that short
	local sruns=$runs
	[ "$nent" -lt "$BIG_ENTRIES" ] && sruns=${LAYERSNAP_BENCH_SHORT_RUNS:-$((2 * runs + 1))}
	echo "bench: === $TREE_NAME: $root, $nent entries, $bytes MB, $runs runs ($sruns for the short rows, $cruns cold)" >&2

	# fresh NAME...: the set-up step of a command writing $o/NAME...: remove the last
	# run's output and sync
	fresh() { local f a=; for f; do a+=$(q "$o/$f"); done; echo "rm -f $a; sync"; }

	# The work tree for the diff scenarios (and the just-written scans, the COPY and
	# the overlay steps): same content, fresh inodes, written just before its base
	# scans.  Inside an umoci bundle when umoci runs on this tree.  Only the full
	# layers (of the cached tree) go without it.
	rm -rf "$WORK/w" "$WORK/oci" "$WORK/bundle" "$o"/*
	if want scan || want diff || want copy || want overlay; then
		if want diff && have umoci && [ "$nent" -le "$UMOCI_MAX_ENTRIES" ]; then
			umoci=1
			if ! { umoci init --layout "$WORK/oci" && umoci new --image "$WORK/oci:base" &&
				umoci unpack --image "$WORK/oci:base" "$WORK/bundle"; } >"$WORK/log/umoci-setup" 2>&1; then
				note "$TREE_NAME: umoci set-up failed, umoci skipped: $(tail -n 2 "$WORK/log/umoci-setup" | tr '\n' ' ')"
				umoci=0
				rm -rf "$WORK/oci" "$WORK/bundle"
			fi
		elif want diff && have umoci; then
			note "$TREE_NAME: umoci repack skipped ($nent entries: a base repack and a diff repack would take too long)"
		fi
		if [ $umoci = 1 ]; then
			W=$WORK/bundle/rootfs
		else
			W=$WORK/w
			mkdir -p "$W"
		fi
		sync
		if [ "$kind" = synth ]; then
			"$GEN" -q --seed "$seed" --entries "$entries" "$W" || { fail "$TREE_NAME: gen-tree failed"; return; }
		else
			cp -a "$root/." "$W/" || { fail "$TREE_NAME: copying the tree failed"; return; }
		fi
		# Right after the tree was written, as a build's base is: the last files written
		# lie in this scan's racy window, and the diff must read them again.  (The
		# just-written scans run after it, as they always have.)
		if want diff || want scan; then
			"$LS" scan -q --mode full "$W" -o "$WORK/base.fresh.man" 2>"$WORK/log/base-scan" ||
				{ fail "$TREE_NAME: base scan (full, right after writing) failed: $(tail -n 2 "$WORK/log/base-scan")"; return; }
		fi

		# --- scans of the tree just written, as a build step leaves it: warm, its writeback
		# pending or under way (so no sync before these runs, and no warm-up)
		if want scan; then
			IDS=()
			def ls-redo-jw "scan, metadata, just-written tree" "layersnap scan --mode redo" "exec $(q "$LS" scan -q --mode redo "$W" -o "$o/jw-redo.man")" "rm -f $(q "$o/jw-redo.man")"
			have bfs && def bfs-jw "scan, metadata, just-written tree" "bfs -printf '%p %s %T@ %m %U %G\\n' > FILE" "exec $(q bfs "$W" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/jw-bfs.out")" "rm -f $(q "$o/jw-bfs.out")"
			have find && def find-jw "scan, metadata, just-written tree" "find -printf (same fields) > FILE" "exec $(q find "$W" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/jw-find.out")" "rm -f $(q "$o/jw-find.out")"
			def ls-full-jw "scan, full, just-written tree" "layersnap scan --mode full" "exec $(q "$LS" scan -q --mode full "$W" -o "$o/jw-full.man")" "rm -f $(q "$o/jw-full.man")"
			have xxh128sum && def xxh128sum-jw "scan, full, just-written tree" "find -type f -print0 \\| xargs -0 xxh128sum > FILE" "set -o pipefail; find $(q "$W") -type f -print0 | xargs -0 xxh128sum >$(q "$o/jw-xxh.out")" "rm -f $(q "$o/jw-xxh.out")"
			meta_jw=("${IDS[@]}")
			echo "bench: $TREE_NAME: scans of the just-written tree" >&2
			run_group "$sruns" 0 "${meta_jw[@]}"
			rm -f "$o"/jw-*
		fi

		# the bases of the diff group, then the build step (diff, copy and overlay)
		if want diff; then
			sleep 1.2   # nothing in these base scans is racy
			for m in full redo time; do
				"$LS" scan -q --mode $m "$W" -o "$WORK/base.$m.man" 2>"$WORK/log/base-scan" ||
					{ fail "$TREE_NAME: base scan ($m) failed: $(tail -n 2 "$WORK/log/base-scan")"; return; }
			done
			if have tar; then
				tar --listed-incremental="$WORK/snar0" -cf /dev/null -C "$W" . 2>"$WORK/log/tar0" ||
					note "$TREE_NAME: tar level 0 failed: $(tail -n 1 "$WORK/log/tar0")"
			fi
			if [ $umoci = 1 ]; then
				umoci repack --refresh-bundle --image "$WORK/oci:base" "$WORK/bundle" >"$WORK/log/umoci-base" 2>&1 ||
					{ note "$TREE_NAME: umoci base repack failed: $(tail -n 2 "$WORK/log/umoci-base" | tr '\n' ' ')"; umoci=0; }
			fi
		fi   # diff
		if want diff || want copy || want overlay; then
			mut=$("$MUT" --seed "${seed:-1}" "$W") || { fail "$TREE_NAME: mutate failed"; return; }
			mut=${mut#mutate: $W: }
		fi
	fi   # the work tree

	# --- scan, metadata only (warm)
	if want scan; then
		IDS=()
		def ls-redo "scan, metadata" "layersnap scan --mode redo" "exec $(q "$LS" scan -q --mode redo "$root" -o "$o/s-redo.man")" "$(fresh s-redo.man)"
		if [ $URING = 1 ]; then
			def ls-redo-uring "scan, metadata" "layersnap scan --mode redo --io uring" "exec $(q "$LS" scan -q --mode redo --io uring "$root" -o "$o/s-redo-u.man")" "$(fresh s-redo-u.man)"
		fi
		def ls-redo-sync "scan, metadata" "layersnap scan --mode redo --io sync" "exec $(q "$LS" scan -q --mode redo --io sync "$root" -o "$o/s-redo-s.man")" "$(fresh s-redo-s.man)"
		def ls-time "scan, metadata" "layersnap scan --mode time" "exec $(q "$LS" scan -q --mode time "$root" -o "$o/s-time.man")" "$(fresh s-time.man)"
		have bfs && def bfs "scan, metadata" "bfs -printf '%p %s %T@ %m %U %G\\n' > FILE" "exec $(q bfs "$root" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/bfs.out")" "$(fresh bfs.out)"
		have find && def find "scan, metadata" "find -printf (same fields) > FILE" "exec $(q find "$root" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/find.out")" "$(fresh find.out)"
		def floor-stat1 "scan, metadata" "floor: getdents64 + statx loop, 1 thread" "exec $(q "$FLOOR" -s -t 1 "$root")" "sync"
		[ "$NPROC" -gt 1 ] && def floor-statN "scan, metadata" "floor: getdents64 + statx loop, $NPROC threads" "exec $(q "$FLOOR" -s -t "$NPROC" "$root")" "sync"
		meta=("${IDS[@]}")
		echo "bench: $TREE_NAME: scan, metadata only" >&2
		run_group "$sruns" 1 "${meta[@]}"

		# --- scan, full (hash every byte): warm, then cold
		# full_defs SUFFIX STATE-TEXT PRE-EXTRA
		full_defs() {
			local x=$1 st=$2 pre=$3
			def ls-full$x "scan, full, $st" "layersnap scan --mode full" "exec $(q "$LS" scan -q --mode full "$root" -o "$o/s-full.man")" "$(fresh s-full.man)$pre"
			if [ $URING = 1 ]; then
				def ls-full-uring$x "scan, full, $st" "layersnap scan --mode full --io uring" "exec $(q "$LS" scan -q --mode full --io uring "$root" -o "$o/s-full-u.man")" "$(fresh s-full-u.man)$pre"
			fi
			def ls-full-sync$x "scan, full, $st" "layersnap scan --mode full --io sync" "exec $(q "$LS" scan -q --mode full --io sync "$root" -o "$o/s-full-s.man")" "$(fresh s-full-s.man)$pre"
			have xxh128sum && def xxh128sum$x "scan, full, $st" "find -type f -print0 \\| xargs -0 xxh128sum > FILE" "set -o pipefail; find $(q "$root") -type f -print0 | xargs -0 xxh128sum >$(q "$o/xxh.out")" "$(fresh xxh.out)$pre"
			have mtree && def mtree$x "scan, full, $st" "mtree -c -K sha256digest > FILE" "exec $(q mtree -c -K sha256digest -p "$root") >$(q "$o/mtree.out")" "$(fresh mtree.out)$pre"
			def floor-hash1$x "scan, full, $st" "floor: open + read 256 KiB + XXH3-128 loop, 1 thread" "exec $(q "$FLOOR" -t 1 "$root")" "sync$pre"
			[ "$NPROC" -gt 1 ] && def floor-hashN$x "scan, full, $st" "floor: the same, $NPROC threads" "exec $(q "$FLOOR" -t "$NPROC" "$root")" "sync$pre"
		}
		warm_cold "scan, full" full_defs full_w full_c "$sruns"   # warm: under a second
	fi   # scan

	# --- diff after a build step (warm)
	if want diff; then
		IDS=()
		for m in full redo time; do
			def ls-diff-$m "diff after build step" "layersnap diff --mode $m --base" \
				"exec $(q "$LS" diff --mode $m --json "$W" --base "$WORK/base.$m.man" -o "$o/d-$m.tar")" "$(fresh d-$m.tar)"
			JSONCHK[ls-diff-$m]=1
		done
		def ls-diff-fresh "diff after build step" "layersnap diff --mode full --base (base scanned right after the tree was written)" \
			"exec $(q "$LS" diff --mode full --json "$W" --base "$WORK/base.fresh.man" -o "$o/d-fresh.tar")" "$(fresh d-fresh.tar)"
		JSONCHK[ls-diff-fresh]=1
		# What a builder chains: the layer and the manifest of the step.
		def ls-diff-full-mo "diff after build step" "layersnap diff --mode full --base --manifest-out FILE" \
			"exec $(q "$LS" diff --mode full --json "$W" --base "$WORK/base.full.man" -o "$o/d-full-mo.tar" --manifest-out "$o/d-full-mo.man")" "$(fresh d-full-mo.tar d-full-mo.man)"
		JSONCHK[ls-diff-full-mo]=1
		if have tar && [ -s "$WORK/snar0" ]; then
			def tar-inc "diff after build step" "tar --listed-incremental (level 1)" \
				"exec $(q tar --listed-incremental="$o/snar1" -cf "$o/tar-inc.tar" -C "$W" .)" "$(fresh tar-inc.tar); $(q cp "$WORK/snar0" "$o/snar1")"
		fi
		if [ $umoci = 1 ]; then
			def umoci "diff after build step" "umoci repack" "exec $(q umoci repack --image "$WORK/oci:next" "$WORK/bundle")"
			CAP[umoci]=$UMOCI_RUNS
		fi
		diff=("${IDS[@]}")
		echo "bench: $TREE_NAME: diff after mutate" >&2
		run_group "$sruns" 1 "${diff[@]}"
	fi   # diff

	# --- a COPY step of 50 files into the tree: diff --only the copied
	# directory against a full-walk diff of the same change (warm).  The files are
	# written for the overlay group too: its lower directory is the same as in a run
	# of every group.  Without the diff group in between, the build step's last
	# writes would lie in the racy window of the scan before the COPY step.
	if want copy; then
		want diff || sleep 1.2
		"$LS" scan -q --mode full "$W" -o "$WORK/base.copy.man" 2>"$WORK/log/copy-scan" ||
			fail "$TREE_NAME: scan before the COPY step failed: $(tail -n 1 "$WORK/log/copy-scan")"
	fi
	if want copy || want overlay; then
		mkdir -p "$W/copy-step"
		local i
		for i in $(seq 1 50); do
			head -c $((i * 997)) "$LS" >"$W/copy-step/file-$i"
		done
	fi
	if want copy; then
		IDS=()
		def ls-copy-only "COPY of 50 files" "layersnap diff --only copy-step --base" \
			"exec $(q "$LS" diff --json --only copy-step "$W" --base "$WORK/base.copy.man" -o "$o/c-only.tar")" "$(fresh c-only.tar)"
		JSONCHK[ls-copy-only]=1
		def ls-copy-full "COPY of 50 files" "layersnap diff --base (a full walk)" \
			"exec $(q "$LS" diff --json "$W" --base "$WORK/base.copy.man" -o "$o/c-full.tar")" "$(fresh c-full.tar)"
		JSONCHK[ls-copy-full]=1
		echo "bench: $TREE_NAME: COPY step" >&2
		run_group "$sruns" 1 "${IDS[@]}"
		if [ -s "$o/c-only.tar" ] && [ -s "$o/c-full.tar" ] && ! cmp -s "$o/c-only.tar" "$o/c-full.tar"; then
			fail "$TREE_NAME: diff --only of the COPY step wrote another layer than the full diff"
		fi
	fi   # copy

	# --- the build step (bench/mutate) in an overlay mount over the work tree:
	# diff --upper, without and with --manifest-out, against the walk diff of the
	# same change (warm)
	if want overlay; then
		local OV=$WORK/ov
		rm -rf "$OV"
		mkdir -p "$OV/u" "$OV/w" "$OV/m"
		if [ "$(id -u)" != 0 ]; then
			note "$TREE_NAME: not root: the overlay step is skipped"
		elif ! mount -t overlay overlay -o "lowerdir=$W,upperdir=$OV/u,workdir=$OV/w" "$OV/m" 2>"$WORK/log/ov"; then
			note "$TREE_NAME: overlay mount failed, the overlay step is skipped: $(tail -n 1 "$WORK/log/ov")"
		else
			want copy || sleep 1.2   # the COPY step's files are not racy in this base
			# GNU tar's level 0 of the merged view, for its level 1 beside --upper
			# (no contents are read: tar skips them when writing to /dev/null)
			rm -f "$WORK/snar.ov0" "$WORK/m/tar-upper-inc"
			unset 'SCEN[tar-upper-inc]'
			if have tar && ! tar --listed-incremental="$WORK/snar.ov0" -cf /dev/null -C "$OV/m" . 2>"$WORK/log/ov-tar0"; then
				note "$TREE_NAME: tar level 0 of the overlay failed, its peer row is skipped: $(tail -n 1 "$WORK/log/ov-tar0")"
				rm -f "$WORK/snar.ov0"
			fi
			if "$LS" scan -q --mode full "$OV/m" -o "$WORK/base.ov.man" >"$WORK/log/ov-scan" 2>&1 && sleep 1.2 &&
				"$MUT" --seed $((${seed:-1} + 1)) "$OV/m" >>"$WORK/log/ov-scan" 2>&1; then
				IDS=()
				def ls-upper "build step in an overlay" "layersnap diff --upper UPPERDIR --base" \
					"exec $(q "$LS" diff --json --upper "$OV/u" "$OV/m" --base "$WORK/base.ov.man" -o "$o/u-upper.tar")" "$(fresh u-upper.tar)"
				JSONCHK[ls-upper]=1
				def ls-upper-man "build step in an overlay" "layersnap diff --upper UPPERDIR --base --manifest-out FILE" \
					"exec $(q "$LS" diff --json --upper "$OV/u" "$OV/m" --base "$WORK/base.ov.man" -o "$o/u-upper-m.tar" --manifest-out "$o/u-upper-m.man")" \
					"$(fresh u-upper-m.tar u-upper-m.man)"
				JSONCHK[ls-upper-man]=1
				def ls-upper-walk "build step in an overlay" "layersnap diff --base (a walk of the merged view)" \
					"exec $(q "$LS" diff --json "$OV/m" --base "$WORK/base.ov.man" -o "$o/u-walk.tar")" "$(fresh u-walk.tar)"
				JSONCHK[ls-upper-walk]=1
				def floor-upper "build step in an overlay" "floor: list UPPERDIR (listxattrat each), statx and read the changed files through the merged view, 1 thread" \
					"exec $(q "$FLOOR_UP" "$OV/u" "$OV/m" "$WORK/base.ov.man" "$o/floor-upper.out")" "$(fresh floor-upper.out)"
				if [ -s "$WORK/snar.ov0" ]; then
					def tar-upper-inc "build step in an overlay" "tar --listed-incremental (level 1) of the merged view" \
						"exec $(q tar --listed-incremental="$o/snar.ov1" -cf "$o/u-tar-inc.tar" -C "$OV/m" .)" \
						"$(fresh u-tar-inc.tar); $(q cp "$WORK/snar.ov0" "$o/snar.ov1")"
				fi
				ovl=("${IDS[@]}")
				echo "bench: $TREE_NAME: build step in an overlay" >&2
				run_group "$sruns" 1 "${ovl[@]}"
				if [ -s "$o/u-upper.tar" ] && [ -s "$o/u-walk.tar" ] && ! cmp -s "$o/u-upper.tar" "$o/u-walk.tar"; then
					fail "$TREE_NAME: diff --upper wrote another layer than the walk diff"
				fi
				if [ -s "$o/u-upper-m.tar" ] && [ -s "$o/u-walk.tar" ] && ! cmp -s "$o/u-upper-m.tar" "$o/u-walk.tar"; then
					fail "$TREE_NAME: diff --upper --manifest-out wrote another layer than the walk diff"
				fi
			else
				note "$TREE_NAME: the overlay step's set-up failed: $(tail -n 2 "$WORK/log/ov-scan" | tr '\n' ' ')"
			fi
			umount "$OV/m"
		fi
	fi   # overlay

	# --- full layer of the whole tree, plain, gzip and zstd: warm, then cold
	# (Each run writes a new file, its predecessor removed and the disk synced
	# beforehand: replacing a large file, by layersnap's rename or tar's O_TRUNC, makes
	# ext4 flush or free the old one inside the timed run.)
	local TAR_OPTS
	TAR_OPTS=$(q tar --sort=name --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --mtime=@0 --owner=0 --group=0 --numeric-owner)
	layer_defs() {
		local x=$1 st=$2 pre=$3
		def ls-layer$x "full layer, $st" "layersnap diff (no base) --source-date-epoch 0" \
			"exec $(q "$LS" diff --json --source-date-epoch 0 "$root" -o "$o/layer.tar")" "$(fresh layer.tar)$pre"
		JSONCHK[ls-layer$x]=1
		have tar && def tar-layer$x "full layer, $st" "tar, reproducible-builds options" \
			"exec $TAR_OPTS -cf $(q "$o/tar-layer.tar") -C $(q "$root") ." "$(fresh tar-layer.tar)$pre"
		def ls-layer-gz$x "full layer, $st" "layersnap diff (no base) --source-date-epoch 0 --compress gzip" \
			"exec $(q "$LS" diff --json --source-date-epoch 0 --compress gzip "$root" -o "$o/layer.tar.gz")" "$(fresh layer.tar.gz)$pre"
		JSONCHK[ls-layer-gz$x]=1
		have tar && have pigz && def tar-pigz$x "full layer, $st" "tar (same options) -cf - \\| pigz -6 -n > FILE" \
			"set -o pipefail; $TAR_OPTS -cf - -C $(q "$root") . | pigz -6 -n >$(q "$o/tar-layer.tar.gz")" "$(fresh tar-layer.tar.gz)$pre"
		def ls-layer-zst$x "full layer, $st" "layersnap diff (no base) --source-date-epoch 0 --compress zstd" \
			"exec $(q "$LS" diff --json --source-date-epoch 0 --compress zstd "$root" -o "$o/layer.tar.zst")" "$(fresh layer.tar.zst)$pre"
		JSONCHK[ls-layer-zst$x]=1
		have tar && have zstd && def tar-zstd$x "full layer, $st" "tar (same options) -cf - \\| zstd -3 -T0 > FILE" \
			"set -o pipefail; $TAR_OPTS -cf - -C $(q "$root") . | zstd -q -3 -T0 >$(q "$o/tar-layer.tar.zst")" "$(fresh tar-layer.tar.zst)$pre"
		def floor-layer$x "full layer, $st" "floor: read + SHA-256 + write, 3 threads, no walk or headers" \
			"exec $(q "$FLOOR_LAYER" "$WORK/files.list" "$o/floor-layer.tar")" "$(fresh floor-layer.tar)$pre"
		def floor-layer-zst$x "full layer, $st" "floor: the same + zstd -3 (a worker per CPU) + SHA-256 of the blob" \
			"exec $(q "$FLOOR_LAYER" -z "$WORK/files.list" "$o/floor-layer.tar.zst")" "$(fresh floor-layer.tar.zst)$pre"
	}
	if want layer; then
		# The floor loops read the regular files from a list made beforehand.
		find "$root" -type f -print0 | sort -z >"$WORK/files.list"
		warm_cold "full layer" layer_defs layer_w layer_c
	fi   # layer

	# --- checks
	local e_full e_redo e_time e_fresh e_layer=() x id
	consistent ls-diff-full; e_full=$ENTRIES
	consistent ls-diff-redo; e_redo=$ENTRIES
	consistent ls-diff-time; e_time=$ENTRIES
	consistent ls-diff-fresh; e_fresh=$ENTRIES
	consistent ls-diff-full-mo
	if [ -s "$WORK/m/ls-diff-full.json" ] && [ -s "$WORK/m/ls-diff-full-mo.json" ] &&
		[ "$(head -1 "$WORK/m/ls-diff-full.json")" != "$(head -1 "$WORK/m/ls-diff-full-mo.json")" ]; then
		fail "$TREE_NAME: diff --mode full --manifest-out wrote another layer ($(head -1 "$WORK/m/ls-diff-full-mo.json")) than without it ($(head -1 "$WORK/m/ls-diff-full.json"))"
	fi
	if [ -s "$WORK/m/ls-diff-full.json" ] && [ -s "$WORK/m/ls-diff-fresh.json" ] &&
		[ "$(head -1 "$WORK/m/ls-diff-full.json")" != "$(head -1 "$WORK/m/ls-diff-fresh.json")" ]; then
		fail "$TREE_NAME: diff --mode full against the base scanned right after writing wrote another layer ($(head -1 "$WORK/m/ls-diff-fresh.json")) than against the settled base ($(head -1 "$WORK/m/ls-diff-full.json"))"
	fi
	for x in -w -c; do
		for id in ls-layer ls-layer-gz ls-layer-zst; do
			[ -n "${SCEN[$id$x]:-}" ] || continue
			consistent "$id$x" "$nent"
			e_layer+=("$ENTRIES")
		done
	done
	if [ "$(cat "$WORK"/m/ls-layer*.json 2>/dev/null | sort -u | wc -l)" -gt 1 ]; then
		fail "$TREE_NAME: the full layers (plain, gzip, zstd; warm, cold) disagree on the tar: $(cat "$WORK"/m/ls-layer*.json | sort -u | tr '\n' ';')"
	fi

	# --- the table
	ROWS=()
	local best_redo="ls-redo-sync|ls-redo-uring"
	for id in "${meta[@]}"; do
		case $id in
		ls-redo) row "$id" "bfs:bfs find:find floor-statN:floor_${NPROC}t $best_redo:best_of_sync/uring" ;;
		ls-*) row "$id" "bfs:bfs find:find floor-statN:floor_${NPROC}t" ;;
		*) row "$id" "" ;;
		esac
	done
	row ls-redo-jw "bfs-jw:bfs find-jw:find"
	for id in bfs-jw find-jw; do [ -n "${SCEN[$id]:-}" ] && row "$id" ""; done
	row ls-full-jw "xxh128sum-jw:xxh128sum"
	[ -n "${SCEN[xxh128sum-jw]:-}" ] && row xxh128sum-jw ""
	for id in "${full_w[@]}" "${full_c[@]}"; do
		x=${id: -2}
		case $id in
		ls-full-w|ls-full-c) row "$id" "xxh128sum$x:xxh128sum mtree$x:mtree floor-hash1$x:floor_1t floor-hashN$x:floor_${NPROC}t ls-full-sync$x|ls-full-uring$x:best_of_sync/uring" ;;
		ls-*) row "$id" "xxh128sum$x:xxh128sum mtree$x:mtree floor-hash1$x:floor_1t floor-hashN$x:floor_${NPROC}t" ;;
		*) row "$id" "" ;;
		esac
	done
	row ls-diff-full "tar-inc:tar umoci:umoci ls-diff-redo:redo"
	row ls-diff-fresh "tar-inc:tar umoci:umoci ls-diff-redo:redo ls-diff-full:full,_settled_base"
	row ls-diff-full-mo "tar-inc:tar ls-diff-full:without_--manifest-out"
	row ls-diff-redo "tar-inc:tar umoci:umoci"
	row ls-diff-time "tar-inc:tar umoci:umoci ls-diff-redo:redo"
	row ls-copy-only "ls-copy-full:full_walk"
	row ls-copy-full ""
	row ls-upper "ls-upper-walk:walk tar-upper-inc:tar floor-upper:floor"
	row ls-upper-man "ls-upper-walk:walk tar-upper-inc:tar ls-upper:without_--manifest-out"
	row ls-upper-walk "tar-upper-inc:tar"
	row floor-upper ""
	[ -n "${SCEN[tar-upper-inc]:-}" ] && row tar-upper-inc ""
	for id in tar-inc umoci; do [ -n "${SCEN[$id]:-}" ] && row "$id" ""; done
	for id in "${layer_w[@]}" "${layer_c[@]}"; do
		x=${id: -2}
		case $id in
		ls-layer-gz-?) row "$id" "tar-pigz$x:tar\|pigz" ;;
		ls-layer-zst-?) row "$id" "tar-zstd$x:tar\|zstd floor-layer-zst$x:floor" ;;
		ls-layer-?) row "$id" "tar-layer$x:tar floor-layer$x:floor" ;;
		floor-layer-zst-?) row "$id" "tar-zstd$x:tar\|zstd" ;;
		floor-layer-?) row "$id" "tar-layer$x:tar" ;;
		*) row "$id" "" ;;
		esac
	done

	# --- the targets (DESIGN.md "Performance", the performance issue's table)
	TROWS=()
	trow "\`scan --mode redo\` vs \`bfs -printf ... > FILE\`" ls-redo bfs bfs 0.65
	trow "the same, the tree just written (writeback pending)" ls-redo-jw bfs-jw bfs 0.65
	trow "\`scan --mode full\`, no base, warm, vs \`find \\| xargs xxh128sum > FILE\`" ls-full-w xxh128sum-w xxh128sum 0.6
	trow "the same, cold" ls-full-c xxh128sum-c xxh128sum ""
	trow "the same, the tree just written (writeback pending)" ls-full-jw xxh128sum-jw xxh128sum 0.6
	trow "the same, warm, \`--io sync\` vs the one-thread read+XXH3 loop" ls-full-sync-w floor-hash1-w "floor, 1 thread" ""
	trow "\`scan --mode full\`, warm, vs the $NPROC-thread read+XXH3 loop" ls-full-w floor-hashN-w "floor, $NPROC threads" ""
	trow "\`scan --mode redo\` vs the $NPROC-thread getdents+statx loop" ls-redo floor-statN "floor, $NPROC threads" ""
	trow "full layer, uncompressed, warm, vs GNU tar (reproducible options)" ls-layer-w tar-layer-w tar 0.7
	trow "the same, cold" ls-layer-c tar-layer-c tar ""
	trow "the floor of a layer (bench/floor-layer: read, SHA-256, write; no walk, no headers), warm, vs GNU tar" floor-layer-w tar-layer-w tar ""
	trow "full layer, uncompressed, warm, vs that floor loop" ls-layer-w floor-layer-w "floor" ""
	trow "full layer, \`--compress gzip\`, warm, vs \`tar ... \\| pigz -6 -n\`" ls-layer-gz-w tar-pigz-w "tar \\| pigz" 0.5
	trow "the same, cold" ls-layer-gz-c tar-pigz-c "tar \\| pigz" ""
	trow "full layer, \`--compress zstd\`, warm, vs \`tar ... \\| zstd -3 -T0\`" ls-layer-zst-w tar-zstd-w "tar \\| zstd" 1.0
	trow "the same, cold" ls-layer-zst-c tar-zstd-c "tar \\| zstd" ""
	trow "the floor with zstd (bench/floor-layer -z), warm, vs \`tar ... \\| zstd -3 -T0\`" floor-layer-zst-w tar-zstd-w "tar \\| zstd" ""
	trow "\`diff --mode redo\` after the build step vs \`tar --listed-incremental\` level 1" ls-diff-redo tar-inc tar 0.5
	trow "\`diff --mode full\` vs \`diff --mode redo\`, base scanned right after the tree was written" ls-diff-fresh ls-diff-redo redo 1.1
	trow "\`diff --mode full\` vs \`diff --mode redo\`, base scanned after a pause" ls-diff-full ls-diff-redo redo 1.15
	trow "\`--io auto\` vs the faster of \`--io sync\` and \`--io uring\`: redo scan" ls-redo "$best_redo" "faster of sync/uring" 1.03
	trow "the same: full scan, warm" ls-full-w "ls-full-sync-w|ls-full-uring-w" "faster of sync/uring" 1.03
	trow "the same: full scan, cold" ls-full-c "ls-full-sync-c|ls-full-uring-c" "faster of sync/uring" ""
	trow "\`diff --mode full\` vs \`umoci repack\` of the same change" ls-diff-full umoci umoci 0.02
	trow "COPY of 50 files: \`diff --only\` vs a full-walk \`diff\`" ls-copy-only ls-copy-full "full walk" ""
	# issue 13: at most 0.1x on the npm tree, 0.05x at a million entries
	local upper_lim=0.1
	[ "$nent" -ge "$BIG_ENTRIES" ] && upper_lim=0.05
	trow "build step in an overlay: \`diff --upper\` vs the walk \`diff\`" ls-upper ls-upper-walk "walk" "$upper_lim"
	trow "the same, with \`--manifest-out\`" ls-upper-man ls-upper-walk "walk" ""
	trow "\`diff --upper\` vs its floor loop (bench/floor-upper)" ls-upper floor-upper "floor" ""
	trow "\`diff --mode full --manifest-out\` (the chain a builder keeps) vs \`tar --listed-incremental\` (which writes its snapshot file too)" ls-diff-full-mo tar-inc tar ""
	local rss_line="" rid rtext
	for rid in ls-diff-full ls-diff-full-mo; do
		[ -s "$WORK/m/$rid" ] && [ -s "$WORK/base.full.man" ] || continue
		rtext="\`diff --mode full\`"
		[ "$rid" = ls-diff-full-mo ] && rtext="\`diff --mode full --manifest-out\`"
		local rss mans lim
		rss=$(stats "$rid" | awk '{print $4}')
		mans=$(stat -c %s "$WORK/base.full.man")
		lim=$(awk -v m="$mans" 'BEGIN { printf "%.1f", 1.2 * m / 1048576 + 16 }')
		local rr
		rr=$(awk -v r="$rss" -v l="$lim" 'BEGIN { printf "%.2f", r / l }')
		TROWS+=("| peak RSS of $rtext (base manifest $(awk -v m="$mans" 'BEGIN { printf "%.1f", m / 1048576 }') MiB) vs 1.2 × manifest + 16 MiB | $rss MiB | $lim MiB | ${rr}× | ≤ 1× | $(awk -v r="$rr" 'BEGIN { print (r <= 1.0) ? "yes" : "no" }') |")
		rss_line+="${rss_line:+ }Peak RSS of $rtext: $rss MiB; base manifest $mans bytes; RSS / (1.2 × manifest + 16 MiB) = ${rr}."
	done

	local io=""
	if [ $URING = 1 ] && [ -s "$WORK/m/ls-redo-uring" ] && [ -s "$WORK/m/ls-redo-sync" ]; then
		io="--io uring / --io sync (wall): scan redo $(ratio "$(wall_of ls-redo-uring)" "$(wall_of ls-redo-sync)"), scan full warm $(ratio "$(wall_of ls-full-uring-w)" "$(wall_of ls-full-sync-w)")"
		[ -s "$WORK/m/ls-full-uring-c" ] && io+=", cold $(ratio "$(wall_of ls-full-uring-c)" "$(wall_of ls-full-sync-c)")"
		io+="; auto / the faster of sync and uring: scan redo $(ratio "$(wall_of ls-redo)" "$(peer_wall "$best_redo")"), scan full warm $(ratio "$(wall_of ls-full-w)" "$(peer_wall "ls-full-sync-w|ls-full-uring-w")")"
		[ -s "$WORK/m/ls-full-c" ] && io+=", cold $(ratio "$(wall_of ls-full-c)" "$(peer_wall "ls-full-sync-c|ls-full-uring-c")")"
		io+="."
	fi
	local t r info=() ent=
	info+=("$nent entries, $bytes MB ($root). Shape: $shape.")
	[ -n "$mut" ] && info+=("Build step: $mut.")
	want diff && ent="Diff layer entries: full ${e_full:-?} (base scanned right after writing: ${e_fresh:-?}), redo ${e_redo:-?}, time ${e_time:-?}"
	if want layer; then
		if [ -n "$ent" ]; then ent+="; full layers: ${e_layer[*]:-?} entries"; else ent="Full layer entries: ${e_layer[*]:-?}"; fi
	fi
	[ -n "$ent" ] && info+=("$ent.")
	[ -n "$io" ] && info+=("$io")
	[ -n "$rss_line" ] && info+=("$rss_line")
	t="### $TREE_NAME"$'\n'
	for r in "${info[@]}"; do t+=$'\n'"$r"; done
	t+=$'\n\n'"| scenario | command | runs | wall s (median) | CPU s (median) | peak RSS MB | wall vs peers |"
	t+=$'\n'"|---|---|---|---|---|---|---|"
	for r in "${ROWS[@]}"; do t+=$'\n'"$r"; done
	if [ ${#TROWS[@]} -gt 0 ]; then
		t+=$'\n\n'"Targets (median wall times; the ratio is layersnap over the peer):"$'\n\n'
		t+="| target | layersnap | peer | ratio | target | met |"$'\n'"|---|---|---|---|---|---|"
		for r in "${TROWS[@]}"; do t+=$'\n'"$r"; done
	fi
	t+=$'\n\n'"$(warm_disk_reads "${meta_jw[@]}" "${meta[@]}" "${full_w[@]}" "${diff[@]}" "${ovl[@]}" "${layer_w[@]}")"
	t+=$'\n\n'"($(($(date +%s) - t0)) s for this tree)"$'\n'
	TABLES+=("$t")
	echo "$t"
	for id in "${meta_jw[@]}" "${meta[@]}" "${full_w[@]}" "${full_c[@]}" "${diff[@]}" "${ovl[@]}" "${layer_w[@]}" "${layer_c[@]}"; do
		local c=${CMD[$id]#exec } p=${PRE[$id]}
		COMMANDS+=("- \`${c% }\`${p:+ (before each run: \`${p% }\`)}")
	done
	rm -rf "$WORK/w" "$WORK/bundle" "$WORK/oci" "$o"/* "$WORK"/base.*.man "$WORK/snar0" "$WORK/snar.ov0"
}

# ---------------------------------------------------------------- main

for spec in $TREES; do
	case $spec in
	synth:*:*)
		IFS=: read -r _ seed n <<<"$spec"
		r=$RUNS
		[ "$n" -ge "$BIG_ENTRIES" ] && [ -z "${LAYERSNAP_BENCH_RUNS:-}" ] && r=$BIG_RUNS
		root=$(synth_tree "$seed" "$n") || { fail "gen-tree --seed $seed --entries $n failed"; continue; }
		label=$n
		[ "$n" -ge 1000 ] && label=$((n / 1000))k
		[ "$n" -ge 1000000 ] && label=$((n / 1000000))M
		bench_tree "synthetic $label (gen-tree --seed $seed --entries $n)" synth "$root" "$r" "$seed" "$n"
		;;
	npm)
		root=$("$HERE/npm-tree")
		rc=$?
		if [ $rc = 77 ]; then
			note "npm tree skipped: the npm registry is unreachable and no cached tree exists"
			continue
		elif [ $rc != 0 ]; then
			fail "bench/npm-tree failed"
			continue
		fi
		bench_tree "npm install of popular packages (bench/npm-tree)" npm "$root" "$RUNS" 1
		;;
	*) die "unknown tree $spec" ;;
	esac
done

# ---------------------------------------------------------------- report

mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -T "$CACHE" | awk 'NR == 2 { print $2 }')
ver=$("$LS" --version 2>&1 | head -1)
out="# layersnap benchmark, $MODE, $(date -u +%Y-%m-%d)"$'\n\n'
[ -n "$GROUPS_SEL" ] && out+="- scenario groups: $GROUPS_SEL only (LAYERSNAP_BENCH_GROUPS; the other groups were not run, their rows and targets are left out)"$'\n'
out+="- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ver ($(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"$'\n'
out+="- machine: $(nproc) CPUs ($cpu), $mem memory, kernel $(uname -r), trees on $fs"$'\n'
out+="- page cache: warm (a warm-up run first$(want scan && echo "; the just-written rows: the tree written just before, no warm-up, writeback pending"))$([ $COLD = 1 ] && { want scan || want layer; } && echo "; the 'cold' rows: caches dropped before each run, no warm-up, $([ "$COLD_RUNS" -lt 999 ] && echo "at most $COLD_RUNS run(s)" || echo "as many runs")")"$'\n'
out+="- memory: $REPORTING"$'\n'
out+="- peers: $(bfs --version 2>/dev/null | head -1), $(find --version 2>/dev/null | head -1), $(xxh128sum --version 2>&1 | head -1 | cut -c1-40), mtree-netbsd, $(tar --version 2>/dev/null | head -1), $(pigz --version 2>&1 | head -1), $(zstd --version 2>/dev/null | head -1 | sed 's/^\*\** *//; s/ *\**$//'), $(umoci --version 2>/dev/null); floor loops: bench/floor-hash, bench/floor-upper, bench/floor-layer"$'\n'
out+="- wall and CPU (user+sys of the command and its children) are medians; peak RSS is the largest of the runs; ratios are layersnap's median wall time over the peer's (below 1 is faster)"$'\n'
for n in "${NOTES[@]}"; do out+="- note: $n"$'\n'; done
for t in "${TABLES[@]}"; do out+=$'\n'"$t"; done
if [ ${#COMMANDS[@]} -gt 0 ]; then
	out+=$'\n'"### Commands"$'\n\n'
	for c in "${COMMANDS[@]}"; do out+="$c"$'\n'; done
fi
if [ ${#FAILS[@]} -gt 0 ]; then
	out+=$'\n'"### Failures"$'\n\n'
	for f in "${FAILS[@]}"; do out+="- $f"$'\n'; done
fi
out+=$'\n'"Total: $(($(date +%s) - START)) s."$'\n'
# Quick runs are CI smoke tests: their tables stay out of the checkout.
resdir=$HERE/results
[ "$MODE" = quick ] && resdir=$CACHE/results
mkdir -p "$resdir"
# A run of some groups is named after them: it does not replace the day's whole run.
res=$resdir/$(date -u +%Y-%m-%d)-$MODE${GROUPS_SEL:+-${GROUPS_SEL//, /-}}.md
printf '%s' "$out" >"$res.tmp" && mv "$res.tmp" "$res"
echo
echo "bench: results in ${res#"$REPO"/}"
[ "$MODE" = quick ] && cat "$res"
if [ ${#FAILS[@]} -gt 0 ]; then
	echo "bench: ${#FAILS[@]} failure(s):" >&2
	printf '  %s\n' "${FAILS[@]}" >&2
	exit 1
fi
exit 0
