"""etckit dev: the whole system on one machine, supervised."""

from __future__ import annotations

import json
import os
import signal

from tests.support.procs import Proc, env_with, etckit_argv, wait_for, wait_http
from tests.support.system import free_port


def _events(proc: Proc) -> list[dict]:
    out = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def _children(proc: Proc) -> dict[str, int]:
    """The latest pid of each child, from the supervisor's log."""
    pids: dict[str, int] = {}
    for e in _events(proc):
        if e.get("event") == "child started":
            pids[e["child"]] = e["pid"]
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1][0] != "Z"


def test_dev_serves_restarts_and_stops(tmp_path):
    port = free_port()
    env = env_with(dev__var_dir=str(tmp_path / "var"), wssvc__port=free_port())
    dev = Proc("dev", etckit_argv("dev", "--port", str(port)), env, tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=dev, timeout=60)
        assert f"open http://127.0.0.1:{port}/" in dev.output()
        assert (tmp_path / "var" / "etckit.db").exists()
        kids = wait_for(lambda: len(_children(dev)) == 5 and _children(dev), what="5 children")
        assert set(kids) == {"main-server", "wssvc", "broker", "worker-1", "worker-2"}

        os.kill(kids["worker-1"], signal.SIGKILL)
        wait_for(lambda: _children(dev)["worker-1"] != kids["worker-1"], what="worker restart")
        died = [e for e in _events(dev) if e.get("event") == "child died, restarting"]
        assert died[0]["child"] == "worker-1" and died[0]["exit_status"] == -9

        dev.signal(signal.SIGINT)
        assert dev.wait(30) == 0
        for pid in _children(dev).values():
            wait_for(lambda pid=pid: not _alive(pid), timeout=5, what=f"child {pid} gone")
    finally:
        dev.stop()
