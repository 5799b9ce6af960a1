"""`lsmfsctl check STORE`: the offline consistency check.

A store written by a realistic workload (files, holes, hard links,
symlinks, special files, xattrs, renames, deletions, truncation, a
snapshot) checks clean; an orphan left by a crash is listed, not a
problem. Then each kind of damage, written into a copy of that store with
the test aids `lsmfsctl debug-put/debug-del` (fs/CTL.md), must give exit
status 1 and a line naming the problem. A mounted store gives exit 2
"in use".
"""

import os
import re
import shutil
import struct
import subprocess

import pytest

from conftest import LSMFSCTL_BIN, Mount, make_base, _require_fuse

ROOT = 1


@pytest.fixture(autouse=True)
def _need_ctl():
    if not os.access(LSMFSCTL_BIN, os.X_OK):
        pytest.skip("lsmfsctl not built: %s (set LSMFSCTL_BIN)" % LSMFSCTL_BIN)


def ctl(*args):
    r = subprocess.run([LSMFSCTL_BIN, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    return r


def be64(v):
    return struct.pack(">Q", v)


def k_inode(ino):
    return b"I" + be64(ino)


def k_dirent(parent, name):
    return b"D" + be64(parent) + name.encode()


def v_dirent(child, mode):
    return be64(child) + bytes([mode >> 12])


def k_block(ino, idx):
    return b"B" + be64(ino) + be64(idx)


def v_inode(mode, nlink, size, parent=0, flags=0):
    """An inode record (fs/FORMAT.md), 85 bytes."""
    t = struct.pack("<qI", 1_700_000_000, 0)
    return (struct.pack("<BIIIIQQQQ", 1, mode, 0, 0, flags, nlink, size, 0,
                        parent) + t * 3)


def v_super(next_ino):
    return (b"LSMFSSB1" + struct.pack("<I", 1) + b"u" * 16 +
            struct.pack("<QIqI", next_ino, 4096, 1_700_000_000, 0))


def workload(root):
    """A bit of everything; returns the inode numbers the damage uses."""
    os.makedirs(os.path.join(root, "dir", "sub", "deep"))
    os.mkdir(os.path.join(root, "empty"))
    with open(os.path.join(root, "victim"), "wb") as f:
        f.write(b"hello")
    with open(os.path.join(root, "dir", "inner"), "wb") as f:
        f.write(os.urandom(70_000))
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.seek(10_000_000)
        f.write(b"end")
    with open(os.path.join(root, "trunc"), "wb") as f:
        f.write(os.urandom(100_000))
    os.truncate(os.path.join(root, "trunc"), 5_000)
    os.link(os.path.join(root, "dir", "inner"), os.path.join(root, "hard"))
    os.link(os.path.join(root, "dir", "inner"),
            os.path.join(root, "dir", "sub", "hard2"))
    os.symlink("dir/inner", os.path.join(root, "sym"))
    os.mkfifo(os.path.join(root, "dir", "fifo"))
    os.setxattr(os.path.join(root, "dir"), "user.a", b"1")
    os.setxattr(os.path.join(root, "hard"), "user.b", b"x" * 3000)
    for i in range(50):
        with open(os.path.join(root, "dir", "sub", "f%d" % i), "wb") as f:
            f.write(os.urandom(i * 300))
    os.mkdir(os.path.join(root, ".snapshots", "snap1"))
    for i in range(0, 50, 3):
        os.unlink(os.path.join(root, "dir", "sub", "f%d" % i))
    os.rename(os.path.join(root, "dir", "sub", "deep"),
              os.path.join(root, "empty", "moved"))
    os.rename(os.path.join(root, "dir", "sub", "f1"),
              os.path.join(root, "dir", "sub", "f2"))
    os.mkdir(os.path.join(root, "gone"))
    os.rmdir(os.path.join(root, "gone"))
    os.removexattr(os.path.join(root, "dir"), "user.a")
    ino = {n: os.lstat(os.path.join(root, n)).st_ino
           for n in ("victim", "dir", "dir/inner", "empty")}
    return ino


@pytest.fixture(scope="module")
def clean():
    """(store path, inode numbers) of a cleanly unmounted store."""
    _require_fuse()
    base = make_base()
    m = Mount(base)
    try:
        m.start()
        ino = workload(m.path)
        assert m.unmount() == 0
        yield m.store, ino
    finally:
        m.unmount()
        shutil.rmtree(base, ignore_errors=True)


def store_state(store):
    """Every file of the store with its size and modification time."""
    out = []
    for name in sorted(os.listdir(store)):
        st = os.lstat(os.path.join(store, name))
        out.append((name, st.st_size, st.st_mtime_ns))
    return out


def test_clean_store(clean):
    store, _ = clean
    r = ctl("check", store)
    assert r.returncode == 0, (r.out, r.err)
    assert "problem:" not in r.out
    assert r.out.rstrip().endswith("0 orphans: no problems")


def test_mounted_store_in_use(mnt):
    r = ctl("check", mnt.store)
    assert r.returncode == 2
    assert r.err == "lsmfsctl: %s: store is in use (mounted?)\n" % mnt.store


def test_not_a_store(tmp_path):
    for path, words in ((tmp_path / "missing", "No such file"),
                        (tmp_path, "not an lsmfs store")):
        r = ctl("check", str(path))
        assert r.returncode == 2 and words in r.err, r.err
        assert len(r.err.splitlines()) == 1
    f = tmp_path / "file"
    f.write_bytes(b"x")
    r = ctl("check", str(f))
    assert r.returncode == 2 and "not a directory" in r.err
    r = ctl("debug-put", str(tmp_path), "zz", "")
    assert r.returncode == 2 and "bad hex" in r.err


def test_orphan_after_crash(mnt):
    with open(mnt.p("keep"), "wb") as f:
        f.write(b"k")
    fd = os.open(mnt.p("open-unlinked"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"still open" * 1000)
        os.fsync(fd)
        ino = os.fstat(fd).st_ino
        os.unlink(mnt.p("open-unlinked"))
        os.fsync(fd)
        mnt.kill()
    finally:
        try:
            os.close(fd)
        except OSError:
            pass  # ENOTCONN: the daemon is gone
    before = store_state(mnt.store)
    r = ctl("check", mnt.store)
    assert r.returncode == 0, (r.out, r.err)
    assert "orphan: inode %d (file" % ino in r.out
    assert "1 orphans: no problems" in r.out
    # The crashed daemon's WAL was replayed in memory only: check changed
    # nothing in the store.
    assert store_state(mnt.store) == before
    mnt.start()  # sweeps it
    mnt.unmount()
    r = ctl("check", mnt.store)
    assert r.returncode == 0 and "0 orphans: no problems" in r.out, r.out
    mnt.start()


def damage_cases(ino):
    f, d, inner = ino["victim"], ino["dir"], ino["dir/inner"]
    reg, dirm = 0o100644, 0o40755
    return {
        "dangling entry": (
            [("put", k_dirent(ROOT, "ghost"), v_dirent(999_999, reg))],
            ["entry \"ghost\" in directory 1 points to inode 999999, which "
             "does not exist"]),
        "entry of the wrong type": (
            [("put", k_dirent(ROOT, "alias"), v_dirent(f, dirm))],
            ["entry \"alias\" in directory 1 has type 4 but inode %d is a "
             "file" % f]),
        "unreachable file": (
            [("del", k_dirent(ROOT, "victim"))],
            ["inode %d (file) is not reachable: no entry names it" % f]),
        "detached directory": (
            [("del", k_dirent(ROOT, "dir"))],
            ["inode %d (directory) is not reachable: no entry names it" % d,
             "is not reachable from the root (its directories are detached)"]),
        "directory link count": (
            [("put", k_inode(d), v_inode(dirm, 7, 0, parent=ROOT))],
            ["directory %d: nlink 7, expected 3" % d]),
        "directory hard link": (
            [("put", k_dirent(ROOT, "dir2"), v_dirent(d, dirm))],
            ["directory %d has 2 entries naming it" % d,
             "directory 1: nlink"]),
        "wrong dotdot": (
            [("put", k_inode(d), v_inode(dirm, 3, 0, parent=ino["empty"]))],
            ["directory %d: \"..\" is %d but its entry is in 1"
             % (d, ino["empty"])]),
        "file link count": (
            [("put", k_inode(f), v_inode(reg, 3, 5))],
            ["inode %d (file): nlink 3 but 1 entries name it" % f]),
        "no links without orphan key": (
            [("put", k_inode(f), v_inode(reg, 0, 5))],
            ["inode %d (file) has no links and no orphan key" % f,
             "inode %d has no links but 1 entries name it" % f]),
        "orphan key of a linked inode": (
            [("put", b"O" + be64(f), b"")],
            ["orphan key of inode %d, which has 1 link(s)" % f]),
        "orphan key without inode": (
            [("put", b"O" + be64(999_997), b"")],
            ["orphan key of inode 999997, which does not exist"]),
        "blocks without inode": (
            [("put", k_block(999_999, 0), b"x" * 10),
             ("put", k_block(999_999, 1), b"y" * 10)],
            ["data blocks of inode 999999, which does not exist"]),
        "block past the size": (
            [("put", k_block(f, 3), b"x" * 100)],
            ["inode %d: block 3 (100 bytes) holds data at or past the size 5"
             % f]),
        "blocks of a directory": (
            [("put", k_block(d, 0), b"x")],
            ["inode %d (a directory) has data blocks" % d]),
        "xattr without inode": (
            [("put", b"X" + be64(999_998) + b"user.a", b"v")],
            ["xattrs of inode 999998, which does not exist"]),
        "xattr without the flag": (
            [("put", b"X" + be64(f) + b"user.z", b"v")],
            ["inode %d has xattrs but not the flag that says so" % f]),
        "undecodable inode": (
            [("put", k_inode(inner), b"\x01abc")],
            ["inode %d: record of 4 bytes, need 85" % inner]),
        "missing root": (
            [("del", k_inode(ROOT))],
            ["the root directory (inode 1) is missing"]),
        "bad superblock": (
            [("put", b"S", b"garbage!" * 3)],
            ["problem: superblock: bad magic"]),
        "missing superblock": (
            [("del", b"S")],
            ["no valid superblock"]),
        "next inode too low": (
            [("put", b"S", v_super(2))],
            ["superblock: next inode 2 is not above the highest inode"]),
        "unknown key": (
            [("put", b"Zjunk", b"")],
            ["unknown key 5a6a756e6b"]),
        "bad dirent name": (
            [("put", k_dirent(ROOT, "a/b"), v_dirent(f, reg))],
            ["entry \"a/b\" in directory 1: not a valid name"]),
    }


@pytest.mark.parametrize("kind", sorted(damage_cases(
    {"victim": 1, "dir": 2, "dir/inner": 3, "empty": 4})))
def test_damage_found(clean, tmp_path, kind):
    store, ino = clean
    edits, wants = damage_cases(ino)[kind]
    copy = str(tmp_path / "store")
    shutil.copytree(store, copy, symlinks=True)
    for op, key, *val in edits:
        args = ["debug-" + op, copy, key.hex()] + [v.hex() for v in val]
        r = ctl(*args)
        assert r.returncode == 0, r.err
    r = ctl("check", copy)
    assert r.returncode == 1, (kind, r.out, r.err)
    for want in wants:
        assert want in r.out, (kind, want, r.out)
    lines = r.out.splitlines()
    assert all(l.startswith(("problem: ", "orphan: ")) for l in lines[:-1])
    assert re.search(r": \d+ problems?$", lines[-1]), lines[-1]
    # The original store is untouched.
    assert ctl("check", store).returncode == 0


def blob_records(path):
    """(record offset, key, value offset, value length) of every record of
    a blob file (lsm/FORMAT.md "Blob files"), read without checking."""
    def varint(b, off):
        v = shift = 0
        while True:
            c = b[off]
            off += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return v, off
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"LSMBLOB1"
    out, off = [], 32
    while off < len(b):
        kl, p = varint(b, off + 4)
        vl, p = varint(b, p)
        key = b[p:p + kl]
        out.append((off, key, p + kl + 4, vl))
        off = p + kl + 4 + vl
    return out


def test_damaged_blob_file(tmp_path):
    """Full data blocks live in the engine's blob files: a flipped byte in
    one is a problem naming that block, and the check goes on."""
    _require_fuse()
    base = make_base()
    m = Mount(base)
    try:
        m.start()
        with open(m.p("data"), "wb") as f:
            f.write(os.urandom(10 * 4096 + 100))
        with open(m.p("other"), "wb") as f:
            f.write(os.urandom(3 * 4096))
        ino = os.stat(m.p("data")).st_ino
        # Flushed into the tree: the blob files are then the manifest's,
        # not those of a WAL still to replay.
        r = subprocess.run([LSMFSCTL_BIN, "compact", m.path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert m.unmount() == 0
        r = ctl("check", m.store)
        assert r.returncode == 0, (r.out, r.err)
        assert "14 blocks" in r.out and "no problems" in r.out, r.out
        copy = str(tmp_path / "store")
        shutil.copytree(m.store, copy, symlinks=True)
    finally:
        m.unmount()
        shutil.rmtree(base, ignore_errors=True)
    blobs = [f for f in os.listdir(copy) if f.endswith(".blob")]
    assert blobs, os.listdir(copy)
    recs = [(os.path.join(copy, f), rec) for f in sorted(blobs)
            for rec in blob_records(os.path.join(copy, f))]
    victims = [(p, rec) for p, rec in recs
               if rec[1][:9] == k_block(ino, 0)[:9]]
    assert len(victims) == 10, recs  # the full blocks of "data"
    path, (_, key, voff, vlen) = victims[3]
    block = struct.unpack(">Q", key[9:17])[0]
    with open(path, "r+b") as f:
        f.seek(voff + vlen // 2)
        c = f.read(1)
        f.seek(voff + vlen // 2)
        f.write(bytes([c[0] ^ 0xFF]))
    r = ctl("check", copy)
    assert r.returncode == 1, (r.out, r.err)
    lines = r.out.splitlines()
    want = "problem: inode %d block %d: value unreadable: " % (ino, block)
    bad = [l for l in lines if l.startswith(want)]
    assert len(bad) == 1, r.out
    assert "checksum mismatch" in bad[0] and os.path.basename(path) in bad[0]
    # One problem; every block (the unreadable one too) was walked.
    assert lines[-1].endswith("14 blocks, 0 xattrs, 0 orphans: 1 problem")
    assert r.err == ""
