"""Named snapshots under /.snapshots (fs/snap.c).

mkdir /.snapshots/NAME takes a snapshot of the whole tree, rmdir deletes
it; /.snapshots/NAME/ is the tree as it was, read-only (EROFS for every
change), with its own stable inode numbers. The control socket's
snapshot-create/delete (fs/ctl.c) reach the same code and must make the
kernel forget its cached entries."""

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from fsutil import (FALLOC_FL_KEEP_SIZE, RENAME_EXCHANGE, diff_snapshots,
                    fallocate, read_file, renameat2, snapshot, utimensat,
                    write_file)

NOBODY = 65534
CHILD_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SEEK_DATA, SEEK_HOLE = 3, 4


def sdir(m, *names):
    return m.p(".snapshots", *names)


def take(m, name):
    os.mkdir(sdir(m, name))
    return sdir(m, name)


def err_of(fn, *args, **kw):
    """The errno name fn raised, or "ok"."""
    try:
        r = fn(*args, **kw)
        if isinstance(r, int) and fn is os.open:
            os.close(r)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def populate(root):
    """A tree with every kind of inode and attribute the snapshot keeps."""
    os.makedirs(os.path.join(root, "dir", "sub"))
    f1 = os.path.join(root, "dir", "f1")
    write_file(f1, b"hello snapshot\n" * 1000, 0o640)
    os.chown(f1, 1234, 5678)
    os.setxattr(f1, "user.color", b"blue")
    os.setxattr(os.path.join(root, "dir"), "user.big", b"x" * 3000)
    os.link(f1, os.path.join(root, "hard"))
    os.symlink("dir/f1", os.path.join(root, "link"))
    os.symlink("/nowhere/" + "t" * 300, os.path.join(root, "dangling"))
    sparse = os.path.join(root, "sparse")
    fd = os.open(sparse, os.O_WRONLY | os.O_CREAT, 0o600)
    os.pwrite(fd, b"head", 0)
    os.pwrite(fd, b"tail", 10 << 20)
    os.close(fd)
    write_file(os.path.join(root, "empty"), b"", 0o400)
    os.mkfifo(os.path.join(root, "fifo"), 0o620)
    os.mknod(os.path.join(root, "null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    sticky = os.path.join(root, "sticky")
    os.mkdir(sticky)
    os.chmod(sticky, 0o1777)
    os.chown(sticky, 42, 43)
    write_file(os.path.join(root, "dir", "sub", "deep"), os.urandom(70000))
    os.utime(f1, ns=(1_000_000_123, 2_000_000_456))
    os.utime(os.path.join(root, "dir", "sub"), ns=(3_000_000_001, 4_000_000_002))


def test_mkdir_takes_snapshot_of_whole_tree(mnt):
    populate(mnt.path)
    before = snapshot(mnt.path, inodes=False)
    assert os.listdir(sdir(mnt)) == []
    s1 = take(mnt, "s1")
    assert os.listdir(sdir(mnt)) == ["s1"]
    assert diff_snapshots(before, snapshot(s1, inodes=False)) == []
    # the hard link is one inode inside the snapshot too
    st_a, st_b = os.stat(os.path.join(s1, "dir", "f1")), os.stat(os.path.join(s1, "hard"))
    assert st_a.st_ino == st_b.st_ino and st_a.st_nlink == 2
    # sparse file: holes where the live file has them
    fd = os.open(os.path.join(s1, "sparse"), os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, SEEK_HOLE) == 4096
        assert os.lseek(fd, 4096, SEEK_DATA) == (10 << 20) // 4096 * 4096
        assert os.pread(fd, 8, 10 << 20) == b"tail"
        assert os.pread(fd, 4, 4096) == b"\0" * 4
    finally:
        os.close(fd)
    assert os.stat(os.path.join(s1, "sparse")).st_size == (10 << 20) + 4
    # statfs, access and listxattr work inside
    assert os.statvfs(s1).f_bsize == os.statvfs(mnt.path).f_bsize
    assert os.access(os.path.join(s1, "dir", "f1"), os.R_OK)
    assert "user.color" in os.listxattr(os.path.join(s1, "dir", "f1"))
    assert os.getxattr(os.path.join(s1, "dir"), "user.big") == b"x" * 3000
    assert err_of(os.getxattr, os.path.join(s1, "empty"), "user.none") == "ENODATA"
    # /.snapshots counts its subdirectories
    assert os.stat(sdir(mnt)).st_nlink == 3
    os.rmdir(s1)
    assert os.listdir(sdir(mnt)) == []
    assert err_of(os.stat, s1) == "ENOENT"
    assert os.stat(sdir(mnt)).st_nlink == 2
    # the live tree was never touched
    assert diff_snapshots(before, snapshot(mnt.path, inodes=False)) == []


def test_snapshot_unchanged_by_later_changes(mnt):
    populate(mnt.path)
    s1 = take(mnt, "before")
    expect = snapshot(s1)
    p = mnt.p
    fd = os.open(p("dir", "f1"), os.O_WRONLY)
    os.pwrite(fd, b"CHANGED", 100)
    os.close(fd)
    with open(p("dir", "sub", "deep"), "ab") as f:
        f.write(b"more" * 5000)
    os.truncate(p("sparse"), 3)
    os.unlink(p("hard"))
    os.rename(p("link"), p("link2"))
    os.rename(p("dir", "sub"), p("moved"))
    os.rmdir(p("sticky"))
    os.chmod(p("dir"), 0o700)
    os.chown(p("empty"), 7, 7)
    os.setxattr(p("dir", "f1"), "user.color", b"red")
    os.removexattr(p("dir"), "user.big")
    os.utime(p("fifo"), ns=(5, 6))
    write_file(p("newfile"), b"new")
    os.mkdir(p("newdir"))
    os.truncate(p("moved", "deep"), 0)
    assert snapshot(s1) == expect
    mid = snapshot(mnt.path, inodes=False)
    s2 = take(mnt, "after")
    assert diff_snapshots(mid, snapshot(s2, inodes=False)) == []
    # delete everything live: both snapshots stay whole
    for root, dirs, files in os.walk(mnt.path, topdown=False):
        for n in files:
            os.unlink(os.path.join(root, n))
        for n in dirs:
            os.rmdir(os.path.join(root, n))
    assert os.listdir(mnt.path) == []
    assert snapshot(s1) == expect
    mnt.remount()
    assert snapshot(sdir(mnt, "before")) == expect  # inode numbers included
    assert sorted(os.listdir(sdir(mnt))) == ["after", "before"]


def test_inode_numbers_distinct_and_stable(mnt):
    write_file(mnt.p("f"), b"1")
    os.mkdir(mnt.p("d"))
    take(mnt, "a")
    take(mnt, "b")
    live = os.stat(mnt.p("f")).st_ino
    ia = os.stat(sdir(mnt, "a", "f")).st_ino
    ib = os.stat(sdir(mnt, "b", "f")).st_ino
    roots = [os.stat(mnt.path).st_ino, os.stat(sdir(mnt)).st_ino,
             os.stat(sdir(mnt, "a")).st_ino, os.stat(sdir(mnt, "b")).st_ino]
    assert len({live, ia, ib}) == 3
    assert len(set(roots)) == 4
    assert os.stat(sdir(mnt, "a", "d")).st_ino not in (ia, ib, live)
    # readdir reports the same numbers as stat
    with os.scandir(sdir(mnt, "a")) as it:
        d_ino = {e.name: e.inode() for e in it}
    assert d_ino["f"] == ia
    # ".." of a snapshot root is /.snapshots
    assert os.stat(sdir(mnt, "a", "..")).st_ino == roots[1]
    before = {p: os.stat(p).st_ino for p in
              (sdir(mnt), sdir(mnt, "a"), sdir(mnt, "a", "f"), sdir(mnt, "b", "f"))}
    mnt.remount()
    assert {p: os.stat(p).st_ino for p in before} == before
    # a new snapshot of an old name is a new snapshot: new numbers
    os.rmdir(sdir(mnt, "a"))
    take(mnt, "a")
    assert os.stat(sdir(mnt, "a", "f")).st_ino not in (ia, ib, live)


def test_every_change_inside_a_snapshot_is_erofs(mnt):
    populate(mnt.path)
    os.mkdir(mnt.p("emptydir"))
    s = take(mnt, "ro")
    f = os.path.join(s, "dir", "f1")
    d = os.path.join(s, "dir")
    live_f = mnt.p("dir", "f1")
    cases = {
        "chmod": lambda: os.chmod(f, 0o777),
        "chown": lambda: os.chown(f, 1, 1),
        "truncate": lambda: os.truncate(f, 0),
        "utime": lambda: os.utime(f, (1, 1)),
        "utime_now": lambda: os.utime(f),
        "utimensat": lambda: utimensat(f, (5, 5), (6, 6)),
        "chmod_root": lambda: os.chmod(s, 0o700),
        "open_wronly": lambda: os.open(f, os.O_WRONLY),
        "open_rdwr": lambda: os.open(f, os.O_RDWR),
        "open_append": lambda: os.open(f, os.O_WRONLY | os.O_APPEND),
        "open_trunc": lambda: os.open(f, os.O_RDONLY | os.O_TRUNC),
        "create": lambda: os.open(os.path.join(d, "new"), os.O_CREAT | os.O_WRONLY, 0o644),
        "create_excl": lambda: os.open(os.path.join(s, "new"), os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o644),
        "mknod": lambda: os.mknod(os.path.join(d, "fifo2"), 0o600 | stat.S_IFIFO),
        "mkdir": lambda: os.mkdir(os.path.join(d, "newdir")),
        "symlink": lambda: os.symlink("x", os.path.join(d, "sl")),
        "link_inside": lambda: os.link(f, os.path.join(d, "hl")),
        "link_out": lambda: os.link(f, mnt.p("hl")),
        "link_in": lambda: os.link(live_f, os.path.join(d, "hl")),
        "unlink": lambda: os.unlink(f),
        "unlink_symlink": lambda: os.unlink(os.path.join(s, "link")),
        "rmdir_empty": lambda: os.rmdir(os.path.join(s, "emptydir")),
        "rmdir_full": lambda: os.rmdir(os.path.join(s, "dir", "sub")),
        "rename_inside": lambda: os.rename(f, os.path.join(d, "f2")),
        "rename_out": lambda: os.rename(f, mnt.p("stolen")),
        "rename_in": lambda: os.rename(live_f, os.path.join(d, "planted")),
        "rename_over": lambda: os.rename(live_f, os.path.join(s, "empty")),
        "rename_dir_in": lambda: os.rename(mnt.p("emptydir"), os.path.join(s, "ed2")),
        "exchange": lambda: renameat2(live_f, f, RENAME_EXCHANGE),
        "setxattr": lambda: os.setxattr(f, "user.color", b"red"),
        "setxattr_dir": lambda: os.setxattr(d, "user.new", b"1"),
        "removexattr": lambda: os.removexattr(f, "user.color"),
    }
    got = {k: err_of(fn) for k, fn in cases.items()}
    bad = {k: v for k, v in got.items() if v != "EROFS"}
    assert bad == {}
    # no writable descriptor exists, so write, fallocate and
    # copy_file_range into the snapshot cannot even be attempted
    fd = os.open(f, os.O_RDONLY)
    try:
        assert err_of(os.write, fd, b"x") == "EBADF"
        assert err_of(fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 4096) == "EBADF"
        src = os.open(mnt.p("empty"), os.O_RDONLY)
        try:
            assert err_of(os.copy_file_range, src, fd, 1) == "EBADF"
        finally:
            os.close(src)
        # copying out of the snapshot into the live tree works
        out = os.open(mnt.p("copy"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            n = os.copy_file_range(fd, out, 1 << 20, 0, 0)
        finally:
            os.close(out)
        assert n == 15000 and read_file(mnt.p("copy")) == read_file(f)
    finally:
        os.close(fd)
    # the live tree and the snapshot are as they were
    assert read_file(live_f) == b"hello snapshot\n" * 1000
    assert os.getxattr(f, "user.color") == b"blue"
    assert os.stat(f).st_mode & 0o7777 == 0o640


def test_snapshot_directory_itself(mnt):
    write_file(mnt.p("f"), b"f")
    os.mkdir(mnt.p("d"))
    take(mnt, "s")
    sd = sdir(mnt)
    st = os.stat(sd)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    # hidden from the root's listing, reachable by name
    assert sorted(os.listdir(mnt.path)) == ["d", "f"]
    with os.scandir(mnt.path) as it:
        assert ".snapshots" not in [e.name for e in it]
    assert os.listxattr(sd) == []
    assert err_of(os.getxattr, sd, "user.x") == "ENODATA"
    got = {
        "create": err_of(os.open, os.path.join(sd, "x"), os.O_CREAT | os.O_WRONLY, 0o644),
        "mknod": err_of(os.mknod, os.path.join(sd, "x"), 0o600 | stat.S_IFIFO),
        "symlink": err_of(os.symlink, "s", os.path.join(sd, "x")),
        "link": err_of(os.link, mnt.p("f"), os.path.join(sd, "x")),
        "rename_snapshot": err_of(os.rename, os.path.join(sd, "s"), os.path.join(sd, "t")),
        "rename_into": err_of(os.rename, mnt.p("d"), os.path.join(sd, "t")),
        "rename_out": err_of(os.rename, os.path.join(sd, "s"), mnt.p("t")),
        "chmod": err_of(os.chmod, sd, 0o777),
        "chown": err_of(os.chown, sd, 1, 1),
        "utime": err_of(os.utime, sd, (1, 1)),
        "setxattr": err_of(os.setxattr, sd, "user.x", b"1"),
        "rmdir_snapdir": err_of(os.rmdir, sd),
        "rename_snapdir": err_of(os.rename, sd, mnt.p("elsewhere")),
    }
    assert {k: v for k, v in got.items() if v != "EROFS"} == {}
    assert err_of(os.unlink, os.path.join(sd, "s")) in ("EROFS", "EISDIR")
    # its name is taken in the root
    assert err_of(os.mkdir, sd) == "EEXIST"
    assert err_of(os.symlink, "x", sd) == "EEXIST"
    assert err_of(os.link, mnt.p("f"), sd) == "EEXIST"
    assert err_of(os.open, sd, os.O_CREAT | os.O_EXCL | os.O_WRONLY) == "EEXIST"
    assert err_of(os.rename, mnt.p("d"), sd) == "EEXIST"
    assert err_of(os.rename, mnt.p("f"), sd) in ("EEXIST", "EISDIR")
    assert sorted(os.listdir(mnt.path)) == ["d", "f"]
    assert os.listdir(sd) == ["s"]


def test_snapshot_names(mnt):
    assert err_of(os.mkdir, sdir(mnt, "x" * 256)) == "ENAMETOOLONG"
    take(mnt, "x" * 255)
    take(mnt, "with space")
    take(mnt, "new\nline")
    take(mnt, "\u00e9t\u00e9")
    assert err_of(os.mkdir, sdir(mnt, "with space")) == "EEXIST"
    assert err_of(os.rmdir, sdir(mnt, "missing")) == "ENOENT"
    assert err_of(os.stat, sdir(mnt, "missing")) == "ENOENT"
    assert sorted(os.listdir(sdir(mnt))) == sorted(
        ["x" * 255, "with space", "new\nline", "\u00e9t\u00e9"])
    os.rmdir(sdir(mnt, "new\nline"))
    mnt.remount()
    assert sorted(os.listdir(sdir(mnt))) == sorted(
        ["x" * 255, "with space", "\u00e9t\u00e9"])


def test_listing_many_snapshots_with_offsets(mnt):
    write_file(mnt.p("f"), b"1")
    names = ["snap-%03d" % i for i in range(90)]
    for n in names:
        take(mnt, n)
    # creation order; several readdir(plus) requests of one page each
    assert os.listdir(sdir(mnt)) == names
    with os.scandir(sdir(mnt)) as it:
        inos = [e.inode() for e in it]
    assert len(set(inos)) == 90
    # delete every other one while a listing is half read
    fd = os.open(sdir(mnt), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for n in names[::2]:
            os.rmdir(sdir(mnt, n))
        assert os.listdir(sdir(mnt)) == names[1::2]
    finally:
        os.close(fd)
    for n in names[1::2]:
        assert os.path.isfile(sdir(mnt, n, "f"))
    assert os.stat(sdir(mnt)).st_nlink == 2 + 45


def test_large_directory_in_snapshot(mnt):
    os.mkdir(mnt.p("big"))
    names = sorted("entry-%04d-%s" % (i, "x" * (i % 40)) for i in range(600))
    for n in names:
        write_file(mnt.p("big", n), n.encode())
    s = take(mnt, "big")
    for n in names[::3]:
        os.unlink(mnt.p("big", n))
    # listed twice: the second listing may come from the kernel's cache
    for _ in range(2):
        with os.scandir(os.path.join(s, "big")) as it:
            got = {e.name: e.inode() for e in it}
        assert sorted(got) == names
        assert len(set(got.values())) == 600
    for n in names[::50]:
        p = os.path.join(s, "big", n)
        assert os.stat(p).st_ino == got[n]
        assert read_file(p) == n.encode()


CHILD = r"""
import errno, json, os, sys
s, sd = sys.argv[1], sys.argv[2]
def o(fn, *a):
    try:
        r = fn(*a)
        return ["ok", r if isinstance(r, (int, str, list, type(None))) else None]
    except OSError as e:
        return ["err", errno.errorcode.get(e.errno, str(e.errno))]
def read(path):
    with open(path, "rb") as f: return len(f.read())
json.dump({
  "read_0600": o(read, os.path.join(s, "secret")),
  "read_0644": o(read, os.path.join(s, "public")),
  "list_0700": o(os.listdir, os.path.join(s, "private")),
  "stat_in_0700": o(lambda: os.stat(os.path.join(s, "private", "f")).st_size),
  "list_snapdir": o(os.listdir, sd),
  "mkdir_snapshot": o(os.mkdir, os.path.join(sd, "mine")),
  "rmdir_snapshot": o(os.rmdir, s),
  "own_file_write": o(os.open, os.path.join(s, "nobodys"), os.O_WRONLY),
}, sys.stdout)
"""


def _demote():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def test_permissions_in_snapshot_as_other_uid(mnt_other):
    m = mnt_other
    write_file(m.p("secret"), b"s" * 10, 0o600)
    write_file(m.p("public"), b"p" * 20, 0o644)
    os.mkdir(m.p("private"), 0o700)
    write_file(m.p("private", "f"), b"f")
    write_file(m.p("nobodys"), b"n", 0o644)
    os.chown(m.p("nobodys"), NOBODY, NOBODY)
    s = take(m, "perm")
    # after the snapshot the live files open up: the snapshot keeps the
    # modes it saw
    os.chmod(m.p("secret"), 0o644)
    os.chmod(m.p("private"), 0o755)
    r = subprocess.run([CHILD_PY, "-c", CHILD, s, sdir(m)], preexec_fn=_demote,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    got = json.loads(r.stdout)
    assert got["read_0600"] == ["err", "EACCES"]
    assert got["read_0644"] == ["ok", 20]
    assert got["list_0700"] == ["err", "EACCES"]
    assert got["stat_in_0700"] == ["err", "EACCES"]
    assert got["list_snapdir"] == ["ok", ["perm"]]
    assert got["mkdir_snapshot"][1] in ("EACCES", "EPERM")
    assert got["rmdir_snapshot"][1] in ("EACCES", "EPERM")
    assert got["own_file_write"] == ["err", "EROFS"]
    assert os.listdir(sdir(m)) == ["perm"]


def test_snapshots_survive_remount_and_kill(mnt):
    write_file(mnt.p("a"), b"one")
    take(mnt, "s1")
    write_file(mnt.p("a"), b"two")
    mnt.remount()
    assert read_file(sdir(mnt, "s1", "a")) == b"one"
    take(mnt, "s2")
    write_file(mnt.p("a"), b"three")
    ino = os.stat(sdir(mnt, "s2", "a")).st_ino
    mnt.kill()
    mnt.start()
    assert os.listdir(sdir(mnt)) == ["s1", "s2"]
    assert read_file(sdir(mnt, "s1", "a")) == b"one"
    assert read_file(sdir(mnt, "s2", "a")) == b"two"
    assert read_file(mnt.p("a")) == b"three"
    assert os.stat(sdir(mnt, "s2", "a")).st_ino == ino
    # a deletion is as durable
    os.rmdir(sdir(mnt, "s1"))
    mnt.kill()
    mnt.start()
    assert os.listdir(sdir(mnt)) == ["s2"]


def test_delete_snapshot_in_use(mnt):
    data = os.urandom(3 << 20)
    write_file(mnt.p("big"), data)
    os.makedirs(mnt.p("d", "e"))
    for i in range(50):
        write_file(mnt.p("d", "n%02d" % i), b"%d" % i)
    s = take(mnt, "busy")
    fd = os.open(os.path.join(s, "big"), os.O_RDONLY)
    dfd = os.open(os.path.join(s, "d"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert os.pread(fd, 4096, 0) == data[:4096]
        # change the live file and delete the snapshot under the reader
        write_file(mnt.p("big"), b"replaced")
        os.rmdir(s)
        assert err_of(os.stat, s) == "ENOENT"
        assert os.listdir(sdir(mnt)) == []
        # the open file keeps reading the snapshot's data (no cache)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = b"".join(os.pread(fd, 1 << 20, off) for off in range(0, 3 << 20, 1 << 20))
        assert got == data
        # the open directory lists what it saw, or fails cleanly
        try:
            names = os.listdir(dfd)
        except OSError as e:
            assert e.errno in (errno.ENOENT, errno.ESTALE)
        else:
            assert sorted(names) == sorted(["e"] + ["n%02d" % i for i in range(50)])
    finally:
        os.close(fd)
        os.close(dfd)
    # the daemon is fine and the name is free again
    take(mnt, "busy")
    assert read_file(os.path.join(s, "big")) == b"replaced"


def test_snapshots_are_consistent_under_writers(mnt):
    """Writers make atomic single-op updates (one pwrite of a whole file +
    fsync, or write-a-temp + rename over); every snapshot must show every
    update that completed before its mkdir began, and no torn file."""
    n_threads, n_files, size = 4, 3, 700
    os.mkdir(mnt.p("w"))
    lock = threading.Lock()
    done = {}
    stop = threading.Event()
    errors = []

    def content(name, v):
        head = ("%s v%d " % (name, v)).encode()
        return (head * (size // len(head) + 1))[:size]

    def writer(t):
        try:
            v = 0
            names = ["t%d-%d" % (t, k) for k in range(n_files)]
            for n in names:
                write_file(mnt.p("w", n), content(n, 0))
                with lock:
                    done[n] = 0
            while not stop.is_set():
                v += 1
                for n in names:
                    if t % 2 == 0:
                        fd = os.open(mnt.p("w", n), os.O_WRONLY)
                        try:
                            os.pwrite(fd, content(n, v), 0)
                            os.fsync(fd)
                        finally:
                            os.close(fd)
                    else:
                        tmp = mnt.p("w", n + ".tmp")
                        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                        try:
                            os.write(fd, content(n, v))
                            os.fsync(fd)
                        finally:
                            os.close(fd)
                        os.rename(tmp, mnt.p("w", n))
                    with lock:
                        done[n] = v
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    floors = []
    try:
        while len(done) < n_threads * n_files and not errors:
            time.sleep(0.01)
        for i in range(15):
            time.sleep(0.05)
            with lock:
                floor = dict(done)
            take(mnt, "c%02d" % i)
            floors.append(floor)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors
    progressed = 0
    for i, floor in enumerate(floors):
        sw = sdir(mnt, "c%02d" % i, "w")
        for n, v0 in floor.items():
            data = read_file(os.path.join(sw, n))
            head = data.split(b" ")[:2]
            assert head[0] == n.encode(), (i, n, data[:40])
            v = int(head[1][1:])
            assert data == content(n, v), "torn %s in snapshot %d" % (n, i)
            assert v >= v0, "snapshot %d: %s at v%d, v%d was done" % (i, n, v, v0)
            progressed += v > 0
    assert progressed > 0


def test_readers_while_snapshots_come_and_go(mnt):
    """Readers walk, read and list snapshots while others are created and
    deleted under them: every access succeeds or fails with ENOENT (the
    snapshot went away), contents are never wrong, the daemon survives."""
    os.mkdir(mnt.p("t"))
    for i in range(20):
        write_file(mnt.p("t", "f%02d" % i), b"%02d" % i * 2000)
    stop = threading.Event()
    errors, reads = [], [0]

    def reader():
        try:
            while not stop.is_set():
                try:
                    names = os.listdir(sdir(mnt))
                except OSError as e:
                    errors.append(e)
                    return
                for n in names:
                    try:
                        for e in os.scandir(sdir(mnt, n, "t")):
                            data = read_file(e.path)
                            want = e.name[1:].encode() * 2000
                            if data != want:
                                errors.append(AssertionError(e.path))
                                return
                            reads[0] += 1
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            errors.append(e)
                            return
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    try:
        for i in range(40):
            take(mnt, "churn%02d" % i)
            if i >= 2:
                os.rmdir(sdir(mnt, "churn%02d" % (i - 2)))
            time.sleep(0.01)
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:3]
    assert reads[0] > 0
    assert os.listdir(sdir(mnt)) == ["churn38", "churn39"]


def _ctl(store, *words):
    """One control request (fs/CTL.md); (status line, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    try:
        s.connect(os.path.join(store, "ctl.sock"))
        enc = []
        for w in words:
            enc.append("".join(c if 0x21 <= ord(c) <= 0x7e and c != "%"
                               else "".join("%%%02X" % b for b in c.encode())
                               for c in w))
        s.sendall(("lsmfsctl/1 " + " ".join(enc) + "\n").encode())
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    finally:
        s.close()
    line, _, body = buf.decode().partition("\n")
    return line, body


def test_control_socket_snapshots_reach_the_kernel(mnt):
    sock = os.path.join(mnt.store, "ctl.sock")
    if not os.path.exists(sock):
        pytest.skip("no control socket in this build (fs/ctl.c)")
    write_file(mnt.p("f"), b"ctl")
    # the kernel caches the miss (negative_timeout is long) ...
    assert err_of(os.stat, sdir(mnt, "viactl")) == "ENOENT"
    assert os.stat(sdir(mnt)).st_nlink == 2
    line, body = _ctl(mnt.store, "snapshot-create", "viactl")
    assert line == "ok", (line, body)
    # ... and must forget it when the daemon creates the snapshot
    assert read_file(sdir(mnt, "viactl", "f")) == b"ctl"
    assert os.stat(sdir(mnt)).st_nlink == 3
    assert os.listdir(sdir(mnt)) == ["viactl"]
    line, body = _ctl(mnt.store, "snapshot-delete", "viactl")
    assert line == "ok", (line, body)
    assert err_of(os.stat, sdir(mnt, "viactl")) == "ENOENT"
    assert err_of(os.stat, sdir(mnt, "viactl", "f")) == "ENOENT"
    assert os.stat(sdir(mnt)).st_nlink == 2
    assert os.listdir(sdir(mnt)) == []


@pytest.fixture
def mnt_noattrcache():
    """Attributes never cached by the kernel: every fstat asks the daemon."""
    from conftest import _mount_fixture
    yield from _mount_fixture(["attr_timeout=0", "entry_timeout=0"])


def test_open_file_in_deleted_snapshot_stays_usable(mnt_noattrcache):
    m = mnt_noattrcache
    data = os.urandom(300000)
    write_file(m.p("big"), data)
    take(m, "gone")
    fd = os.open(sdir(m, "gone", "big"), os.O_RDONLY)
    try:
        assert os.read(fd, 1000) == data[:1000]
        os.rmdir(m.p(".snapshots", "gone"))
        assert not os.path.exists(m.p(".snapshots", "gone"))
        # The open file keeps working until it is closed, as on ext4 for
        # an unlinked file.
        assert os.fstat(fd).st_size == len(data)
        assert os.pread(fd, len(data), 0) == data
    finally:
        os.close(fd)
    with pytest.raises(FileNotFoundError):
        os.stat(sdir(m, "gone", "big"))


def _sst_bytes(store):
    """Bytes of the tree's files: SSTs and blob files (file data)."""
    return sum(os.path.getsize(os.path.join(store, f))
               for f in os.listdir(store)
               if f.endswith(".sst") or f.endswith(".blob"))


def test_deleted_snapshot_space_is_reclaimed(mnt):
    """A snapshot keeps the data of files deleted after it; `snapshot
    list` says so; once it is deleted, a compaction gives the space back."""
    from conftest import LSMFSCTL_BIN as ctl
    if not os.access(ctl, os.X_OK):
        pytest.skip("lsmfsctl not built: %s" % ctl)
    size = 24 << 20
    write_file(mnt.p("big"), os.urandom(size))
    take(mnt, "keep")
    os.unlink(mnt.p("big"))
    subprocess.run([ctl, "compact", mnt.path], check=True)
    held = _sst_bytes(mnt.store)
    assert held >= size, held
    out = subprocess.run([ctl, "snapshot", "list", mnt.path], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("keep ")][0]
    amount, unit = line.split()[2:4]
    assert unit == "MiB" and float(amount) >= 23, line
    assert read_file(sdir(mnt, "keep", "big")) is not None
    os.rmdir(mnt.p(".snapshots", "keep"))
    subprocess.run([ctl, "compact", mnt.path], check=True)
    after = _sst_bytes(mnt.store)
    assert after < held - size * 9 // 10, (held, after)
