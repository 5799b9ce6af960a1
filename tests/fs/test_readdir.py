"""readdir on big directories and under concurrent change: every entry
exactly once."""

import collections
import os
import threading
import time

import pytest

from fsutil import write_file

N_BIG = 100_000


def test_hundred_thousand_entries(mnt):
    d = mnt.p("big")
    os.mkdir(d)
    for i in range(N_BIG):
        os.close(os.open(os.path.join(d, "entry-%06d" % i),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    names = os.listdir(d)
    assert len(names) == N_BIG, "listed %d entries" % len(names)
    assert set(names) == {"entry-%06d" % i for i in range(N_BIG)}
    assert os.stat(d).st_nlink == 2
    # The same after a remount, through scandir (readdirplus path).
    mnt.remount()
    with os.scandir(d) as it:
        seen = [e.name for e in it if e.is_file(follow_symlinks=False)]
    assert len(seen) == N_BIG and len(set(seen)) == N_BIG
    # Removing every 10th entry and listing again.
    for i in range(0, N_BIG, 10):
        os.unlink(os.path.join(d, "entry-%06d" % i))
    names = os.listdir(d)
    assert len(names) == N_BIG - N_BIG // 10
    assert set(names) == {"entry-%06d" % i for i in range(N_BIG) if i % 10}


@pytest.mark.parametrize("size", [0, 1 << 30], ids=["empty", "sparse1G"])
def test_unlink_many_files(mnt, size):
    # 16,000 files removed one by one, empty ones and sparse 1 GiB ones
    # (whose blocks the daemon drops with one range delete each): every
    # unlink works and the directory ends empty. Whether the cost per
    # unlink stays flat is measured by tools/bench-fs (rm -rf), not here:
    # tests do not time things.
    d = mnt.p("del")
    os.mkdir(d)
    n = 16_000
    for i in range(n):
        fd = os.open(os.path.join(d, "e%06d" % i), os.O_WRONLY | os.O_CREAT, 0o644)
        if size:
            os.ftruncate(fd, size)
        os.close(fd)
    for i in range(n):
        if i % 4000 == 0 and i:
            # the files not yet removed are intact
            st = os.stat(os.path.join(d, "e%06d" % i))
            assert st.st_size == size
        os.unlink(os.path.join(d, "e%06d" % i))
    assert os.listdir(d) == []


@pytest.mark.parametrize("opts", [[], ["no_readdirplus"]], ids=["readdirplus", "readdir"])
def test_readdir_during_concurrent_changes(mnt, opts):
    if opts:
        mnt.remount(opts)
    d = mnt.p("busy")
    os.mkdir(d)
    keep = {"keep-%05d" % i for i in range(5000)}
    for n in keep:
        os.close(os.open(os.path.join(d, n), os.O_WRONLY | os.O_CREAT, 0o644))
    stop = threading.Event()
    errors = []

    progress = [0]

    def churn():
        i = 0
        try:
            while not stop.is_set():
                p = os.path.join(d, "tmp-%07d" % i)
                write_file(p, b"")
                if i >= 10 and (i - 10) % 7 != 0:
                    os.unlink(os.path.join(d, "tmp-%07d" % (i - 10)))
                if i % 7 == 0:
                    os.rename(p, os.path.join(d, "ren-%07d" % i))
                    os.unlink(os.path.join(d, "ren-%07d" % i))
                i += 1
                progress[0] = i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=churn)
    t.start()
    while progress[0] < 20 and t.is_alive():
        time.sleep(0.01)
    try:
        n_lists, t_end = 0, time.monotonic() + 20
        # At least 8 listings, and keep listing while the churn is young.
        while n_lists < 8 or (progress[0] < 300 and time.monotonic() < t_end):
            n_lists += 1
            names = os.listdir(d)
            counts = collections.Counter(names)
            dups = [n for n, c in counts.items() if c > 1]
            assert not dups, "listed more than once: %r" % dups[:10]
            missing = keep - set(names)
            assert not missing, "untouched entries missing: %r" % sorted(missing)[:10]
            others = [n for n in names if n not in keep]
            assert all(n.startswith(("tmp-", "ren-")) for n in others)
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors
    assert progress[0] > 50, "the churn thread barely ran: %d" % progress[0]


def test_readdir_rewind_sees_new_entries(mnt):
    d = mnt.p("rw")
    os.mkdir(d)
    for i in range(300):
        write_file(os.path.join(d, "a%03d" % i), b"")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # os.scandir on an fd rewinds to offset 0 each time.
        first = sorted(e.name for e in os.scandir(fd))
        write_file(os.path.join(d, "zz-new"), b"")
        os.unlink(os.path.join(d, "a000"))
        second = sorted(e.name for e in os.scandir(fd))
    finally:
        os.close(fd)
    assert len(first) == 300
    assert "zz-new" in second and "a000" not in second
    assert len(second) == 300
