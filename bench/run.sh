#!/usr/bin/env bash
# bench/run.sh MODE BUILD: the side-by-side benchmark of DESIGN.md "Performance".
#
#   MODE  quick: one 20k-entry synthetic tree, 3 runs (+1 warm-up) per command; what CI runs.
#         full:  synthetic 100k (5 runs) and 1M (3 runs) trees, plus the npm tree
#                (bench/npm-tree) when the registry is reachable or it is cached.
#   BUILD the build directory holding layersnap and bench/{gen-tree,mutate,timeit}.
#
# Every scenario runs beside its peers in the same loop, alternating commands within each
# run, page cache warm (a warm-up run first).  Reports the median wall time, median CPU
# time (user+sys), peak RSS and ratios against the peers, as a Markdown table on stdout
# and in bench/results/YYYY-MM-DD-MODE.md.  Trees are cached under
# ${LAYERSNAP_BENCH_CACHE:-/var/tmp/layersnap-bench}; scratch space is a directory there,
# removed at the end.  Speed is never asserted: the run fails (exit 1) only when a
# layersnap command fails or two runs of one diff disagree on the layer (entry count or
# diff_id), or a full layer's entry count differs from the tree's.  A missing peer is
# noted and skipped.  Environment: LAYERSNAP_BENCH_RUNS=N overrides the run count,
# LAYERSNAP_BENCH_TREES="synth:SEED:ENTRIES ... npm" overrides the trees.
set -uo pipefail

die() { echo "bench: $*" >&2; exit 2; }
[ $# -eq 2 ] || die "usage: bench/run.sh quick|full BUILD"
MODE=$1
BUILD=$(cd "$2" 2>/dev/null && pwd) || die "no build directory $2"
case $MODE in quick|full) ;; *) die "MODE must be quick or full" ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LS=$BUILD/layersnap
GEN=$BUILD/bench/gen-tree
MUT=$BUILD/bench/mutate
TIMEIT=$BUILD/bench/timeit
for b in "$LS" "$GEN" "$MUT" "$TIMEIT"; do
	[ -x "$b" ] || die "$b is missing: run 'make bench' or 'make bench-quick'"
done
export LC_ALL=C

CACHE=${LAYERSNAP_BENCH_CACHE:-/var/tmp/layersnap-bench}
case $(mkdir -p "$CACHE" && cd "$CACHE" && pwd)/ in
"$REPO"/*) die "LAYERSNAP_BENCH_CACHE must be outside the repository" ;;
esac
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d "$CACHE/run.XXXXXX") || die "cannot make a scratch directory in $CACHE"
trap 'chmod -R u+rwX "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/m" "$WORK/o" "$WORK/log"

if [ "$MODE" = quick ]; then
	RUNS=${LAYERSNAP_BENCH_RUNS:-3}
	TREES=${LAYERSNAP_BENCH_TREES:-synth:1:20000}
else
	RUNS=${LAYERSNAP_BENCH_RUNS:-5}
	TREES=${LAYERSNAP_BENCH_TREES:-synth:1:100000 synth:1:1000000 npm}
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
for t in bfs find xxh128sum mtree tar umoci; do
	have "$t" || note "peer '$t' is not installed: its rows are skipped"
done

# Cold cache for the full-hash scenario when we may drop caches.
COLD=0
if [ "$(id -u)" = 0 ] && sync && (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
	COLD=1
else
	note "page cache cannot be dropped here (/proc/sys/vm/drop_caches not writable): 'scan, full' runs warm"
fi

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

# ---------------------------------------------------------------- measuring

declare -A CMD PRE LABEL SCEN JSONCHK CAP
IDS=()
# def ID SCENARIO LABEL COMMAND-STRING [PRE-STRING]
def() {
	IDS+=("$1")
	SCEN[$1]=$2 LABEL[$1]=$3 CMD[$1]=$4 PRE[$1]=${5:-} JSONCHK[$1]=0 CAP[$1]=999
	: >"$WORK/m/$1"
	: >"$WORK/m/$1.json"
}

# run_group RUNS ID... : r = 0 is the warm-up
run_group() {
	local runs=$1 r id rc
	shift
	for ((r = 0; r <= runs; r++)); do
		for id in "$@"; do
			[ -n "${FAILED[$id]:-}" ] && continue
			if [ "${CAP[$id]}" -lt 999 ]; then
				# capped (umoci): no warm-up, at most CAP timed runs
				{ [ $r -eq 0 ] || [ $r -gt "${CAP[$id]}" ]; } && continue
			fi
			if [ -n "${PRE[$id]}" ]; then
				bash -c "${PRE[$id]}" >>"$WORK/log/$id.pre" 2>&1 || { FAILED[$id]=1; fail "$TREE_NAME: ${LABEL[$id]}: set-up step failed: $(tail -n 3 "$WORK/log/$id.pre")"; continue; }
			fi
			"$TIMEIT" "$WORK/t.out" bash -c "${CMD[$id]}" >"$WORK/log/$id.out" 2>"$WORK/log/$id.err"
			rc=$?
			if [ $rc -ne 0 ]; then
				FAILED[$id]=1
				local msg="$TREE_NAME: ${LABEL[$id]} exited $rc: $(tail -n 3 "$WORK/log/$id.err" | tr '\n' ' ')"
				case $id in ls-*) fail "$msg" ;; *) note "peer failed, row skipped: $msg" ;; esac
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

fmt_s() { awk -v x="$1" 'BEGIN { if (x >= 100) printf "%.0f", x; else if (x >= 10) printf "%.1f", x; else if (x >= 1) printf "%.2f", x; else printf "%.3f", x }'; }

# ratio A B -> "0.42x"
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b <= 0 || a <= 0) print "n/a"; else printf "%.2f×", a / b }'
}

ROWS=()
# row ID "peer-ID[:name] ..." : one table row
row() {
	local id=$1 peers=$2 n w c m p pid pname rat=""
	if [ -n "${FAILED[$id]:-}" ] && [ ! -s "$WORK/m/$id" ]; then
		ROWS+=("| ${SCEN[$id]} | ${LABEL[$id]} | – | failed | | | |")
		return
	fi
	read -r n w c m < <(stats "$id")
	[ "$n" = 0 ] && return
	for p in $peers; do
		pid=${p%%:*}
		pname=${p#*:}
		[ -s "$WORK/m/$pid" ] || continue
		rat+="${rat:+, }$(ratio "$w" "$(wall_of "$pid")") $pname"
	done
	ROWS+=("| ${SCEN[$id]} | ${LABEL[$id]} | $n | $(fmt_s "$w") | $(fmt_s "$c") | $m | ${rat:-} |")
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
	local t0 nent bytes W umoci=0 o=$WORK/o
	t0=$(date +%s)
	IDS=()
	FAILED=() CMD=() PRE=() LABEL=() SCEN=() JSONCHK=() CAP=()
	rm -f "$WORK/m"/*  # a peer skipped on this tree must not lend it the last tree's times
	nent=$(($(find "$root" | wc -l) - 1))
	bytes=$(du -s --apparent-size --block-size=1M "$root" | cut -f1)
	echo "bench: === $TREE_NAME: $root, $nent entries, $bytes MB, $runs runs" >&2

	# The work tree for the diff scenarios: same content, fresh inodes, scanned before
	# the build step.  Inside an umoci bundle when umoci runs on this tree.
	rm -rf "$WORK/w" "$WORK/oci" "$WORK/bundle" "$o"/*
	if have umoci && [ "$nent" -le "$UMOCI_MAX_ENTRIES" ]; then
		umoci=1
		if ! { umoci init --layout "$WORK/oci" && umoci new --image "$WORK/oci:base" &&
			umoci unpack --image "$WORK/oci:base" "$WORK/bundle"; } >"$WORK/log/umoci-setup" 2>&1; then
			note "$TREE_NAME: umoci set-up failed, umoci skipped: $(tail -n 2 "$WORK/log/umoci-setup" | tr '\n' ' ')"
			umoci=0
			rm -rf "$WORK/oci" "$WORK/bundle"
		fi
	elif have umoci; then
		note "$TREE_NAME: umoci repack skipped ($nent entries: a base repack and a diff repack would take too long)"
	fi
	if [ $umoci = 1 ]; then
		W=$WORK/bundle/rootfs
	else
		W=$WORK/w
		mkdir -p "$W"
	fi
	if [ "$kind" = synth ]; then
		"$GEN" -q --seed "$seed" --entries "$entries" "$W" || { fail "$TREE_NAME: gen-tree failed"; return; }
	else
		cp -a "$root/." "$W/" || { fail "$TREE_NAME: copying the tree failed"; return; }
	fi
	sleep 1.2   # nothing in the base scans is "racy" (same second as the scan start)
	local m
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
	local mut
	mut=$("$MUT" --seed "${seed:-1}" "$W") || { fail "$TREE_NAME: mutate failed"; return; }
	mut=${mut#mutate: $W: }

	local P="bfs find xxh128sum mtree tar umoci"
	# --- scan, metadata only
	def ls-redo "scan, metadata" "layersnap scan --mode redo" "exec $(q "$LS" scan -q --mode redo "$root" -o "$o/s-redo.man")"
	if [ $URING = 1 ]; then
		def ls-redo-uring "scan, metadata" "layersnap scan --mode redo --io uring" "exec $(q "$LS" scan -q --mode redo --io uring "$root" -o "$o/s-redo-u.man")"
	fi
	def ls-redo-sync "scan, metadata" "layersnap scan --mode redo --io sync" "exec $(q "$LS" scan -q --mode redo --io sync "$root" -o "$o/s-redo-s.man")"
	def ls-time "scan, metadata" "layersnap scan --mode time" "exec $(q "$LS" scan -q --mode time "$root" -o "$o/s-time.man")"
	have bfs && def bfs "scan, metadata" "bfs -printf '%p %s %T@ %m %U %G\\n'" "exec $(q bfs "$root" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/bfs.out")"
	have find && def find "scan, metadata" "find -printf (same fields)" "exec $(q find "$root" -printf '%p %s %T@ %m %U %G\n') >$(q "$o/find.out")"
	local meta=("${IDS[@]}")
	echo "bench: $TREE_NAME: scan, metadata only" >&2
	run_group "$runs" "${meta[@]}"

	# --- scan, full (hash every byte)
	IDS=()
	local drop=
	[ $COLD = 1 ] && drop="sync; echo 3 > /proc/sys/vm/drop_caches"
	def ls-full "scan, full" "layersnap scan --mode full" "exec $(q "$LS" scan -q --mode full "$root" -o "$o/s-full.man")" "$drop"
	if [ $URING = 1 ]; then
		def ls-full-uring "scan, full" "layersnap scan --mode full --io uring" "exec $(q "$LS" scan -q --mode full --io uring "$root" -o "$o/s-full-u.man")" "$drop"
	fi
	def ls-full-sync "scan, full" "layersnap scan --mode full --io sync" "exec $(q "$LS" scan -q --mode full --io sync "$root" -o "$o/s-full-s.man")" "$drop"
	have xxh128sum && def xxh128sum "scan, full" "find -type f -print0 \\| xargs -0 xxh128sum" "find $(q "$root") -type f -print0 | xargs -0 xxh128sum >$(q "$o/xxh.out")" "$drop"
	have mtree && def mtree "scan, full" "mtree -c -K sha256digest" "exec $(q mtree -c -K sha256digest -p "$root") >$(q "$o/mtree.out")" "$drop"
	local full=("${IDS[@]}")
	echo "bench: $TREE_NAME: scan, full" >&2
	run_group "$runs" "${full[@]}"

	# --- diff after a build step
	IDS=()
	for m in full redo time; do
		def ls-diff-$m "diff after build step" "layersnap diff --mode $m --base" \
			"exec $(q "$LS" diff --mode $m --json "$W" --base "$WORK/base.$m.man" -o "$o/d-$m.tar")"
		JSONCHK[ls-diff-$m]=1
	done
	if have tar && [ -s "$WORK/snar0" ]; then
		def tar-inc "diff after build step" "tar --listed-incremental (level 1)" \
			"exec $(q tar --listed-incremental="$o/snar1" -cf "$o/tar-inc.tar" -C "$W" .)" "$(q cp "$WORK/snar0" "$o/snar1")"
	fi
	if [ $umoci = 1 ]; then
		def umoci "diff after build step" "umoci repack" "exec $(q umoci repack --image "$WORK/oci:next" "$WORK/bundle")"
		CAP[umoci]=$UMOCI_RUNS
	fi
	local diff=("${IDS[@]}")
	echo "bench: $TREE_NAME: diff after mutate" >&2
	run_group "$runs" "${diff[@]}"

	# --- full layer of the whole tree
	# Each run writes a new file, its predecessor removed and the disk
	# synced beforehand: replacing a large file (layersnap's rename, tar's
	# O_TRUNC) makes ext4 flush or free the old one inside the timed run.
	IDS=()
	def ls-layer "full layer" "layersnap diff (no base) --source-date-epoch 0" \
		"exec $(q "$LS" diff --json --source-date-epoch 0 "$root" -o "$o/layer.tar")" \
		"rm -f $(q "$o/layer.tar"); sync"
	JSONCHK[ls-layer]=1
	have tar && def tar-layer "full layer" "tar, reproducible-builds options" \
		"exec $(q tar --sort=name --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$o/tar-layer.tar" -C "$root" .)" \
		"rm -f $(q "$o/tar-layer.tar"); sync"
	local layer=("${IDS[@]}")
	echo "bench: $TREE_NAME: full layer" >&2
	run_group "$runs" "${layer[@]}"

	# --- checks
	local e_full e_redo e_time e_layer
	consistent ls-diff-full; e_full=$ENTRIES
	consistent ls-diff-redo; e_redo=$ENTRIES
	consistent ls-diff-time; e_time=$ENTRIES
	consistent ls-layer "$nent"; e_layer=$ENTRIES

	# --- the table
	ROWS=()
	local id
	for id in "${meta[@]}"; do
		case $id in ls-*) row "$id" "bfs:bfs find:find" ;; *) row "$id" "" ;; esac
	done
	for id in "${full[@]}"; do
		case $id in ls-*) row "$id" "xxh128sum:xxh128sum mtree:mtree" ;; *) row "$id" "" ;; esac
	done
	row ls-diff-full "tar-inc:tar umoci:umoci ls-diff-redo:redo"
	row ls-diff-redo "tar-inc:tar umoci:umoci"
	row ls-diff-time "tar-inc:tar umoci:umoci ls-diff-redo:redo"
	for id in tar-inc umoci; do [ -n "${SCEN[$id]:-}" ] && row "$id" ""; done
	row ls-layer "tar-layer:tar"
	[ -n "${SCEN[tar-layer]:-}" ] && row tar-layer ""
	local io=""
	if [ $URING = 1 ] && [ -s "$WORK/m/ls-redo-uring" ] && [ -s "$WORK/m/ls-redo-sync" ]; then
		io="--io uring / --io sync (wall): scan redo $(ratio "$(wall_of ls-redo-uring)" "$(wall_of ls-redo-sync)"), scan full $(ratio "$(wall_of ls-full-uring)" "$(wall_of ls-full-sync)"); auto / sync: scan redo $(ratio "$(wall_of ls-redo)" "$(wall_of ls-redo-sync)"), scan full $(ratio "$(wall_of ls-full)" "$(wall_of ls-full-sync)")."
	fi
	local t
	t="### $TREE_NAME"$'\n\n'
	t+="$nent entries, $bytes MB ($root). Build step: $mut."$'\n'
	t+="Diff layer entries: full ${e_full:-?}, redo ${e_redo:-?}, time ${e_time:-?}; full layer: ${e_layer:-?} entries."
	[ -n "$io" ] && t+=$'\n'"$io"
	t+=$'\n\n'"| scenario | command | runs | wall s (median) | CPU s (median) | peak RSS MB | wall vs peers |"
	t+=$'\n'"|---|---|---|---|---|---|---|"
	local r
	for r in "${ROWS[@]}"; do t+=$'\n'"$r"; done
	t+=$'\n\n'"($(($(date +%s) - t0)) s for this tree)"$'\n'
	TABLES+=("$t")
	echo "$t"
	for id in "${meta[@]}" "${full[@]}" "${diff[@]}" "${layer[@]}"; do
		local c=${CMD[$id]#exec } p=${PRE[$id]}
		COMMANDS+=("- \`${c% }\`${p:+ (before each run: \`${p% }\`)}")
	done
	rm -rf "$WORK/w" "$WORK/bundle" "$WORK/oci" "$o"/* "$WORK"/base.*.man "$WORK/snar0"
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
out+="- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $ver ($(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"$'\n'
out+="- machine: $(nproc) CPUs ($cpu), $mem memory, kernel $(uname -r), trees on $fs"$'\n'
out+="- page cache: warm$([ $COLD = 1 ] && echo ", 'scan, full' rows cold (caches dropped before each run)")"$'\n'
out+="- peers: $(bfs --version 2>/dev/null | head -1), $(find --version 2>/dev/null | head -1), $(xxh128sum --version 2>&1 | head -1 | cut -c1-40), mtree-netbsd, $(tar --version 2>/dev/null | head -1), $(umoci --version 2>/dev/null)"$'\n'
out+="- wall and CPU (user+sys of the command and its children) are medians; peak RSS is the largest of the runs; ratios are layersnap's median wall time over the peer's (below 1 is faster)"$'\n'
for n in "${NOTES[@]}"; do out+="- note: $n"$'\n'; done
for t in "${TABLES[@]}"; do out+=$'\n'"$t"; done
out+=$'\n'"### Commands"$'\n\n'
for c in "${COMMANDS[@]}"; do out+="$c"$'\n'; done
if [ ${#FAILS[@]} -gt 0 ]; then
	out+=$'\n'"### Failures"$'\n\n'
	for f in "${FAILS[@]}"; do out+="- $f"$'\n'; done
fi
out+=$'\n'"Total: $(($(date +%s) - START)) s."$'\n'
# Quick runs are CI smoke tests: their tables stay out of the checkout.
resdir=$HERE/results
[ "$MODE" = quick ] && resdir=$CACHE/results
mkdir -p "$resdir"
res=$resdir/$(date -u +%Y-%m-%d)-$MODE.md
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
