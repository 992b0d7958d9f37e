#!/bin/bash
# The command line's conventions, all made from one option table: per-command
# help, the options each command takes, and the bash completion script.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
COMMANDS="scan diff compare apply dump"

# ---- help ---------------------------------------------------------------------
"$L" --help >"$T/usage" || fail "--help failed"
for cmd in $COMMANDS; do
	grep -q "^  $cmd " "$T/usage" || fail "--help does not list $cmd"
	"$L" "$cmd" --help >"$T/help.$cmd" || fail "$cmd --help failed"
	"$L" help "$cmd" >"$T/help2.$cmd" || fail "help $cmd failed"
	cmp -s "$T/help.$cmd" "$T/help2.$cmd" || fail "help $cmd differs from $cmd --help"
	head -n 1 "$T/help.$cmd" | grep -q "^usage: layersnap $cmd " || fail "$cmd --help: no usage line"
	# every option listed is one the command takes: never "does not apply"
	for opt in $(grep -o -- '--[a-z-]*' "$T/help.$cmd" | sort -u); do
		case $opt in --help | --version) continue ;; esac
		"$L" "$cmd" "$opt" x y z </dev/null >/dev/null 2>"$T/err"
		grep -q "does not apply" "$T/err" && fail "$cmd --help lists $opt, which $cmd refuses"
	done
done
assert_eq "$("$L" --version)" "$("$L" -V)" "-V"
grep -q -- "--compress" "$T/help.diff" || fail "diff --help lacks --compress"
grep -q -- "--compress" "$T/help.apply" && fail "apply --help lists --compress"
expect_error "$L" help bogus
expect_error "$L" completion
expect_error "$L" completion zsh

# ---- options refused where they do not apply, named as spelt ---------------------
for spec in "apply --compress" "apply -o" "dump --compress" "scan --keep-setid" "compare --descriptor"; do
	set -- $spec
	"$L" "$1" "$2" v a b >/dev/null 2>"$T/err"
	grep -q -- "option $2 does not apply" "$T/err" || fail "$spec: not refused by name: $(cat "$T/err")"
done

# ---- every reporting command takes --json --------------------------------------------
R=$T/root
mkdir -p "$R/d" "$T/applied"
echo one >"$R/d/f"
"$L" diff "$R" -o "$T/layer.tar" --manifest-out "$T/m" 2>/dev/null || fail "diff failed"
assert_eq "$("$L" dump --format json "$T/m")" "$("$L" dump --json "$T/m")" "dump --json"
expect_error "$L" dump --json --format mtree "$T/m"
"$L" apply --json "$T/layer.tar" "$T/applied" >"$T/apply.json" || fail "apply --json failed"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if d == {"entries": 2, "whiteouts": 0, "skipped": 0} else str(d))' \
	"$T/apply.json" || fail "apply --json: $(cat "$T/apply.json")"

# ---- progress: on a terminal (or with --progress), each phase shows ---------------------
P=$T/ptree
mkdir -p "$P"
for i in $(seq 50); do head -c 100000 /dev/zero >"$P/f$i"; done
"$L" diff -q "$P" -o "$T/p.tar" 2>"$T/p.err" || fail "diff (no terminal) failed"
[ ! -s "$T/p.err" ] || fail "progress or output on stderr without a terminal: $(cat "$T/p.err")"
"$L" diff -q --progress "$P" -o "$T/p.tar" 2>"$T/p.err" || fail "diff --progress failed"
grep -q "walking: 50 entries, done" "$T/p.err" || fail "--progress: no walk line: $(cat -v "$T/p.err")"
grep -q "writing the layer: .*of 5.0 MB read" "$T/p.err" || fail "--progress: no layer line: $(cat -v "$T/p.err")"
if command -v script >/dev/null; then
	# under a pseudo-terminal: stderr is a terminal, so progress is on
	script -qec "$(printf '%q ' "$L" diff "$P" -o "$T/p.tar")" "$T/typescript" >/dev/null ||
		fail "diff under script failed"
	grep -q "walking: " "$T/typescript" || fail "terminal: no walk line: $(cat -v "$T/typescript")"
	grep -q "writing the layer: " "$T/typescript" || fail "terminal: no layer line: $(cat -v "$T/typescript")"
	grep -q "MB read" "$T/typescript" || fail "terminal: no bytes in the layer line"
	script -qec "$(printf '%q ' "$L" scan "$P" -o "$T/p.m")" "$T/typescript" >/dev/null ||
		fail "scan under script failed"
	grep -q "walking: " "$T/typescript" || fail "terminal: scan shows no walk line"
	script -qec "$(printf '%q ' "$L" diff --no-progress "$P" -o "$T/p.tar")" "$T/typescript" >/dev/null
	! grep -q "walking" "$T/typescript" || fail "terminal: --no-progress still shows progress"
else
	partial_skip script "script (util-linux) missing: progress on a terminal"
fi

# ---- diff -v: the changes, as compare lists them ---------------------------------------
V=$T/vtree
mkdir -p "$V/keep" "$V/gone/sub"
echo a >"$V/keep/a"; echo b >"$V/gone/sub/b"; echo c >"$V/t"
"$L" scan "$V" -o "$T/v.m" || fail "scan of the -v tree failed"
sleep 0.05
echo A >"$V/keep/a"; rm -r "$V/gone"; rm "$V/t"; mkdir "$V/t"; echo n >"$V/new"
"$L" diff -v --base "$T/v.m" "$V" -o "$T/v.tar" 2>"$T/v.err" >/dev/null || fail "diff -v failed"
"$L" compare "$T/v.m" "$V" >"$T/v.cmp"
assert_eq "$(sort "$T/v.cmp")" "$(grep -P '^[AMDT]\t' "$T/v.err" | sort)" "diff -v against compare"
grep -q "^D	gone/sub/b$" "$T/v.err" || fail "diff -v: a deleted subtree's entries are not listed"

# ---- bash completion ------------------------------------------------------------
"$L" completion bash >"$T/completion.bash" || fail "completion bash failed"
bash -n "$T/completion.bash" || fail "the completion script does not parse"
# complete WORD... : what the script offers for the last word
complete_words() {
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _layersnap
		[ ${#COMPREPLY[@]} -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}"' _ "$T/completion.bash" "$@" | sort | tr '\n' ' '
}
assert_eq "--compress " "$(complete_words layersnap diff --comp)" "layersnap diff --comp"
assert_eq "full redo time " "$(complete_words layersnap diff --mode '')" "layersnap diff --mode"
assert_eq "gzip " "$(complete_words layersnap diff --compress g)" "layersnap diff --compress g"
assert_eq "diff dump " "$(complete_words layersnap d)" "layersnap d"
assert_eq "" "$(complete_words layersnap apply --comp)" "layersnap apply --comp"
assert_eq "" "$(complete_words layersnap diff -j '')" "layersnap diff -j"
assert_eq "json mtree " "$(complete_words layersnap dump --format '')" "layersnap dump --format"
# every option of every command's help is offered for it, and no other
for cmd in $COMMANDS; do
	want=$(grep -o -- '--[a-z-]*' "$T/help.$cmd" | grep -v -- '^--$' | sort -u | tr '\n' ' ')
	assert_eq "$want" "$(complete_words layersnap "$cmd" --)" "completion of $cmd --"
done

echo "cli: all checks passed"
