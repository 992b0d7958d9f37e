#!/usr/bin/env python3
# tests/fuzz/bad-manifests.py DIR: run by make-corpus.sh after the real seeds are in DIR.
# Inconsistent manifests for the fuzz seed corpus: real seeds with one
# invariant broken, the checksum recomputed (the reader refuses each).
import struct, subprocess, sys, tempfile
M = sys.argv[1]  # tests/fuzz/corpus/manifest
S_IFMT, S_IFREG, S_IFDIR, S_IFLNK = 0o170000, 0o100000, 0o040000, 0o120000
HASHED, MOUNTPOINT = 1 << 16, 1 << 17

def load(name):
    return bytearray(open(f'{M}/{name}', 'rb').read())

def recs(b):
    hl = struct.unpack_from('<I', b, 12)[0]
    n = struct.unpack_from('<Q', b, len(b) - 24)[0]
    pool = hl + n * 96
    for i in range(n):
        off = hl + i * 96
        mode = struct.unpack_from('<I', b, off + 48)[0]
        aux, plen = struct.unpack_from('<QI', b, off + 80)
        yield off, mode, bytes(b[pool + aux:pool + aux + plen])

def set_mode(b, off, mode):
    struct.pack_into('<I', b, off + 48, mode)

def first(b, pred):
    return next((off, mode, p) for off, mode, p in recs(b) if pred(mode, p))

def with_excludes(b, excl):
    """b with its option block's excludes replaced by excl (a list of bytes)."""
    hl = struct.unpack_from('<I', b, 12)[0]
    ne, el, npat, pl = struct.unpack_from('<IIII', b, 32)
    pats = bytes(b[48 + el:48 + el + pl])
    ex = b''.join(e + b'\0' for e in excl)
    opts = struct.pack('<IIII', len(excl), len(ex), npat, len(pats)) + ex + pats
    used = 32 + len(opts)
    nhl = (used + 7) & ~7
    head = bytearray(b[:32])
    struct.pack_into('<I', head, 12, nhl)
    return bytearray(bytes(head) + opts + b'\0' * (nhl - used) + bytes(b[hl:]))

def excludes(b):
    ne, el = struct.unpack_from('<II', b, 32)
    return [e for e in bytes(b[48:48 + el]).split(b'\0')[:ne]]

def save(name, b):
    body = bytes(b[:-8])
    with tempfile.NamedTemporaryFile() as f:
        f.write(body); f.flush()
        h = subprocess.run(['xxhsum', '-H3', f.name], capture_output=True, text=True).stdout.split()[-1]
    open(f'{M}/{name}', 'wb').write(body + bytes.fromhex(h)[::-1])

is_reg = lambda mode, p: mode & S_IFMT == S_IFREG
is_dir = lambda mode, p: mode & S_IFMT == S_IFDIR

b = load('full.lsm')
off, mode, _ = first(b, is_reg)
set_mode(b, off, mode & ~HASHED)
save('bad-full-unhashed.lsm', b)

b = load('full.lsm')
off, mode, _ = first(b, is_dir)
set_mode(b, off, mode | HASHED)
save('bad-hash-on-dir.lsm', b)

b = load('full.lsm')
off, mode, _ = first(b, is_reg)
set_mode(b, off, mode | MOUNTPOINT)
save('bad-mountpoint-file.lsm', b)

b = load('full.lsm')
off, mode, _ = first(b, lambda mode, p: is_dir(mode, p) and p == b'd')
set_mode(b, off, mode | MOUNTPOINT)
save('bad-below-mountpoint.lsm', b)

b = load('redo.lsm')
off, mode, _ = first(b, lambda mode, p: mode & S_IFMT == S_IFLNK)
set_mode(b, off, (mode & ~S_IFMT) | S_IFREG)
save('bad-link-on-file.lsm', b)

for code, name in ((b'n', 'none'), (b'c', 'capability')):
    b = load('xattrs-all.lsm')
    b[17:18] = code
    save(f'bad-xattrs-{name}.lsm', b)

b = load('excludes.lsm')
ex = excludes(b)
save('bad-excludes-unsorted.lsm', with_excludes(b, ex[::-1]))
save('bad-excludes-duplicate.lsm', with_excludes(b, ex[:1] + ex))
save('bad-exclude-rooted.lsm', with_excludes(b, [b'/' + ex[0]] + ex[1:]))

b = load('full.lsm')
_, _, p = first(b, is_reg)
save('bad-excluded-entry.lsm', with_excludes(b, [p]))
