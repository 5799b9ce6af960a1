"""Extended attributes on lsmfs: flags, errno for every limit, the raw
size-query / ERANGE protocol (through ctypes), persistence."""

import ctypes
import ctypes.util
import os

import pytest

from fsutil import outcome, write_file

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p,
                           ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.listxattr.restype = ctypes.c_ssize_t


def raw_getxattr(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _libc.getxattr(os.fsencode(path), name.encode(), buf if size else None, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return n, buf.raw[:n] if size else b""


def raw_listxattr(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _libc.listxattr(os.fsencode(path), buf if size else None, size)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return n, buf.raw[:n] if size else b""


def test_set_get_list_remove(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    os.setxattr(p, "user.a", b"1")
    os.setxattr(p, "user.b", b"")
    os.setxattr(p, "user.bin", bytes(range(256)))
    assert os.getxattr(p, "user.a") == b"1"
    assert os.getxattr(p, "user.b") == b""
    assert os.getxattr(p, "user.bin") == bytes(range(256))
    assert sorted(os.listxattr(p)) == ["user.a", "user.b", "user.bin"]
    os.setxattr(p, "user.a", b"two")  # plain set replaces
    assert os.getxattr(p, "user.a") == b"two"
    os.removexattr(p, "user.b")
    assert sorted(os.listxattr(p)) == ["user.a", "user.bin"]
    assert outcome(os.getxattr, p, "user.b") == ("err", "ENODATA")
    assert outcome(os.removexattr, p, "user.b") == ("err", "ENODATA")
    mnt.remount()
    assert sorted(os.listxattr(p)) == ["user.a", "user.bin"]
    assert os.getxattr(p, "user.a") == b"two"
    assert os.getxattr(p, "user.bin") == bytes(range(256))


def test_create_replace_flags(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    os.setxattr(p, "user.x", b"1", os.XATTR_CREATE)
    assert outcome(os.setxattr, p, "user.x", b"2", os.XATTR_CREATE) == ("err", "EEXIST")
    assert os.getxattr(p, "user.x") == b"1"
    assert outcome(os.setxattr, p, "user.y", b"2", os.XATTR_REPLACE) == ("err", "ENODATA")
    assert "user.y" not in os.listxattr(p)
    os.setxattr(p, "user.x", b"3", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.x") == b"3"


def test_size_query_and_erange(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    os.setxattr(p, "user.val", b"0123456789")
    os.setxattr(p, "user.w", b"w")
    assert raw_getxattr(p, "user.val", 0) == (10, b"")
    assert raw_getxattr(p, "user.val", 10) == (10, b"0123456789")
    assert outcome(raw_getxattr, p, "user.val", 9) == ("err", "ERANGE")
    want = b"user.val\0user.w\0"
    n, _ = raw_listxattr(p, 0)
    assert n == len(want)
    n, names = raw_listxattr(p, n)
    assert sorted(names.split(b"\0")[:-1]) == [b"user.val", b"user.w"]
    assert outcome(raw_listxattr, p, len(want) - 1) == ("err", "ERANGE")
    # No xattrs: an empty list.
    write_file(mnt.p("g"), b"")
    assert raw_listxattr(mnt.p("g"), 0)[0] == 0
    assert os.listxattr(mnt.p("g")) == []


def test_limits(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    big = os.urandom(65536)
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    assert outcome(os.setxattr, p, "user.big2", big + b"x") == ("err", "E2BIG")
    name255 = "user." + "n" * 250
    os.setxattr(p, name255, b"v")
    assert os.getxattr(p, name255) == b"v"
    assert outcome(os.setxattr, p, name255 + "n", b"v") == ("err", "ERANGE")
    assert outcome(os.getxattr, p, name255 + "n") == ("err", "ERANGE")
    assert outcome(os.setxattr, p, "", b"v") == ("err", "ERANGE")
    mnt.remount()
    assert os.getxattr(p, "user.big") == big


def test_many_xattrs(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    names = ["user.k%03d" % i for i in range(300)]
    for i, n in enumerate(names):
        os.setxattr(p, n, str(i).encode() * 10)
    assert sorted(os.listxattr(p)) == names
    mnt.remount()
    assert sorted(os.listxattr(p)) == names
    for i, n in enumerate(names):
        assert os.getxattr(p, n) == str(i).encode() * 10


def test_namespaces_and_kinds_like_ext4(mnt, scratch):
    res = []
    for root in (mnt.path, scratch):
        d = os.path.join(root, "ns")
        os.mkdir(d)
        os.mkdir(os.path.join(d, "dir"))
        write_file(os.path.join(d, "f"), b"")
        os.symlink("f", os.path.join(d, "l"))
        os.mkfifo(os.path.join(d, "fifo"))
        r = [
            outcome(os.setxattr, os.path.join(d, "dir"), "user.d", b"1"),
            outcome(os.getxattr, os.path.join(d, "dir"), "user.d"),
            outcome(os.setxattr, os.path.join(d, "f"), "trusted.t", b"2"),
            outcome(os.getxattr, os.path.join(d, "f"), "trusted.t"),
            outcome(os.setxattr, os.path.join(d, "l"), "user.s", b"3",
                    follow_symlinks=False),
            outcome(os.setxattr, os.path.join(d, "fifo"), "user.p", b"4"),
            outcome(os.setxattr, os.path.join(d, "f"), "bogus.x", b"5"),
            outcome(os.getxattr, os.path.join(d, "f"), "security.capability"),
            outcome(os.setxattr, os.path.join(d, "l"), "trusted.s", b"6",
                    follow_symlinks=False),
            outcome(os.getxattr, os.path.join(d, "l"), "trusted.s",
                    follow_symlinks=False),
        ]
        res.append(r)
    assert res[0] == res[1], "lsmfs %r\next4  %r" % tuple(res)


def test_xattrs_go_with_the_inode(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    os.setxattr(p, "user.old", b"1")
    os.link(p, mnt.p("g"))
    assert os.getxattr(mnt.p("g"), "user.old") == b"1"
    os.unlink(p)
    os.unlink(mnt.p("g"))
    write_file(p, b"")
    assert os.listxattr(p) == []
    os.setxattr(p, "user.x", b"x")
    os.rename(p, mnt.p("renamed"))
    assert os.getxattr(mnt.p("renamed"), "user.x") == b"x"
    mnt.remount()
    assert os.listxattr(mnt.p("renamed")) == ["user.x"]


def test_xattr_changes_ctime(mnt):
    p = mnt.p("f")
    write_file(p, b"")
    os.utime(p, ns=(10**18, 10**18))
    c0 = os.stat(p).st_ctime_ns
    import time
    time.sleep(0.01)
    os.setxattr(p, "user.c", b"1")
    st = os.stat(p)
    assert st.st_ctime_ns > c0
    assert st.st_mtime_ns == 10**18


@pytest.mark.parametrize("count", [1, 50])
def test_security_capability_absent(mnt, count):
    # Every write asks the kernel for security.capability; it must read as
    # absent (ENODATA) and stay correct once set and removed.
    p = mnt.p("f")
    write_file(p, b"")
    for _ in range(count):
        assert outcome(os.getxattr, p, "security.capability") == ("err", "ENODATA")
    fd = os.open(p, os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)
    val = b"\x01\x00\x00\x02" + bytes(16)  # VFS_CAP_REVISION_2, no caps
    r = outcome(os.setxattr, p, "security.capability", val)
    if r[0] == "ok":
        assert os.getxattr(p, "security.capability")[:4] == val[:4]
        os.removexattr(p, "security.capability")
        assert outcome(os.getxattr, p, "security.capability") == ("err", "ENODATA")
