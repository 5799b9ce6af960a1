"""Permissions as an unprivileged uid on a mount with -o allow_other.

The daemon passes -o default_permissions, so the kernel checks modes; the
tests run small Python programs as uid/gid 65534 (nobody) and compare
their errno with the same program against a local-disk directory."""

import json
import os
import stat
import subprocess
import sys

import pytest

from fsutil import write_file

NOBODY = 65534
# The child must be able to run its interpreter as nobody (a pyenv under
# /root is not readable by it).
CHILD_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

CHILD = r"""
import errno, json, os, sys
root = sys.argv[1]
def o(fn, *a):
    try:
        r = fn(*a)
        return ["ok", r if isinstance(r, (int, str, list, type(None))) else None]
    except OSError as e:
        return ["err", errno.errorcode.get(e.errno, str(e.errno))]
def p(*n): return os.path.join(root, *n)
def creat(path, data=b"x"):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data); os.close(fd)
def append(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND); os.write(fd, b"+"); os.close(fd)
def read(path):
    with open(path, "rb") as f: return len(f.read())
out = {
  "list_private_dir": o(os.listdir, p("private")),
  "stat_in_private_dir": o(os.stat, p("private", "f")),
  "read_root_0600": o(read, p("secret")),
  "read_root_0644": o(read, p("public")),
  "write_root_0644": o(append, p("public")),
  "chmod_root_file": o(os.chmod, p("public"), 0o777),
  "chown_root_file": o(os.chown, p("public"), 65534, 65534),
  "utime_root_file": o(os.utime, p("public"), (1, 1)),
  "utime_now_root_file": o(os.utime, p("public")),
  "unlink_in_root_dir": o(os.unlink, p("public")),
  "create_in_root_dir": o(creat, p("mine")),
  "create_in_open_dir": o(creat, p("open", "mine")),
  "mkdir_in_open_dir": o(os.mkdir, p("open", "mydir")),
  "chmod_own_file": o(os.chmod, p("open", "mine"), 0o600),
  "chown_own_file_to_root": o(os.chown, p("open", "mine"), 0, 0),
  "setxattr_root_file": o(os.setxattr, p("public"), "user.x", b"1"),
  "setxattr_own_file": o(os.setxattr, p("open", "mine"), "user.x", b"1"),
  "trusted_xattr": o(os.setxattr, p("open", "mine"), "trusted.x", b"1"),
  "sticky_unlink_other": o(os.unlink, p("sticky", "roots")),
  "rename_in_root_dir": o(os.rename, p("public"), p("public2")),
  "exec_0644": o(os.access, p("public"), os.X_OK),
  "access_w": o(os.access, p("public"), os.W_OK),
  "truncate_root_file": o(os.truncate, p("public"), 0),
  "link_root_file": o(os.link, p("public"), p("open", "hl")),
  "owner_of_new": o(lambda: [os.stat(p("open", "mine")).st_uid, os.stat(p("open", "mine")).st_gid]),
}
json.dump(out, sys.stdout)
"""


def _demote():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _run_as_nobody(root):
    r = subprocess.run([CHILD_PY, "-c", CHILD, root], preexec_fn=_demote,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def _setup(root):
    os.mkdir(os.path.join(root, "private"), 0o700)
    write_file(os.path.join(root, "private", "f"), b"p")
    write_file(os.path.join(root, "secret"), b"s")
    os.chmod(os.path.join(root, "secret"), 0o600)
    write_file(os.path.join(root, "public"), b"pub")
    os.chmod(os.path.join(root, "public"), 0o644)
    os.mkdir(os.path.join(root, "open"))
    os.chmod(os.path.join(root, "open"), 0o777)
    os.mkdir(os.path.join(root, "sticky"))
    os.chmod(os.path.join(root, "sticky"), 0o1777)
    write_file(os.path.join(root, "sticky", "roots"), b"r")
    os.chmod(root, 0o755)


@pytest.fixture
def need_root():
    if os.getuid() != 0:
        pytest.skip("needs root to switch to uid 65534")


def test_unprivileged_uid_like_ext4(need_root, mnt_other, scratch):
    lroot = mnt_other.p("t")
    sroot = os.path.join(scratch, "perm")
    for r in (lroot, sroot):
        os.mkdir(r)
        _setup(r)
    got = _run_as_nobody(lroot)
    want = _run_as_nobody(sroot)
    # The headline cases of the permission model, stated explicitly.
    assert got["list_private_dir"] == ["err", "EACCES"]
    assert got["chmod_root_file"] == ["err", "EPERM"]
    diffs = {k: (got[k], want[k]) for k in want if got.get(k) != want[k]}
    assert not diffs, "lsmfs vs ext4 (lsmfs, ext4): %r" % diffs
    # What the child created belongs to it.
    st = os.stat(os.path.join(lroot, "open", "mine"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o600)
    mnt_other.remount()
    st = os.stat(os.path.join(lroot, "open", "mine"))
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


def test_other_uid_cannot_enter_without_allow_other(need_root, mnt):
    # Without allow_other, FUSE refuses every other uid (EACCES), root is
    # the mounter here so any other uid is refused.
    os.chmod(mnt.path, 0o777)
    r = subprocess.run([CHILD_PY, "-c",
                        "import os,sys\ntry:\n os.listdir(sys.argv[1]); print('ok')\n"
                        "except OSError as e: print(e.errno)", mnt.path],
                       preexec_fn=_demote, stdout=subprocess.PIPE, timeout=30)
    assert r.stdout.strip() == str(13).encode()  # EACCES


def test_write_by_other_uid_clears_setuid(need_root, mnt_other):
    # A write by a non-owner clears setuid on ext4; compare behaviour.
    d = mnt_other.p("w")
    os.mkdir(d)
    p = os.path.join(d, "f")
    write_file(p, b"x")
    os.chmod(p, 0o4777)
    r = subprocess.run([CHILD_PY, "-c",
                        "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND)\n"
                        "os.write(fd,b'y')\nos.close(fd)", p],
                       preexec_fn=_demote, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    with open(p, "rb") as f:
        assert f.read() == b"xy"
    assert not os.stat(p).st_mode & stat.S_ISUID
