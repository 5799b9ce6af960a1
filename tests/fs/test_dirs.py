"""Namespace operations on a mounted lsmfs: mkdir/rmdir, unlink, rename
(all shapes, RENAME_NOREPLACE, RENAME_EXCHANGE), hard links, symlinks,
directory link counts, long names, and small readdir behaviour."""

import os
import stat

import pytest

from fsutil import (RENAME_EXCHANGE, RENAME_NOREPLACE, outcome, read_file,
                    renameat2, write_file)


def test_mkdir_rmdir_nlink(mnt):
    r = mnt.path
    n0 = os.stat(r).st_nlink
    assert n0 == 2
    os.mkdir(mnt.p("a"), 0o750)
    st = os.stat(mnt.p("a"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_nlink == 2
    assert os.stat(r).st_nlink == 3
    os.mkdir(mnt.p("a", "b"))
    os.mkdir(mnt.p("a", "c"))
    write_file(mnt.p("a", "f"), b"")
    assert os.stat(mnt.p("a")).st_nlink == 4  # files do not count
    assert outcome(os.mkdir, mnt.p("a")) == ("err", "EEXIST")
    assert outcome(os.rmdir, mnt.p("a")) == ("err", "ENOTEMPTY")
    assert outcome(os.rmdir, mnt.p("a", "f")) == ("err", "ENOTDIR")
    assert outcome(os.rmdir, mnt.p("nope")) == ("err", "ENOENT")
    os.rmdir(mnt.p("a", "b"))
    assert os.stat(mnt.p("a")).st_nlink == 3
    mnt.remount()
    assert os.stat(mnt.p("a")).st_nlink == 3
    assert os.stat(r).st_nlink == 3
    assert sorted(os.listdir(mnt.p("a"))) == ["c", "f"]
    os.unlink(mnt.p("a", "f"))
    os.rmdir(mnt.p("a", "c"))
    os.rmdir(mnt.p("a"))
    assert os.listdir(r) == []
    assert os.stat(r).st_nlink == 2


def test_unlink(mnt):
    write_file(mnt.p("f"), b"x")
    os.mkdir(mnt.p("d"))
    assert outcome(os.unlink, mnt.p("d")) == ("err", "EISDIR")
    assert outcome(os.unlink, mnt.p("nope")) == ("err", "ENOENT")
    assert outcome(os.unlink, mnt.p("f", "x")) == ("err", "ENOTDIR")
    os.unlink(mnt.p("f"))
    assert os.listdir(mnt.path) == ["d"]
    mnt.remount()
    assert os.listdir(mnt.path) == ["d"]


def test_rename_file_across_dirs_and_over_file(mnt):
    os.mkdir(mnt.p("a"))
    os.mkdir(mnt.p("b"))
    write_file(mnt.p("a", "f"), b"F")
    write_file(mnt.p("b", "g"), b"G")
    ino = os.stat(mnt.p("a", "f")).st_ino
    os.rename(mnt.p("a", "f"), mnt.p("b", "h"))
    assert os.listdir(mnt.p("a")) == []
    assert os.stat(mnt.p("b", "h")).st_ino == ino
    os.rename(mnt.p("b", "h"), mnt.p("b", "g"))  # over an existing file
    assert os.listdir(mnt.p("b")) == ["g"]
    assert read_file(mnt.p("b", "g")) == b"F"
    assert os.stat(mnt.p("b", "g")).st_ino == ino
    os.rename(mnt.p("b", "g"), mnt.p("b", "g"))  # same name: no-op
    mnt.remount()
    assert os.listdir(mnt.p("b")) == ["g"]
    assert read_file(mnt.p("b", "g")) == b"F"
    assert os.stat(mnt.p("b", "g")).st_ino == ino


def test_rename_dirs(mnt):
    os.makedirs(mnt.p("x", "sub", "deep"))
    os.mkdir(mnt.p("y"))
    os.mkdir(mnt.p("empty"))
    write_file(mnt.p("x", "sub", "deep", "f"), b"deep")
    # Directory moves to another parent: both parents' nlink change and
    # ".." follows.
    os.rename(mnt.p("x", "sub"), mnt.p("y", "moved"))
    assert os.stat(mnt.p("x")).st_nlink == 2
    assert os.stat(mnt.p("y")).st_nlink == 3
    assert os.stat(mnt.p("y", "moved", "..")).st_ino == os.stat(mnt.p("y")).st_ino
    # Over an empty directory.
    os.rename(mnt.p("y", "moved"), mnt.p("empty"))
    assert read_file(mnt.p("empty", "deep", "f")) == b"deep"
    assert os.stat(mnt.path).st_nlink == 2 + 3  # x, y, empty
    assert os.stat(mnt.p("y")).st_nlink == 2
    # Over a non-empty directory: ENOTEMPTY.
    os.mkdir(mnt.p("y", "z"))
    assert outcome(os.rename, mnt.p("y"), mnt.p("empty")) == ("err", "ENOTEMPTY")
    # File over dir: EISDIR; dir over file: ENOTDIR.
    write_file(mnt.p("file"), b"")
    assert outcome(os.rename, mnt.p("file"), mnt.p("x")) == ("err", "EISDIR")
    assert outcome(os.rename, mnt.p("x"), mnt.p("file")) == ("err", "ENOTDIR")
    # Into its own subtree: EINVAL.
    assert outcome(os.rename, mnt.p("empty"), mnt.p("empty", "deep", "in")) == ("err", "EINVAL")
    assert outcome(os.rename, mnt.p("missing"), mnt.p("m2")) == ("err", "ENOENT")
    mnt.remount()
    assert read_file(mnt.p("empty", "deep", "f")) == b"deep"
    assert os.stat(mnt.p("empty", "deep", "..")).st_ino == os.stat(mnt.p("empty")).st_ino
    assert os.stat(mnt.path).st_nlink == 5
    assert sorted(os.listdir(mnt.path)) == ["empty", "file", "x", "y"]


def test_rename_noreplace(mnt):
    write_file(mnt.p("a"), b"A")
    write_file(mnt.p("b"), b"B")
    assert outcome(renameat2, mnt.p("a"), mnt.p("b"), RENAME_NOREPLACE) == ("err", "EEXIST")
    assert read_file(mnt.p("b")) == b"B"
    renameat2(mnt.p("a"), mnt.p("c"), RENAME_NOREPLACE)
    assert sorted(os.listdir(mnt.path)) == ["b", "c"]
    assert read_file(mnt.p("c")) == b"A"


def test_rename_exchange(mnt):
    write_file(mnt.p("f"), b"file")
    os.makedirs(mnt.p("d", "inner"))
    os.mkdir(mnt.p("other"))
    fi, di = os.stat(mnt.p("f")).st_ino, os.stat(mnt.p("d")).st_ino
    renameat2(mnt.p("f"), mnt.p("d"), RENAME_EXCHANGE)
    assert os.stat(mnt.p("f")).st_ino == di and os.path.isdir(mnt.p("f"))
    assert read_file(mnt.p("d")) == b"file"
    # Exchange across directories moves ".." of the directory too.
    renameat2(mnt.p("f"), mnt.p("other", "x"), RENAME_NOREPLACE)
    write_file(mnt.p("y"), b"y")
    renameat2(mnt.p("other", "x"), mnt.p("y"), RENAME_EXCHANGE)
    assert os.stat(mnt.p("y", "..")).st_ino == os.stat(mnt.path).st_ino
    assert os.stat(mnt.p("y")).st_ino == di
    assert read_file(mnt.p("other", "x")) == b"y"
    assert os.stat(mnt.p("other")).st_nlink == 2
    assert os.stat(mnt.path).st_nlink == 4  # other, y + . and ..
    assert outcome(renameat2, mnt.p("y"), mnt.p("absent"), RENAME_EXCHANGE) == ("err", "ENOENT")
    assert outcome(renameat2, mnt.p("y"), mnt.p("d"),
                   RENAME_EXCHANGE | RENAME_NOREPLACE) == ("err", "EINVAL")
    mnt.remount()
    assert os.stat(mnt.p("y")).st_ino == di
    assert os.listdir(mnt.p("y")) == ["inner"]
    assert read_file(mnt.p("d")) == b"file" and os.stat(mnt.p("d")).st_ino == fi
    assert os.stat(mnt.path).st_nlink == 4


def test_hard_links(mnt):
    write_file(mnt.p("f"), b"shared")
    os.mkdir(mnt.p("d"))
    os.link(mnt.p("f"), mnt.p("d", "g"))
    os.link(mnt.p("f"), mnt.p("h"))
    a, b, c = (os.stat(mnt.p(*n)) for n in (("f",), ("d", "g"), ("h",)))
    assert a.st_ino == b.st_ino == c.st_ino
    assert a.st_nlink == 3
    assert outcome(os.link, mnt.p("f"), mnt.p("h")) == ("err", "EEXIST")
    assert outcome(os.link, mnt.p("d"), mnt.p("dl")) == ("err", "EPERM")
    with open(mnt.p("h"), "ab") as f:
        f.write(b"+")
    assert read_file(mnt.p("d", "g")) == b"shared+"
    os.unlink(mnt.p("f"))
    assert os.stat(mnt.p("h")).st_nlink == 2
    mnt.remount()
    assert os.stat(mnt.p("h")).st_nlink == 2
    assert os.stat(mnt.p("h")).st_ino == a.st_ino
    assert read_file(mnt.p("d", "g")) == b"shared+"
    # Renaming one link over another link of the same inode is a no-op.
    os.rename(mnt.p("h"), mnt.p("d", "g"))
    assert os.path.exists(mnt.p("h")) and os.stat(mnt.p("h")).st_nlink == 2
    os.unlink(mnt.p("h"))
    assert os.stat(mnt.p("d", "g")).st_nlink == 1


def test_symlinks(mnt):
    write_file(mnt.p("target"), b"T")
    os.symlink("target", mnt.p("l"))
    os.symlink("/nonexistent/abs/path", mnt.p("dangling"))
    st = os.lstat(mnt.p("l"))
    assert stat.S_ISLNK(st.st_mode) and st.st_size == len("target")
    assert os.readlink(mnt.p("l")) == "target"
    assert read_file(mnt.p("l")) == b"T"
    assert not os.path.exists(mnt.p("dangling"))
    assert outcome(os.symlink, "x", mnt.p("l")) == ("err", "EEXIST")
    assert outcome(os.readlink, mnt.p("target")) == ("err", "EINVAL")
    long_target = "a/" * 2047 + "b"  # 4095 bytes: the maximum
    os.symlink(long_target, mnt.p("long"))
    assert outcome(os.symlink, long_target + "c", mnt.p("toolong")) == ("err", "ENAMETOOLONG")
    os.mkdir(mnt.p("dir"))
    os.symlink("../target", mnt.p("dir", "up"))
    mnt.remount()
    assert os.readlink(mnt.p("l")) == "target"
    assert os.readlink(mnt.p("long")) == long_target
    assert os.readlink(mnt.p("dangling")) == "/nonexistent/abs/path"
    assert read_file(mnt.p("dir", "up")) == b"T"
    # A symlink with a hard link.
    os.link(mnt.p("l"), mnt.p("l2"), follow_symlinks=False)
    assert os.lstat(mnt.p("l2")).st_nlink == 2
    assert os.readlink(mnt.p("l2")) == "target"


def test_name_lengths(mnt):
    n255 = "n" * 255
    n256 = "n" * 256
    write_file(mnt.p(n255), b"ok")
    os.mkdir(mnt.p("d" * 255))
    os.symlink("t", mnt.p("s" * 255))
    assert outcome(os.open, mnt.p(n256), os.O_CREAT | os.O_WRONLY) == ("err", "ENAMETOOLONG")
    assert outcome(os.mkdir, mnt.p(n256)) == ("err", "ENAMETOOLONG")
    assert outcome(os.symlink, "t", mnt.p(n256)) == ("err", "ENAMETOOLONG")
    assert outcome(os.link, mnt.p(n255), mnt.p(n256)) == ("err", "ENAMETOOLONG")
    assert outcome(os.rename, mnt.p(n255), mnt.p(n256)) == ("err", "ENAMETOOLONG")
    assert outcome(os.stat, mnt.p(n256)) == ("err", "ENAMETOOLONG")
    assert outcome(os.mknod, mnt.p(n256), stat.S_IFIFO | 0o600) == ("err", "ENAMETOOLONG")
    # Multibyte UTF-8 names are counted in bytes: 85 x 3 bytes = 255 ok.
    u = "\u20ac" * 85
    write_file(mnt.p(u), b"euro")
    assert outcome(os.open, mnt.p(u + "x"), os.O_CREAT | os.O_WRONLY) == ("err", "ENAMETOOLONG")
    # Arbitrary bytes except '/' and NUL are valid names.
    odd = b"\x01\xff odd\tname\n"
    write_file(os.path.join(os.fsencode(mnt.path), odd), b"odd")
    mnt.remount()
    names = set(os.listdir(os.fsencode(mnt.path)))
    assert names == {n255.encode(), b"d" * 255, b"s" * 255, u.encode(), odd}
    assert read_file(mnt.p(n255)) == b"ok"
    assert read_file(os.path.join(os.fsencode(mnt.path), odd)) == b"odd"


def test_readdir_types_and_dots(mnt):
    os.mkdir(mnt.p("d"))
    write_file(mnt.p("f"), b"")
    os.symlink("f", mnt.p("l"))
    os.mkfifo(mnt.p("p"))
    kinds = {}
    with os.scandir(mnt.path) as it:
        for e in it:
            kinds[e.name] = (e.is_dir(follow_symlinks=False),
                             e.is_file(follow_symlinks=False),
                             e.is_symlink(), e.inode() == os.lstat(e.path).st_ino)
    assert kinds == {"d": (True, False, False, True), "f": (False, True, False, True),
                     "l": (False, False, True, True), "p": (False, False, False, True)}
    # "." and ".." resolve correctly.
    assert os.stat(mnt.p("d", ".")).st_ino == os.stat(mnt.p("d")).st_ino
    assert os.stat(mnt.p("d", "..")).st_ino == os.stat(mnt.path).st_ino


def test_readdir_dot_entries_raw(mnt):
    # getdents through ctypes readdir to see "." and ".." themselves.
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    class Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                    ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                    ("d_name", ctypes.c_char * 256)]

    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.restype = ctypes.POINTER(Dirent)
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    os.mkdir(mnt.p("sub"))
    write_file(mnt.p("sub", "a"), b"")
    dp = libc.opendir(os.fsencode(mnt.p("sub")))
    assert dp
    names = []
    try:
        while True:
            ent = libc.readdir(dp)
            if not ent:
                break
            names.append(ent.contents.d_name)
    finally:
        libc.closedir(dp)
    assert sorted(names) == [b".", b"..", b"a"]


def test_deep_tree(mnt):
    parts = ["lvl%d" % i for i in range(60)]
    os.makedirs(mnt.p(*parts))
    write_file(mnt.p(*parts, "leaf"), b"leaf")
    mnt.remount()
    assert read_file(mnt.p(*parts, "leaf")) == b"leaf"
    with pytest.raises(OSError):
        os.rmdir(mnt.p(parts[0]))


def _plan(t, i):
    """Operations of thread t, step i, and where its names end up."""
    d, f = "d%d_%d" % (t, i), "f%d_%d" % (t, i)
    ops = [("mkdir", ("p", d)), ("create", ("p", f))]
    where = {d: ("p", d, True), f: ("p", f, False)}
    if i % 3 == 0:
        ops.append(("rmdir", ("p", d)))
        del where[d]
    if i % 4 == 0:
        ops.append(("rename", ("p", f), ("q", "g%d_%d" % (t, i))))
        where[f] = ("q", "g%d_%d" % (t, i), False)
    if i % 5 == 0:
        src = d if d in where else f
        if where[src][0] == "p":
            ops.append(("rename", ("p", src), ("q", "m%d_%d" % (t, i))))
            where[src] = ("q", "m%d_%d" % (t, i), where[src][2])
    if i % 7 == 0 and where[f][0] == "p":
        ops.append(("unlink", ("p", f)))
        del where[f]
    return ops, list(where.values())


def test_concurrent_namespace_ops_same_parent(mnt):
    # Parallel dirops: threads mkdir/rmdir/create/rename/unlink in the same
    # parents at once. Parent link counts and listings must come out exact
    # (no lost read-modify-write of the parent inode), also after remount.
    import threading
    os.mkdir(mnt.p("p"))
    os.mkdir(mnt.p("q"))
    errors = []
    n_threads, n_iter = 4, 300

    def worker(t):
        try:
            for i in range(n_iter):
                for op in _plan(t, i)[0]:
                    a = mnt.p(*op[1])
                    if op[0] == "mkdir":
                        os.mkdir(a)
                    elif op[0] == "create":
                        write_file(a, b"%d" % i)
                    elif op[0] == "rmdir":
                        os.rmdir(a)
                    elif op[0] == "unlink":
                        os.unlink(a)
                    else:
                        os.rename(a, mnt.p(*op[2]))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((t, e))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    assert not errors, errors[:3]
    want = {"p": set(), "q": set()}
    for t in range(n_threads):
        for i in range(n_iter):
            for parent, name, is_dir in _plan(t, i)[1]:
                want[parent].add((name, is_dir))

    def check():
        for name in ("p", "q"):
            got = {(e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(mnt.p(name))}
            assert got == want[name], "%s: missing %r, extra %r" % (
                name, sorted(want[name] - got)[:5], sorted(got - want[name])[:5])
            n_sub = sum(1 for _, is_dir in want[name] if is_dir)
            assert os.stat(mnt.p(name)).st_nlink == 2 + n_sub, name

    check()
    mnt.remount()
    check()
