"""``etckit dev``: the whole system on one machine, supervised as systemd would.

main_server on 127.0.0.1:8080, one wssvc, one broker, two workers, SQLite under ./var/,
anonymous and fake login enabled. A child that dies is reported and restarted with backoff;
Ctrl-C (or SIGTERM) stops every child. Each child serves /metrics: main_server on 9301, wssvc
9302, broker 9303, worker N on 9310+N (metrics_ports).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import log as logsetup
from .auth.keys import make_keypair
from .config import Config, load
from .messaging.curve import CurveKeyError, keypair
from .storage import StorageError, connected, upgrade

log = logging.getLogger("etckit.dev")

RESTART_MIN = 0.5
RESTART_MAX = 30.0
STOP_GRACE = 10.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = RESTART_MIN
    done: asyncio.Event = field(default_factory=asyncio.Event)
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's


def dev_environment(cfg: Config, port: int | None) -> dict[str, str]:
    """The ETCKIT_* settings the children get on top of the operator's config."""
    var = Path(cfg.dev.var_dir).resolve()
    var.mkdir(parents=True, exist_ok=True)
    env = {
        "ETCKIT_AUTH__FAKE_LOGIN": "true",
        "ETCKIT_AUTH__ANONYMOUS": "true",
    }
    if cfg.database.url == "sqlite:///var/etckit.db":  # the default: keep it under var_dir
        env["ETCKIT_DATABASE__URL"] = f"sqlite:///{var / 'etckit.db'}"
    if not cfg.auth.session_secret:
        secret_file = var / "session_secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        env["ETCKIT_AUTH__SESSION_SECRET"] = secret_file.read_text().strip()
    env.update(ticket_key_environment(cfg, var))
    if cfg.zmq.curve and cfg.zmq.key_dir == "var/keys":  # the default: keep it under var_dir
        env["ETCKIT_ZMQ__KEY_DIR"] = str(var / "keys")
    if port is not None:
        env["ETCKIT_MAIN_SERVER__PORT"] = str(port)
        env["ETCKIT_MAIN_SERVER__PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return env


def ticket_key_environment(cfg: Config, var: Path) -> dict[str, str]:
    """The ticket keypair under var/ (made on first run, private key 0600), unless the
    operator's config names its own key files."""
    if cfg.auth.ticket_private_key and cfg.auth.ticket_public_key:
        return {}
    private, public = var / "ticket_ed25519.key", var / "ticket_ed25519.pub"
    if make_keypair(private, public):
        log.info("ticket keypair made", extra={"private_key": str(private),
                                               "public_key": str(public)})
    return {"ETCKIT_AUTH__TICKET_PRIVATE_KEY": str(private),
            "ETCKIT_AUTH__TICKET_PUBLIC_KEY": str(public)}


def make_keys(cfg: Config, children: list[Child]) -> None:
    """A CURVE keypair per child that speaks ZeroMQ, under zmq.key_dir (var/keys): made on the
    first run (secret keys 0600), kept afterwards; each child is told its key's name."""
    if not cfg.zmq.curve:
        return
    for child in children:
        if child.name != "main-server":
            keypair(cfg.zmq.key_dir, child.name)
            child.env["ETCKIT_ZMQ__KEY_NAME"] = child.name


DEV_METRICS_BASE = 9301  # the kit's ports: main_server 9301, wssvc +1, broker +2, worker N +9+N
METRICS_OFFSETS = {"main-server": 0, "wssvc": 1, "broker": 2}


def metrics_ports(cfg: Config, children: list[Child]) -> dict[str, int]:
    """Each child's /metrics port, from metrics.port (0: the kit's 9301) as main_server's:
    wssvc +1, broker +2, worker-N +9+N. A port already taken leaves that child without
    metrics (a warning) rather than failing it."""
    base = cfg.metrics.port or DEV_METRICS_BASE
    ports = {}
    for child in children:
        kind, _, n = child.name.partition("-")
        port = base + (9 + int(n) if kind == "worker" else METRICS_OFFSETS[child.name])
        if port > 65535 or not _port_free(cfg.metrics.address, port):
            log.warning("metrics port taken: no metrics", extra={"child": child.name,
                                                                 "port": port})
            continue
        child.env["ETCKIT_METRICS__PORT"] = str(port)
        ports[child.name] = port
    return ports


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class Supervisor:
    def __init__(self, children: list[Child], env: dict[str, str]) -> None:
        self.children = children
        self.env = env
        self.stopping = False

    async def _start(self, child: Child) -> None:
        child.proc = await asyncio.create_subprocess_exec(
            *child.argv, env={**self.env, **child.env}, preexec_fn=_die_with_parent,
        )
        child.started = time.monotonic()
        log.info("child started", extra={"child": child.name, "pid": child.proc.pid})

    async def _watch(self, child: Child) -> None:
        while not self.stopping:
            await self._start(child)
            assert child.proc is not None
            status = await child.proc.wait()
            if self.stopping:
                break
            ran = time.monotonic() - child.started
            if ran > RESTART_MAX:
                child.backoff = RESTART_MIN
            log.error("child died, restarting", extra={
                "child": child.name, "exit_status": status, "ran_seconds": round(ran, 1),
                "restart_in": child.backoff})
            child.restarts += 1
            await asyncio.sleep(child.backoff)
            child.backoff = min(child.backoff * 2, RESTART_MAX)
        child.done.set()

    async def run(self, stop: asyncio.Event) -> None:
        watchers = [asyncio.create_task(self._watch(c), name=c.name) for c in self.children]
        await stop.wait()
        self.stopping = True
        log.info("stopping children")
        for child in self.children:
            if child.proc and child.proc.returncode is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children:
            if child.proc and child.proc.returncode is None:
                try:
                    await asyncio.wait_for(child.proc.wait(), max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    log.warning("child ignored SIGTERM, killing", extra={"child": child.name})
                    child.proc.kill()
                    await child.proc.wait()
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


def run_dev(cfg: Config, config_path: str | None, port: int | None = None) -> int:
    logsetup.setup("dev", cfg.log.level)
    extra_env = dev_environment(cfg, port)
    env = {**os.environ, **extra_env}
    child_cfg = load(config_path, environ=env)  # what the children will see
    base = [sys.executable, "-m", "etckit"]
    conf = ["--config", config_path] if config_path else []
    children = [Child("main-server", [*base, "main-server", *conf]),
                Child("wssvc", [*base, "wssvc", *conf]),
                Child("broker", [*base, "broker", *conf])]
    children += [Child(f"worker-{i + 1}", [*base, "worker", *conf])
                 for i in range(cfg.dev.workers)]
    metrics_ports(child_cfg, children)
    try:
        make_keys(child_cfg, children)
    except CurveKeyError as exc:
        log.error("cannot make the CURVE keys: %s", exc)
        return 1

    async def main() -> int:
        try:
            async with connected(child_cfg) as db:
                applied = await upgrade(db)
        except StorageError as exc:
            log.error("cannot prepare the database: %s", exc)
            return 1
        if applied:
            log.info("database upgraded", extra={"applied": applied})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        url = child_cfg.main_server.public_url
        print(f"etckit dev: open {url}/ (Ctrl-C stops everything)", flush=True)
        await Supervisor(children, env).run(stop)
        return 0

    return asyncio.run(main())
