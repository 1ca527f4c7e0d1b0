"""Every etckit program makes itself non-dumpable when it starts (lifecycle.run_program), so
another process of the same user cannot read its environment or memory through /proc (issue
12: the programs of a host share the etckit user). Every process here runs as this user
without capabilities (util-linux's setpriv), as a service user does: with CAP_SYS_PTRACE one
reads anything, and one may not read a process that holds capabilities it lacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PROGRAM = """
import asyncio, sys
from etckit.config import load
from etckit.lifecycle import run_program

async def idle(cfg, stop):
    print("ready", flush=True)
    await stop.wait()

sys.exit(run_program("probe", idle, load(None, {"ETCKIT_PROBE_SECRET": "x"})))
"""
PLAIN = "import sys, time; print('ready', flush=True); time.sleep(60)"
NO_CAPS = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def _started(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([*NO_CAPS, sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={"PATH": os.environ.get("PATH", ""), "ETCKIT_SECRET": "s3"})
    for line in proc.stdout:  # the program logs to stdout too
        if line.strip() == "ready":
            return proc
    raise AssertionError(f"it did not start: {proc.stderr.read()}")


def _sibling_reads(pid: int) -> bool:
    """Whether another process of the same user can read the process's environment."""
    done = subprocess.run([*NO_CAPS, sys.executable, "-c",
                           f"open('/proc/{pid}/environ', 'rb').read()"],
                          capture_output=True, text=True)
    assert "setpriv" not in done.stderr, done.stderr
    return done.returncode == 0


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_a_program_hides_its_environment_from_its_own_user():
    plain, program = _started(PLAIN), _started(PROGRAM)
    try:
        assert _sibling_reads(plain.pid)  # the control: same user, readable
        assert not _sibling_reads(program.pid)
    finally:
        for proc in (plain, program):
            proc.terminate()
            proc.wait(10)
    assert program.returncode == 0, program.stderr.read()
