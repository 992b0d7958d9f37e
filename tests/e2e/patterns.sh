#!/bin/bash
# --exclude-pattern and --exclude-from against git's own rules: for a table
# of gitignore pattern lists, the manifest's and the layer's entries are the
# tree's paths minus what `git check-ignore --no-index` calls ignored (or lies
# below an ignored directory, which the walk never enters).  Also: the
# patterns are recorded (a base with others is refused), the command line and
# a file give the same manifest, and -v names a pattern that matched nothing.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
command -v git >/dev/null || skip git "git is not installed: patterns are checked against git check-ignore"

R=$T/tree
mkdir -p "$R"/a/b "$R"/a/test "$R"/a/node_modules/p/test "$R"/a/node_modules/p/lib "$R"/a/node_modules/p/q/test \
	"$R"/build "$R"/src/build "$R"/doc/frotz "$R"/x/doc/frotz "$R"/sub/foo "$R"/deep/a/test "$R/sp ace"
for f in a/b/c.txt a/b/c.log a/test/x a/node_modules/p/test/t.js a/node_modules/p/lib/l.js \
	a/node_modules/p/q/test/deep.js a/node_modules/p/index.js build/out src/build/o doc/frotz/f \
	x/doc/frotz/g keep.log drop.log bkeep.log foo sub/foo/bar deep/a/test/y 'sp ace/s' '[br]' \
	'!bang' '#hash' 'tail ' README.txt src/main.c src/util.txt; do
	printf '%s\n' "$f" >"$R/$f"
done

# ignored_by_git FILE: the tree's paths (dirs and files) git ignores under
# the patterns of FILE, or that lie below a directory it ignores.  The
# repository's .git is kept outside the tree so the walk does not see it.
G=$T/git.d
git init -q --bare "$G" 2>/dev/null || git init -q "$G" || fail "git init failed"
ignored_by_git() {
	(cd "$R" && find . -mindepth 1 -printf '%P\0') >"$T/all.z"
	git --git-dir="$G" --work-tree="$R" -c core.excludesFile="$1" -C "$R" check-ignore --no-index -z --stdin \
		<"$T/all.z" >"$T/ign.z"
	case $? in 0|1) ;; *) fail "git check-ignore failed for $1" ;; esac
	python3 - "$T/all.z" "$T/ign.z" <<'PY'
import sys
allp = [p for p in open(sys.argv[1], 'rb').read().split(b'\0') if p]
ign = set(p for p in open(sys.argv[2], 'rb').read().split(b'\0') if p)
def out(p):
    parts = p.split(b'/')
    return any(b'/'.join(parts[:i]) in ign for i in range(1, len(parts) + 1))
for p in sorted(allp):
    if out(p):
        sys.stdout.buffer.write(p + b'\n')
PY
}

# kept MANIFEST: its paths, sorted bytewise, one a line
kept() {
	"$L" dump --format json "$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["entries"]:
    p = e["path"].encode("utf-8", "surrogateescape")
    sys.stdout.buffer.write(p + b"\n")' | LC_ALL=C sort
}

all_paths() { (cd "$R" && find . -mindepth 1 -printf '%P\n') | LC_ALL=C sort; }

n=0
check_set() { # NAME PATTERN-LINES
	local name=$1 lines=$2
	n=$((n + 1))
	printf '%s\n' "$lines" >"$T/pats.$n"
	local want got layer
	want=$(comm -23 <(all_paths) <(ignored_by_git "$T/pats.$n" | LC_ALL=C sort))
	[ "$want" != "$(all_paths)" ] || fail "$name: git ignores nothing here: the case tests nothing"
	printf '%s: %s of %s entries kept\n' "$name" "$(wc -l <<<"$want")" "$(all_paths | wc -l)"
	"$L" scan --mode time --exclude-from "$T/pats.$n" "$R" -o "$T/m.$n" ||
		fail "$name: scan --exclude-from failed"
	got=$(kept "$T/m.$n")
	assert_eq "$want" "$got" "$name: the manifest's entries against git check-ignore"
	"$L" diff -q --mode time --exclude-from "$T/pats.$n" "$R" -o "$T/l.$n.tar" || fail "$name: diff failed"
	layer=$(tar -tf "$T/l.$n.tar" | sed 's|/$||' | LC_ALL=C sort)
	assert_eq "$want" "$layer" "$name: the layer's entries against git check-ignore"
}

check_set "no slash: names at any depth, ! re-includes" $'*.log\n!keep.log'
check_set "a trailing slash: directories only" $'test/\nfoo/'
check_set "a name: files and directories" 'foo'
check_set "anchored with *" 'a/node_modules/*/test'
check_set "anchored with **" 'a/**/test'
check_set "leading **" '**/frotz'
check_set "leading / anchors at ROOT" $'/build\n/doc/frotz/'
check_set "everything inside" 'a/**'
check_set "only .txt files (a whitelist)" $'*\n!*/\n!*.txt'
check_set "classes, ? and escapes" $'[bk]*.log\nsp?ace\n\\[br\\]\n\\!bang\n\\#hash'
check_set "comments, blank lines, trailing spaces" $'# a comment\n\ndrop.log   \ntail\\ '
check_set "the last match wins" $'!keep.log\n*.log\nsrc/\n!src/'

# The command line gives what the file gives.
"$L" scan --mode time --exclude-pattern '*.log' --exclude-pattern '!keep.log' "$R" -o "$T/cli.m" ||
	fail "scan --exclude-pattern failed"
assert_eq "$(kept "$T/m.1")" "$(kept "$T/cli.m")" "--exclude-pattern against --exclude-from"

# Recorded: a base scanned with other patterns (or none) is refused.
expect_error "$L" diff --mode time --base "$T/cli.m" "$R" -o "$T/x.tar"
grep -q 'other --exclude-pattern' "$T/stderr" || fail "a base without the patterns: $(cat "$T/stderr")"
"$L" diff -q --mode time --exclude-pattern '*.log' --exclude-pattern '!keep.log' --base "$T/cli.m" "$R" \
	-o "$T/x.tar" || fail "diff with the base's own patterns failed"

# -v names what matched nothing; bad patterns are refused in one line.
"$L" scan -v --mode time --exclude-pattern 'nothing-here' --exclude-pattern '*.log' "$R" -o "$T/v.m" \
	2>"$T/v.err" || fail "scan -v failed"
grep -qx "layersnap: --exclude-pattern 'nothing-here' matched nothing" "$T/v.err" ||
	fail "-v does not name the pattern that matched nothing: $(cat "$T/v.err")"
! grep -q "'\*.log' matched nothing" "$T/v.err" || fail "-v names a pattern that matched"
expect_error "$L" scan --exclude-pattern '# comment' "$R" -o "$T/bad.m"
expect_error "$L" scan --exclude-from "$T/no-such-file" "$R" -o "$T/bad.m"
[ ! -e "$T/bad.m" ] || fail "a refused pattern left a manifest"
echo "patterns: $n pattern lists agree with git check-ignore"
