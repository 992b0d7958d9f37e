#!/bin/bash
# Bad input: corrupt, truncated, foreign or non-manifest files, bad ROOTs,
# unreadable subtrees, a held lock and bad command lines.  Each is exactly one
# stderr line "layersnap: ..." and exit status 2 (never a crash, a sanitizer
# report or a signal), and never replaces an existing output file nor leaves
# a temporary file or a lock behind.
. "$(dirname "$0")/lib.sh"

L=$LAYERSNAP
T=$LS_TMP
R=$T/root
W=$T/work
mkdir -p "$R/d/e" "$W"
echo one >"$R/f"
echo two >"$R/d/e/g"
ln -s f "$R/l"

"$L" scan "$R" -o "$W/good.m" || fail "scan of the test tree failed"
"$L" scan "$R" -o "$W/out.m" || fail "scan of the test tree failed"
"$L" diff "$R" -o "$W/layer.tar" 2>/dev/null || fail "diff of the test tree failed"
size=$(stat -c %s "$W/good.m")

# The outputs the failing commands target: their checksums and the listing of
# their directory (no temporary file, no lock) must not change.
state() { (cd "$W" && sha256sum out.m layer.tar && ls -A); }
STATE=$(state)
check_outputs() { assert_eq "$STATE" "$(state)" "outputs changed or files left behind after: $*"; }
# leftovers DIR...: temporary files and locks in DIRs
leftovers() { find "$@" -maxdepth 1 \( -name '.*.tmp.*' -o -name '*.layersnap-tmp.*' -o -name '*.lock' \); }

# bad FILE WANT [all]: the commands that read a manifest (with "all", every
# way each command reads one) refuse FILE with one line naming it and
# mentioning WANT (an extended regexp), and touch no output.
bad() {
	local f=$1 want=$2 cmd cmds
	cmds=("dump $f" "compare $W/good.m $f" "scan --base $f $R -o $W/out.m")
	[ "${3:-}" = all ] && cmds+=("dump $f --format json" "compare $f $W/good.m" "compare $f $R"
		"diff --base $f $R -o $W/layer.tar" "diff --base $f $R -o $W/layer.tar --manifest-out $W/out.m")
	for cmd in "${cmds[@]}"; do
		# shellcheck disable=SC2086
		expect_error "$L" $cmd
		local msg
		read -r msg <"$T/stderr"
		[[ $msg =~ $want ]] || fail "'$cmd': message lacks /$want/: $msg"
		[[ $msg == *"$f"* ]] || fail "'$cmd': message does not name the file: $msg"
		case $cmd in
		dump*) [ ! -s "$T/stdout" ] || fail "'$cmd' printed a partial dump" ;;
		scan* | diff*) check_outputs "$cmd" ;;
		esac
	done
}

# ---- corrupt manifests ----------------------------------------------------------------

for n in 1 7 8 63 72 $((size / 2)) $((size - 8)) $((size - 1)); do
	head -c "$n" "$W/good.m" >"$T/trunc.m"
	case $n in 7 | 72 | $((size - 1))) all=all ;; *) all= ;; esac
	bad "$T/trunc.m" 'truncated|not a layersnap manifest' $all
done
: >"$T/empty.m"
bad "$T/empty.m" 'empty|not a layersnap manifest' all

# One flipped bit: in the header (start_nsec), the option block (patterns_len),
# the records, the pool, the trailer's pool_len and the checksum (format 2,
# snapshot/manifest.h: header_len at 12, 24-byte trailer).
flip() { # FILE OFFSET BIT
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\x$(printf %02x $((b ^ (1 << $3))))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
hl=$(od -An -tu4 -j 12 -N4 "$W/good.m" | tr -d ' ')
for at in "20 3" "44 1" "$((hl + 50)) 4" "$((hl + 96 + 3)) 2" "$((size - 20)) 5" "$((size - 1)) 7"; do
	cp "$W/good.m" "$T/flip.m"
	# shellcheck disable=SC2086
	flip "$T/flip.m" $at
	cmp -s "$W/good.m" "$T/flip.m" && fail "flip $at changed nothing"
	bad "$T/flip.m" 'corrupt|checksum' "$([ "$at" = "$((hl + 50)) 4" ] && echo all)"
done

# Random bytes, with and without the magic in front.
head -c 4096 /dev/urandom >"$T/random.m"
bad "$T/random.m" 'not a layersnap manifest' all
{ printf 'LAYRSNAP'; head -c 4000 /dev/urandom; } >"$T/random2.m"
bad "$T/random2.m" 'corrupt|truncated|format'
{ printf 'LAYRSNAP\002\000\000\000'; head -c 200 /dev/zero; } >"$T/zeros.m"
bad "$T/zeros.m" 'corrupt|truncated'
printf '#mtree\n. type=dir\n' >"$T/text.m"
bad "$T/text.m" 'not a layersnap manifest'

# Another format version (bytes 8..11, little-endian): format 1 says to re-scan.
cp "$W/good.m" "$T/v1.m"
printf '\001\000\000\000' | dd of="$T/v1.m" bs=1 seek=8 conv=notrunc status=none
bad "$T/v1.m" 'manifest format 1 is from an older layersnap: re-scan the tree' all
head -c 12 "$T/v1.m" >"$T/v1-short.m"
bad "$T/v1-short.m" 're-scan'
cp "$W/good.m" "$T/v3.m"
printf '\003\000\000\000' | dd of="$T/v3.m" bs=1 seek=8 conv=notrunc status=none
bad "$T/v3.m" 'manifest format 3 is newer than this layersnap supports' all
cp "$W/good.m" "$T/v0.m"
printf '\000\000\000\000' | dd of="$T/v0.m" bs=1 seek=8 conv=notrunc status=none
bad "$T/v0.m" 'format 0 is from an older layersnap'

# Not a regular file: a directory, a FIFO (not waited on), a missing file.
for cmd in "dump $R/d" "compare $R/d $W/good.m" "scan --base $R/d $R -o $W/out.m"; do
	# shellcheck disable=SC2086
	expect_error "$L" $cmd
	grep -q 'not a regular file' "$T/stderr" || fail "'$cmd': $(cat "$T/stderr")"
	check_outputs "$cmd"
done
mkfifo "$T/fifo.m"
bad "$T/fifo.m" 'not a regular file' all
bad "$T/missing.m" 'No such file'

# ---- bad roots -------------------------------------------------------------------------

for root in "$T/nonexistent" "$R/f" "$R/l"; do
	expect_error "$L" scan "$root" -o "$W/out.m"
	check_outputs "scan $root"
	expect_error "$L" diff "$root" -o "$W/layer.tar"
	check_outputs "diff $root"
done
expect_error "$L" scan "$T/nonexistent" -o "$W/out.m"
grep -q 'No such file' "$T/stderr" || fail "missing ROOT: $(cat "$T/stderr")"
expect_error "$L" scan "$R/f" -o "$W/out.m"
grep -q 'not a directory' "$T/stderr" || fail "ROOT a file: $(cat "$T/stderr")"
expect_error "$L" compare "$W/good.m" "$T/nonexistent"
# output in a missing directory, or a directory as output
expect_error "$L" scan "$R" -o "$T/nonexistent/out.m"
expect_error "$L" scan "$R" -o "$W"
check_outputs "scan -o DIR"
[ ! -e "$T/work.lock" ] || fail "lock left behind by -o DIR"

# ---- an unreadable subtree (permissions need a non-root user) ----------------------------

as_user() { "$@"; }
U=$T/user
if is_root; then
	if command -v setpriv >/dev/null; then
		as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	elif command -v runuser >/dev/null; then
		as_user() { runuser -u nobody -- "$@"; }
	else
		as_user() { return 77; }
	fi
fi
chmod 755 "$T"
mkdir -p "$U"
is_root && chown 65534:65534 "$U"
if as_user sh -c "mkdir -p '$U/tree/bad/sub' '$U/tree/ok' && echo x >'$U/tree/bad/sub/f' &&
	echo y >'$U/tree/ok/f' && echo z >'$U/tree/secret' && echo w >'$U/tree/ok/g'"; then
	as_user "$L" scan "$U/tree" -o "$U/before.m" || fail "scan as a user failed"
	cp "$U/before.m" "$U/out.m"
	as_user chmod 000 "$U/tree/bad"
	expect_error as_user "$L" scan "$U/tree" -o "$U/out.m"
	grep -q 'tree/bad: Permission denied' "$T/stderr" || fail "unreadable dir not named: $(cat "$T/stderr")"
	cmp -s "$U/before.m" "$U/out.m" || fail "a failed scan replaced the manifest"
	[ -z "$(leftovers "$U")" ] || fail "temporary or lock left behind: $(leftovers "$U")"

	# --ignore-errors: a warning, the rest recorded
	as_user "$L" scan --ignore-errors "$U/tree" -o "$U/out.m" 2>"$T/stderr" ||
		fail "--ignore-errors scan failed: $(cat "$T/stderr")"
	[ "$(wc -l <"$T/stderr")" -eq 1 ] && grep -q '^layersnap: warning: .*tree/bad: Permission denied' "$T/stderr" ||
		fail "--ignore-errors: expected one warning, got: $(cat "$T/stderr")"
	got=$("$L" dump "$U/out.m" --format json | sed -n 's/^  {"path": "\([^"]*\)".*/\1/p' | tr '\n' ' ')
	assert_eq "bad ok ok/f ok/g secret " "$got" "entries recorded with --ignore-errors"
	# -q silences the warning
	as_user "$L" scan --ignore-errors -q "$U/tree" -o "$U/out.m" 2>"$T/stderr" || fail "-q scan failed"
	[ ! -s "$T/stderr" ] || fail "-q: stderr not empty: $(cat "$T/stderr")"
	# --ignore-errors with a base: the unreadable directory's entries carry over
	as_user "$L" scan --ignore-errors -q --base "$U/before.m" "$U/tree" -o "$U/out.m" || fail "scan --base"
	got=$("$L" dump "$U/out.m" --format json | sed -n 's/^  {"path": "\([^"]*\)".*/\1/p' | tr '\n' ' ')
	assert_eq "bad bad/sub bad/sub/f ok ok/f ok/g secret " "$got" "base entries kept under --ignore-errors"
	as_user chmod 755 "$U/tree/bad"
	# a name holding a newline: the error is still one line, the byte escaped
	nl="$U/tree/new
line"
	as_user mkdir "$nl" && as_user chmod 000 "$nl"
	expect_error as_user "$L" scan "$U/tree" -o "$U/out.m"
	grep -qF 'tree/new\012line: Permission denied' "$T/stderr" || fail "newline in a name: $(cat "$T/stderr")"
	as_user chmod 755 "$nl" && as_user rmdir "$nl"

	# an unreadable file: full mode must read it, redo must not
	as_user chmod 000 "$U/tree/secret"
	cp "$U/before.m" "$U/out.m"
	expect_error as_user "$L" scan "$U/tree" -o "$U/out.m"
	grep -q 'tree/secret: Permission denied' "$T/stderr" || fail "unreadable file not named: $(cat "$T/stderr")"
	cmp -s "$U/before.m" "$U/out.m" || fail "a failed scan replaced the manifest"
	as_user "$L" scan --mode redo "$U/tree" -o "$U/out.m" || fail "redo scan of an unreadable file failed"
	as_user "$L" scan --ignore-errors "$U/tree" -o "$U/out.m" 2>"$T/stderr" || fail "--ignore-errors scan failed"
	grep -q 'warning: .*tree/secret' "$T/stderr" || fail "no warning for the unreadable file: $(cat "$T/stderr")"
	as_user chmod 644 "$U/tree/secret"
else
	if is_root; then
		partial_skip setuid "cannot run as an unprivileged user: unreadable-subtree checks"
	else
		partial_skip root "cannot make the unprivileged user's tree: unreadable-subtree checks"
	fi
fi

# ---- a held lock ---------------------------------------------------------------------------

: >"$W/out.m.lock"
SUMS_LOCK=$(sha256sum "$W/out.m")
# held (an OFD lock, as a running layersnap holds it) by tools/outputs
held() { "$LS_BUILD/tools/outputs" hold-lock "$W/out.m.lock" "$@"; }
expect_error held "$L" scan "$R" -o "$W/out.m"
grep -q 'lock' "$T/stderr" || fail "message does not mention the lock: $(cat "$T/stderr")"
[ -e "$W/out.m.lock" ] || fail "someone else's lock was removed"
assert_eq "$SUMS_LOCK" "$(sha256sum "$W/out.m")" "manifest changed under a held lock"
expect_error held "$L" diff "$R" -o "$W/layer.tar" --manifest-out "$W/out.m"
[ -e "$W/out.m.lock" ] || fail "someone else's lock was removed by diff"
rm -f "$W/out.m.lock"
check_outputs "held lock"

# ---- bad command lines ------------------------------------------------------------------------

while IFS= read -r line; do
	[ -n "$line" ] || continue
	# shellcheck disable=SC2086
	set -- $line
	expect_error "$L" "$@"
	check_outputs "$line"
done <<EOF
bogus
scan --bogus $R -o $W/out.m
scan -Q $R -o $W/out.m
scan --mode bogus $R -o $W/out.m
scan --mode $R -o
scan --io bogus $R -o $W/out.m
scan --xattrs bogus $R -o $W/out.m
scan -j 0 $R -o $W/out.m
scan -j x $R -o $W/out.m
scan $R
scan -o $W/out.m
scan $R $R -o $W/out.m
scan $R -o -
scan --compress gzip $R -o $W/out.m
scan --format json $R -o $W/out.m
dump
dump --format xml $W/good.m
dump --mode full $W/good.m
dump $W/good.m $W/good.m
compare $W/good.m
compare -z
diff --compress bogus $R -o $W/layer.tar
diff --level 99 $R -o $W/layer.tar
diff --source-date-epoch -5 $R -o $W/layer.tar
diff --level 5 $R -o $W/layer.tar
diff --level 5 --compress none $R -o $W/layer.tar
apply
apply --mode full $W/layer.tar $T/nonexistent
EOF
expect_error "$L"
"$L" bogus 2>&1 | grep -q "unknown command 'bogus'" || fail "unknown command not named"
"$L" scan --bogus "$R" -o "$W/out.m" 2>&1 | grep -q "unknown option '--bogus'" || fail "unknown option not named"
"$L" scan --mode bogus "$R" -o "$W/out.m" 2>&1 | grep -q -- '--mode bogus' || fail "--mode bogus not named"
# an option that does not apply is named by its own spelling, not its value
assert_eq "layersnap: apply: option --compress does not apply to this command" \
	"$("$L" apply --compress gzip "$W/layer.tar" "$T/x" 2>&1)" "apply --compress gzip"
assert_eq "layersnap: apply: option -o does not apply to this command" \
	"$("$L" apply -o f "$W/layer.tar" "$T/x" 2>&1)" "apply -o"
assert_eq "layersnap: diff: --level needs --compress gzip or zstd" \
	"$("$L" diff --level 5 "$R" -o "$W/layer.tar" 2>&1)" "--level without --compress"
# a missing --base names the option
"$L" diff --base "$T/nonexistent.m" "$R" -o "$W/layer.tar" 2>&1 | grep -q -- "^layersnap: --base $T/nonexistent.m: " ||
	fail "a missing --base is not named as such"
check_outputs "missing --base"
# -V is --version
assert_eq "$("$L" --version)" "$("$L" -V)" "-V"
assert_eq "$("$L" --version)" "$("$L" dump -V)" "dump -V"

# ---- stdout's reader gone: exit 141 (as SIGPIPE would), no message, nothing committed --
# (outputs larger than a pipe holds, so that the writer sees the reader go)
B=$T/big
mkdir -p "$B/d"
for i in $(seq 3000); do echo "file $i" >"$B/d/file-with-a-long-name-$i"; done
"$L" scan "$B" -o "$T/big.m" || fail "scan of the big tree failed"
mkdir -p "$T/none"
"$L" scan "$T/none" -o "$T/none.m" || fail "scan of an empty tree failed"
for cmd in "dump $T/big.m" "dump --format json $T/big.m" "compare $T/none.m $T/big.m" \
	"diff $B -o - --manifest-out $W/out.m"; do
	# shellcheck disable=SC2086
	"$L" $cmd 2>"$T/stderr" | head -c 1 >/dev/null
	st=${PIPESTATUS[0]}
	[ "$st" = 141 ] || fail "'$cmd | head -c 1': exit $st, not 141"
	[ ! -s "$T/stderr" ] || fail "'$cmd | head -c 1' printed: $(cat "$T/stderr")"
	check_outputs "$cmd | head -c 1"
done

# ---- -o inside ROOT -------------------------------------------------------------------------

for o in "$R/inside.m" "$R/d/inside.m"; do
	"$L" scan "$R" -o "$o" || fail "scan -o $o inside ROOT failed"
	"$L" scan "$R" -o "$o" || fail "second scan -o $o (existing) failed"
	"$L" dump "$o" --format json | grep -q 'inside\.m' && fail "the output $o is recorded in its manifest"
	(cd "$R" && "$L" scan . -o "${o#"$R"/}") || fail "relative scan -o inside ROOT failed"
	"$L" dump "$o" --format json | grep -q 'inside\.m' && fail "the output $o is recorded (relative)"
	assert_eq "d d/e d/e/g f l " "$("$L" dump "$o" --format json | sed -n 's/^  {"path": "\([^"]*\)".*/\1/p' | tr '\n' ' ')" \
		"entries of a manifest written inside ROOT"
	[ -z "$(leftovers "$R" "$R/d")" ] || fail "temporary or lock left in ROOT: $(leftovers "$R" "$R/d")"
	rm -f "$o"
done

echo "bad_input: all checks passed"
