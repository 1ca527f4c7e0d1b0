"""The etckit command: versions, migrations from two processes, clean stops, the wheel."""

from __future__ import annotations

import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import etckit
from tests.support.chain import secret_settings
from tests.support.procs import Proc, env_with, etckit_argv, wait_http
from tests.support.system import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_version():
    done = subprocess.run(etckit_argv("version"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"etckit {etckit.__version__}"


def test_two_db_upgrades_at_once_leave_one_schema(db_url):
    env = env_with(database__url=db_url)
    procs = [subprocess.Popen(etckit_argv("db", "upgrade"), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(out for out, _ in outputs)
    assert said[0].startswith("applied migrations 1"), said  # one did the work...
    assert said[1].startswith("nothing to do"), said  # ...the other waited and found it done
    version = subprocess.run(etckit_argv("db", "version"), env=env, capture_output=True,
                             text=True, timeout=60)
    from etckit.storage import MIGRATIONS
    assert version.stdout.strip() == str(len(MIGRATIONS))


def test_db_upgrade_reports_an_unreachable_database():
    env = env_with(database__url=f"postgresql://nobody@127.0.0.1:{free_port()}/x",
                   database__busy_timeout="1")
    done = subprocess.run(etckit_argv("db", "upgrade"), env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot connect to PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


def test_db_takes_its_role_and_password_from_options_and_stdin_never_echoing_it():
    """`etckit db ... --user ROLE --password-stdin`: how the kit passes the owner's password
    (on no command line, in no file); a wrong role is named, the password never shown."""
    secret = "s3cret-of-the-owner-XYZ"
    env = env_with(database__url=f"postgresql://127.0.0.1:{free_port()}/x",
                   database__busy_timeout="1")
    done = subprocess.run(etckit_argv("db", "upgrade", "--user", "etckit_owner",
                                      "--password-stdin"), env=env, input=secret + "\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "as etckit_owner" in done.stderr, done.stderr
    assert secret not in done.stderr + done.stdout
    short = subprocess.run(etckit_argv("db", "grant", "--password-stdin"), env=env,
                           input="hunter2\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "database.password" in short.stderr, short.stderr
    assert "hunter2" not in short.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_main_server_stops_cleanly_and_logs_json(tmp_path, sig):
    import json

    port = free_port()
    env = env_with(database__url=f"sqlite:///{tmp_path / 'db.sqlite'}", main_server__port=port,
                   **secret_settings(tmp_path))
    subprocess.run(etckit_argv("db", "upgrade"), env=env, check=True, capture_output=True)
    proc = Proc("main", etckit_argv("main-server"), env, tmp_path)
    try:
        r = wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        assert r.json()["status"] == "ok"
        proc.signal(sig)
        assert proc.wait(20) == 0
    finally:
        proc.stop()
    events = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    assert events[0]["event"] == "starting" and events[0]["program"] == "main_server"
    assert events[-1]["event"] == "stopped" and events[-1]["exit_status"] == 0
    assert any(e.get("signal") == sig.name for e in events)


def test_healthz_is_503_until_the_schema_is_current(tmp_path):
    port = free_port()
    env = env_with(database__url=f"sqlite:///{tmp_path / 'db.sqlite'}", main_server__port=port,
                   **secret_settings(tmp_path))
    proc = Proc("main", etckit_argv("main-server"), env, tmp_path)
    try:
        r = wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc, status=503)
        assert "schema" in r.json()["error"]
        subprocess.run(etckit_argv("db", "upgrade"), env=env, check=True, capture_output=True)
        assert wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc).json()["status"] == "ok"
    finally:
        proc.stop()


def test_wheel_contains_the_package_and_static_files(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0 and "hatchling" in done.stderr:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
             str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [wheel] = tmp_path.glob("etckit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "etckit/cli.py" in names
    for static in (ROOT / "static").rglob("*"):
        if static.is_file():
            assert f"etckit/static/{static.relative_to(ROOT / 'static')}" in names
    assert not any(n.startswith(("tests/", "app/")) for n in names)


def test_db_upgrade_on_a_locked_sqlite_file_fails_with_the_reason_and_exits(tmp_path):
    """A SQLite open that stays locked past busy_timeout is an error naming the file, and the
    command exits (a failed open once left aiosqlite's thread running: the process hung)."""
    import sqlite3

    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # rollback-journal mode: nobody else may even read
    try:
        env = env_with(database__url=f"sqlite:///{path}", database__busy_timeout="1")
        done = subprocess.run(etckit_argv("db", "upgrade"), env=env, capture_output=True,
                              text=True, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 1, done
    assert f"cannot open SQLite database {path}: database is locked" in done.stderr
    assert "Traceback" not in done.stderr
