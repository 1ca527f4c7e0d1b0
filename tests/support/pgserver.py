"""A throwaway PostgreSQL cluster for the test session, started as the postgres user.

initdb refuses to run as root, so as root the cluster belongs to the postgres system user
(created by Debian's postgresql package); otherwise it belongs to whoever runs the tests.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


class PgServer:
    def __init__(self, bindir: Path, port: int) -> None:
        self.bindir = bindir
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="etckit-pg-"))
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.as_user: str | None = None
        if os.geteuid() == 0:
            self.as_user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chmod(self.base, 0o755)
            self.sockdir.mkdir()
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
        else:
            self.sockdir.mkdir()

    def _run(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        cmd = list(argv)
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)

    def start(self, *, standby_of: PgServer | None = None, durable: bool = False) -> None:
        """initdb and start; standby_of: copy that running cluster instead (pg_basebackup -R)
        and stream from it. durable: fsync and synchronous commits (replication tests)."""
        if standby_of is None:
            self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                      "--auth=trust", "-E", "UTF8", "--no-sync")
        else:
            self._run(str(self.bindir / "pg_basebackup"), "-D", str(self.datadir), "-R",
                      "-X", "stream", "-c", "fast", "-h", "127.0.0.1",
                      "-p", str(standby_of.port), "-U", "postgres")
        speed = "" if durable else (" -c fsync=off -c synchronous_commit=off"
                                    " -c full_page_writes=off")
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
            str(self.base / "log"), "-w", "-t", "60", "start", "-o",
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
            f" -c max_connections=300 -c cluster_name=pg{self.port}{speed}",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def crash(self) -> None:
        """Stop at once, as a crash would (pg_ctl stop -m immediate); the files stay."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                  "-w", "stop")

    def promote(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "promote")

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate",
                      "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
