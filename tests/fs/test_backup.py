"""lsmfsctl backup / verify / restore / prune against a mounted lsmfs.

Every backup here is taken from a live mount (snapshot created with
`lsmfsctl snapshot create`), restored into a new store with `lsmfsctl
restore`, and the restored store is mounted with lsmfs and compared with
the tree recorded when the snapshot was taken (and with
/.snapshots/NAME when the daemon has that directory). The backup
directory's format is docs/BACKUP-FORMAT.md; a few tests read a record
with the small decoder below to know which SSTs and blob files it names.
The daemon keeps full 4096-byte data blocks in the engine's blob files, so
every tree here with a file of a block or more backs up blob files too.

LSMFS_TEST_BIG_MB (default 1024) sizes the incremental-backup tree; use
~128 under AddressSanitizer.
"""

import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time

import pytest

from conftest import LSMFSCTL_BIN, Mount, is_mounted, make_base
from fsutil import diff_snapshots, read_file, snapshot, write_file


LSMFSCTL = LSMFSCTL_BIN


def ctl(*args, check=True, timeout=600):
    r = subprocess.run([LSMFSCTL, *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, "lsmfsctl %s: exit %d\n%s%s" % (
            " ".join(args), r.returncode, r.out, r.err)
    return r


@pytest.fixture(autouse=True)
def _need_ctl():
    if not os.access(LSMFSCTL, os.X_OK):
        pytest.skip("lsmfsctl not built: %s (set LSMFSCTL_BIN)" % LSMFSCTL)


def take_snapshot(m, name):
    ctl("snapshot", "create", m.path, name)


def backup(m, name, dest, check=True):
    r = ctl("backup", m.path, name, dest, check=check)
    if check:
        assert r.err == "", "backup wrote to stderr (not a tty): %r" % r.err
    return r


SUMMARY = re.compile(r"copied (\d+) files, (\d+) bytes .*; reused (\d+) "
                     r"files, (\d+) bytes")


def summary(r):
    mo = SUMMARY.search(r.out)
    assert mo, "no summary line in %r" % r.out
    return tuple(int(x) for x in mo.groups())


def no_checkpoints_left(m):
    d = os.path.join(m.store, "checkpoints")
    left = os.listdir(d) if os.path.isdir(d) else []
    assert left == [], "checkpoints not released: %r" % left


class Restored:
    """A store restored from a backup, mounted at base/mnt."""

    def __init__(self, dest, name):
        self.base = make_base()
        self.m = Mount(self.base)
        self.r = ctl("restore", dest, name, self.m.store)

    def __enter__(self):
        self.m.start()
        return self.m

    def __exit__(self, *exc):
        rc = self.m.unmount()
        still = is_mounted(self.m.path)
        if not still:
            shutil.rmtree(self.base, ignore_errors=True)
        assert not still, "mount left behind at %s" % self.m.path
        assert rc in (0, None), "restored daemon exit %r:\n%s" % (
            rc, self.m.log())


REC_BLOBS = 0x1  # incompatible feature: a blob file list follows the SSTs


def read_record(path):
    """(name, identity, [(number, size, xxh3)] of SSTs, the same of blob
    files, incompatible feature bits) of a backup record."""
    b = read_file(path)
    assert b[:8] == b"LSMFSBAK"
    version, incompat = struct.unpack_from("<II", b, 8)
    assert version == 1
    off = 20 + 40
    ident = b[off:off + 32].decode()
    off += 32
    (nl,) = struct.unpack_from("<H", b, off)
    name = b[off + 2:off + 2 + nl]
    off += 2 + nl
    (n,) = struct.unpack_from("<I", b, off)
    off += 4
    ssts = [struct.unpack_from("<QQQ", b, off + 24 * i) for i in range(n)]
    off += 24 * n
    blobs = []
    if incompat & REC_BLOBS:
        (n,) = struct.unpack_from("<I", b, off)
        off += 4
        blobs = [struct.unpack_from("<QQQ", b, off + 24 * i)
                 for i in range(n)]
    return name, ident, ssts, blobs, incompat


def used_files(rec):
    """DEST's sst/ files (as sst_files names them) a decoded record uses."""
    _, ident, ssts, blobs, _ = rec
    return ({"%s/%06d.sst" % (ident, num) for num, _, _ in ssts} |
            {"%s/%06d.blob" % (ident, num) for num, _, _ in blobs})


def records(dest):
    d = os.path.join(dest, "records")
    return {read_record(os.path.join(d, f))[0].decode(): os.path.join(d, f)
            for f in sorted(os.listdir(d)) if f.endswith(".rec")}


def sst_files(dest, suffix=""):
    """Every file under DEST/sst/ ("IDENTITY/NAME"): SSTs and blob files,
    or only those whose name ends with suffix."""
    out = set()
    top = os.path.join(dest, "sst")
    for ident in os.listdir(top):
        for f in os.listdir(os.path.join(top, ident)):
            if f.endswith(suffix):
                out.add("%s/%s" % (ident, f))
    return out


def flip_byte(path, offset):
    os.chmod(path, 0o600)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def listing(d):
    return sorted(os.listdir(d))


# --- trees -----------------------------------------------------------------

def build_tree(root, seed=1):
    """Every kind of thing a restore must bring back."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "d1", "d2"))
    os.mkdir(os.path.join(root, "sticky"), 0o1777)
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    a = os.path.join(root, "a.txt")
    write_file(a, b"hello world\n" * 1000, 0o640)
    os.chown(a, 1234, 5678)
    os.setxattr(a, "user.color", b"blue")
    os.setxattr(a, "trusted.secret", bytes(range(256)))
    os.setxattr(os.path.join(root, "d1"), "user.dir", b"")
    write_file(os.path.join(root, "d1", "d2", "big"), rnd.randbytes(3 << 20))
    # Sparse: a hole at the start, data in the middle, a hole to the end.
    sp = os.path.join(root, "sparse")
    fd = os.open(sp, os.O_WRONLY | os.O_CREAT, 0o600)
    os.pwrite(fd, b"middle" * 100, 5 << 20)
    os.ftruncate(fd, 20 << 20)
    os.close(fd)
    os.link(a, os.path.join(root, "d1", "a-link"))
    os.link(a, os.path.join(root, "d1", "d2", "a-link2"))
    os.symlink("../a.txt", os.path.join(root, "d1", "sym"))
    os.symlink("/nowhere/at/all", os.path.join(root, "dangling"))
    os.mkfifo(os.path.join(root, "fifo"), 0o620)
    os.mknod(os.path.join(root, "null"), 0o600 | stat.S_IFCHR,
             os.makedev(1, 3))
    write_file(os.path.join(root, "empty"), b"")
    su = os.path.join(root, "setuid")
    write_file(su, b"#!/bin/sh\n", 0o755)
    os.chmod(su, 0o4755)
    write_file(os.path.join(root, "n" * 255), b"long name")
    os.mkdir(os.path.join(root, "many"))
    for i in range(200):
        write_file(os.path.join(root, "many", "f%03d" % i),
                   rnd.randbytes(rnd.randrange(0, 9000)))
    # Times last: creating entries changes the parents' times.
    for i, rel in enumerate(["a.txt", "d1", "d1/d2/big", "sparse", "many",
                             "empty", "fifo"]):
        t = 1_000_000_000 + i * 86400
        os.utime(os.path.join(root, rel), ns=(t * 10**9 + 123, t * 10**9 + 456))
    os.utime(os.path.join(root, "d1", "sym"), ns=(5 * 10**17, 6 * 10**17),
             follow_symlinks=False)


def change_tree(root):
    """Changes after the snapshot, which a restore must not show."""
    write_file(os.path.join(root, "a.txt"), b"changed")
    os.unlink(os.path.join(root, "d1", "a-link"))
    shutil.rmtree(os.path.join(root, "many"))
    os.mkdir(os.path.join(root, "new-dir"))
    os.setxattr(os.path.join(root, "d1"), "user.dir", b"changed")


def recorded_tree(m):
    os.sync()
    return snapshot(m.path)


def check_restored(rm, expect, m=None, name=None):
    got = snapshot(rm.path)
    assert diff_snapshots(expect, got) == []
    if m is not None and os.path.isdir(m.p(".snapshots", name)):
        # The daemon's own view of the snapshot agrees too (inode numbers
        # differ there by design).
        live = snapshot(m.p(".snapshots", name), inodes=False)
        assert diff_snapshots(live, snapshot(rm.path, inodes=False)) == []


# --- tests -----------------------------------------------------------------

def test_backup_restore_whole_tree(mnt):
    build_tree(mnt.path)
    expect = recorded_tree(mnt)
    take_snapshot(mnt, "snap one")  # a space: names are encoded
    change_tree(mnt.path)
    dest = os.path.join(mnt.base, "dest")
    r = backup(mnt, "snap one", dest)
    n_copied, b_copied, n_reused, b_reused = summary(r)
    assert n_copied >= 1 and b_copied > 3 << 20 and n_reused == 0
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    no_checkpoints_left(mnt)
    r = ctl("verify", dest)
    assert "ok" in r.out
    with Restored(dest, "snap one") as rm:
        check_restored(rm, expect, mnt, "snap one")
    # Restore only linked DEST's files: they are intact.
    assert ctl("verify", dest).returncode == 0
    lst = ctl("backup", "list", dest).out.splitlines()
    assert len(lst) == 2 and lst[1].startswith("snap%20one ")


def test_second_backup_reuses_and_both_restore(mnt):
    build_tree(mnt.path)
    t1 = recorded_tree(mnt)
    take_snapshot(mnt, "s1")
    change_tree(mnt.path)
    t2 = recorded_tree(mnt)
    take_snapshot(mnt, "s2")
    dest = os.path.join(mnt.base, "dest")
    summary(backup(mnt, "s1", dest))
    n_copied, b_copied, n_reused, b_reused = summary(backup(mnt, "s2", dest))
    assert n_reused >= 1 and b_reused > 3 << 20
    for name, expect in (("s1", t1), ("s2", t2)):
        with Restored(dest, name) as rm:
            check_restored(rm, expect, mnt, name)
    no_checkpoints_left(mnt)


def _content(i):
    return random.Random(i).randbytes(256 << 10)


def test_backup_while_writing(mnt):
    os.mkdir(mnt.p("w"))
    stop = threading.Event()
    done = []
    errors = []

    def writer():
        try:
            i = 0
            while not stop.is_set():
                write_file(mnt.p("w", "f%05d" % i), _content(i))
                done.append(i)
                i += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    try:
        while len(done) < 20 and t.is_alive():
            threading.Event().wait(0.01)
        n_before = len(done)
        take_snapshot(mnt, "busy")
        dest = os.path.join(mnt.base, "dest")
        backup(mnt, "busy", dest)
        n_after = len(done)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert n_after > n_before, "the writer did not run during the backup"
    no_checkpoints_left(mnt)
    with Restored(dest, "busy") as rm:
        names = sorted(os.listdir(rm.p("w")))
        idx = [int(n[1:]) for n in names]
        assert idx == list(range(len(idx))), "not a prefix of the writes"
        assert len(idx) >= n_before
        for i in idx[:-1]:
            assert read_file(rm.p("w", "f%05d" % i)) == _content(i), i
        # The write in flight at the snapshot may be partial, and not
        # only a prefix: the kernel writes dirty pages back in requests
        # of its choosing, so each 4 KiB block is either written or a
        # hole (zeros).
        last = read_file(rm.p("w", names[-1]))
        want = _content(idx[-1])
        assert len(last) <= len(want)
        for off in range(0, len(last), 4096):
            got = last[off:off + 4096]
            assert got == want[off:off + len(got)] or got == bytes(len(got)), off
        if os.path.isdir(mnt.p(".snapshots", "busy")):
            assert diff_snapshots(
                snapshot(mnt.p(".snapshots", "busy"), inodes=False),
                snapshot(rm.path, inodes=False)) == []


def test_incremental_backup_copies_little(mnt):
    total = int(os.environ.get("LSMFS_TEST_BIG_MB", "1024")) << 20
    n_files = 100
    size = total // n_files
    rnd = random.Random(7)
    os.mkdir(mnt.p("big"))
    for i in range(n_files):
        fd = os.open(mnt.p("big", "f%03d" % i), os.O_WRONLY | os.O_CREAT,
                     0o644)
        left = size
        while left:
            n = min(left, 4 << 20)
            os.write(fd, rnd.randbytes(n))
            left -= n
        os.close(fd)
    ctl("compact", mnt.path)
    take_snapshot(mnt, "b1")
    dest = os.path.join(mnt.base, "dest")
    _, copied1, _, reused1 = summary(backup(mnt, "b1", dest))
    assert copied1 >= total and reused1 == 0
    # Rewrite 1% of the data: ten pieces in ten files.
    piece = total // 100 // 10
    for i in range(10):
        with open(mnt.p("big", "f%03d" % (i * 9)), "r+b") as f:
            f.seek(size // 3)
            f.write(rnd.randbytes(piece))
    take_snapshot(mnt, "b2")
    _, copied2, _, reused2 = summary(backup(mnt, "b2", dest))
    print("backup 1 copied", copied1, "backup 2 copied", copied2, "reused", reused2)
    assert copied2 > 0
    assert copied2 < (copied2 + reused2) // 10, (copied2, reused2)
    assert ctl("verify", dest).returncode == 0
    no_checkpoints_left(mnt)


def _small_backup(mnt, name="s"):
    build_tree(mnt.path)
    expect = recorded_tree(mnt)
    take_snapshot(mnt, name)
    dest = os.path.join(mnt.base, "dest")
    backup(mnt, name, dest)
    return dest, expect


def test_verify_finds_flipped_bytes(mnt):
    dest, expect = _small_backup(mnt)
    out = os.path.join(mnt.base, "out")
    os.mkdir(out)
    # A flipped byte in an SST: named by verify; restore refuses and
    # creates nothing.
    sst = sorted(sst_files(dest, ".sst"))[0]
    path = os.path.join(dest, "sst", sst)
    flip_byte(path, os.path.getsize(path) // 2)
    r = ctl("verify", dest, check=False)
    assert r.returncode == 1
    assert sst in r.err and "checksum mismatch" in r.err
    r = ctl("restore", dest, "s", os.path.join(out, "new"), check=False)
    assert r.returncode == 2 and "failed verification" in r.err
    assert listing(out) == []
    flip_byte(path, os.path.getsize(path) // 2)  # flip it back
    assert ctl("verify", dest).returncode == 0
    # A flipped byte in the record.
    rec = records(dest)["s"]
    flip_byte(rec, 30)
    r = ctl("verify", dest, check=False)
    assert r.returncode == 1
    assert os.path.relpath(rec, dest) in r.err and "damaged" in r.err
    r = ctl("verify", dest, "s", check=False)
    assert r.returncode == 1 and os.path.relpath(rec, dest) in r.err
    r = ctl("restore", dest, "s", os.path.join(out, "new"), check=False)
    assert r.returncode == 2
    assert listing(out) == []
    r = ctl("backup", "list", dest, check=False)
    assert r.returncode == 1 and os.path.relpath(rec, dest) in r.err
    files = sst_files(dest)
    r = ctl("backup", "prune", dest, "--keep", "1", check=False)
    assert r.returncode == 2 and "nothing deleted" in r.err
    assert sst_files(dest) == files
    flip_byte(rec, 30)
    # A missing SST.
    os.rename(path, path + ".away")
    r = ctl("verify", dest, check=False)
    assert r.returncode == 1 and sst in r.err and "missing" in r.err
    r = ctl("restore", dest, "s", os.path.join(out, "new"), check=False)
    assert r.returncode == 2 and listing(out) == []
    os.rename(path + ".away", path)
    with Restored(dest, "s") as rm:
        check_restored(rm, expect, mnt, "s")


def test_refusals(mnt):
    dest, _ = _small_backup(mnt)
    before = sorted(sst_files(dest)), listing(os.path.join(dest, "records"))
    # Duplicate backup name.
    r = backup(mnt, "s", dest, check=False)
    assert r.returncode == 2 and "already exists" in r.err
    # Unknown snapshot: the daemon says so; nothing is added.
    r = backup(mnt, "no-such-snapshot", dest, check=False)
    assert r.returncode == 2 and r.err.count("\n") == 1
    assert (sorted(sst_files(dest)),
            listing(os.path.join(dest, "records"))) == before
    no_checkpoints_left(mnt)
    # DEST that is not a backup directory: refused, left as it was.
    other = os.path.join(mnt.base, "other")
    os.mkdir(other)
    write_file(os.path.join(other, "precious"), b"keep me")
    for args in (("backup", mnt.path, "s", other), ("verify", other),
                 ("backup", "list", other), ("restore", other, "s",
                                             os.path.join(mnt.base, "x")),
                 ("backup", "prune", other, "--keep", "1")):
        r = ctl(*args, check=False)
        assert r.returncode == 2, args
        assert "not a backup directory" in r.err, (args, r.err)
        assert listing(other) == ["precious"]
    r = backup(mnt, "s", os.path.join(other, "precious"), check=False)
    assert r.returncode == 2 and "not a backup directory" in r.err
    assert not os.path.exists(os.path.join(mnt.base, "x"))
    # Unknown backup name.
    out = os.path.join(mnt.base, "out")
    os.mkdir(out)
    r = ctl("restore", dest, "nope", os.path.join(out, "new"), check=False)
    assert r.returncode == 2 and "no backup named nope" in r.err
    r = ctl("verify", dest, "nope", check=False)
    assert r.returncode == 2 and "no backup named nope" in r.err
    # NEWSTORE that exists (even empty) is refused and left alone.
    os.mkdir(os.path.join(out, "exists"))
    r = ctl("restore", dest, "s", os.path.join(out, "exists"), check=False)
    assert r.returncode == 2 and "already exists" in r.err
    assert listing(out) == ["exists"]
    assert listing(os.path.join(out, "exists")) == []
    r = ctl("restore", dest, "s", os.path.join(out, "no", "new"),
            check=False)
    assert r.returncode == 2 and "parent directory" in r.err
    assert listing(out) == ["exists"]
    # A mount that is not lsmfs.
    r = ctl("backup", out, "s", os.path.join(mnt.base, "d2"), check=False)
    assert r.returncode == 2 and "not a mount point" in r.err
    assert not os.path.exists(os.path.join(mnt.base, "d2"))


def test_prune_keeps_what_kept_backups_need(mnt):
    dest = os.path.join(mnt.base, "dest")
    trees = {}
    build_tree(mnt.path)
    for k, name in enumerate(["p1", "p2", "p3"]):
        # Each round adds data and compacts, so later backups stop
        # using some files of earlier ones.
        write_file(mnt.p("round%d" % k), random.Random(k).randbytes(2 << 20))
        ctl("compact", mnt.path)
        trees[name] = recorded_tree(mnt)
        take_snapshot(mnt, name)
        backup(mnt, name, dest)
    recs = {n: read_record(p) for n, p in records(dest).items()}
    used = {n: used_files(rec) for n, rec in recs.items()}
    assert sst_files(dest) == used["p1"] | used["p2"] | used["p3"]
    assert used["p1"] - used["p2"] - used["p3"], "p1 has no unique files"
    r = ctl("backup", "prune", dest, "--keep", "2")
    assert "pruned backup p1" in r.out
    assert set(records(dest)) == {"p2", "p3"}
    assert sst_files(dest) == used["p2"] | used["p3"]
    lst = ctl("backup", "list", dest).out.splitlines()[1:]
    assert [line.split()[0] for line in lst] == ["p2", "p3"]
    assert ctl("verify", dest).returncode == 0
    with Restored(dest, "p2") as rm:
        check_restored(rm, trees["p2"], mnt, "p2")
    # Pruning to what is there already changes nothing.
    ctl("backup", "prune", dest, "--keep", "2")
    assert sst_files(dest) == used["p2"] | used["p3"]
    r = ctl("backup", "prune", dest, "--keep", "0", check=False)
    assert r.returncode == 2


def _tmp_files(dest):
    return [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs
            if ".tmp-" in f]


def test_interrupted_backup(mnt):
    rnd = random.Random(3)
    with open(mnt.p("big"), "wb") as f:
        for _ in range(64):
            f.write(rnd.randbytes(4 << 20))
    take_snapshot(mnt, "s")
    dest = os.path.join(mnt.base, "dest")
    for sig in (signal.SIGINT, signal.SIGKILL):
        p = subprocess.Popen([LSMFSCTL, "backup", mnt.path, "s", dest],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        while p.poll() is None and not _tmp_files(dest):
            time.sleep(0.001)
        if p.poll() is not None:
            pytest.skip("the backup finished before it could be interrupted")
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
        assert not os.listdir(os.path.join(dest, "records"))
        if sig == signal.SIGINT:
            # Stops cleanly: its temporary file and checkpoint are gone.
            assert p.returncode == 2 and b"interrupted" in err, err
            assert _tmp_files(dest) == []
            no_checkpoints_left(mnt)
    # After a SIGKILL the next backup clears the leftovers and works.
    assert _tmp_files(dest) != []
    backup(mnt, "s", dest)
    assert _tmp_files(dest) == []
    assert ctl("verify", dest).returncode == 0


def test_reuse_checks_the_file_tail(mnt):
    """An SST DEST already holds is reused only if it ends like the store's
    file: a damaged copy (or another store's file under the same identity
    and number) stops the backup instead of being named again."""
    dest, _ = _small_backup(mnt, "s1")
    take_snapshot(mnt, "s2")
    ssts = sorted(sst_files(dest, ".sst"))
    path = os.path.join(dest, "sst", ssts[0])
    flip_byte(path, os.path.getsize(path) - 10)
    before = records(dest)
    r = backup(mnt, "s2", dest, check=False)
    assert r.returncode == 2, r.err
    assert "differs from SST" in r.err and r.err.count("\n") == 1, r.err
    assert records(dest) == before
    no_checkpoints_left(mnt)


# --- blob files ------------------------------------------------------------

def _blob_tree(root, seed, n=8):
    """Files of several 4 KiB blocks: their full blocks live in blob files."""
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "blobs"), exist_ok=True)
    for i in range(n):
        write_file(os.path.join(root, "blobs", "f%d" % i),
                   rnd.randbytes((i + 1) * 50_000 + 123))


def _dest_file(dest, ident, num, suffix):
    return os.path.join(dest, "sst", ident, "%06d.%s" % (num, suffix))


def test_blob_files_backup_restore_verify_prune(mnt):
    _blob_tree(mnt.path, 1)
    t1 = recorded_tree(mnt)
    take_snapshot(mnt, "b1")
    take_snapshot(mnt, "b1-again")  # the same files, nothing written since
    dest = os.path.join(mnt.base, "dest")
    backup(mnt, "b1", dest)
    rec1 = read_record(records(dest)["b1"])
    _, ident, ssts, blobs, incompat = rec1
    assert incompat == REC_BLOBS and blobs, rec1
    assert sum(size for _, size, _ in blobs) > 1_500_000
    for num, size, _ in blobs:
        path = _dest_file(dest, ident, num, "blob")
        assert os.path.getsize(path) == size
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o400
        assert read_file(path)[:8] == b"LSMBLOB1"
    assert sst_files(dest) == used_files(rec1)
    assert "ok" in ctl("verify", dest).out

    # Restore: the blob files are placed beside the SSTs, the values read
    # through them; the new store keeps full blocks in blob files too.
    rs = Restored(dest, "b1")
    assert any(f.endswith(".blob") for f in os.listdir(rs.m.store))
    with rs as rm:
        check_restored(rm, t1, mnt, "b1")

    # Reuse is checked against the file's tail for blob files as for SSTs.
    num0 = blobs[0][0]
    path0 = _dest_file(dest, ident, num0, "blob")
    flip_byte(path0, os.path.getsize(path0) - 3)
    r = backup(mnt, "b1-again", dest, check=False)
    assert r.returncode == 2, r.err
    assert "differs from blob file %06d.blob" % num0 in r.err, r.err
    assert set(records(dest)) == {"b1"}
    flip_byte(path0, os.path.getsize(path0) - 3)
    n_copied, b_copied, n_reused, b_reused = summary(
        backup(mnt, "b1-again", dest))
    rec1b = read_record(records(dest)["b1-again"])
    assert rec1b[3] == blobs, "the same blob files, reused"
    assert n_reused >= len(blobs)
    assert b_copied < 200_000, "blob files copied again: %d" % b_copied

    # A flipped byte in a backed-up blob file: verify names it, restore
    # refuses and creates nothing.
    num1, size1, _ = blobs[-1]
    path1 = _dest_file(dest, ident, num1, "blob")
    rel1 = os.path.relpath(path1, os.path.join(dest, "sst"))
    flip_byte(path1, size1 // 2)
    r = ctl("verify", dest, check=False)
    assert r.returncode == 1
    assert rel1 in r.err and "checksum mismatch" in r.err, r.err
    out = os.path.join(mnt.base, "out")
    os.mkdir(out)
    r = ctl("restore", dest, "b1", os.path.join(out, "new"), check=False)
    assert r.returncode == 2 and "failed verification" in r.err
    assert listing(out) == []
    flip_byte(path1, size1 // 2)
    # A missing one.
    os.rename(path1, path1 + ".away")
    r = ctl("verify", dest, "b1", check=False)
    assert r.returncode == 1 and rel1 in r.err and "missing" in r.err
    os.rename(path1 + ".away", path1)
    assert ctl("verify", dest).returncode == 0

    # Changes: a file deleted and a new one. The next backup copies the
    # new blob files and reuses the old ones it still needs. (Not a
    # rewrite in place: the daemon's stored mtime of a file reopened with
    # O_TRUNC differs from the one stat shows until remount.)
    os.unlink(mnt.p("blobs", "f0"))
    write_file(mnt.p("blobs", "new"), random.Random(3).randbytes(300_000))
    t2 = recorded_tree(mnt)
    take_snapshot(mnt, "b2")
    n_copied, b_copied, n_reused, b_reused = summary(backup(mnt, "b2", dest))
    rec2 = read_record(records(dest)["b2"])
    old_blobs = {num for num, _, _ in blobs}
    new_blobs = {num for num, _, _ in rec2[3]}
    assert new_blobs - old_blobs, "no new blob file for the new data"
    assert new_blobs & old_blobs, "no blob file reused"
    assert b_copied >= 300_000 and b_reused >= 1_000_000
    assert ctl("verify", dest).returncode == 0
    with Restored(dest, "b2") as rm:
        check_restored(rm, t2, mnt, "b2")

    # Prune: blob files only the pruned backups use go, the rest stay.
    ctl("backup", "prune", dest, "--keep", "1")
    assert set(records(dest)) == {"b2"}
    assert sst_files(dest) == used_files(rec2)
    assert ctl("verify", dest).returncode == 0
    no_checkpoints_left(mnt)


def test_backup_without_blob_files_keeps_the_old_record_layout(mnt):
    """Small files only (no full block): no blob file, and the record is
    exactly what lsmfsctl wrote before blob files (feature bits 0, no
    blob list), so older lsmfsctl versions still read it."""
    os.mkdir(mnt.p("small"))
    for i in range(50):
        write_file(mnt.p("small", "f%02d" % i), bytes([i]) * (i * 40))
    expect = recorded_tree(mnt)
    take_snapshot(mnt, "s")
    dest = os.path.join(mnt.base, "dest")
    backup(mnt, "s", dest)
    path = records(dest)["s"]
    name, ident, ssts, blobs, incompat = read_record(path)
    assert incompat == 0 and blobs == [] and ssts
    assert sst_files(dest, ".blob") == set()
    # The SST list is followed directly by the meta file count.
    b = read_file(path)
    off = 20 + 40 + 32 + 2 + len(name) + 4 + 24 * len(ssts)
    (n_meta,) = struct.unpack_from("<I", b, off)
    assert 1 <= n_meta <= 64
    assert ctl("verify", dest).returncode == 0
    with Restored(dest, "s") as rm:
        check_restored(rm, expect, mnt, "s")
