"""Fixtures that mount lsmfs for real over FUSE.

Every test gets a fresh temporary directory holding store/ (the lsm store)
and mnt/ (the mount point) and a daemon started in the foreground:
    $LSMFS_BIN store mnt -f [-o opts]
The fixture waits until the mount shows up in /proc/self/mounts and, at
teardown, ALWAYS unmounts (fusermount3 -u, then -u -z) and waits for that
daemon to exit, killing only its own pid if it hangs. Tests that need a
fresh kernel view (persistence, crash) call Mount.remount() or
Mount.kill() + Mount.start().

The tests skip (with the reason) when /dev/fuse or the daemon is missing;
in the project both exist, so they must really run.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _find_bin():
    b = os.environ.get("LSMFS_BIN")
    if b:
        return b
    root = os.path.dirname(os.path.dirname(HERE))
    for d in ("build", "build-fs", "build-fst"):
        p = os.path.join(root, d, "fs", "lsmfs")
        if os.path.exists(p):
            return p
    return os.path.join(root, "build", "fs", "lsmfs")


LSMFS_BIN = _find_bin()


def _find_ctl_bin():
    b = os.environ.get("LSMFSCTL_BIN")
    if b:
        return b
    # Beside the daemon: <builddir>/fs/lsmfs -> <builddir>/tools/lsmfsctl.
    build = os.path.dirname(os.path.dirname(os.path.abspath(LSMFS_BIN)))
    return os.path.join(build, "tools", "lsmfsctl", "lsmfsctl")


LSMFSCTL_BIN = _find_ctl_bin()


def _unescape_mounts(s):
    # /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mount_entry(path):
    """The /proc/self/mounts line (split) for mount point `path`, or None."""
    path = os.path.realpath(path)
    found = None
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and _unescape_mounts(parts[1]) == path:
                found = parts  # the last one is the top of the stack
    return found


def is_mounted(path):
    return mount_entry(path) is not None


class Mount:
    """One lsmfs store and its mount point; at most one daemon at a time."""

    def __init__(self, base, opts=()):
        self.base = base
        self.store = os.path.join(base, "store")
        self.path = os.path.join(base, "mnt")
        self.opts = list(opts)
        self.proc = None
        self.log_path = os.path.join(base, "daemon.log")
        self.n_starts = 0
        os.makedirs(self.path, exist_ok=True)

    # --- lifecycle -------------------------------------------------------
    def start(self, opts=None, timeout=10.0):
        assert self.proc is None, "daemon already running"
        if opts is not None:
            self.opts = list(opts)
        args = [LSMFS_BIN, self.store, self.path, "-f"]
        if self.opts:
            args += ["-o", ",".join(self.opts)]
        self.n_starts += 1
        log = open(self.log_path, "ab")
        log.write(("=== start %d: %s\n" % (self.n_starts, " ".join(args))).encode())
        log.flush()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if is_mounted(self.path):
                return
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError("lsmfs exited with %d before mounting:\n%s"
                                   % (rc, self.log()))
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("lsmfs did not mount within %.0f s:\n%s"
                           % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def _fusermount(self, *flags):
        return subprocess.run(["fusermount3", "-u", *flags, self.path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=30)

    def unmount(self):
        """Unmount (lazily if busy) and wait for the daemon; kill it if stuck.
        Returns the daemon's exit status (None if there was none)."""
        for _ in range(20):
            if not is_mounted(self.path):
                break
            if self._fusermount().returncode == 0:
                break
            time.sleep(0.1)
        lazy = False
        if is_mounted(self.path):
            # Busy (a failing test leaked an fd): detach lazily; the daemon
            # then only exits once the last fd is closed, so do not wait long.
            self._fusermount("-z")
            lazy = True
        rc = None
        if self.proc is not None:
            try:
                rc = self.proc.wait(timeout=5 if lazy else 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # only our own daemon, by pid
                self.proc.wait(timeout=10)
                rc = ("killed: mount was busy at unmount (leaked fd?)" if lazy
                      else "killed: daemon hung after unmount")
            self.proc = None
        # A lazily detached mount may take a moment to leave the table.
        for _ in range(50):
            if not is_mounted(self.path):
                break
            time.sleep(0.05)
        return rc

    stop = unmount

    def remount(self, opts=None):
        rc = self.unmount()
        assert rc == 0, "daemon exit status %r at unmount:\n%s" % (rc, self.log())
        self.start(opts)

    def kill(self):
        """SIGKILL the daemon (a crash), then detach the dead mount."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        if is_mounted(self.path):
            self._fusermount("-z")
        for _ in range(100):
            if not is_mounted(self.path):
                break
            time.sleep(0.05)

    def p(self, *names):
        return os.path.join(self.path, *names)


def _require_fuse():
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing: FUSE tests cannot run here")
    if not os.access(LSMFS_BIN, os.X_OK):
        pytest.skip("lsmfs daemon not built: %s (set LSMFS_BIN)" % LSMFS_BIN)
    if shutil.which("fusermount3") is None:
        pytest.skip("fusermount3 missing (Debian package fuse3)")


def make_base():
    base = tempfile.mkdtemp(prefix="lsmfs-t-")
    # 0755 so that another uid can reach the mount point (test_perm).
    os.chmod(base, 0o755)
    return base


def _mount_fixture(opts):
    _require_fuse()
    base = make_base()
    m = Mount(base, opts)
    try:
        m.start()
        yield m
    finally:
        rc = m.unmount()
        still = is_mounted(m.path)
        if not still:
            shutil.rmtree(base, ignore_errors=True)
        assert not still, "mount left behind at %s" % m.path
        # A daemon that crashed during the test is reported here.
        assert rc in (0, None), "daemon exit status %r:\n%s" % (rc, m.log())


@pytest.fixture
def mnt():
    """A Mount with default options; .path is the mounted directory."""
    yield from _mount_fixture([])


@pytest.fixture(scope="module")
def mnt_shared():
    """One Mount for a whole test module (cases use their own subdirs)."""
    yield from _mount_fixture([])


@pytest.fixture
def mnt_other():
    """A Mount with -o allow_other so another uid can enter it."""
    yield from _mount_fixture(["allow_other"])


@pytest.fixture(scope="module")
def scratch():
    """A directory on the local disk (ext4 here) to compare behaviour with."""
    d = tempfile.mkdtemp(prefix="lsmfs-ref-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
