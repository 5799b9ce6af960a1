"""Helpers shared by the lsmfs integration tests (standard library only).

- ctypes wrappers for the syscalls Python does not expose: renameat2,
  utimensat with UTIME_NOW/UTIME_OMIT, fallocate with mode flags.
- outcome(): run an operation and return ("ok", value) or ("err", ERRNO)
  so that lsmfs and a local ext4 directory can be compared.
- snapshot(): a comparable description of a whole tree (types, modes,
  sizes, contents, link counts, hard-link groups, xattrs, times).
"""

import ctypes
import ctypes.util
import errno
import hashlib
import os
import stat

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10


def _check(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                            ctypes.c_char_p, ctypes.c_uint]


def renameat2(old, new, flags):
    return _check(_libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD,
                                  os.fsencode(new), flags))


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                            ctypes.POINTER(_Timespec), ctypes.c_int]


def utimensat(path, atime, mtime):
    """atime/mtime: (sec, nsec), or UTIME_NOW / UTIME_OMIT."""
    ts = (_Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if t in (UTIME_NOW, UTIME_OMIT):
            ts[i].tv_sec, ts[i].tv_nsec = 0, t
        else:
            ts[i].tv_sec, ts[i].tv_nsec = t
    return _check(_libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0))


_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                            ctypes.c_long]


def fallocate(fd, mode, offset, length):
    return _check(_libc.fallocate(fd, mode, offset, length))


def outcome(fn, *args, **kw):
    """("ok", result) or ("err", "ENAME")."""
    try:
        return ("ok", fn(*args, **kw))
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:  # errorcode[] names it ENOTSUP
            return ("err", "EOPNOTSUPP")
        return ("err", errno.errorcode.get(e.errno, str(e.errno)))


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_sha(path, chunk=1 << 20):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


def xattrs(path):
    out = {}
    for name in sorted(os.listxattr(path, follow_symlinks=False)):
        if name.startswith("security.") or name.startswith("system."):
            continue
        out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def snapshot(root, times=True, owners=True, inodes=True):
    """Map relative path -> tuple of comparable attributes of every entry
    under root (root itself is ".").

    Hard links are compared through groups: every path gets the sorted list
    of all paths sharing its inode (so inode numbers themselves need not
    match between two filesystems). Callers comparing two different
    filesystems pass times=False and inodes=False."""
    entries = {}
    by_ino = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        names = [(".", dirpath)] if dirpath == root else []
        names += [(os.path.relpath(os.path.join(dirpath, n), root),
                   os.path.join(dirpath, n)) for n in sorted(dirnames + filenames)]
        for rel, full in names:
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            rec = {"type": kind, "mode": stat.S_IMODE(st.st_mode),
                   "nlink": st.st_nlink}
            if owners:
                rec["uid"], rec["gid"] = st.st_uid, st.st_gid
            if times:
                rec["mtime"] = st.st_mtime_ns
                rec["ctime"] = st.st_ctime_ns
            if inodes:
                rec["ino"] = st.st_ino
            if stat.S_ISREG(kind):
                rec["size"] = st.st_size
                rec["sha"], n = file_sha(full)
                assert n == st.st_size, "%s: read %d bytes, st_size %d" % (
                    rel, n, st.st_size)
            elif stat.S_ISLNK(kind):
                rec["target"] = os.readlink(full)
                rec["size"] = st.st_size
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                rec["rdev"] = st.st_rdev
            if not stat.S_ISLNK(kind):
                rec["xattrs"] = xattrs(full)
            by_ino.setdefault(st.st_ino, []).append(rel)
            rec["_ino"] = st.st_ino
            entries[rel] = rec
    for rel, rec in entries.items():
        ino = rec.pop("_ino")
        rec["links"] = sorted(by_ino[ino]) if rec["type"] != stat.S_IFDIR else None
    return entries


def diff_snapshots(a, b, limit=20):
    """Human-readable differences between two snapshots ([] when equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            out.append("only in second: %s %r" % (k, b[k]))
        elif k not in b:
            out.append("only in first: %s %r" % (k, a[k]))
        elif a[k] != b[k]:
            fields = sorted(f for f in set(a[k]) | set(b[k])
                            if a[k].get(f) != b[k].get(f))
            out.append("%s: %s" % (k, ", ".join(
                "%s %r != %r" % (f, a[k].get(f), b[k].get(f)) for f in fields)))
        if len(out) >= limit:
            out.append("...")
            break
    return out


def inodes_in_use(path):
    sv = os.statvfs(path)
    return sv.f_files - sv.f_ffree


def counts_live_inodes(m):
    """True when statfs counts inodes in use (create +1, unlink -1), so
    reclamation of orphans is observable; lsmfs may instead derive f_ffree
    from the inode-number counter (never decremented)."""
    before = inodes_in_use(m.path)
    p = m.p(".probe-statfs")
    write_file(p, b"")
    during = inodes_in_use(m.path)
    os.unlink(p)
    return during == before + 1 and inodes_in_use(m.path) == before
