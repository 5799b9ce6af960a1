"""Model test: the same random operations applied to lsmfs and to a
directory on the local disk (ext4 here, the reference). Each operation
must have the same outcome (result or errno) on both, and the trees must
be equal (names, types, sizes, modes, owners, contents, link counts,
hard-link groups, xattrs) at every remount and at the end.

Operations: create (maybe O_EXCL), write at random offsets, truncate,
mkdir, rename, unlink, rmdir, link, symlink, setxattr (plain, CREATE,
REPLACE), removexattr, chmod. Paths are drawn from the reference tree plus
a small pool of names so that errors (EEXIST, ENOTEMPTY, EISDIR...) are
frequent. Symlink targets stay inside their directory so that both trees
resolve them alike."""

import os
import random

import pytest

from fsutil import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, diff_snapshots,
                    fallocate, outcome, snapshot)

N_OPS = int(os.environ.get("LSMFS_MODEL_OPS", "2000"))
N_SEEDS = int(os.environ.get("LSMFS_MODEL_SEEDS", "3"))
REMOUNT_EVERY = 500
POOL = ["n%d" % i for i in range(10)] + ["long" + "x" * 200]
XNAMES = ["user.a", "user.b", "user.c"]
OPTS = [[], ["no_writeback_cache"], ["no_readdirplus", "no_keep_cache"],
        ["entry_timeout=0", "attr_timeout=0", "negative_timeout=0"]]


def _create(p, excl):
    fl = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if excl else 0)
    os.close(os.open(p, fl, 0o644))


def _write(p, off, data):
    fd = os.open(p, os.O_WRONLY)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def _append(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def _punch(p, off, n):
    fd = os.open(p, os.O_WRONLY)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n)
    finally:
        os.close(fd)


def _copy(src, dst, n, off_src, off_dst):
    fi = os.open(src, os.O_RDONLY)
    try:
        fo = os.open(dst, os.O_WRONLY)
        try:
            done = 0
            while done < n:
                k = os.copy_file_range(fi, fo, n - done, off_src + done, off_dst + done)
                if k == 0:
                    break
                done += k
            return done
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def apply(root, op):
    kind = op[0]
    P = lambda rel: os.path.join(root, rel)  # noqa: E731
    if kind == "create":
        return outcome(_create, P(op[1]), op[2])
    if kind == "write":
        return outcome(_write, P(op[1]), op[2], op[3])
    if kind == "truncate":
        return outcome(os.truncate, P(op[1]), op[2])
    if kind == "append":
        return outcome(_append, P(op[1]), op[2])
    if kind == "punch":
        return outcome(_punch, P(op[1]), op[2], op[3])
    if kind == "copy":
        return outcome(_copy, P(op[1]), P(op[2]), op[3], op[4], op[5])
    if kind == "mkdir":
        return outcome(os.mkdir, P(op[1]), 0o755)
    if kind == "rename":
        return outcome(os.rename, P(op[1]), P(op[2]))
    if kind == "unlink":
        return outcome(os.unlink, P(op[1]))
    if kind == "rmdir":
        return outcome(os.rmdir, P(op[1]))
    if kind == "link":
        return outcome(os.link, P(op[1]), P(op[2]), follow_symlinks=False)
    if kind == "symlink":
        return outcome(os.symlink, op[2], P(op[1]))
    if kind == "setxattr":
        return outcome(os.setxattr, P(op[1]), op[2], op[3], op[4], follow_symlinks=False)
    if kind == "removexattr":
        return outcome(os.removexattr, P(op[1]), op[2], follow_symlinks=False)
    if kind == "chmod":
        return outcome(os.chmod, P(op[1]), op[2])
    raise AssertionError(kind)


def listing(root):
    dirs, entries = ["."], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for n in sorted(dirnames):
            dirs.append(os.path.normpath(os.path.join(rel, n)))
        for n in sorted(dirnames + filenames):
            entries.append(os.path.normpath(os.path.join(rel, n)))
    return dirs, entries


def gen_op(rnd, ref_root):
    dirs, entries = listing(ref_root)
    files = [e for e in entries if os.path.isfile(os.path.join(ref_root, e))
             and not os.path.islink(os.path.join(ref_root, e))]

    def newpath():
        return os.path.normpath(os.path.join(rnd.choice(dirs), rnd.choice(POOL)))

    def anypath():
        if entries and rnd.random() < 0.8:
            return rnd.choice(entries)
        return newpath()

    def filepath():
        if files and rnd.random() < 0.9:
            return rnd.choice(files)
        return anypath()

    k = rnd.choices(
        ["create", "write", "truncate", "mkdir", "rename", "unlink", "rmdir",
         "link", "symlink", "setxattr", "removexattr", "chmod", "append",
         "punch", "copy"],
        [12, 20, 6, 8, 10, 6, 4, 5, 4, 6, 2, 4, 4, 3, 3])[0]
    if k == "create":
        return ("create", newpath(), rnd.random() < 0.3)
    if k == "write":
        off = rnd.choice([0, rnd.randrange(0, 300_000), rnd.randrange(0, 8192)])
        n = rnd.choice([1, rnd.randrange(1, 5000), rnd.randrange(1, 70_000)])
        return ("write", filepath(), off, rnd.randbytes(n))
    if k == "truncate":
        return ("truncate", filepath(), rnd.choice([0, rnd.randrange(0, 400_000),
                                                    rnd.randrange(0, 9000)]))
    if k == "append":
        return ("append", filepath(), rnd.randbytes(rnd.randrange(1, 9000)))
    if k == "punch":
        return ("punch", filepath(), rnd.randrange(0, 300_000),
                rnd.choice([1, rnd.randrange(1, 5000), rnd.randrange(1, 100_000)]))
    if k == "copy":
        return ("copy", filepath(), filepath(), rnd.randrange(1, 80_000),
                rnd.randrange(0, 200_000), rnd.randrange(0, 200_000))
    if k == "mkdir":
        return ("mkdir", newpath())
    if k == "rename":
        dst = newpath() if rnd.random() < 0.6 else anypath()
        return ("rename", anypath(), dst)
    if k == "unlink":
        return ("unlink", anypath())
    if k == "rmdir":
        return ("rmdir", rnd.choice(dirs[1:]) if len(dirs) > 1 else newpath())
    if k == "link":
        return ("link", filepath(), newpath())
    if k == "symlink":
        return ("symlink", newpath(), rnd.choice(POOL[:10] + ["n1/n2", "nowhere"]))
    if k == "setxattr":
        flags = rnd.choice([0, 0, os.XATTR_CREATE, os.XATTR_REPLACE])
        return ("setxattr", anypath(), rnd.choice(XNAMES),
                rnd.randbytes(rnd.choice([0, 10, 700])), flags)
    if k == "removexattr":
        return ("removexattr", anypath(), rnd.choice(XNAMES))
    return ("chmod", anypath(), rnd.choice([0o644, 0o600, 0o755, 0o700, 0o4755,
                                            0o2711, 0o1777, 0o000, 0o444]))


def describe(op):
    return tuple((("<%d bytes>" % len(x)) if isinstance(x, bytes) else x) for x in op)


def compare(mnt_root, ref_root, when):
    a = snapshot(ref_root, times=False, inodes=False)
    b = snapshot(mnt_root, times=False, inodes=False)
    d = diff_snapshots(a, b)
    assert not d, "trees differ %s (first: ext4, second: lsmfs):\n%s" % (when, "\n".join(d))


@pytest.mark.parametrize("seed", range(1, N_SEEDS + 1))
def test_random_ops_match_local_disk(mnt, scratch, seed):
    rnd = random.Random(seed)
    lroot = mnt.p("model")
    rroot = os.path.join(scratch, "model%d" % seed)
    os.mkdir(lroot)
    os.mkdir(rroot)
    recent = []
    n_err = 0
    for i in range(N_OPS):
        op = gen_op(rnd, rroot)
        want = apply(rroot, op)
        got = apply(lroot, op)
        recent = (recent + [(i, describe(op), want)])[-15:]
        n_err += want[0] == "err"
        assert got == want, "op %d %r: lsmfs %r, ext4 %r\nrecent ops:\n%s" % (
            i, describe(op), got, want, "\n".join(map(repr, recent)))
        if (i + 1) % REMOUNT_EVERY == 0:
            compare(lroot, rroot, "before remount after op %d" % i)
            # Vary the kernel-side caching between segments.
            mnt.remount(OPTS[(seed + i // REMOUNT_EVERY) % len(OPTS)])
            compare(lroot, rroot, "after remount after op %d" % i)
    compare(lroot, rroot, "at the end")
    # The workload must exercise both successes and errors.
    assert 0.05 * N_OPS < n_err < 0.8 * N_OPS, n_err
