# Helpers for the end-to-end tests: sourced by every tests/e2e/*.sh.
# Environment: LAYERSNAP (the binary), LS_BUILD (build dir), LS_TMP (scratch dir).
set -u
: "${LAYERSNAP:?}" "${LS_BUILD:?}" "${LS_TMP:?}"
export LC_ALL=C

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

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
