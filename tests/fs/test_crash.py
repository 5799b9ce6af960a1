"""Crash: SIGKILL the daemon in the middle of a write-heavy workload, detach
the dead mount, remount the same store and check that
1. the tree is consistent: every dirent leads to an inode that stat and a
   full read (regular files: exactly st_size bytes) accept;
2. every file whose fsync returned before the kill has exactly its content
   (also through the write-to-temp + fsync + rename pattern), an append log
   holds at least its fsynced prefix, and every mkdir that returned exists
   (the daemon acknowledged it, and SIGKILL loses nothing acknowledged);
3. with -o no_writeback_cache every write() that returned is acknowledged
   by the daemon, so every completed file has its content even unsynced."""

import hashlib
import os
import random
import threading
import time

import pytest

from fsutil import counts_live_inodes, read_file

STREAM_PIECE = 3000


def _log_piece(j):
    return (("%08d|" % j) * (STREAM_PIECE // 9 + 1))[:STREAM_PIECE].encode()


class Workload:
    def __init__(self, root, seed, write_through, round_no=0):
        self.root = root
        self.round_no = round_no
        self.rnd = random.Random(seed)
        self.write_through = write_through
        self.durable = {}      # relpath -> sha256 (fsync returned)
        self.completed = {}    # relpath -> sha256 (close returned)
        self.dirs = set()      # relpaths of mkdirs that returned
        self.log_synced = 0    # bytes of log known fsynced
        self.stop = threading.Event()
        self.errors = []

    def _writer(self, k):
        rnd = random.Random(self.rnd.random())
        d = os.path.join(self.root, "w%d" % k)
        try:
            os.makedirs(d, exist_ok=True)
            i = 0
            while not self.stop.is_set():
                rel = "w%d/f%05d" % (k, i)
                data = rnd.randbytes(rnd.choice([100, 4096, 5000, 70_000, 300_000]))
                mode = i % 3
                target = os.path.join(self.root, rel)
                tmp = target + ".tmp" if mode == 2 else target
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                for off in range(0, len(data), 65536):
                    os.write(fd, data[off:off + 65536])
                if mode >= 1:
                    os.fsync(fd)
                os.close(fd)
                if mode == 2:
                    os.rename(tmp, target)
                    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
                    os.fsync(dfd)
                    os.close(dfd)
                h = hashlib.sha256(data).hexdigest()
                if mode >= 1:
                    self.durable[rel] = h
                self.completed[rel] = h
                # Overwrite-in-place of every other older unsynced file
                # (noise; the rest keep their completed content).
                if i > 5 and mode == 0:
                    old = os.path.join(self.root, "w%d/f%05d" % (k, i - 3))
                    if (i - 3) % 6 == 0:
                        # Forget it first: the kill may land mid-write.
                        self.completed.pop("w%d/f%05d" % (k, i - 3), None)
                        fd = os.open(old, os.O_WRONLY)
                        os.pwrite(fd, b"noise" * 100, rnd.randrange(0, 4096))
                        os.close(fd)
                i += 1
        except OSError as e:
            if not self.stop.is_set():
                self.errors.append(e)

    def _logger(self):
        p = os.path.join(self.root, "log")
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            j, n = 0, 0
            while not self.stop.is_set():
                os.write(fd, _log_piece(j))
                j += 1
                n += STREAM_PIECE
                if j % 4 == 0:
                    os.fsync(fd)
                    self.log_synced = n
        except OSError as e:
            if not self.stop.is_set():
                self.errors.append(e)

    def _mkdirs(self):
        try:
            i = 0
            while not self.stop.is_set():
                rel = "dirs%d/d%05d" % (self.round_no, i)
                os.makedirs(os.path.join(self.root, rel))
                self.dirs.add(rel)
                i += 1
        except OSError as e:
            if not self.stop.is_set():
                self.errors.append(e)

    def run_until_killed(self, mnt, seconds):
        ts = [threading.Thread(target=self._writer, args=(k,)) for k in range(4)]
        ts.append(threading.Thread(target=self._logger))
        ts.append(threading.Thread(target=self._mkdirs))
        for t in ts:
            t.start()
        time.sleep(seconds)
        # Mark stop first so the threads treat ENOTCONN as the crash.
        self.stop.set()
        mnt.kill()
        for t in ts:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in ts), "workload hung after the kill"
        assert not self.errors, "errors before the kill: %r" % self.errors


def _raise(e):
    raise e


def check_consistent(root):
    n = 0
    for dirpath, dirnames, filenames in os.walk(root, onerror=_raise):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            n += 1
            if os.path.islink(p):
                os.readlink(p)
            elif os.path.isfile(p):
                data = read_file(p)
                assert len(data) == st.st_size, "%s: read %d, st_size %d" % (p, len(data), st.st_size)
                assert st.st_nlink >= 1
    return n


@pytest.mark.parametrize("opts", [[], ["no_writeback_cache"]], ids=["writeback", "writethrough"])
def test_sigkill_during_writes(mnt, opts):
    if opts:
        mnt.remount(opts)
    write_through = bool(opts)
    for rnd in range(2):
        w = Workload(mnt.path, seed=1000 + rnd, write_through=write_through,
                     round_no=rnd)
        w.run_until_killed(mnt, 2.0 + rnd)
        assert w.durable, "workload made no progress before the kill"
        mnt.start()
        assert check_consistent(mnt.path) > 0
        for rel, h in w.durable.items():
            p = os.path.join(mnt.path, rel)
            assert os.path.exists(p), "fsynced file lost: %s" % rel
            assert hashlib.sha256(read_file(p)).hexdigest() == h, "fsynced content wrong: %s" % rel
        log = read_file(os.path.join(mnt.path, "log"))
        assert len(log) >= w.log_synced, (len(log), w.log_synced)
        want = b"".join(_log_piece(j) for j in range(len(log) // STREAM_PIECE + 1))
        assert log[:w.log_synced] == want[:w.log_synced], "fsynced log prefix differs"
        if write_through:
            assert log == want[:len(log)], "log is not a prefix of what was appended"
        else:
            # Unsynced pages still in the kernel's writeback cache die with
            # the daemon: beyond the synced prefix a piece is either intact
            # or zeros (a hole), never other bytes.
            for off in range(w.log_synced, len(log), STREAM_PIECE):
                got, exp = log[off:off + STREAM_PIECE], want[off:off + STREAM_PIECE]
                assert all(g == e or g == 0 for g, e in zip(got, exp)), \
                    "log bytes at %d are neither the appended data nor zeros" % off
        for rel in w.dirs:
            assert os.path.isdir(os.path.join(mnt.path, rel)), "acknowledged mkdir lost: %s" % rel
        if write_through:
            for rel, h in w.completed.items():
                p = os.path.join(mnt.path, rel)
                assert os.path.exists(p), "acknowledged file lost: %s" % rel
                assert hashlib.sha256(read_file(p)).hexdigest() == h, \
                    "acknowledged (write-through) content wrong: %s" % rel
        # Next round starts from a clean slate of the same store.
        for k in range(4):
            d = os.path.join(mnt.path, "w%d" % k)
            if os.path.isdir(d):
                for n in os.listdir(d):
                    os.unlink(os.path.join(d, n))
        os.unlink(os.path.join(mnt.path, "log"))
    # A final clean unmount and remount after the crashes.
    mnt.remount()
    assert check_consistent(mnt.path) > 0


def test_sigkill_with_orphans(mnt):
    # Open-unlinked files at the time of the crash are swept at mount.
    p = mnt.p("keep")
    with open(p, "wb") as f:
        f.write(b"keep")
        f.flush()
        os.fsync(f.fileno())
    fds = []
    for i in range(20):
        q = mnt.p("orph%d" % i)
        fd = os.open(q, os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 100_000)
        os.fsync(fd)
        os.unlink(q)
        fds.append(fd)
    sv = os.statvfs(mnt.path)
    used_with_orphans = sv.f_files - sv.f_ffree
    mnt.kill()
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    mnt.start()
    assert os.listdir(mnt.path) == ["keep"]
    assert read_file(p) == b"keep"
    sv = os.statvfs(mnt.path)
    used = sv.f_files - sv.f_ffree
    if counts_live_inodes(mnt):
        # Inodes are counted: the 20 orphans are gone.
        assert used_with_orphans - used == 20, (used_with_orphans, used)
    mnt.remount()
    assert read_file(p) == b"keep"
