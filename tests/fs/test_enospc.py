"""lsmfs on a full disk: adds fail with ENOSPC (never EIO) once the store's
filesystem is down to the reserve, nothing fsynced is lost, the daemon keeps
serving, and deleting files lets writes succeed again (fs/space.c).

The store lives on a small tmpfs (96 MiB) mounted for the test and always
unmounted at teardown; needs root (mount -t tmpfs) and /dev/fuse.
"""

import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import LSMFS_BIN, Mount, _require_fuse, is_mounted, make_base

MIB = 1 << 20
DISK_MIB = 96
# Default reserve on a 96 MiB disk: max(64 MiB, 2%) = 64 MiB.
RESERVE_MIB = 64


def _digest(b):
    return hashlib.sha256(b).hexdigest()


def _write_file(path, data):
    """Create path with data and fsync it; OSError on any failure (the fd
    is closed either way)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def small_disk():
    """A Mount whose store is on a fresh 96 MiB tmpfs (not yet started)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    _require_fuse()
    base = make_base()
    disk = os.path.join(base, "disk")
    os.mkdir(disk)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % DISK_MIB,
                        "tmpfs", disk], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("cannot mount a tmpfs: %s" % r.stdout.decode().strip())
    m = Mount(base)
    m.store = os.path.join(disk, "store")
    try:
        yield m
    finally:
        rc = m.unmount()
        subprocess.run(["umount", disk])
        if is_mounted(disk):
            subprocess.run(["umount", "-l", disk])
        left = is_mounted(m.path) or is_mounted(disk)
        if not left:
            shutil.rmtree(base, ignore_errors=True)
        assert not left, "mount left behind under %s" % base
        assert rc in (0, None), "daemon exit status %r:\n%s" % (rc, m.log())


def test_full_disk_enospc_keeps_data_and_deleting_frees(small_disk):
    m = small_disk
    m.start()
    sv = os.statvfs(m.path)
    # statfs hides the reserve: at most disk - reserve is available.
    assert sv.f_bavail * sv.f_frsize <= (DISK_MIB - RESERVE_MIB) * MIB

    # 1. Fill: 1 MiB files, each fsynced, until ENOSPC.
    kept = {}  # name -> digest of every file whose fsync succeeded
    err = None
    for i in range(DISK_MIB + 8):
        name = "f%03d" % i
        data = os.urandom(MIB)  # incompressible
        try:
            _write_file(m.p(name), data)
        except OSError as e:
            err = e
            failed = name
            break
        kept[name] = _digest(data)
    assert err is not None, "no error after writing %d MiB" % len(kept)
    assert err.errno == errno.ENOSPC, "got %r, not ENOSPC" % err
    # The reserve was kept: about disk - reserve was written, not more.
    assert 8 <= len(kept) <= DISK_MIB - RESERVE_MIB, len(kept)

    # 2. Full, the daemon still serves reads, listings and removals; adds
    # fail with ENOSPC.
    names = set(os.listdir(m.path))
    assert set(kept) <= names
    for name, d in kept.items():
        assert _digest(_read(m.p(name))) == d, name
    # Less than 1 MiB of headroom is left: small adds eat it up, then fail.
    dirs = []
    for i in range(20000):
        try:
            os.mkdir(m.p("d%05d" % i))
        except OSError as e:
            assert e.errno == errno.ENOSPC, "got %r, not ENOSPC" % e
            break
        dirs.append("d%05d" % i)
    else:
        pytest.fail("20000 mkdirs on a full disk did not fail")
    with pytest.raises(OSError) as ei:
        os.symlink("target", m.p("newlink"))
    assert ei.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as ei:
        os.rename(m.p(sorted(kept)[0]), m.p("renamed"))
    assert ei.value.errno == errno.ENOSPC
    for d in dirs:
        os.rmdir(m.p(d))  # rmdir works when full
    if os.path.exists(m.p(failed)):
        os.truncate(m.p(failed), 0)  # truncate down works when full
        os.unlink(m.p(failed))  # and so does unlink
    assert not os.path.exists(m.p(failed))
    # statfs reports the disk's free space minus the reserve. Blob files
    # and WALs reserve their space ahead in 4 MiB steps and give back the
    # unused tail when closed, so a few MiB may come back after the fill.
    sv = os.statvfs(m.path)
    dv = os.statvfs(os.path.dirname(m.store))
    disk_avail = dv.f_bavail * dv.f_frsize
    avail = sv.f_bavail * sv.f_frsize
    assert disk_avail < (RESERVE_MIB + 16) * MIB, disk_avail
    assert abs(avail - (disk_avail - RESERVE_MIB * MIB)) <= MIB, (avail,
                                                                  disk_avail)

    # 3. Remount: every fsynced file intact (read from the store now).
    m.remount()
    assert set(os.listdir(m.path)) == set(kept)
    for name, d in kept.items():
        assert _digest(_read(m.p(name))) == d, name

    # 4. Delete all but three; new writes succeed again within ~20 s.
    keep3 = sorted(kept)[:3]
    for name in sorted(kept)[3:]:
        os.unlink(m.p(name))
    deadline = time.monotonic() + 20
    n_new, attempts = 0, 0
    while n_new < 8:
        attempts += 1
        name = "new%03d" % attempts
        data = os.urandom(MIB)
        try:
            _write_file(m.p(name), data)
        except OSError as e:
            assert e.errno == errno.ENOSPC, "got %r, not ENOSPC" % e
            if os.path.exists(m.p(name)):
                os.unlink(m.p(name))
            assert time.monotonic() < deadline, (
                "writes still fail with ENOSPC 20 s after deleting "
                "%d MiB (wrote %d MiB since)" % (len(kept) - 3, n_new))
            time.sleep(0.2)
            continue
        kept_new = _digest(data)
        assert _digest(_read(m.p(name))) == kept_new
        n_new += 1
    for name in keep3:
        assert _digest(_read(m.p(name))) == kept[name], name
    sv = os.statvfs(m.path)
    assert sv.f_bavail * sv.f_frsize >= 4 * MIB, "space did not come back"


@pytest.mark.parametrize("value", ["12Q", "-5", "", "lots", "1.5G",
                                   "99999999999999999999", "64MB"])
def test_bad_reserve_refused(value):
    if not os.access(LSMFS_BIN, os.X_OK):
        pytest.skip("lsmfs daemon not built: %s" % LSMFS_BIN)
    base = tempfile.mkdtemp(prefix="lsmfs-t-")
    try:
        mnt = os.path.join(base, "mnt")
        os.mkdir(mnt)
        r = subprocess.run([LSMFS_BIN, os.path.join(base, "store"), mnt, "-f",
                            "-o", "reserve=" + value],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10)
        assert r.returncode != 0
        msg = r.stderr.decode()
        assert "bad reserve '%s'" % value in msg, msg
        assert "byte count" in msg, msg
        assert not is_mounted(mnt)
        assert not os.path.exists(os.path.join(base, "store"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_good_reserve_accepted_and_reported(small_disk):
    """-o reserve=16M: statfs reports disk - 16 MiB at most, and writes
    go on past the default reserve's limit."""
    m = small_disk
    m.start(["reserve=16M"])
    sv = os.statvfs(m.path)
    avail = sv.f_bavail * sv.f_frsize
    assert (DISK_MIB - RESERVE_MIB) * MIB < avail <= (DISK_MIB - 16) * MIB
    for i in range(DISK_MIB - RESERVE_MIB + 4):
        _write_file(m.p("g%03d" % i), os.urandom(MIB))
