"""A real message chain on loopback: wssvc, broker and workers as separate processes."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
from pathlib import Path

import websockets

from etckit.auth import keys, sessions, tickets
from tests.support.procs import Proc, env_with, etckit_argv, wait_for, wait_http
from tests.support.system import free_port

SECRET = "test-session-secret-0123456789-abcdefghij"  # main_server's; wssvc needs none
ORIGIN = "http://127.0.0.1:8080"

FAST = {  # heartbeats fast enough that the crash cascade is seen in a second or two
    "heartbeat__interval": "0.2",
    "heartbeat__liveness": "3",
    "heartbeat__registry_interval": "0.2",
    "heartbeat__registry_liveness": "2",
}


def secret_settings(tmp: Path) -> dict[str, str]:
    """The secrets main_server and wssvc need (a ticket keypair made in tmp), as settings."""
    private, public = tmp / "ticket.key", tmp / "ticket.pub"
    keys.make_keypair(private, public)
    return {"auth__session_secret": SECRET, "auth__ticket_private_key": str(private),
            "auth__ticket_public_key": str(public)}


class Chain:
    def __init__(self, tmp: Path, db_url: str | None = None, **settings: str) -> None:
        self.tmp = tmp
        self.db_url = db_url or f"sqlite:///{tmp / 'chain.db'}"
        self.port = free_port()
        self.pool = "p1"
        secret = secret_settings(tmp)
        self.ticket_key = keys.load_private_key(secret["auth__ticket_private_key"])
        self.sessions: dict[str, str] = {}  # user -> the cookie token of its test session
        self._lock = threading.Lock()
        self.settings = {**FAST, "database__url": self.db_url, **secret,
                         "wssvc__port": str(self.port), "wssvc__pool": self.pool,
                         "worker__diagnostics": "true", "zmq__key_dir": str(tmp / "keys"),
                         **settings}
        self.procs: list[Proc] = []
        self._n = 0
        subprocess.run(etckit_argv("db", "upgrade"), env=self.env(), check=True,
                       capture_output=True, timeout=60)

    def env(self, **extra: str) -> dict[str, str]:
        return env_with(**{**self.settings, **extra})

    def start(self, program: str, wrap: list[str] = (), **extra: str) -> Proc:
        """Start an etckit program; `wrap` is a command that execs the rest (e.g. one that
        puts itself in a cgroup first)."""
        self._n += 1
        extra = {"zmq__key_name": f"{program}-{self._n}", **extra}  # a keypair per instance
        proc = Proc(f"{program}-{self._n}", [*wrap, *etckit_argv(program)],
                    self.env(**extra), self.tmp)
        self.procs.append(proc)
        return proc

    def start_all(self, workers: int = 1) -> None:
        self.wssvc = self.start("wssvc")
        self.broker = self.start("broker")
        self.workers = [self.start("worker") for _ in range(workers)]
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/healthz", proc=self.wssvc, timeout=timeout)

    def health(self) -> dict:
        import httpx
        return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).json()

    def ticket(self, user: str = "alice", workbook: str | None = None, pool: str | None = None,
               lifetime: float = 30, session: str | None = None) -> str:
        """A ticket signed as main_server signs it, for the user's test session (made on
        first use) or for the session whose cookie token is given."""
        token = session if session is not None else self.session(user)
        return tickets.issue(self.ticket_key, user=user, session=sessions.token_hash(token),
                             pool=pool or self.pool,
                             purpose="workbook" if workbook else "list", workbook=workbook,
                             lifetime=lifetime)

    def session(self, user: str = "alice") -> str:
        """The cookie token of the user's test session, logging the user in on first use (in
        a thread of its own, so that it also works from inside a running event loop)."""
        with self._lock:
            if user not in self.sessions:
                done: list[str] = []
                worker = threading.Thread(
                    target=lambda: done.append(asyncio.run(self._login(user))))
                worker.start()
                worker.join()
                if not done:
                    raise AssertionError(f"could not make a session for {user}")
                self.sessions[user] = done[0]
            return self.sessions[user]

    async def _login(self, user: str) -> str:
        from etckit.storage import open_database

        await self.ensure_user(user)
        async with open_database(self.db_url) as db:
            found = sessions.User(user, "fake", user, "", None)
            token, _ = await sessions.create_session(db, found, 86400)
        return token

    async def logout(self, user: str = "alice") -> None:
        """End the user's test session the way main_server's POST /logout does."""
        from etckit.storage import open_database

        async with open_database(self.db_url) as db:
            await sessions.logout(db, self.session(user))

    def url(self, ticket: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?ticket={ticket}"

    async def ensure_user(self, user: str) -> None:
        """Users are made by main_server at login; here the test makes them."""
        from etckit.storage import open_database

        async with open_database(self.db_url) as db:
            await db.execute(
                "INSERT INTO users (id, issuer, subject, kind, created_at)"
                " SELECT :id, 'test', :id, 'fake', 0 WHERE NOT EXISTS"
                " (SELECT 1 FROM users WHERE id = :id)", {"id": user})

    async def connect(self, user: str = "alice", workbook: str | None = None,
                      origin: str = ORIGIN, rcvbuf: int | None = None,
                      compression: str | None = "deflate") -> Client:
        """A websocket client; rcvbuf makes its kernel receive buffer small (slow readers)."""
        await self.ensure_user(user)
        sock = None
        if rcvbuf is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.connect(("127.0.0.1", self.port))
        ws = await websockets.connect(self.url(self.ticket(user, workbook)), origin=origin,
                                      max_size=None, sock=sock, compression=compression)
        client = Client(ws)
        hello = await client.recv()
        assert hello["type"] == "hello", hello
        client.id = hello["client"]
        client.hello = hello
        return client

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()}" for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


class Client:
    """A websocket client that skips the server's pings (answering them)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.id = ""
        self.hello: dict = {}
        self._n = 0

    async def send(self, message: dict | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, timeout: float = 10) -> dict:
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message.get("type") == "ping":
                await self.send({"type": "pong", "id": f"c-{message['id']}", "ref": message["id"]})
                continue
            return message

    async def request(self, type_: str, timeout: float = 10, **fields) -> dict:
        self._n += 1
        mid = f"{type_}-{self._n}"
        await self.send({"id": mid, "type": type_, **fields})
        while True:
            message = await self.recv(timeout)
            if message.get("ref") == mid:
                return message

    async def close(self) -> None:
        await self.ws.close()


__all__ = ["Chain", "Client", "wait_for"]
