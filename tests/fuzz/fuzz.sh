#!/bin/bash
# The libFuzzer runs behind `make fuzz`.
#   tests/fuzz/fuzz.sh probe CC
#       whether CC links -fsanitize=fuzzer,address,undefined: exit 0; if not,
#       a [clang] skip: exit 77, or 1 when LS_REQUIRE names clang
#   tests/fuzz/fuzz.sh run SECONDS FUZZ_BUILD [TARGET...]
#       runs FUZZ_BUILD/fuzz/fuzz-TARGET (every one, or those named) for
#       SECONDS each, one after the other, on one core
#
# Each run starts from the seed corpus tests/fuzz/corpus/TARGET and the
# regression inputs tests/fuzz/regress/TARGET (both read only) and keeps what
# it finds in FUZZ_BUILD/corpus/TARGET, so a later run goes on from there.
# A crash, a leak, a timeout (over 25 s for one input) or running out of
# memory (2 GiB) leaves the input in FUZZ_BUILD/artifacts/TARGET/ and fails
# the run.  To keep one as a regression input, which `make test` replays:
#     FUZZ_BUILD/fuzz/fuzz-TARGET -minimize_crash=1 -max_total_time=60 \
#         -exact_artifact_path=tests/fuzz/regress/TARGET/NAME ARTIFACT
# and name it for what it found.  tests/fuzz/TARGET.dict, when there is one,
# is the target's libFuzzer dictionary.
set -u
cd "$(dirname "$0")/../.." || exit 2

probe() {
	local cc=$1 tmp
	tmp=$(mktemp -d)
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' >"$tmp/p.c"
	if "$cc" -fsanitize=fuzzer,address,undefined "$tmp/p.c" -o "$tmp/p" >"$tmp/err" 2>&1; then
		rm -rf "$tmp"
		return 0
	fi
	echo "SKIP: [clang] $cc cannot link -fsanitize=fuzzer (clang and libclang-rt-dev: make deps): $(head -n 1 "$tmp/err")"
	rm -rf "$tmp"
	case ,$(printf '%s' "${LS_REQUIRE:-}" | tr -d ' '), in
	*,clang,*) echo "FAIL: LS_REQUIRE has 'clang'"; return 1 ;;
	esac
	return 77
}

# final_stat NAME LOG: a value of libFuzzer's -print_final_stats
final_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

run() {
	local secs=$1 build=$2 bin target work art log st execs rate cov ft corpus crashed=0
	shift 2
	local targets=("$@")
	if [ ${#targets[@]} -eq 0 ]; then
		for bin in "$build"/fuzz/fuzz-*; do
			[ -x "$bin" ] && targets+=("${bin##*/fuzz-}")
		done
	fi
	[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets in $build/fuzz" >&2; return 2; }
	# the apply target's scratch directories: on a tmpfs when there is one
	# (ten times the runs of a disk file system, and no load on the disk)
	local tmp base=${TMPDIR:-/tmp}
	if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
	tmp=$(mktemp -d "$base/layersnap-fuzz.XXXXXX")
	chmod 0700 "$tmp"
	summary=()
	for target in "${targets[@]}"; do
		bin=$build/fuzz/fuzz-$target
		[ -x "$bin" ] || { echo "fuzz.sh: $bin is not built" >&2; return 2; }
		work=$build/corpus/$target
		art=$build/artifacts/$target
		log=$build/fuzz-$target.log
		mkdir -p "$work" "$art"
		local dirs=("$work")
		for d in "tests/fuzz/corpus/$target" "tests/fuzz/regress/$target"; do
			[ -d "$d" ] && dirs+=("$d")
		done
		local dict=()
		[ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
		echo "fuzz $target: $secs s (log: $log)"
		touch "$tmp/stamp"
		LS_FUZZ_TMP=$tmp ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
			UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
			"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$art/" "${dict[@]+"${dict[@]}"}" "${dirs[@]}" >"$log" 2>&1
		st=$?
		execs=$(final_stat number_of_executed_units "$log")
		rate=$(final_stat average_exec_per_sec "$log")
		cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1)
		ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -n 1)
		corpus=$(find "$work" -type f | wc -l)
		local new
		new=$(find "$art" -mindepth 1 -maxdepth 1 -newer "$tmp/stamp" -printf '%f\n')
		local line="$target: $secs s, ${execs:-?} runs, ${rate:-?}/s, ${cov:-cov: ?}, ${ft:-ft: ?}, corpus $corpus"
		if [ $st -ne 0 ] || [ -n "$new" ]; then
			crashed=1
			grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz check failed|.*runtime error|#[0-9]+ 0x)' "$log" | head -n 30
			line="$line, FAILED (status $st): ${new:-see the log}"
			for a in $new; do line="$line"$'\n'"    $art/$a"; done
		else
			line="$line, no crash"
		fi
		echo "$line"
		summary+=("$line")
	done
	rm -rf "$tmp"
	echo
	printf 'fuzz: %s\n' "${summary[@]}"
	return $crashed
}

case ${1:-} in
probe) probe "${2:-clang}" ;;
run) shift; [ $# -ge 2 ] || { echo "usage: fuzz.sh run SECONDS FUZZ_BUILD [TARGET...]" >&2; exit 2; }; run "$@" ;;
*) echo "usage: fuzz.sh probe CC | run SECONDS FUZZ_BUILD [TARGET...]" >&2; exit 2 ;;
esac
