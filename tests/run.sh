#!/bin/bash
# Runs the cmocka unit tests, the end-to-end shell tests and the fuzz
# regression replays for each build directory given (e.g. build build/asan)
# and prints one summary.
#   tests/run.sh [--only unit|e2e|fuzz] [--unit NAME]... [--e2e NAME]... BUILD...
# (--unit NAME: of the unit tests, only the binary NAME, e.g. test_layer;
# --e2e NAME: of the e2e scripts, only NAME, e.g. scan.sh)
#
# What is counted.  The closing line is "N passed, N failed, N skipped":
#  - unit: each cmocka test counts once, by its own line in the binary's
#    output ("[       OK ]", "[  FAILED  ]" or "[  ERROR   ]", "[  SKIPPED ]"),
#    not the binary: a binary with 9 passed tests and 1 skipped one adds
#    9 passed and 1 skipped.  A binary that exits non-zero without a FAILED
#    line (a crash, a sanitizer report) adds one failure, and so does one
#    that reports no test at all.
#  - e2e: each script counts once: exit 0 passed, 77 skipped, else failed.
#  - fuzz: each replay binary (BUILD/fuzz/replay-TARGET) runs every input of
#    tests/fuzz/regress/TARGET and tests/fuzz/corpus/TARGET and counts once.
#  - skipped parts: a test that ran but could not run some of its checks
#    adds one skip per distinct part (same keyword and text: once per test)
#    on top of its own pass or failure.  One mechanism in both kinds of
#    test: in a cmocka test, a line "LS-SKIP: KEYWORD what" in its output
#    (tests/unit/ls_skip.h: ls_skip_part()), which belongs to the test
#    running at that point; in an e2e script, `partial_skip KEYWORD WHAT`
#    (tests/e2e/lib.sh), which appends "part<TAB>KEYWORD<TAB>WHAT" to the
#    file $LS_SKIPS this script sets.  A cmocka test that prints LS-SKIP
#    lines and then calls skip() counts once, as skipped, for those reasons;
#    an e2e `skip KEYWORD WHY` (exit 77) records its reason the same way
#    ("whole<TAB>...").  Every skip is listed at the end with its keyword;
#    one that names none is listed as "unnamed".
#
# Environment:
#   LS_REQUIRE=kw,kw,...  a skip (whole or part) whose keyword is listed
#                         counts as a failure instead (.ci/run sets it)
#   LS_LARGE=1            runs the tests that need LAYERSNAP_TEST_LARGE=1
#                         (test_layer's test_large_size: 8 GiB through a
#                         pipe); only the test_layer binaries get it
set -u
cd "$(dirname "$0")/.." || exit 2
only=
units='' scripts=''
while [ $# -gt 0 ]; do
	case $1 in
	--only) only=$2; shift 2 ;;
	--unit) units="$units $2 "; shift 2 ;;
	--e2e) scripts="$scripts $2 "; shift 2 ;;
	*) break ;;
	esac
done
case $only in ''|unit|e2e|fuzz) ;; *) echo "run.sh: --only unit|e2e|fuzz" >&2; exit 2 ;; esac
[ $# -gt 0 ] || set -- build
# Options come before the builds; a build is a directory make test-build filled.
for build in "$@"; do
	case $build in
	-*) echo "run.sh: $build: options go before the build directories" >&2; exit 2 ;;
	esac
	[ -x "$build/layersnap" ] || { echo "run.sh: $build: no layersnap there (make test-build BUILD=$build)" >&2; exit 2; }
done

passed=0 failed=0 skipped=0
failures=() skips=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LC_ALL=C
export CMOCKA_MESSAGE_OUTPUT=STDOUT
unset LAYERSNAP_TEST_LARGE
require=,$(printf '%s' "${LS_REQUIRE:-}" | tr -d ' '),

# Reasons of cmocka tests that skip() without an LS-SKIP line (tests whose
# source does not print one yet).
default_reason() { # test name
	case $1 in
	test_large_size) printf 'large\tLAYERSNAP_TEST_LARGE=1 not set (make soak, .ci/run: LS_LARGE=1)' ;;
	*) printf 'unnamed\tno reason printed' ;;
	esac
}

pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL  $1"; }
# skip_one whole|part NAME KEYWORD WHAT: counted as skipped, or as failed
# when KEYWORD is required
skip_one() {
	local kind=$1 name=$2 kw=${3:-unnamed} what=${4:-}
	[ -n "$kw" ] || kw=unnamed
	if [ "$require" != ,, ] && [[ $require == *",$kw,"* ]]; then
		fail "$name: skipped ${kind/whole/test}, but LS_REQUIRE has '$kw': $what"
		return
	fi
	skipped=$((skipped + 1))
	skips+=("$(printf '%-4s  %s [%s] %s' "${kind/whole/test}" "$name" "$kw" "$what")")
	[ "$kind" = part ] && echo "SKIP  $name: part [$kw] $what" || echo "SKIP  $name [$kw] $what"
}

# cmocka output -> one record per line: P|F|S|K <TAB> test <TAB> keyword <TAB> what
# (S: the test was skipped, one line per reason; K: a skipped part of a test
# that was not skipped).  Lines after "[==========] N test(s) run." (the
# summary, which lists skipped and failed tests again) are ignored.
parse_cmocka() {
	awk -F'\t' '
	function flush(   i, k) {
		if (cur == "") return
		for (i = 1; i <= nr; i++) {
			k = reason[i]
			if (result == "S") print "S\t" cur "\t" k
			else print "K\t" cur "\t" k
		}
		if (result == "S" && nr == 0) print "S\t" cur "\t"
		if (result == "P" || result == "F") print result "\t" cur
		if (result == "") print "F\t" cur " (no result: crashed?)"
		cur = ""; nr = 0; result = ""; delete seen
	}
	/^\[==========\] [0-9]+ test\(s\) run\./ { flush(); done = 1 }
	done { next }
	/^\[ RUN      \] / { flush(); cur = substr($0, 14); next }
	/^\[       OK \] / { result = "P"; next }
	/^\[  FAILED  \] / || /^\[  ERROR   \] / { if (cur == "") { cur = substr($0, 14) }; result = "F"; next }
	/^\[  SKIPPED \] / { result = "S"; next }
	/LS-SKIP: / {
		line = substr($0, index($0, "LS-SKIP: ") + 9)
		kw = line; sub(/ .*/, "", kw)
		what = line; if (index(what, " ")) what = substr(what, index(what, " ") + 1); else what = ""
		if (cur == "") { print "K\t(outside any test)\t" kw "\t" what; next }
		if (!((kw "\t" what) in seen)) { seen[kw "\t" what] = 1; reason[++nr] = kw "\t" what }
	}
	END { if (!done) flush() }
	'
}

# A selection that runs nothing is a failure, not a pass: a missing build
# step or a misspelt --unit/--e2e NAME must not read "0 failed".
ran_nothing() { # build kind
	fail "$1: no $2 tests ran (make test-build BUILD=$1?${units:+ --unit$units}${scripts:+ --e2e$scripts})"
}

run_unit() { # build
	local build=$1 t log st name kind test kw what nres nfail nbin=0
	for t in "$build"/tests/test_*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		[ -z "$units" ] || [[ $units == *" ${t##*/} "* ]] || continue
		nbin=$((nbin + 1))
		log=$(mktemp)
		name=$t
		if [ "${LS_LARGE:-}" = 1 ] && [ "${t##*/}" = test_layer ]; then
			LAYERSNAP_TEST_LARGE=1 "$t" >"$log" 2>&1
		else
			"$t" >"$log" 2>&1
		fi
		st=$?
		grep -E '^\[ *(OK|FAILED|SKIPPED|ERROR) *\]|LS-SKIP: ' "$log" | sed -n '/test(s) run\./q;p' | sed "s|^|    |"
		nres=0 nfail=0
		while IFS=$'\t' read -r kind test kw what; do
			case $kind in
			P) pass "$name:$test"; nres=$((nres + 1)) ;;
			F) fail "$name:$test"; nres=$((nres + 1)); nfail=$((nfail + 1)) ;;
			S)
				[ -n "$kw" ] || IFS=$'\t' read -r kw what <<<"$(default_reason "$test")"
				skip_one whole "$name:$test" "$kw" "$what"
				nres=$((nres + 1)) ;;
			K) skip_one part "$name:$test" "$kw" "$what" ;;
			esac
		done < <(parse_cmocka <"$log")
		if [ $st -ne 0 ] && [ $nfail -eq 0 ]; then
			fail "$name (exit status $st)"
		elif [ $nres -eq 0 ]; then
			fail "$name (no test results, status $st)"
		fi
		[ $st -eq 0 ] || cat "$log"
		rm -f "$log"
	done
	[ $nbin -gt 0 ] || [ -z "$units" -a -n "$scripts" ] || ran_nothing "$build" unit
}

run_e2e() { # build
	local build=$1 t tmp log st kind kw what whole nscript=0
	for t in tests/e2e/*.sh; do
		[ -f "$t" ] || continue
		case $t in */lib.sh) continue ;; esac
		[ -z "$scripts" ] || [[ $scripts == *" ${t##*/} "* ]] || continue
		nscript=$((nscript + 1))
		tmp=$(mktemp -d /tmp/layersnap-e2e.XXXXXX)
		log=$tmp.log
		: >"$tmp.skips"
		LAYERSNAP=$PWD/$build/layersnap LS_BUILD=$PWD/$build LS_TMP=$tmp LS_SKIPS=$tmp.skips \
			bash "$t" >"$log" 2>&1
		st=$?
		[ $st -eq 0 ] || [ $st -eq 77 ] || tail -n 40 "$log"
		whole=
		while IFS=$'\t' read -r kind kw what; do
			case $kind in
			part) skip_one part "$build:$t" "$kw" "$what" ;;
			whole)
				# the script's own skip; from a subshell that did
				# not end the script, a skipped part
				if [ $st -eq 77 ] && [ -z "$whole" ]; then
					whole=$kw$'\t'$what
				else
					skip_one part "$build:$t" "$kw" "$what"
				fi ;;
			esac
		done < <(awk '!seen[$0]++' "$tmp.skips")  # each distinct part once
		case $st in
		0) pass "$build:$t" ;;
		77)
			[ -n "$whole" ] || whole=$'unnamed\t'"$(tail -n 1 "$log")"
			IFS=$'\t' read -r kw what <<<"$whole"
			skip_one whole "$build:$t" "$kw" "$what" ;;
		*) fail "$build:$t (status $st)" ;;
		esac
		rm -rf "$tmp" "$log" "$tmp.skips"
	done
	[ $nscript -gt 0 ] || [ -z "$scripts" -a -n "$units" ] || ran_nothing "$build" e2e
}

run_fuzz() { # build
	local build=$1 r target log st nrep=0
	for r in "$build"/fuzz/replay-*; do
		[ -x "$r" ] && [ -f "$r" ] || continue
		nrep=$((nrep + 1))
		target=${r##*/replay-}
		log=$(mktemp)
		"$r" "tests/fuzz/regress/$target" "tests/fuzz/corpus/$target" >"$log" 2>&1
		st=$?
		if [ $st -eq 0 ]; then
			pass "$build:fuzz/$target ($(tail -n 1 "$log"))"
		else
			tail -n 40 "$log"
			fail "$build:fuzz/$target (status $st)"
		fi
		rm -f "$log"
	done
	[ $nrep -gt 0 ] || [ -n "$units$scripts" ] || ran_nothing "$build" "fuzz replay"
}

for build in "$@"; do
	if [ -z "$only" ] || [ "$only" = unit ]; then run_unit "$build"; fi
	if [ -z "$only" ] || [ "$only" = e2e ]; then run_e2e "$build"; fi
	if [ -z "$only" ] || [ "$only" = fuzz ]; then run_fuzz "$build"; fi
done

echo
for f in "${failures[@]+"${failures[@]}"}"; do echo "failed: $f"; done
for s in "${skips[@]+"${skips[@]}"}"; do echo "skipped $s"; done
echo "[==========] summary"
echo "[  PASSED  ] $passed test(s)."
[ $failed -eq 0 ] || echo "[  FAILED  ] $failed test(s)."
[ $skipped -eq 0 ] || echo "[  SKIPPED ] $skipped test(s) or part(s)."
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
