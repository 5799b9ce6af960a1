"""Every error case run on lsmfs and on a scratch directory of the local
disk (ext4 here): the outcome (success value or errno name) must match.
Each case is a function of a root directory: it builds what it needs and
returns the outcome of the operation under test."""

import os
import stat

import pytest

from fsutil import (RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
                    outcome, renameat2, write_file)

WR = os.O_WRONLY
CR = os.O_CREAT


def _open_close(path, flags, mode=0o644):
    os.close(os.open(path, flags, mode))
    return True


def _mk(root, *names):
    # "d/" makes a directory, anything else an empty file.
    for n in names:
        p = os.path.join(root, n.rstrip("/"))
        if n.endswith("/"):
            os.mkdir(p)
        else:
            write_file(p, b"content")


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def open_excl_existing(r):
    _mk(r, "f")
    return outcome(os.open, os.path.join(r, "f"), WR | CR | os.O_EXCL)


@case
def open_excl_dir(r):
    _mk(r, "d/")
    return outcome(os.open, os.path.join(r, "d"), WR | CR | os.O_EXCL)


@case
def open_missing(r):
    return outcome(os.open, os.path.join(r, "nope"), os.O_RDONLY)


@case
def open_missing_parent(r):
    return outcome(os.open, os.path.join(r, "nope", "f"), WR | CR)


@case
def open_through_file(r):
    _mk(r, "f")
    return outcome(os.open, os.path.join(r, "f", "x"), os.O_RDONLY)


@case
def open_dir_for_write(r):
    _mk(r, "d/")
    return outcome(os.open, os.path.join(r, "d"), os.O_WRONLY)


@case
def open_file_o_directory(r):
    _mk(r, "f")
    return outcome(os.open, os.path.join(r, "f"), os.O_RDONLY | os.O_DIRECTORY)


@case
def creat_on_dir(r):
    _mk(r, "d/")
    return outcome(os.open, os.path.join(r, "d"), WR | CR)


@case
def open_dangling_symlink_creat(r):
    os.symlink("target", os.path.join(r, "l"))
    res = outcome(_open_close, os.path.join(r, "l"), WR | CR)
    return res, sorted(os.listdir(r))


@case
def open_symlink_nofollow(r):
    _mk(r, "f")
    os.symlink("f", os.path.join(r, "l"))
    return outcome(os.open, os.path.join(r, "l"), os.O_RDONLY | os.O_NOFOLLOW)


@case
def mkdir_existing(r):
    _mk(r, "f")
    return outcome(os.mkdir, os.path.join(r, "f"))


@case
def mkdir_missing_parent(r):
    return outcome(os.mkdir, os.path.join(r, "a", "b"))


@case
def rmdir_nonempty(r):
    _mk(r, "d/", "d/f")
    return outcome(os.rmdir, os.path.join(r, "d"))


@case
def rmdir_file(r):
    _mk(r, "f")
    return outcome(os.rmdir, os.path.join(r, "f"))


@case
def rmdir_dot(r):
    _mk(r, "d/")
    return outcome(os.rmdir, os.path.join(r, "d", "."))


@case
def rmdir_missing(r):
    return outcome(os.rmdir, os.path.join(r, "x"))


@case
def unlink_dir(r):
    _mk(r, "d/")
    return outcome(os.unlink, os.path.join(r, "d"))


@case
def unlink_missing(r):
    return outcome(os.unlink, os.path.join(r, "x"))


@case
def rename_missing(r):
    return outcome(os.rename, os.path.join(r, "a"), os.path.join(r, "b"))


@case
def rename_file_over_dir(r):
    _mk(r, "f", "d/")
    return outcome(os.rename, os.path.join(r, "f"), os.path.join(r, "d"))


@case
def rename_dir_over_file(r):
    _mk(r, "f", "d/")
    return outcome(os.rename, os.path.join(r, "d"), os.path.join(r, "f"))


@case
def rename_dir_over_nonempty(r):
    _mk(r, "a/", "b/", "b/x")
    return outcome(os.rename, os.path.join(r, "a"), os.path.join(r, "b"))


@case
def rename_dir_over_empty(r):
    _mk(r, "a/", "a/x", "b/")
    res = outcome(os.rename, os.path.join(r, "a"), os.path.join(r, "b"))
    return res, sorted(os.listdir(r)), os.stat(r).st_nlink


@case
def rename_into_own_subdir(r):
    _mk(r, "a/", "a/b/")
    return outcome(os.rename, os.path.join(r, "a"), os.path.join(r, "a", "b", "c"))


@case
def rename_to_missing_parent(r):
    _mk(r, "f")
    return outcome(os.rename, os.path.join(r, "f"), os.path.join(r, "no", "f"))


@case
def rename_noreplace_existing(r):
    _mk(r, "a", "b")
    return outcome(renameat2, os.path.join(r, "a"), os.path.join(r, "b"), RENAME_NOREPLACE)


@case
def rename_exchange_missing(r):
    _mk(r, "a")
    return outcome(renameat2, os.path.join(r, "a"), os.path.join(r, "b"), RENAME_EXCHANGE)


@case
def rename_exchange_and_noreplace(r):
    _mk(r, "a", "b")
    return outcome(renameat2, os.path.join(r, "a"), os.path.join(r, "b"),
                   RENAME_EXCHANGE | RENAME_NOREPLACE)


@case
def rename_unknown_flag(r):
    _mk(r, "a")
    return outcome(renameat2, os.path.join(r, "a"), os.path.join(r, "b"), 1 << 10)


@case
def link_dir(r):
    _mk(r, "d/")
    return outcome(os.link, os.path.join(r, "d"), os.path.join(r, "e"))


@case
def link_existing(r):
    _mk(r, "a", "b")
    return outcome(os.link, os.path.join(r, "a"), os.path.join(r, "b"))


@case
def link_missing(r):
    return outcome(os.link, os.path.join(r, "a"), os.path.join(r, "b"))


@case
def symlink_existing(r):
    _mk(r, "a")
    return outcome(os.symlink, "t", os.path.join(r, "a"))


@case
def symlink_target_4096(r):
    return outcome(os.symlink, "x" * 4096, os.path.join(r, "l"))


@case
def symlink_empty_target(r):
    return outcome(os.symlink, "", os.path.join(r, "l"))


@case
def readlink_file(r):
    _mk(r, "f")
    return outcome(os.readlink, os.path.join(r, "f"))


@case
def name_256(r):
    return outcome(os.mkdir, os.path.join(r, "x" * 256))


@case
def name_255(r):
    return outcome(os.mkdir, os.path.join(r, "x" * 255))


@case
def truncate_dir(r):
    _mk(r, "d/")
    return outcome(os.truncate, os.path.join(r, "d"), 0)


@case
def truncate_negative(r):
    _mk(r, "f")
    return outcome(os.truncate, os.path.join(r, "f"), -5)


@case
def ftruncate_readonly_fd(r):
    _mk(r, "f")
    fd = os.open(os.path.join(r, "f"), os.O_RDONLY)
    try:
        return outcome(os.ftruncate, fd, 0)
    finally:
        os.close(fd)


@case
def write_readonly_fd(r):
    _mk(r, "f")
    fd = os.open(os.path.join(r, "f"), os.O_RDONLY)
    try:
        return outcome(os.write, fd, b"x")
    finally:
        os.close(fd)


@case
def read_dir_fd(r):
    _mk(r, "d/")
    fd = os.open(os.path.join(r, "d"), os.O_RDONLY)
    try:
        return outcome(os.read, fd, 10)
    finally:
        os.close(fd)


@case
def mknod_existing(r):
    _mk(r, "f")
    return outcome(os.mknod, os.path.join(r, "f"), stat.S_IFIFO | 0o644)


@case
def seek_data_empty_file(r):
    _mk(r, "f")
    p = os.path.join(r, "e")
    write_file(p, b"")
    fd = os.open(p, os.O_RDONLY)
    try:
        return outcome(os.lseek, fd, 0, os.SEEK_DATA), outcome(os.lseek, fd, 0, os.SEEK_HOLE)
    finally:
        os.close(fd)


@case
def chmod_keeps_type(r):
    _mk(r, "f", "d/")
    os.chmod(os.path.join(r, "f"), 0o7777)
    os.chmod(os.path.join(r, "d"), 0o1777)
    return (oct(os.stat(os.path.join(r, "f")).st_mode),
            oct(os.stat(os.path.join(r, "d")).st_mode))


@case
def umask_applies(r):
    old = os.umask(0o027)
    try:
        _open_close(os.path.join(r, "f"), WR | CR, 0o777)
        os.mkdir(os.path.join(r, "d"), 0o777)
    finally:
        os.umask(old)
    return (oct(os.stat(os.path.join(r, "f")).st_mode),
            oct(os.stat(os.path.join(r, "d")).st_mode))


@case
def sizes_of_kinds(r):
    _mk(r, "d/", "f")
    os.symlink("abcdef", os.path.join(r, "l"))
    return os.lstat(os.path.join(r, "f")).st_size, os.lstat(os.path.join(r, "l")).st_size


@pytest.mark.parametrize("name", sorted(CASES))
def test_errno_matches_local_disk(mnt_shared, scratch, name):
    fn = CASES[name]
    lroot = os.path.join(mnt_shared.path, name)
    sroot = os.path.join(scratch, name)
    os.mkdir(lroot)
    os.mkdir(sroot)
    got = fn(lroot)
    want = fn(sroot)
    assert got == want, "%s: lsmfs %r, local disk %r" % (name, got, want)


def test_rename_whiteout_all_or_nothing(mnt_shared):
    # ext4 supports RENAME_WHITEOUT; lsmfs may refuse it (EINVAL), but then
    # nothing may have changed.
    r = os.path.join(mnt_shared.path, "whiteout")
    os.mkdir(r)
    _mk(r, "a")
    res = outcome(renameat2, os.path.join(r, "a"), os.path.join(r, "b"), RENAME_WHITEOUT)
    if res[0] == "err":
        assert res[1] in ("EINVAL", "EOPNOTSUPP"), res
        assert os.listdir(r) == ["a"]
    else:
        st = os.lstat(os.path.join(r, "a"))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
        assert os.path.isfile(os.path.join(r, "b"))
