"""Persistence: a tree written, unmounted and remounted is identical
(names, types, modes, owners, sizes, contents, link counts and groups,
inode numbers, xattrs, mtimes and ctimes), also across several remounts
and after SIGTERM instead of fusermount."""

import os
import random
import signal
import stat
import time

import pytest

from fsutil import diff_snapshots, snapshot, write_file


def build_tree(root, seed=1):
    rnd = random.Random(seed)
    os.makedirs(os.path.join(root, "a", "b", "c"))
    os.mkdir(os.path.join(root, "empty"))
    os.mkdir(os.path.join(root, "modes"), 0o711)
    for i in range(40):
        d = rnd.choice(["a", "a/b", "a/b/c", "."])
        p = os.path.join(root, d, "file%02d" % i)
        size = rnd.choice([0, 1, 4095, 4096, 4097, 100_000, 1_000_003])
        write_file(p, rnd.randbytes(size))
        os.chmod(p, rnd.choice([0o600, 0o644, 0o755, 0o4755, 0o2700, 0o1777, 0o000]))
        if i % 3 == 0:
            os.chown(p, rnd.randrange(1, 70000), rnd.randrange(1, 70000))
        if i % 4 == 0:
            os.setxattr(p, "user.i", str(i).encode())
            os.setxattr(p, "user.blob", rnd.randbytes(rnd.randrange(0, 3000)))
    # sparse file
    fd = os.open(os.path.join(root, "sparse"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"end", 50_000_000)
    os.pwrite(fd, b"mid", 9_000)
    os.close(fd)
    os.link(os.path.join(root, "sparse"), os.path.join(root, "a", "sparse-link"))
    os.link(os.path.join(root, "sparse"), os.path.join(root, "a", "b", "sparse-link2"))
    os.symlink("a/b/c", os.path.join(root, "sym-dir"))
    os.symlink("/absolute/target", os.path.join(root, "a", "sym-abs"))
    os.symlink("../" * 100 + "x" * 200, os.path.join(root, "a", "b", "sym-long"))
    os.mkfifo(os.path.join(root, "fifo"), 0o640)
    os.mknod(os.path.join(root, "cdev"), stat.S_IFCHR | 0o600, os.makedev(4, 64))
    os.mknod(os.path.join(root, "sock"), stat.S_IFSOCK | 0o600)
    os.setxattr(os.path.join(root, "a"), "user.dir", b"dirval")
    os.chmod(os.path.join(root, "a", "b"), 0o2755)
    os.chown(os.path.join(root, "empty"), 123, 456)
    # Explicit times last (anything above may have touched them).
    for i, p in enumerate(sorted(os.listdir(root))):
        full = os.path.join(root, p)
        if not os.path.islink(full):
            os.utime(full, ns=(1_234_567_890_123_456_789 + i,
                                1_300_000_000_000_000_001 + i * 1_000_000_007))
    os.utime(os.path.join(root, "a", "sym-abs"),
             ns=(5_000_000_000_000_000_005, 6_000_000_000_000_000_006), follow_symlinks=False)


def test_tree_survives_remounts(mnt):
    build_tree(mnt.path)
    before = snapshot(mnt.path)
    assert before["sparse"]["links"] == ["a/b/sparse-link2", "a/sparse-link", "sparse"]
    for _ in range(3):
        mnt.remount()
        after = snapshot(mnt.path)
        d = diff_snapshots(before, after)
        assert not d, "\n".join(d)


def test_rewritten_files_keep_their_times(mnt):
    """Files rewritten in place (O_TRUNC, appends, writes into the middle)
    show the same mtime and ctime before and after a remount: with the
    kernel's writeback cache the kernel keeps the times of writes and the
    daemon stores exactly those."""
    rnd = random.Random(5)
    for i in range(12):
        write_file(mnt.p("r%02d" % i), rnd.randbytes(rnd.choice([100, 5000, 70000])))
    time.sleep(0.05)
    for i in range(12):
        p = mnt.p("r%02d" % i)
        if i % 3 == 0:
            with open(p, "wb") as f:          # O_TRUNC rewrite
                f.write(rnd.randbytes(3000))
        elif i % 3 == 1:
            with open(p, "ab") as f:          # append
                f.write(rnd.randbytes(9000))
        else:
            with open(p, "r+b") as f:         # overwrite in the middle
                f.seek(50)
                f.write(b"middle")
    before = snapshot(mnt.path)
    mnt.remount()
    d = diff_snapshots(before, snapshot(mnt.path))
    assert not d, "\n".join(d)


def test_tree_survives_sigterm(mnt):
    build_tree(mnt.path, seed=7)
    before = snapshot(mnt.path)
    mnt.proc.send_signal(signal.SIGTERM)
    rc = mnt.proc.wait(timeout=30)
    assert rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, mnt.log())
    mnt.proc = None
    # The daemon unmounted on SIGTERM.
    for _ in range(100):
        from conftest import is_mounted
        if not is_mounted(mnt.path):
            break
        time.sleep(0.05)
    assert not is_mounted(mnt.path), "SIGTERM left the mount behind"
    mnt.start()
    d = diff_snapshots(before, snapshot(mnt.path))
    assert not d, "\n".join(d)


def test_writes_after_remount_extend_history(mnt):
    p = mnt.p("log")
    expect = b""
    for r in range(4):
        with open(p, "ab") as f:
            chunk = ("round %d\n" % r).encode() * 1000
            f.write(chunk)
            expect += chunk
        os.mkdir(mnt.p("dir%d" % r))
        mnt.remount()
        with open(p, "rb") as f:
            assert f.read() == expect
        assert sorted(os.listdir(mnt.path)) == ["dir%d" % i for i in range(r + 1)] + ["log"]


def test_inode_numbers_never_reused(mnt):
    seen = set()
    for r in range(3):
        for i in range(50):
            p = mnt.p("f%d" % i)
            write_file(p, b"")
            ino = os.stat(p).st_ino
            assert ino not in seen
            seen.add(ino)
            os.unlink(p)
        mnt.remount()
    assert os.stat(mnt.path).st_ino == 1


def test_store_refuses_second_daemon_and_bad_dirs(mnt, tmp_path):
    import subprocess
    from conftest import LSMFS_BIN, is_mounted
    other = tmp_path / "m2"
    other.mkdir()
    # The store is locked by the running daemon.
    r = subprocess.run([LSMFS_BIN, mnt.store, str(other), "-f"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode != 0
    assert not is_mounted(str(other))
    assert b"in use" in r.stderr, r.stderr
    # A directory holding other files is not a store.
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "hello.txt").write_text("hi")
    r = subprocess.run([LSMFS_BIN, str(junk), str(other), "-f"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 1 and b"not an lsmfs store" in r.stderr, r.stderr
    assert not is_mounted(str(other))
    assert sorted(os.listdir(junk)) == ["hello.txt"]
    # Missing mount point.
    r = subprocess.run([LSMFS_BIN, str(tmp_path / "s3"), str(tmp_path / "nomnt"), "-f"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 1, r.stderr
    # Non-empty mount point.
    (other / "x").write_text("x")
    r = subprocess.run([LSMFS_BIN, str(tmp_path / "s4"), str(other), "-f"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 1, r.stderr
    assert not is_mounted(str(other))


def test_mount_source_is_store_path(mnt):
    from conftest import mount_entry
    ent = mount_entry(mnt.path)
    assert ent[0] == os.path.realpath(mnt.store), ent
    assert ent[2] == "fuse.lsmfs"
    assert "default_permissions" in ent[3].split(",")


def test_help_and_version():
    import subprocess
    from conftest import LSMFS_BIN, _require_fuse
    _require_fuse()
    for flag in ("--help", "--version"):
        r = subprocess.run([LSMFS_BIN, flag], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        assert r.returncode == 0, (flag, r.stdout)
        assert r.stdout.strip(), flag
    r = subprocess.run([LSMFS_BIN], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    assert r.returncode != 0


def test_mount_fuse3_daemonizes(tmp_path):
    # What /etc/fstab does ("STORE MNT fuse.lsmfs defaults 0 0"): mount.fuse3
    # runs "lsmfs STORE MNT -o ..." without -f, so the daemon must detach.
    import shutil
    import subprocess
    from conftest import LSMFS_BIN, Mount, _require_fuse, is_mounted
    _require_fuse()
    if shutil.which("mount.fuse3") is None:
        pytest.skip("mount.fuse3 missing")
    os.chmod(tmp_path, 0o755)
    m = Mount(str(tmp_path))
    try:
        r = subprocess.run(["mount.fuse3", "%s#%s" % (LSMFS_BIN, m.store), m.path,
                            "-o", "defaults,nofail,max_write=131072"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert r.returncode == 0, r.stdout.decode()
        assert is_mounted(m.path)
        write_file(m.p("f"), b"via fstab")
    finally:
        for _ in range(50):
            if not is_mounted(m.path):
                break
            subprocess.run(["fusermount3", "-u", m.path], stderr=subprocess.DEVNULL)
            time.sleep(0.1)
        if is_mounted(m.path):
            subprocess.run(["fusermount3", "-u", "-z", m.path])
    # The detached daemon releases the store once unmounted: a foreground
    # mount of the same store succeeds within a few seconds.
    deadline = time.monotonic() + 15
    while True:
        try:
            m.start()
            break
        except RuntimeError as e:
            if time.monotonic() > deadline or "in use" not in str(e):
                raise
            time.sleep(0.2)
    try:
        with open(m.p("f"), "rb") as f:
            assert f.read() == b"via fstab"
    finally:
        assert m.unmount() == 0



def test_corrupt_store_is_refused_clearly(mnt):
    from conftest import is_mounted
    write_file(mnt.p("f"), b"data")
    assert mnt.unmount() == 0
    manifests = [n for n in os.listdir(mnt.store) if n.startswith("MANIFEST-")]
    assert manifests, os.listdir(mnt.store)
    path = os.path.join(mnt.store, sorted(manifests)[-1])
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        mid = len(data) // 2
        data[mid] ^= 0xFF
        f.seek(0)
        f.write(data)
    with pytest.raises(RuntimeError) as e:
        mnt.start(timeout=10)
    assert "corrupt" in str(e.value), str(e.value)
    assert not is_mounted(mnt.path)
    # Restoring the byte makes the store mountable again with its data.
    data[mid] ^= 0xFF
    with open(path, "r+b") as f:
        f.write(data)
    mnt.start()
    with open(mnt.p("f"), "rb") as f:
        assert f.read() == b"data"


def test_sigterm_with_open_directories(mnt):
    """Directories still open when the daemon is told to stop (the kernel
    never sends their release) are cleaned up: exit status 0, and under
    AddressSanitizer no leak."""
    os.mkdir(mnt.p("d"))
    for i in range(50):
        with open(mnt.p("d", "f%02d" % i), "w") as f:
            f.write("x")
    fds = [os.open(mnt.p("d"), os.O_RDONLY | os.O_DIRECTORY),
           os.open(mnt.path, os.O_RDONLY | os.O_DIRECTORY)]
    with os.scandir(fds[0]) as it:
        assert len([e.name for e in it]) == 50
    try:
        mnt.proc.send_signal(signal.SIGTERM)
        rc = mnt.proc.wait(timeout=30)
        assert rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, mnt.log())
        mnt.proc = None
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass  # ENOTCONN: the daemon is gone
    from conftest import is_mounted
    for _ in range(100):
        if not is_mounted(mnt.path):
            break
        time.sleep(0.05)
    assert not is_mounted(mnt.path)
    mnt.start()
    assert len(os.listdir(mnt.p("d"))) == 50
