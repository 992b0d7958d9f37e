#!/bin/bash
# make install / make uninstall of the build under test (LS_BUILD), into a
# DESTDIR with PREFIX=/usr:
#  - install rebuilds nothing (and refuses other flags than the build's);
#  - every file is in place: bin/layersnap, lib/liblayersnap.so.X.Y.Z with
#    SONAME liblayersnap.so.X, the liblayersnap.so.X and liblayersnap.so
#    links, liblayersnap.a, include/layersnap.h, lib/pkgconfig/layersnap.pc,
#    share/man/man1/layersnap.1, share/bash-completion/completions/layersnap,
#    with the version of layersnap.h's LAYERSNAP_VERSION_* everywhere;
#  - the dynamic symbols the .so defines are exactly the functions the
#    installed header declares, both ways (and every one is LS_API);
#  - the header compiles on its own as C99 and as C++ (extern "C": a C++
#    program links against the .so);
#  - a C program built with `pkg-config --cflags --libs layersnap` (against
#    the .so) and with `--static` (against liblayersnap.a) calls every
#    function of the API on a small tree and runs;
#  - make uninstall leaves nothing but directories.
# An ASan build's programs are compiled with the same sanitizer flags
# (make print-sanflags): its libraries need the sanitizer runtimes.
. "$(dirname "$0")/lib.sh"

for tool in make pkg-config readelf nm ar; do
	command -v "$tool" >/dev/null || skip "$tool" "$tool is not installed"
done

# The build's make variables, handed back to make so that nothing is rebuilt
# with other flags (Makefile: BUILD/build-vars).
build=${LS_BUILD#"$PWD"/}
[ -f "$build/build-vars" ] || fail "$build/build-vars missing: make test-build BUILD=$build with this Makefile"
mapfile -t vars <"$build/build-vars"
# a make of our own, not a sub-make of whatever ran the tests
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
mk() { make --no-print-directory BUILD="$build" "${vars[@]}" "$@"; }
for v in "${vars[@]}"; do
	case $v in CC=*) CC=${v#CC=} ;; esac
done
: "${CC:?no CC in $build/build-vars}"
SANFLAGS=$(mk -s print-sanflags) || fail "make print-sanflags failed"

# The version, from the header as the Makefile reads it.
hdr_num() { awk -v n="LAYERSNAP_VERSION_$1" '$1 == "#define" && $2 == n { print $3 }' "$2"; }
MAJOR=$(hdr_num MAJOR snapshot/layersnap.h)
V=$MAJOR.$(hdr_num MINOR snapshot/layersnap.h).$(hdr_num PATCH snapshot/layersnap.h)
[[ $V =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "no version in snapshot/layersnap.h: '$V'"

if ! mk -q all; then
	# sources changed since the build (or it is incomplete): make it as
	# install would, with its own flags, so that the check below holds
	echo "note: $build is not up to date; making it first"
	mk all >"$LS_TMP/make-all.log" 2>&1 || { cat "$LS_TMP/make-all.log" >&2; fail "make all failed"; }
	mk -q all || fail "make -q all: $build still not up to date after make all"
fi

D=$LS_TMP/dest
lib=$D/usr/lib
marker=$LS_TMP/marker
touch "$marker"
# nothing in the build directory may change from here on (its own files:
# other builds may live in its subdirectories, build/asan in build)
check_untouched() { # what
	local changed d dirs=()
	for d in obj tests tools fuzz bench; do
		[ -d "$build/$d" ] && dirs+=("$build/$d")
	done
	changed=$({ find "$build" -maxdepth 1 -newer "$marker" ! -type d
		[ ${#dirs[@]} -eq 0 ] || find "${dirs[@]}" -newer "$marker" ! -type d; } | head -n 5)
	[ -z "$changed" ] || fail "$1 changed the build: $changed"
}

# Other flags than the build's: refused, nothing rebuilt, nothing installed.
expect_status 2 mk install DESTDIR="$LS_TMP/other" PREFIX=/usr OPT=-O0
grep -q 'was built with other flags' "$LS_TMP/stderr" || { cat "$LS_TMP/stderr" >&2; fail "make install OPT=-O0: no explanation"; }
[ ! -e "$LS_TMP/other" ] || fail "make install with other flags installed something"
check_untouched "make install with other flags"

mk install DESTDIR="$D" PREFIX=/usr >"$LS_TMP/install.log" 2>&1 || { cat "$LS_TMP/install.log" >&2; fail "make install failed"; }
check_untouched "make install"
mk -q all || fail "make -q all fails after make install"

# ---- the files ------------------------------------------------------------
mode_is() { # octal path
	local m
	m=$(stat -c %a "$2") || fail "$2 missing"
	[ "$m" = "$1" ] || fail "$2: mode $m, expected $1"
}
[ -f "$D/usr/bin/layersnap" ] || fail "bin/layersnap not installed"
mode_is 755 "$D/usr/bin/layersnap"
assert_eq "layersnap $V" "$("$D/usr/bin/layersnap" --version)" "installed layersnap --version"
so=$lib/liblayersnap.so.$V
{ [ -f "$so" ] && [ ! -L "$so" ]; } || fail "lib/liblayersnap.so.$V is not a file"
mode_is 644 "$so"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
assert_eq "liblayersnap.so.$MAJOR" "$soname" "SONAME of liblayersnap.so.$V"
for link in "liblayersnap.so.$MAJOR" liblayersnap.so; do
	[ -L "$lib/$link" ] || fail "lib/$link is not a symlink"
	t=$(readlink "$lib/$link")
	[ "${t#/}" = "$t" ] || fail "lib/$link -> $t: an absolute target (DESTDIR leaks)"
	assert_eq "$(readlink -f "$so")" "$(readlink -f "$lib/$link")" "lib/$link resolves to liblayersnap.so.$V"
done
[ -f "$lib/liblayersnap.a" ] || fail "lib/liblayersnap.a not installed"
mode_is 644 "$lib/liblayersnap.a"
ar t "$lib/liblayersnap.a" | grep -q '^scan\.o$' || fail "liblayersnap.a holds no scan.o"
[ -f "$D/usr/include/layersnap.h" ] || fail "include/layersnap.h not installed"
mode_is 644 "$D/usr/include/layersnap.h"
cmp -s snapshot/layersnap.h "$D/usr/include/layersnap.h" || fail "include/layersnap.h differs from snapshot/layersnap.h"
man1=$D/usr/share/man/man1/layersnap.1
[ -f "$man1" ] || fail "share/man/man1/layersnap.1 not installed"
mode_is 644 "$man1"
cmp -s doc/layersnap.1 "$man1" || fail "the installed man page differs from doc/layersnap.1"
comp=$D/usr/share/bash-completion/completions/layersnap
[ -f "$comp" ] || fail "share/bash-completion/completions/layersnap not installed"
mode_is 644 "$comp"
bash -n "$comp" || fail "the installed completion script does not parse"
grep -q -- '--compress' "$comp" || fail "the installed completion script does not know --compress"
pc=$lib/pkgconfig/layersnap.pc
[ -f "$pc" ] || fail "lib/pkgconfig/layersnap.pc not installed"
mode_is 644 "$pc"
! grep -q "$D" "$pc" || fail "layersnap.pc names the DESTDIR"
! grep -q '@[A-Z]*@' "$pc" || fail "layersnap.pc has unsubstituted @NAMES@: $(grep '@[A-Z]*@' "$pc")"

# ---- pkg-config -------------------------------------------------------------
export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_PATH=$lib/pkgconfig
pkg-config --exists --print-errors layersnap 2>"$LS_TMP/pc.err" || fail "pkg-config layersnap: $(cat "$LS_TMP/pc.err")"
assert_eq "$V" "$(pkg-config --modversion layersnap)" "pkg-config --modversion"
assert_eq /usr "$(PKG_CONFIG_SYSROOT_DIR='' pkg-config --variable=prefix layersnap)" "layersnap.pc prefix"
PC_CFLAGS=$(pkg-config --cflags layersnap) || fail "pkg-config --cflags layersnap failed"
PC_LIBS=$(pkg-config --libs layersnap) || fail "pkg-config --libs layersnap failed"
PC_STATIC=$(pkg-config --static --libs layersnap) || fail "pkg-config --static --libs layersnap failed"
PC_STATIC_CFLAGS=$(pkg-config --static --cflags layersnap) || fail "pkg-config --static --cflags layersnap failed"
[[ " $PC_CFLAGS " == *" -I$D/usr/include "* ]] || fail "pkg-config --cflags: '$PC_CFLAGS' lacks -I$D/usr/include"
[[ " $PC_LIBS " == *" -L$lib "*"-llayersnap "* ]] || fail "pkg-config --libs: '$PC_LIBS' lacks -L$lib -llayersnap"
# --static names every library the .so links (Requires.private/Libs.private)
for needed in $(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[lib\([^.]*\)\.so.*\]/\1/p'); do
	case $needed in c|m|dl|rt|pthread|asan|ubsan|gcc_s|stdc++) continue ;; esac
	[[ " $PC_STATIC " == *" -l$needed "* ]] || fail "pkg-config --static --libs: '$PC_STATIC' lacks -l$needed"
done

# ---- exported symbols against the header -------------------------------------
# exported: everything the .so defines in its dynamic symbol table
nm -D --defined-only "$so" | awk '{ print $3 }' | sort >"$LS_TMP/exported"
nm -D --defined-only "$so" | awk '$2 != "T" { print }' >"$LS_TMP/not-functions"
[ ! -s "$LS_TMP/not-functions" ] || fail "the .so exports more than functions: $(cat "$LS_TMP/not-functions")"
# declared with LS_API: the preprocessed header (comments, #if and line
# breaks dealt with), the name before the first '(' of each LS_API statement
echo '#include <layersnap.h>' >"$LS_TMP/h.c"
"$CC" -E -P -DLS_API=__ls_api_mark__ -I"$D/usr/include" "$LS_TMP/h.c" >"$LS_TMP/h.i" || fail "cc -E of layersnap.h failed"
tr '\n' ' ' <"$LS_TMP/h.i" | grep -oE '__ls_api_mark__[^;(]*\(' |
	sed -E 's/[[:space:]]*\($//; s/.*[^A-Za-z0-9_]//' | sort >"$LS_TMP/marked"
[ -s "$LS_TMP/marked" ] || fail "no LS_API declarations found in the installed layersnap.h"
assert_eq "$(cat "$LS_TMP/marked")" "$(cat "$LS_TMP/exported")" \
	"functions declared LS_API in layersnap.h (expected) against nm -D --defined-only of the .so"
# and every function the header declares is LS_API: gcc lists them all
if command -v gcc >/dev/null; then
	gcc -fsyntax-only -aux-info "$LS_TMP/aux" -I"$D/usr/include" "$LS_TMP/h.c" || fail "gcc -aux-info failed"
	grep -F "$D/usr/include/layersnap.h:" "$LS_TMP/aux" | sed -E 's/ *\(.*//; s/.*[^A-Za-z0-9_]//' |
		sort >"$LS_TMP/declared"
	assert_eq "$(cat "$LS_TMP/declared")" "$(cat "$LS_TMP/exported")" \
		"functions declared in layersnap.h (gcc -aux-info) against nm -D --defined-only of the .so"
else
	partial_skip gcc "gcc is not installed: the check that every function layersnap.h declares is LS_API"
fi
echo "exported: $(wc -l <"$LS_TMP/exported") functions, as declared"

# ---- the header on its own --------------------------------------------------
"$CC" -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$D/usr/include" "$LS_TMP/h.c" ||
	fail "layersnap.h does not compile on its own as C99"
CXX=
case $CC in *clang*) cands="clang++ g++" ;; *) cands="g++ clang++" ;; esac
for c in $cands; do command -v "$c" >/dev/null && { CXX=$c; break; }; done
if [ -n "$CXX" ]; then
	cat >"$LS_TMP/cxx.cc" <<'EOF'
#include <layersnap.h>
#include <cstdio>
int main()
{
	enum ls_mode m;
	if (ls_mode_parse("redo", &m) != 0 || m != LS_MODE_REDO)
		return 1;
	/* The initialisers compile as C++ too. */
	struct ls_walk_options w = LS_WALK_OPTIONS_INIT;
	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	struct ls_diff_result r = LS_DIFF_RESULT_INIT;
	struct ls_compare_options c = LS_COMPARE_OPTIONS_INIT;
	d.walk = &w;
	if (w.struct_size != sizeof(w) || d.struct_size != sizeof(d) || r.struct_size != sizeof(r) ||
	    c.struct_size != sizeof(c))
		return 1;
	std::printf("%s %s\n", ls_mode_name(m), LAYERSNAP_VERSION);
	return 0;
}
EOF
	# shellcheck disable=SC2086
	"$CXX" -Wall -Wextra -Werror $SANFLAGS "$LS_TMP/cxx.cc" -o "$LS_TMP/cxx" $PC_CFLAGS $PC_LIBS ||
		fail "a C++ program does not build against layersnap.h and liblayersnap.so ($CXX)"
	assert_eq "redo $V" "$(LD_LIBRARY_PATH=$lib "$LS_TMP/cxx")" "C++ program's output"
else
	partial_skip g++ "no C++ compiler (g++, clang++): the extern \"C\" check"
fi

# ---- a program using every function -----------------------------------------
cat >"$LS_TMP/prog.c" <<'EOF'
#define _GNU_SOURCE
#include <layersnap.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { fails++; fprintf(stderr, "prog: %s:%d: %s: ", \
	__FILE__, __LINE__, #cond); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static int on_change(void *ctx, enum ls_change c, const char *path, size_t len)
{
	printf("change %c %.*s\n", (char)c, (int)len, path);
	++*(int *)ctx;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: prog ROOT MANIFEST LAYER OUT\n");
		return 2;
	}
	const char *root = argv[1], *mpath = argv[2], *layer = argv[3], *out = argv[4];
	struct ls_error err = { 0 };
	/* which file ls_scan came from (the object pointer as ISO C allows) */
	int (*scan_fn)(const char *, const struct ls_walk_options *, const ls_manifest *, ls_manifest **,
		       struct ls_error *) = ls_scan;
	void *scan_addr;
	memcpy(&scan_addr, &scan_fn, sizeof(scan_addr));
	Dl_info info;
	if (dladdr(scan_addr, &info) && info.dli_fname)
		printf("ls_scan from %s\n", info.dli_fname);
	printf("version %s\n", LAYERSNAP_VERSION);

	struct ls_walk_options o = LS_WALK_OPTIONS_INIT;
	ls_manifest *m = NULL, *loaded = NULL, *after = NULL;
	int rc = ls_scan(root, &o, NULL, &m, &err);
	CHECK(rc == 0, "ls_scan: %s", err.msg);
	if (rc)
		return 1;
	printf("entries %zu mode %s\n", ls_manifest_count(m), ls_mode_name(ls_manifest_mode(m)));
	printf("find a/b %zd nope %zd\n", ls_manifest_find(m, "a/b", 3), ls_manifest_find(m, "nope", 4));
	struct ls_entry e = LS_ENTRY_INIT;
	CHECK(ls_manifest_entry(m, (size_t)ls_manifest_find(m, "a/b", 3), &e) == 0 && strcmp(e.path, "a/b") == 0 &&
		      e.size == 6 && e.hashed && S_ISREG(e.mode), "ls_manifest_entry of a/b");
	CHECK(ls_manifest_entry(m, ls_manifest_count(m), &e) == -ERANGE, "ls_manifest_entry out of range");
	CHECK(ls_check_base(m, LS_MODE_FULL, &o, &err) == 0, "ls_check_base: %s", err.msg);

	rc = ls_manifest_save(m, mpath, false, &err);
	CHECK(rc == 0, "ls_manifest_save: %s", err.msg);
	rc = ls_manifest_load(mpath, &loaded, &err);
	CHECK(rc == 0 && loaded, "ls_manifest_load: %s", err.msg);
	int n = 0;
	if (loaded)
		CHECK(ls_compare(m, loaded, LS_MODE_FULL, false, on_change, &n, &err) == 0 && n == 0,
		      "ls_compare of a manifest with its saved copy: %d changes", n);
	/* every mtime clamped to second 1, as a layer with that epoch keeps it */
	struct ls_compare_options co = LS_COMPARE_OPTIONS_INIT;
	co.have_epoch = true;
	co.source_date_epoch = 1;
	if (loaded)
		CHECK(ls_compare_opts(m, loaded, &co, on_change, &n, &err) == 0 && n == 0,
		      "ls_compare_opts of a manifest with its saved copy: %d changes", n);

	FILE *null = fopen("/dev/null", "w");
	CHECK(null != NULL, "/dev/null: %s", strerror(errno));
	if (null) {
		CHECK(ls_manifest_dump_mtree(m, null, &err) == 0, "ls_manifest_dump_mtree: %s", err.msg);
		CHECK(ls_manifest_dump_json(m, null, &err) == 0, "ls_manifest_dump_json: %s", err.msg);
		fclose(null);
	}

	/* a full layer of the tree, applied onto OUT */
	int fd = open(layer, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0, "%s: %s", layer, strerror(errno));
	struct ls_diff_options d = LS_DIFF_OPTIONS_INIT;
	d.walk = &o;
	d.compress = LS_COMPRESS_GZIP;
	struct ls_diff_result res = LS_DIFF_RESULT_INIT;
	rc = ls_diff(root, &d, NULL, fd, &res, &after, &err);
	CHECK(rc == 0, "ls_diff: %s", err.msg);
	close(fd);
	if (rc == 0) {
		printf("layer entries %llu added %llu %s\n", (unsigned long long)res.entries,
		       (unsigned long long)res.added, res.media_type);
		CHECK(strncmp(res.diff_id, "sha256:", 7) == 0, "diff_id %s", res.diff_id);
		CHECK(ls_compare(m, after, LS_MODE_FULL, false, NULL, NULL, &err) == 0,
		      "ls_diff's manifest differs from ls_scan's");
	}
	fd = open(layer, O_RDONLY | O_CLOEXEC);
	struct ls_apply_stats st = LS_APPLY_STATS_INIT;
	ls_apply_record *record = NULL;
	CHECK(ls_apply_record_new(&record, &err) == 0, "ls_apply_record_new: %s", err.msg);
	struct ls_apply_options ao = LS_APPLY_OPTIONS_INIT;
	ao.record = record;
	rc = ls_apply(fd, out, &ao, &st, &err);
	CHECK(rc == 0, "ls_apply: %s", err.msg);
	if (fd >= 0)
		close(fd);
	printf("applied %llu\n", (unsigned long long)st.entries);
	ls_manifest *applied_base = NULL, *rescan = NULL;
	CHECK(ls_apply_record_base(record, out, &o, &applied_base, &err) == 0 && ls_manifest_count(applied_base) > 0,
	      "ls_apply_record_base: %s", err.msg);
	CHECK(ls_scan(out, &o, applied_base, &rescan, &err) == 0 &&
		      ls_compare(m, rescan, LS_MODE_FULL, true, NULL, NULL, &err) == 0,
	      "the scan after ls_apply with a record: %s", err.msg);
	ls_manifest_free(rescan);
	ls_manifest_free(applied_base);
	ls_apply_record_free(record);

	/* the files helpers: outputs inside ROOT stay out of the walk */
	char inside[4096], desc[4096];
	snprintf(inside, sizeof(inside), "%s/inside.lsm", root);
	snprintf(desc, sizeof(desc), "%s.json", layer);
	struct ls_files files = LS_FILES_INIT;
	files.manifest = inside;
	size_t n_files = 0;
	rc = ls_scan_files(root, &o, NULL, &files, &n_files, &err);
	CHECK(rc == 0 && n_files == ls_manifest_count(m), "ls_scan_files: %s (%zu entries)", err.msg, n_files);
	files.layer = layer;
	files.descriptor = desc;
	struct ls_diff_result fres = LS_DIFF_RESULT_INIT;
	rc = ls_diff_files(root, &d, NULL, &files, &fres, &err);
	CHECK(rc == 0 && fres.entries == res.entries && strcmp(fres.diff_id, res.diff_id) == 0,
	      "ls_diff_files: %s", err.msg);
	unlink(inside);
	char text[512] = "";
	FILE *df = fopen(desc, "r");
	CHECK(df && fgets(text, sizeof(text), df) && strstr(text, res.diff_id) && strstr(text, "\"descriptor\""),
	      "ls_diff_files' descriptor: %s", text);
	if (df)
		fclose(df);
	unlink(desc);

	enum ls_mode mode;
	CHECK(ls_mode_parse("redo", &mode) == 0 && mode == LS_MODE_REDO, "ls_mode_parse redo");
	CHECK(ls_mode_parse("bogus", &mode) == -EINVAL, "ls_mode_parse bogus");
	ls_manifest_free(after);
	ls_manifest_free(loaded);
	ls_manifest_free(m);
	ls_manifest_free(NULL);
	return fails ? 1 : 0;
}
EOF
# a function added to the API is added here too
while read -r f; do
	grep -qE "\<$f\(" "$LS_TMP/prog.c" || fail "the program above does not call $f: add it"
done <"$LS_TMP/exported"
rm -rf "$LS_TMP/tree"
mkdir -p "$LS_TMP/tree/a" "$LS_TMP/tree/d"
printf 'hello\n' >"$LS_TMP/tree/a/b"
ln -s b "$LS_TMP/tree/a/c"
printf 'e\n' >"$LS_TMP/tree/e"
expected="version $V
entries 5 mode full
find a/b 1 nope -1
layer entries 5 added 5 application/vnd.oci.image.layer.v1.tar+gzip
applied 5"
run_prog() { # kind binary [env...]
	local kind=$1 bin=$2 out
	shift 2
	rm -rf "$LS_TMP/out" "$LS_TMP/m" "$LS_TMP/layer"
	mkdir "$LS_TMP/out"
	out=$(env "$@" "$bin" "$LS_TMP/tree" "$LS_TMP/m" "$LS_TMP/layer" "$LS_TMP/out") ||
		fail "the $kind program failed: $out"
	assert_eq "$expected" "$(grep -v '^ls_scan from ' <<<"$out")" "the $kind program's output"
	from=$(sed -n 's/^ls_scan from //p' <<<"$out")
	cmp -s "$LS_TMP/tree/a/b" "$LS_TMP/out/a/b" || fail "the $kind program's layer did not apply"
}
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
# against liblayersnap.so
# shellcheck disable=SC2086
"$CC" "${cflags[@]}" $SANFLAGS "$LS_TMP/prog.c" -o "$LS_TMP/prog-so" $PC_CFLAGS $PC_LIBS ||
	fail "the program does not build with pkg-config --cflags --libs layersnap"
readelf -d "$LS_TMP/prog-so" | grep -q "(NEEDED).*\[liblayersnap\.so\.$MAJOR\]" ||
	fail "the program does not need liblayersnap.so.$MAJOR"
run_prog shared "$LS_TMP/prog-so" LD_LIBRARY_PATH="$lib"
assert_eq "$(readlink -f "$so")" "$(readlink -f "$from")" "the library the program loaded"
# against liblayersnap.a, with the static flags
# shellcheck disable=SC2086
"$CC" "${cflags[@]}" $SANFLAGS "$LS_TMP/prog.c" -o "$LS_TMP/prog-a" \
	$PC_STATIC_CFLAGS ${PC_STATIC/-llayersnap/-l:liblayersnap.a} ||
	fail "the program does not build with pkg-config --static --libs layersnap"
! readelf -d "$LS_TMP/prog-a" | grep -q 'liblayersnap' || fail "the static program needs liblayersnap.so"
run_prog static "$LS_TMP/prog-a"
assert_eq "$(readlink -f "$LS_TMP/prog-a")" "$(readlink -f "$from")" "where the static program's ls_scan is"

# ---- examples/snap.c, the README's Library example -----------------------------------
# shellcheck disable=SC2086
"$CC" "${cflags[@]}" $SANFLAGS examples/snap.c -o "$LS_TMP/snap" $PC_CFLAGS $PC_LIBS ||
	fail "examples/snap.c does not build with pkg-config --cflags --libs layersnap"
# The README shows the whole file: its first C block after "### Library".
awk '/^### Library/ { lib = 1 } lib && /^```c$/ { on = 1; next } on && /^```$/ { exit } on' README.md |
	cmp -s - examples/snap.c || fail "the README's Library example is not examples/snap.c"
X=$LS_TMP/snap.d
mkdir -p "$X/root/d"
echo one >"$X/root/d/f"
out=$(LD_LIBRARY_PATH="$lib" "$LS_TMP/snap" "$X/root" - "$X/l1.tar.gz" "$X/m") || fail "examples/snap (first) failed: $out"
assert_eq $'A d\nA d/f' "$(sed '$d' <<<"$out")" "examples/snap (first): its change list"
[[ $(tail -n 1 <<<"$out") == "2 added, 0 modified, 0 deleted: sha256:$(sha256sum <"$X/l1.tar.gz" | cut -c1-64)" ]] ||
	fail "examples/snap (first): $out"
echo two >"$X/root/d/g"
rm "$X/root/d/f"
out=$(LD_LIBRARY_PATH="$lib" "$LS_TMP/snap" "$X/root" "$X/m" "$X/l2.tar.gz" "$X/m") || fail "examples/snap (second) failed: $out"
assert_eq $'M d\nD d/f\nA d/g' "$(sed '$d' <<<"$out")" "examples/snap (second): its change list"
[[ $(tail -n 1 <<<"$out") == "1 added, 1 modified, 1 deleted: sha256:$(sha256sum <"$X/l2.tar.gz" | cut -c1-64)" ]] ||
	fail "examples/snap (second): the digest is not that of the streamed file: $out"
gzip -t "$X/l2.tar.gz" || fail "examples/snap: its layer is not gzip"
tar -tzf "$X/l2.tar.gz" | grep -qx 'd/.wh.f' || fail "examples/snap: no whiteout of the deleted file"

# ---- uninstall ----------------------------------------------------------------
mk uninstall DESTDIR="$D" PREFIX=/usr >"$LS_TMP/uninstall.log" 2>&1 ||
	{ cat "$LS_TMP/uninstall.log" >&2; fail "make uninstall failed"; }
left=$(find "$D" ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
check_untouched "make uninstall"
exit 0
