"""Applications on lsmfs: git (init, add, commit, status, fsck, clone) and
SQLite through Python's sqlite3 (transactions, rollback, rollback-journal
and WAL modes), each read back after a remount."""

import os
import shutil
import sqlite3
import subprocess

import pytest

from fsutil import write_file

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
               GIT_CONFIG_NOSYSTEM="1", HOME="/nonexistent", GIT_CONFIG_GLOBAL="/dev/null")


def git(cwd, *args):
    r = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, "git %s: %s" % (" ".join(args), r.stderr.decode())
    return r.stdout.decode()


@pytest.fixture
def need_git():
    if shutil.which("git") is None:
        pytest.skip("git not installed (tools/deps.sh installs it)")


def test_git_repository(need_git, mnt):
    repo = mnt.p("repo")
    os.mkdir(repo)
    git(repo, "init", "-q", "-b", "main")
    for i in range(30):
        d = os.path.join(repo, "dir%d" % (i % 4))
        os.makedirs(d, exist_ok=True)
        write_file(os.path.join(d, "file%d.txt" % i), ("line %d\n" % i).encode() * (i * 50 + 1))
    os.symlink("dir0/file0.txt", os.path.join(repo, "link"))
    os.chmod(os.path.join(repo, "dir1", "file1.txt"), 0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    assert git(repo, "status", "--porcelain") == ""
    with open(os.path.join(repo, "dir2", "file2.txt"), "ab") as f:
        f.write(b"changed\n")
    os.rename(os.path.join(repo, "dir3", "file3.txt"), os.path.join(repo, "moved.txt"))
    st = git(repo, "status", "--porcelain")
    assert " M dir2/file2.txt" in st and "D dir3/file3.txt" in st and "?? moved.txt" in st
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "second")
    git(repo, "gc", "-q")  # packs objects: big writes, renames, unlinks
    mnt.remount()
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "fsck", "--full", "--strict")
    log = git(repo, "log", "--format=%s")
    assert log.split() == ["second", "first"]
    git(mnt.path, "clone", "-q", repo, "clone")
    assert git(mnt.p("clone"), "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert os.readlink(mnt.p("clone", "link")) == "dir0/file0.txt"
    assert os.stat(mnt.p("clone", "dir1", "file1.txt")).st_mode & 0o111


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_transactions(mnt, journal):
    path = mnt.p("db.sqlite")
    con = sqlite3.connect(path, isolation_level=None)
    mode = con.execute("PRAGMA journal_mode=%s" % journal).fetchone()[0]
    assert mode == journal
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
    con.execute("CREATE INDEX t_v ON t (v)")
    n = 0
    for txn in range(50):
        con.execute("BEGIN")
        for _ in range(200):
            con.execute("INSERT INTO t (v, b) VALUES (?, ?)",
                        ("val%d" % n, bytes([n % 256]) * (n % 3000)))
            n += 1
        con.execute("COMMIT")
    # A rolled-back transaction leaves nothing.
    con.execute("BEGIN")
    con.execute("DELETE FROM t")
    con.execute("INSERT INTO t (v) VALUES ('ghost')")
    con.execute("ROLLBACK")
    con.execute("UPDATE t SET v = v || '!' WHERE id % 10 = 0")
    # A second connection sees the committed state (POSIX locks work).
    con2 = sqlite3.connect(path)
    assert con2.execute("SELECT count(*) FROM t").fetchone()[0] == n
    con2.close()
    con.close()
    mnt.remount()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == n
    assert con.execute("SELECT count(*) FROM t WHERE v = 'ghost'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM t WHERE v LIKE '%!'").fetchone()[0] == n // 10
    row = con.execute("SELECT v, b FROM t WHERE id = 1235").fetchone()
    assert row == ("val1234", bytes([1234 % 256]) * (1234 % 3000))
    con.execute("VACUUM")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_tar_roundtrip_of_usr_include(mnt, tmp_path):
    # A real-world tree copy: cp -a of a system tree, then diff -r.
    src = "/usr/include/linux"
    if not os.path.isdir(src):
        pytest.skip("no /usr/include/linux")
    r = subprocess.run(["cp", "-a", src, mnt.p("linux")], stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    mnt.remount()
    r = subprocess.run(["diff", "-r", "--no-dereference", src, mnt.p("linux")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, r.stdout.decode()[:2000]
