#!/bin/bash
# Carry-overs (the splice): a base subtree the walk cannot or must not enter
# is carried into the new manifest unchanged and never whited out.  With
# --io sync and --io uring:
# (a) --ignore-errors as an unprivileged user: p/ (files and a subdirectory
#     p/sub/ with files) made unreadable after the base scan; diff names it
#     in a warning, writes no entry below p/ (no whiteout of p/'s children),
#     and the new manifest holds p/'s base subtree with its base metadata;
#     scan --base does the same; then p/sub/ alone unreadable, likewise;
#     and files only the layer writer reads (redo mode): a changed one
#     keeps its base entry, a new one is left out, neither in the layer.
# (b) --one-file-system: a tmpfs mounted over m/ (which had children in the
#     base) after the base scan; the diff writes nothing of m/ (neither
#     whiteouts of its children nor m/ itself with the tmpfs's mode 1777),
#     the new manifest keeps m/'s base subtree, a warning names m.
# (c) -j 256 under prlimit --nofile=256:256 and 64:64, --io auto, sync and
#     uring: 10 scans each of a tree of 3000 directories succeed and record
#     the same tree as a plain scan.
. "$(dirname "$0")/lib.sh"

command -v bsdtar >/dev/null || skip bsdtar "bsdtar not installed"
L=$LAYERSNAP
T=$LS_TMP
io_engines "--io uring"

problems=0
problem() { echo "PROBLEM: $*"; problems=$((problems + 1)); }
# same EXPECTED ACTUAL WHAT: a problem when they differ
same() {
	[ "$1" = "$2" ] && return 0
	problem "$3: differs:"
	diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | head -n 20 | sed 's/^/    /'
}
# entries MANIFEST PREFIX: the JSON dump's lines of PREFIX and everything below it
entries() {
	"$L" dump "$1" --format json >"$T/entries.json" || fail "dump $1 failed"
	grep -F -e "{\"path\": \"$2\", " -e "{\"path\": \"$2/" "$T/entries.json"
}
# below MANIFEST DIR: the JSON dump's lines of the entries below DIR
below() { entries "$1" "$2" | grep -vF "{\"path\": \"$2\", "; }
# siblings MANIFEST: the JSON dump's entries but p, q and below them
siblings() { "$L" dump "$1" --format json | grep '^  {"path": ' | grep -v '"path": "\(p\|q\)[/"]'; }
# no_entry_below LIST DIR WHAT: the layer listing holds nothing below DIR and
# no whiteout of DIR (DIR/ itself, with its new metadata, is allowed)
no_entry_below() {
	local wh=.wh.${2##*/} bad
	case $2 in */*) wh=${2%/*}/$wh ;; esac
	bad=$({ grep "^$2/." "$1"; grep -xF "$wh" "$1"; } | tr '\n' ' ')
	[ -z "$bad" ] || problem "$3: the layer writes below $2/ or whites it out: $bad"
}
# warns_about NAME STDERR WHAT: a warning names NAME (a path ending in /NAME, or NAME itself)
warns_about() {
	grep -i 'warning' "$2" | grep -qE "(/|: |'|\")$1(:|'|\"| |\$)" ||
		problem "$3: no warning naming $1: $(cat "$2")"
}
# no_compare_lines BASE NEW DIR WHAT: compare shows nothing below DIR, and DIR not deleted
no_compare_lines() {
	"$L" compare "$1" "$2" >"$T/cmp" 2>"$T/cmp.err"
	[ $? -le 1 ] || problem "$4: compare failed: $(cat "$T/cmp.err")"
	grep -q -e "	$3/" -e "^[DT]	$3\$" "$T/cmp" &&
		problem "$4: compare of the base and the new manifest shows $3 deleted or its children: $(grep -e "	$3/" -e "	$3\$" "$T/cmp" | head -n 20 | tr '\t\n' '  ')"
}

# ---- (a) --ignore-errors, unprivileged ---------------------------------------------------
if is_root; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
	chmod 0755 "$T"
	U=$T/ign
	R=$U/root
	O=$U/out
	# p's siblings "p-a", "p.d", "p0" sort before "p/" bytewise but after p's
	# subtree in walk order; so do "sub-x" and "sub.d" beside p/sub.
	mkdir -p "$R/p/sub/deeper" "$R/p/sub.d" "$R/p/many" "$R/p.d" "$R/q" "$O"
	for f in f1 f2 f3; do echo "p $f" >"$R/p/$f"; done
	for f in g1 g2; do echo "sub $f" >"$R/p/sub/$f"; done
	echo "deeper" >"$R/p/sub/deeper/h"
	ln -s f1 "$R/p/link"
	echo "sub-x" >"$R/p/sub-x"
	echo "sub.d" >"$R/p/sub.d/y"
	for i in $(seq 200); do echo "$i" >"$R/p/many/m$i"; done
	for f in p-a p.d/b p0 pz q/x; do echo "$f" >"$R/$f"; done
	chown -R 65534:65534 "$U"
	P_ENTRIES=213   # below p: f1-f3 link sub sub/g1 sub/g2 sub/deeper sub/deeper/h sub-x sub.d sub.d/y many many/m1-m200
	for io in $IOS; do
		chmod 0755 "$R/p" "$R/p/sub"
		as_nobody "$L" scan --io $io "$R" -o "$O/base.m" 2>"$T/stderr" || fail "(a) $io: base scan: $(cat "$T/stderr")"
		[ "$(below "$O/base.m" p | wc -l)" -eq $P_ENTRIES ] || fail "(a) $io: the base does not hold p's subtree"
		for dir in p p/sub; do
			chmod 0755 "$R/p" "$R/p/sub"
			new=q/new.$io.${dir#p/}
			echo "$io $dir" >"$R/$new"
			chown 65534:65534 "$R/$new"
			chmod 0000 "$R/$dir"
			what="(a) --io $io, $dir/ unreadable"
			rm -f "$O/l.tar" "$O/new.m"
			if ! as_nobody "$L" diff --io $io --ignore-errors "$R" --base "$O/base.m" -o "$O/l.tar" \
				--manifest-out "$O/new.m" 2>"$T/diff.err"; then
				problem "$what: diff exited $?: $(cat "$T/diff.err")"
				continue
			fi
			bsdtar -tf "$O/l.tar" >"$T/list" || fail "$what: bsdtar cannot list the layer"
			no_entry_below "$T/list" $dir "$what"
			grep -qxF "$new" "$T/list" || problem "$what: the layer lacks the change elsewhere: $(cat "$T/list")"
			# the new manifest: the unreadable directory's base subtree, as the base had it
			same "$(below "$O/base.m" $dir)" "$(below "$O/new.m" $dir)" "$what: $dir's entries in the new manifest"
			same "$(below "$O/base.m" p | grep -vF '"path": "p/sub", ')" \
				"$(below "$O/new.m" p | grep -vF '"path": "p/sub", ')" "$what: p's entries in the new manifest"
			same "$(siblings "$O/base.m")" "$(siblings "$O/new.m")" "$what: p's siblings in the new manifest"
			no_compare_lines "$O/base.m" "$O/new.m" $dir "$what"
			warns_about "${dir##*/}" "$T/diff.err" "$what"
			# scan --base carries it over too
			if ! as_nobody "$L" scan --io $io --ignore-errors "$R" --base "$O/base.m" -o "$O/scan.m" 2>"$T/scan.err"; then
				problem "$what: scan --ignore-errors --base exited $?: $(cat "$T/scan.err")"
			else
				warns_about "${dir##*/}" "$T/scan.err" "$what, scan"
				same "$(below "$O/base.m" $dir)" "$(below "$O/scan.m" $dir)" "$what: $dir's entries in scan's manifest"
				no_compare_lines "$O/base.m" "$O/scan.m" $dir "$what, scan"
			fi
			echo "done: $what: $(grep -i warning "$T/diff.err" | head -n 1)"
		done
		chmod 0755 "$R/p" "$R/p/sub"
	done
	# Files the walk records but the layer writer cannot open (in redo mode
	# only the writer reads): a changed one keeps its base entry, a new one
	# is left out; neither is in the layer nor whited out.
	for io in $IOS; do
		what="(a) --io $io, unreadable files at write time"
		echo "base" >"$R/q/changed"
		chown 65534:65534 "$R/q/changed"
		as_nobody "$L" scan --mode redo --io $io "$R" -o "$O/base.m" 2>"$T/stderr" || fail "$what: base scan: $(cat "$T/stderr")"
		echo "changed since the base" >"$R/q/changed"
		echo "new" >"$R/q/unreadable-new.$io"
		echo "readable" >"$R/q/readable-new.$io"
		chown 65534:65534 "$R/q/unreadable-new.$io" "$R/q/readable-new.$io"
		chmod 0000 "$R/q/changed" "$R/q/unreadable-new.$io"
		rm -f "$O/l.tar" "$O/new.m"
		if as_nobody "$L" diff --mode redo --io $io --ignore-errors "$R" --base "$O/base.m" -o "$O/l.tar" \
			--manifest-out "$O/new.m" 2>"$T/diff.err"; then
			bsdtar -tf "$O/l.tar" >"$T/list" || fail "$what: bsdtar cannot list the layer"
			grep -qE '^q/(changed|unreadable-new|\.wh\.)' "$T/list" && problem "$what: the layer holds: $(tr '\n' ' ' <"$T/list")"
			grep -qxF "q/readable-new.$io" "$T/list" || problem "$what: the layer lacks the readable new file"
			warns_about changed "$T/diff.err" "$what"
			warns_about "unreadable-new.$io" "$T/diff.err" "$what"
			same "$(entries "$O/base.m" q/changed)" "$(entries "$O/new.m" q/changed)" "$what: q/changed in the new manifest"
			[ -z "$(entries "$O/new.m" "q/unreadable-new.$io")" ] || problem "$what: the new manifest records the unreadable new file"
		else
			problem "$what: diff exited $?: $(cat "$T/diff.err")"
		fi
		chmod 0644 "$R/q/changed" "$R/q/unreadable-new.$io"
		echo "done: $what"
	done
else
	partial_skip root "not root: (a) needs to run as another user"
fi

# ---- (b) --one-file-system over a mount ---------------------------------------------------
R=$T/ofs/root
O=$T/ofs
MOUNTED=
cleanup() { [ -z "$MOUNTED" ] || umount "$MOUNTED"; }
trap cleanup EXIT
mkdir -p "$R/m/b" "$R/m-x" "$R/other"
echo a >"$R/m/a"
echo c >"$R/m/b/c"
ln -s a "$R/m/l"
echo x >"$R/other/x"
echo y >"$R/m-x/y"
echo z >"$R/m0"
chmod 0750 "$R/m"
if is_root && mount -t tmpfs -o size=1m tmpfs "$R/m" 2>"$T/stderr"; then
	umount "$R/m"
	for io in $IOS; do
		what="(b) --io $io"
		expect_status 0 "$L" scan --io $io --one-file-system "$R" -o "$O/base.m"
		[ "$(entries "$O/base.m" m | wc -l)" -eq 5 ] || fail "$what: the base does not hold m's subtree"
		mount -t tmpfs -o size=1m,mode=1777 tmpfs "$R/m" || fail "$what: mount"
		MOUNTED=$R/m
		echo "in the tmpfs" >"$R/m/new"
		echo "$io" >"$R/other/new.$io"
		rm -f "$O/l.tar" "$O/new.m"
		if "$L" diff --io $io --one-file-system "$R" --base "$O/base.m" -o "$O/l.tar" \
			--manifest-out "$O/new.m" 2>"$T/diff.err"; then
			bsdtar -tvf "$O/l.tar" >"$T/listv" || fail "$what: bsdtar cannot list the layer"
			bsdtar -tf "$O/l.tar" >"$T/list"
			grep -qxF "other/new.$io" "$T/list" || problem "$what: the layer lacks the change elsewhere: $(cat "$T/list")"
			grep -qx -e 'm/' -e 'm' "$T/list" && problem "$what: m/ is in the layer: $(grep ' m/\?$' "$T/listv")"
			no_entry_below "$T/list" m "$what"
			same "$(entries "$O/base.m" m)" "$(entries "$O/new.m" m)" "$what: m's entries in the new manifest"
			no_compare_lines "$O/base.m" "$O/new.m" m "$what"
			grep -q "	m\$" "$T/cmp" && problem "$what: compare of the base and the new manifest shows m: $(grep "	m\$" "$T/cmp")"
			warns_about m "$T/diff.err" "$what"
		else
			problem "$what: diff exited $?: $(cat "$T/diff.err")"
		fi
		echo "done: $what: $(grep -i warning "$T/diff.err" | head -n 1)"
		umount "$R/m" || fail "$what: umount"
		MOUNTED=
	done
else
	if is_root; then
		partial_skip mount "cannot mount a tmpfs here ($(cat "$T/stderr")): (b)"
	else
		partial_skip root "not root, cannot mount a tmpfs: (b)"
	fi
fi

# ---- (c) -j 256 with few file descriptors ------------------------------------------------------
command -v prlimit >/dev/null || fail "prlimit is needed (util-linux)"
R=$T/many
mkdir -p "$R"/{0..9}/{0..9}/{0..29} || fail "cannot make the directories"
touch "$R"/{0..9}/{0..9}/{0..29}/f || fail "cannot make the files"
expect_status 0 "$L" scan "$R" -o "$T/many.ref.m"
"$L" dump "$T/many.ref.m" >"$T/many.ref.mtree" || fail "dump"
[ "$(grep -c 'type=dir' "$T/many.ref.mtree")" -ge 3000 ] || fail "the tree does not have 3000 directories"
for lim in 256 64; do
	for io in auto $IOS; do
		ok=0
		for i in $(seq 10); do
			rm -f "$T/many.m"
			if prlimit --nofile=$lim:$lim -- "$L" scan -j 256 --io $io "$R" -o "$T/many.m" 2>"$T/stderr"; then
				if "$L" dump "$T/many.m" | cmp -s - "$T/many.ref.mtree"; then
					ok=$((ok + 1))
				else
					problem "nofile $lim, --io $io, scan $i: another tree than a plain scan's"
				fi
			else
				problem "nofile $lim, --io $io, scan $i exited $?: $(head -c 500 "$T/stderr")"
			fi
		done
		echo "(c) -j 256, nofile $lim:$lim, --io $io: $ok of 10 scans succeeded"
	done
done
[ $problems -eq 0 ] || fail "$problems problem(s), see above"
echo ok
