"""The control socket (fs/CTL.md) and lsmfsctl's online commands.

- snapshot create/list/delete through lsmfsctl, checked against
  /.snapshots and the raw protocol; bad names change nothing;
- stats as text and as Prometheus exposition (parsed), compact while
  mounted and written;
- checkpoint and checkpoint-release over the raw socket, leftovers
  removed at mount;
- the errors a user meets: not a mount, not an lsmfs mount, a daemon that
  is gone, an unprivileged user (refused by the socket with EPERM);
- garbage on the socket (oversized line, bad encoding, unknown verb,
  other version, binary noise, clients that leave or stay silent): an
  error reply or a closed connection, and the daemon answers afterwards.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import LSMFSCTL_BIN, Mount, _require_fuse, is_mounted, make_base

NOBODY = 65534


@pytest.fixture(autouse=True)
def _need_ctl():
    if not os.access(LSMFSCTL_BIN, os.X_OK):
        pytest.skip("lsmfsctl not built: %s (set LSMFSCTL_BIN)" % LSMFSCTL_BIN)


def ctl(*args, user=None, check=None):
    cmd = [LSMFSCTL_BIN, *args]
    if user is not None:
        cmd = ["setpriv", "--reuid", str(user), "--regid", str(user),
               "--clear-groups", *cmd]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    r.out = r.stdout.decode(errors="replace")
    r.err = r.stderr.decode(errors="replace")
    if check is not None:
        assert r.returncode == check, (r.returncode, r.out, r.err)
    return r


def ctl_fails(*args, user=None):
    """lsmfsctl exits 2 with exactly one line on stderr; returns it."""
    r = ctl(*args, user=user)
    assert r.returncode == 2, (r.returncode, r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lsmfsctl: "), r.err
    return lines[0]


def enc(b):
    """Percent-encoding of fs/CTL.md."""
    if isinstance(b, str):
        b = b.encode()
    return "".join(chr(c) if 0x21 <= c <= 0x7E and c != 0x25 else "%%%02X" % c
                   for c in b)


def raw(m, data, shut=True, timeout=30):
    """Sends data on STORE/ctl.sock; returns everything read until EOF."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(os.path.join(m.store, "ctl.sock"))
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def call(m, verb, *args):
    line = " ".join(["lsmfsctl/1", verb] + [enc(a) for a in args]) + "\n"
    return raw(m, line.encode())


def snap_list(m):
    r = call(m, "snapshot-list")
    assert r.startswith(b"ok\n"), r
    rows = []
    for line in r[3:].decode().splitlines():
        sid, seq, created, excl, name = line.split(" ")
        rows.append((int(sid), int(seq), int(created), int(excl), name))
    return rows


def alive(m):
    r = call(m, "stats")
    assert r.startswith(b"ok\n"), r
    assert b"lsmfs_snapshots " in r
    with open(m.p("alive"), "wb") as f:
        f.write(b"still here")
    with open(m.p("alive"), "rb") as f:
        assert f.read() == b"still here"


# ---- snapshots ------------------------------------------------------------

def test_snapshot_create_list_delete(mnt):
    os.mkdir(mnt.p("d"))
    with open(mnt.p("d", "f"), "wb") as f:
        f.write(b"version 1")
    # Not fsynced: syncfs in `snapshot create` must bring it in.
    with open(mnt.p("big"), "wb") as f:
        f.write(os.urandom(3 << 20))
    r = ctl("snapshot", "create", mnt.path, "one", check=0)
    assert r.out == "one\n" and r.err == ""
    with open(mnt.p("d", "f"), "wb") as f:
        f.write(b"version 2")
    ctl("snapshot", "create", mnt.path, "two", check=0)

    with open(mnt.p(".snapshots", "one", "d", "f"), "rb") as f:
        assert f.read() == b"version 1"
    with open(mnt.p(".snapshots", "two", "d", "f"), "rb") as f:
        assert f.read() == b"version 2"
    assert os.path.getsize(mnt.p(".snapshots", "one", "big")) == 3 << 20
    assert sorted(os.listdir(mnt.p(".snapshots"))) == ["one", "two"]

    rows = snap_list(mnt)
    assert [r[4] for r in rows] == ["one", "two"]
    assert rows[0][0] < rows[1][0] and rows[0][1] <= rows[1][1]
    assert abs(rows[0][2] / 1e9 - time.time()) < 600

    r = ctl("snapshot", "list", mnt.path, check=0)
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "SPACE"]
    assert [l.split()[0] for l in lines[1:]] == ["one", "two"]
    for l in lines[1:]:
        name, created, num, unit = l.split()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", created)
        assert unit in ("B", "KiB", "MiB", "GiB") and float(num) >= 0
    # "one" alone holds the old content of d/f.
    space = {l.split()[0]: l.split()[2:] for l in lines[1:]}
    assert space["one"] != ["0", "B"]

    ctl("snapshot", "delete", mnt.path, "one", check=0)
    assert [r[4] for r in snap_list(mnt)] == ["two"]
    assert not os.path.exists(mnt.p(".snapshots", "one"))
    assert os.listdir(mnt.p(".snapshots")) == ["two"]
    # A new snapshot gets a new id, never a reused one.
    ctl("snapshot", "create", mnt.path, "one", check=0)
    ids = [r[0] for r in snap_list(mnt)]
    assert ids[-1] > max(rows[0][0], rows[1][0])


def test_snapshot_names(mnt):
    ctl("snapshot", "create", mnt.path, "keep", check=0)
    before = snap_list(mnt)
    bad = {
        "keep": "exists",
        "x" * 256: "longer than 255",
        "a/b": "bad snapshot name",
        "/": "bad snapshot name",
        ".": "bad snapshot name",
        "..": "bad snapshot name",
        "": "bad snapshot name",
    }
    for name, words in bad.items():
        line = ctl_fails("snapshot", "create", mnt.path, name)
        assert words in line, (name, line)
    line = ctl_fails("snapshot", "delete", mnt.path, "missing")
    assert "no snapshot" in line and "missing" in line
    assert snap_list(mnt) == before
    assert os.listdir(mnt.p(".snapshots")) == ["keep"]

    # Any other bytes are fine, and come back as they went in.
    odd = "with space %41 tab\there \u00e9t\u00e9 " + "y" * 200
    ctl("snapshot", "create", mnt.path, odd, check=0)
    assert snap_list(mnt)[-1][4] == enc(odd)
    assert sorted(os.listdir(mnt.p(".snapshots"))) == sorted(["keep", odd])
    r = ctl("snapshot", "list", mnt.path, check=0)
    assert "%09" in r.out  # the tab is shown encoded, not raw
    ctl("snapshot", "create", mnt.path, "x" * 255, check=0)
    ctl("snapshot", "delete", mnt.path, odd, check=0)
    assert [r[4] for r in snap_list(mnt)] == ["keep", "x" * 255]


def test_usage(mnt):
    r = ctl("--help", check=0)
    assert "snapshot create MOUNT NAME" in r.out and "check STORE" in r.out
    r = ctl("--version", check=0)
    assert r.out.startswith("lsmfsctl ")
    assert "unknown command" in ctl_fails("frobnicate")
    ctl_fails("snapshot")
    ctl_fails("snapshot", "create", mnt.path)
    ctl_fails("snapshot", "rename", mnt.path, "a", "b")
    ctl_fails("stats", mnt.path, "--format", "xml")
    ctl_fails("compact")
    assert ctl().returncode == 2


# ---- stats, compact -------------------------------------------------------

def parse_prometheus(text):
    """{name: (type, help, {labels: value})}; checks the format."""
    fams, cur = {}, None
    sample = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{level="(\d+)"\})? '
                        r'(\d+(\.\d+)?)')
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, help_ = line[7:].split(" ", 1)
            assert name not in fams, "family %s twice" % name
            fams[name] = [None, help_, {}]
            cur = name
        elif line.startswith("# TYPE "):
            name, typ = line[7:].split(" ")
            assert name == cur and typ in ("counter", "gauge", "untyped")
            fams[name][0] = typ
        else:
            m = sample.fullmatch(line)
            assert m, "bad sample line %r" % line
            assert m.group(1) == cur, "sample %s outside its family" % line
            assert fams[cur][0] is not None
            fams[cur][2][m.group(3)] = float(m.group(4))
    for name, (typ, _, _) in fams.items():
        assert name.startswith(("lsm_", "lsmfs_"))
        assert (typ == "counter") == name.endswith("_total"), name
    return fams


def test_stats(mnt):
    ctl("snapshot", "create", mnt.path, "s", check=0)
    with open(mnt.p("f"), "wb") as f:
        f.write(os.urandom(100_000))
        os.fsync(f.fileno())
    r = ctl("stats", mnt.path, check=0)
    assert "engine:" in r.out and "filesystem:" in r.out
    assert re.search(r"^  snapshots +1$", r.out, re.M)
    assert re.search(r"^  user_writes +\d+$", r.out, re.M)
    assert re.search(r"^  write_amplification +\d+\.\d{3}$", r.out, re.M)
    assert re.search(r"^  L0 +\d+ +\d+$", r.out, re.M)

    for args in (("--format", "prometheus"), ("--format=prometheus",)):
        r = ctl("stats", mnt.path, *args, check=0)
        fams = parse_prometheus(r.out)
        assert fams["lsmfs_snapshots"][0] == "gauge"
        assert fams["lsmfs_snapshots"][2] == {None: 1}
        assert fams["lsm_user_writes_total"][0] == "counter"
        assert fams["lsm_user_writes_total"][2][None] > 0
        assert fams["lsm_wal_syncs_total"][2][None] > 0
        assert fams["lsm_sst_bytes"][0] == "gauge"
        assert fams["lsmfs_space_reserve_bytes"][2][None] > 0
        assert set(fams["lsm_level_files"][2]) == {str(i) for i in range(7)}
        assert "lsm_write_amplification" in fams
        assert "lsmfs_ctl_requests_total" in fams
    # Text is the default and the same as --format text.
    assert ctl("stats", mnt.path, "--format", "text", check=0).out.startswith("engine:")


def test_compact_while_mounted(mnt):
    data = {}
    for i in range(60):
        data["f%02d" % i] = os.urandom(50_000)
        with open(mnt.p("f%02d" % i), "wb") as f:
            f.write(data["f%02d" % i])
    os.sync()
    for i in range(0, 60, 2):
        os.unlink(mnt.p("f%02d" % i))
        del data["f%02d" % i]
    ctl("snapshot", "create", mnt.path, "mid", check=0)
    for name in list(data)[:5]:
        with open(mnt.p(name), "r+b") as f:
            f.write(b"changed")
        data[name] = b"changed" + data[name][7:]
    ctl("compact", mnt.path, check=0)
    fams = parse_prometheus(ctl("stats", mnt.path, "--format", "prometheus",
                                check=0).out)
    files = fams["lsm_level_files"][2]
    assert files["0"] == 0 and sum(files.values()) > 0
    for name, want in data.items():
        with open(mnt.p(name), "rb") as f:
            assert f.read() == want
    assert sorted(os.listdir(mnt.path)) == sorted(data)
    assert len(os.listdir(mnt.p(".snapshots", "mid"))) == 30
    mnt.remount()
    for name, want in data.items():
        with open(mnt.p(name), "rb") as f:
            assert f.read() == want


# ---- checkpoints ----------------------------------------------------------

def test_checkpoint(mnt):
    with open(mnt.p("f"), "wb") as f:
        f.write(b"in the checkpoint")
    ctl("snapshot", "create", mnt.path, "s", check=0)
    sid, seq, created = snap_list(mnt)[0][:3]
    r = call(mnt, "checkpoint", "s")
    assert r.startswith(b"ok\n"), r
    path, ids, ident = r[3:].decode().split("\n")[:3]
    assert os.path.dirname(path) == os.path.join(mnt.store, "checkpoints")
    assert os.path.basename(path).startswith("ckpt-")
    assert ids == "%d %d %d" % (sid, seq, created)
    with open(os.path.join(mnt.store, "IDENTITY")) as f:
        assert f.read().strip() == ident
    assert re.fullmatch(r"[0-9a-f]{32}", ident)
    names = os.listdir(path)
    assert "CURRENT" in names and "IDENTITY" in names
    assert any(n.endswith(".sst") for n in names)
    # A second one is another directory.
    r2 = call(mnt, "checkpoint", "s")
    path2 = r2[3:].decode().split("\n")[0]
    assert path2 != path and os.path.isdir(path2)

    assert call(mnt, "checkpoint", "nope").startswith(b"error 2 ")
    for bad in ("/etc", path + "/..", path + "/CURRENT",
                os.path.join(mnt.store, "checkpoints"),
                os.path.join(mnt.store, "checkpoints", "x"),
                os.path.join(mnt.store, "checkpoints", "ckpt-"),
                os.path.join(mnt.store, "CURRENT"), "relative"):
        assert call(mnt, "checkpoint-release", bad).startswith(b"error 22 "), bad
    assert os.path.isdir(path)
    assert call(mnt, "checkpoint-release", path) == b"ok\n"
    assert not os.path.exists(path)
    assert call(mnt, "checkpoint-release", path).startswith(b"error 2 ")
    # The checkpoint of path2 is a store of its own: check it offline.
    r = ctl("check", path2, check=0)
    assert "no problems" in r.out
    # Leftovers go at the next mount; the engine's files stay.
    os.mkdir(os.path.join(mnt.store, "checkpoints", "ckpt-stale"))
    mnt.remount()
    assert os.listdir(os.path.join(mnt.store, "checkpoints")) == []
    with open(mnt.p("f"), "rb") as f:
        assert f.read() == b"in the checkpoint"
    assert [r[4] for r in snap_list(mnt)] == ["s"]


# ---- finding the daemon ---------------------------------------------------

def test_not_an_lsmfs_mount(mnt, tmp_path):
    line = ctl_fails("stats", str(tmp_path))
    assert "not a mount point" in line
    line = ctl_fails("stats", "/")
    assert "not an lsmfs mount" in line
    line = ctl_fails("stats", str(tmp_path / "missing"))
    assert "No such file" in line
    os.mkdir(mnt.p("sub"))
    line = ctl_fails("snapshot", "create", mnt.p("sub"), "x")
    assert "inside the lsmfs mount" in line
    assert snap_list(mnt) == []
    line = ctl_fails("compact", os.path.join(mnt.store))
    assert "not a mount point" in line


def test_daemon_gone(mnt):
    ctl("snapshot", "create", mnt.path, "before", check=0)
    # SIGKILL: the dead mount stays in the table, the socket file stays.
    mnt.proc.send_signal(signal.SIGKILL)
    mnt.proc.wait(timeout=10)
    mnt.proc = None
    try:
        assert os.path.exists(os.path.join(mnt.store, "ctl.sock"))
        line = ctl_fails("snapshot", "list", mnt.path)
        assert "daemon is not running" in line
    finally:
        mnt._fusermount("-z")
        for _ in range(100):
            if not is_mounted(mnt.path):
                break
            time.sleep(0.05)
    assert "not a mount point" in ctl_fails("stats", mnt.path)
    # A new daemon replaces the stale socket.
    mnt.start()
    assert stat.S_IMODE(os.stat(os.path.join(mnt.store, "ctl.sock")).st_mode) == 0o600
    assert [r[4] for r in snap_list(mnt)] == ["before"]
    # Cleanly unmounted: the socket is gone.
    assert mnt.unmount() == 0
    assert not os.path.exists(os.path.join(mnt.store, "ctl.sock"))
    assert "not a mount point" in ctl_fails("stats", mnt.path)
    mnt.start()


def test_long_store_path():
    # STORE/ctl.sock longer than sun_path: reached through /proc/self/fd.
    _require_fuse()
    base = make_base()
    m = Mount(os.path.join(base, "x" * 100, "y" * 100))
    rc = None
    try:
        m.start()
        assert len(os.path.join(m.store, "ctl.sock")) > 108
        ctl("snapshot", "create", m.path, "long", check=0)
        assert os.listdir(m.p(".snapshots")) == ["long"]
        assert "long" in ctl("snapshot", "list", m.path, check=0).out
    finally:
        rc = m.unmount()
        shutil.rmtree(base, ignore_errors=True)
    assert rc == 0


NOBODY_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b"lsmfsctl/1 snapshot-create evil\n")
except BrokenPipeError:
    pass  # refused and closed before our line went out
out = b""
while True:
    try:
        d = s.recv(4096)
    except ConnectionResetError:
        break
    if not d:
        break
    out += d
sys.stdout.write(out.decode())
"""


def test_unprivileged_user_refused(mnt):
    if os.getuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    # The store directory (0700) already keeps other users out.
    line = ctl_fails("snapshot", "create", mnt.path, "evil", user=NOBODY)
    assert "permission denied" in line
    # Open the way to the socket: SO_PEERCRED must still refuse.
    sock = os.path.join(mnt.store, "ctl.sock")
    os.chmod(mnt.store, 0o755)
    os.chmod(sock, 0o666)
    try:
        r = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid",
                            str(NOBODY), "--clear-groups", "/usr/bin/python3",
                            "-c", NOBODY_CLIENT, sock],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        assert r.stdout.startswith(b"error 1 permission denied"), r
        assert r.stdout.count(b"\n") == 1
        line = ctl_fails("snapshot", "list", mnt.path, user=NOBODY)
        assert "permission denied" in line and "65534" in line
    finally:
        os.chmod(mnt.store, 0o700)
    assert snap_list(mnt) == []
    fams = parse_prometheus(ctl("stats", mnt.path, "--format", "prometheus",
                                check=0).out)
    assert fams["lsmfs_ctl_refused_total"][2][None] == 2


# ---- garbage on the socket ------------------------------------------------

def test_garbage_requests(mnt):
    cases = [
        (b"x" * 70_000, b"error 90 "),                       # no newline
        (b"lsmfsctl/1 stats " + b"a" * 70_000 + b"\n", b"error 90 "),
        (b"lsmfsctl/2 stats\n", b"error 95 "),
        (b"LSMFSCTL/1 stats\n", b"error 95 "),
        (b"\n", b"error 95 "),
        (b"lsmfsctl/1\n", b"error 22 "),
        (b"lsmfsctl/1 frobnicate\n", b"error 22 unknown verb"),
        (b"lsmfsctl/1 stats extra\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a b\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-list nospace\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a%2\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a%zz\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a%00b\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a\xffb\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a\tb\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-create a\r\n", b"error 22 "),
        (b"lsmfsctl/1  stats\n", b"error 22 "),
        (b"lsmfsctl/1 stats \n", b"error 22 "),
        (b"lsmfsctl/1 " + b"stats " * 20 + b"\n", b"error 22 "),
        (b"lsmfsctl/1 stats\x00\n", b"error 22 "),
        (b"lsmfsctl/1 snapshot-delete " + b"%41" * 21000 + b"\n", b"error "),
        (b"lsmfsctl/1 checkpoint-release " + b"/" * 60000 + b"\n", b"error 22 "),
        (b"lsmfsctl/1 stats", b"error 22 "),                  # EOF, no newline
    ]
    for req, want in cases:
        r = raw(mnt, req)
        assert r.startswith(want), (req[:60], r)
        assert r.count(b"\n") == 1, r
    for seed in range(20):
        noise = os.urandom(1 + seed * 997)
        r = raw(mnt, noise + (b"\n" if seed % 2 else b""))
        assert r == b"" or (r.startswith(b"error ") and r.count(b"\n") == 1), r
    # A line of exactly 65536 bytes, newline included, is read.
    head = b"lsmfsctl/1 snapshot-delete "
    r = raw(mnt, head + b"n" * (65535 - len(head)) + b"\n")
    assert r.startswith(b"error ") and not r.startswith(b"error 90 "), r
    assert snap_list(mnt) == []
    alive(mnt)


def test_clients_that_leave(mnt):
    # Half a request, then gone (no shutdown, just close).
    for part in (b"lsmfsctl/1 snap", b"", b"lsmfsctl/1 stats"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(mnt.store, "ctl.sock"))
        s.sendall(part)
        s.close()
    # A client that never reads its (large) reply.
    for i in range(40):
        ctl("snapshot", "create", mnt.path, "s%02d-" % i + "n" * 200, check=0)
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(mnt.store, "ctl.sock"))
    s.sendall(b"lsmfsctl/1 snapshot-list\n")
    s.close()
    alive(mnt)
    assert len(snap_list(mnt)) == 40


def test_silent_client_dropped(mnt):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(os.path.join(mnt.store, "ctl.sock"))
    s.sendall(b"lsmfsctl/1 st")  # ... and nothing more
    r = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        r += d
    s.close()
    assert r.startswith(b"error 110 "), r
    alive(mnt)
