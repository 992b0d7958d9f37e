# Helpers for the end-to-end tests: sourced by every tests/e2e/*.sh.
# Environment: LAYERSNAP (the binary), LS_BUILD (build dir), LS_TMP (scratch dir),
# LS_SKIPS (optional: the file skips are recorded in).
set -u
: "${LAYERSNAP:?}" "${LS_BUILD:?}" "${LS_TMP:?}"
export LC_ALL=C

fail() { echo "FAIL: $*" >&2; exit 1; }

# Skips are counted, never silent (tests/run.sh reads them back).  Each names
# a reason KEYWORD first; tests/run.sh fails the run when KEYWORD is in the
# comma-separated LS_REQUIRE (.ci/run sets it).  Keywords:
#   uring    io_uring cannot be set up      root     not running as root
#   setuid   cannot run as another user     mount    cannot mount (tmpfs, bind)
#   mknod    cannot make device nodes       seccomp  cannot install a seccomp filter
#   xattr    no user.* xattrs on the fs     wchan    /proc/PID/wchan tells nothing
#   overlay  no overlayfs                   large    LAYERSNAP_TEST_LARGE unset (unit)
#   devfull  no /dev/full (ENOSPC)          locale   no C.UTF-8 locale (unit)
#   cold     a tree's page cache cannot be dropped (tmpfs: tests/tools/evict)
#   rlimit   RLIMIT_NOFILE too low (unit)   fdtable  the descriptor table is large
#                                                    already (unit: its growth)
#   TOOL     TOOL is not installed: its command's name (mtree, umoci, skopeo,
#            git, clang, bsdtar, python3, setpriv, ...)
# skip KEYWORD WHY: the whole script is skipped (exit 77).
# partial_skip KEYWORD WHAT: a part of the script is skipped, the rest runs.
# Both append "whole|part<TAB>KEYWORD<TAB>WHAT" to the file $LS_SKIPS (when
# set) and print "SKIP: ..." / "SKIP-PART: ...".  A single argument (an old
# call) is recorded under the keyword "unnamed".
ls_record_skip() { # whole|part KEYWORD WHAT...
	local kind=$1 kw=$2
	shift 2
	local what=$*
	if [ -n "${LS_SKIPS:-}" ]; then
		printf '%s\t%s\t%s\n' "$kind" "$kw" "$(printf '%s' "$what" | tr '\t\n' '  ')" >>"$LS_SKIPS"
	fi
}
skip() {
	local kw=unnamed
	if [ $# -ge 2 ]; then kw=$1; shift; fi
	ls_record_skip whole "$kw" "$*"
	echo "SKIP: [$kw] $*"
	exit 77
}
partial_skip() {
	local kw=unnamed
	if [ $# -ge 2 ]; then kw=$1; shift; fi
	ls_record_skip part "$kw" "$*"
	echo "SKIP-PART: [$kw] $*"
}

# assert_eq EXPECTED ACTUAL [what]
assert_eq() {
	if [ "$1" != "$2" ]; then
		echo "--- expected (${3:-value}):" >&2; printf '%s\n' "$1" >&2
		echo "--- actual:" >&2; printf '%s\n' "$2" >&2
		fail "${3:-values differ}"
	fi
}

# expect_status N CMD...: runs CMD, checks its exit status; stderr kept in $LS_TMP/stderr
expect_status() {
	local want=$1; shift
	"$@" 2>"$LS_TMP/stderr"
	local st=$?
	[ "$st" -eq "$want" ] || { cat "$LS_TMP/stderr" >&2; fail "'$*' exited $st, expected $want"; }
}

# expect_error CMD...: exit 2 and exactly one line "layersnap: ..." on stderr
expect_error() {
	"$@" >"$LS_TMP/stdout" 2>"$LS_TMP/stderr"
	local st=$?
	[ "$st" -eq 2 ] || { cat "$LS_TMP/stderr" >&2; fail "'$*' exited $st, expected 2"; }
	[ "$(wc -l <"$LS_TMP/stderr")" -eq 1 ] || { cat "$LS_TMP/stderr" >&2; fail "'$*': stderr is not one line"; }
	grep -q '^layersnap: ' "$LS_TMP/stderr" || { cat "$LS_TMP/stderr" >&2; fail "'$*': stderr lacks 'layersnap: '"; }
}

is_root() { [ "$(id -u)" = 0 ]; }

# io_engines WHAT: sets IOS to the --io engines a test runs with: "sync uring",
# or "sync" with a counted skip of WHAT when io_uring cannot be set up here.
io_engines() {
	IOS="sync uring"
	mkdir -p "$LS_TMP/probe"
	if ! "$LAYERSNAP" scan --io uring "$LS_TMP/probe" -o "$LS_TMP/probe.m" 2>"$LS_TMP/probe.err"; then
		grep -q 'io_uring' "$LS_TMP/probe.err" || fail "--io uring failed oddly: $(cat "$LS_TMP/probe.err")"
		IOS=sync
		partial_skip uring "io_uring unavailable ($(cat "$LS_TMP/probe.err")): $1"
	fi
}
