#!/bin/bash
# Runs the cmocka unit tests and the end-to-end shell tests for each build
# directory given (e.g. build build/asan) and prints one summary.
#   tests/run.sh [--only unit|e2e] BUILD...
set -u
cd "$(dirname "$0")/.."
only=
if [ "${1:-}" = --only ]; then only=$2; shift 2; fi
[ $# -gt 0 ] || set -- build

passed=0 failed=0 skipped=0
failures=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LC_ALL=C

record() { # name status
	case $2 in
	0) passed=$((passed + 1)); echo "PASS  $1" ;;
	77) skipped=$((skipped + 1)); echo "SKIP  $1" ;;
	*) failed=$((failed + 1)); failures+=("$1"); echo "FAIL  $1 (status $2)" ;;
	esac
}

for build in "$@"; do
	if [ -z "$only" ] || [ "$only" = unit ]; then
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			log=$(mktemp)
			"$t" >"$log" 2>&1
			st=$?
			grep -E '^\[ *(PASSED|FAILED|SKIPPED) *\]' "$log" | sed "s|^|    |"
			[ $st -eq 0 ] || cat "$log"
			rm -f "$log"
			record "$t" $st
		done
	fi
	if [ -z "$only" ] || [ "$only" = e2e ]; then
		for t in tests/e2e/*.sh; do
			[ -f "$t" ] || continue
			case $t in */lib.sh) continue ;; esac
			tmp=$(mktemp -d /tmp/layersnap-e2e.XXXXXX)
			log=$tmp.log
			LAYERSNAP=$PWD/$build/layersnap LS_BUILD=$PWD/$build LS_TMP=$tmp \
				bash "$t" >"$log" 2>&1
			st=$?
			[ $st -eq 0 ] || [ $st -eq 77 ] || tail -n 40 "$log"
			[ $st -eq 77 ] && tail -n 1 "$log"
			rm -rf "$tmp" "$log"
			record "$build:$t" $st
		done
	fi
done

echo
for f in "${failures[@]+"${failures[@]}"}"; do echo "failed: $f"; done
echo "[==========] summary"
echo "[  PASSED  ] $passed test(s)."
[ $failed -eq 0 ] || echo "[  FAILED  ] $failed test(s)."
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
