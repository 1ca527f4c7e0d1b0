"""Starting etckit programs as real processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx


def etckit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "etckit", *args]


def env_with(**settings: str) -> dict[str, str]:
    """The environment with ETCKIT_* overrides; keys like database__url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCKIT_")}
    env.update({f"ETCKIT_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class Proc:
    """An etckit program running in the background, its output kept in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.logfile = logdir / f"{name}.log"
        self._fh = open(self.logfile, "wb")
        self.popen = subprocess.Popen(argv, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.logfile.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._fh.close()
        return self.popen.returncode


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None,
              status: int = 200, verify: bool | str = True) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()}")
        try:
            r = httpx.get(url, timeout=2, verify=verify)
            if r.status_code == status:
                return r
            last = r.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    detail = proc.output() if proc else ""
    raise AssertionError(f"{url} did not answer {status} in {timeout}s (last: {last})\n{detail}")


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
