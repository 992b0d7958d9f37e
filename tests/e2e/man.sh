#!/bin/bash
# The man page, doc/layersnap.1: groff and man find nothing to warn about, and
# it describes every command and every option the option table has (read from
# `layersnap completion bash`, which the table makes).
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
PAGE=$(dirname "$0")/../../doc/layersnap.1
command -v groff >/dev/null || skip groff "groff missing: the man page is not checked"

groff -ww -z -man "$PAGE" 2>"$T/groff" || fail "groff failed on the man page"
[ ! -s "$T/groff" ] || fail "groff warns: $(head -n 5 "$T/groff")"
if command -v man >/dev/null; then
	MANWIDTH=80 man --warnings -l "$PAGE" >"$T/page" 2>"$T/man" || fail "man -l failed"
	[ ! -s "$T/man" ] || fail "man warns: $(head -n 5 "$T/man")"
	grep -q "EXIT STATUS" "$T/page" || fail "the rendered page has no EXIT STATUS"
else
	partial_skip groff "man missing: the page is not rendered"
fi

"$L" completion bash >"$T/completion.bash" || fail "completion bash failed"
# every command, as a tagged paragraph of DESCRIPTION
for cmd in scan diff compare apply dump help; do
	grep -q "^\.B $cmd\$" "$PAGE" || fail "the man page does not describe $cmd"
done
# every option, as roff spells it (\- for each -)
for opt in $(grep -o -- '--[a-z][a-z-]*' "$T/completion.bash" | sort -u); do
	roff=${opt//-/\\-}
	grep -qF -- "$roff" "$PAGE" || fail "the man page does not name $opt"
done
echo "man: all checks passed"
