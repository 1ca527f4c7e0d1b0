"""molecule/plugins/connection/podman.py: how a task enters a container (without podman: the
container is a process of this test, and `podman inspect` is replaced by its answer)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("ansible_collections.containers.podman")


def _plugin():
    spec = importlib.util.spec_from_file_location(
        "etckit_podman_connection", REPO / "molecule" / "plugins" / "connection" / "podman.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def container():
    """A stand-in for a container's first process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _connection(module, name: str, answer: str, calls: list):
    from ansible.playbook.play_context import PlayContext

    conn = module.Connection(PlayContext(), None)
    conn._container_id = name

    def inspect(cmd, cmd_args=None, in_data=None, use_container_id=True):
        calls.append(cmd)
        return 0, answer.encode(), b""

    conn._podman = inspect
    return conn


@pytest.mark.skipif(os.geteuid() != 0, reason="the nsenter path is for root only")
def test_inspects_once_then_trusts_the_cache_while_the_process_lives(
        tmp_path, monkeypatch, container):
    module = _plugin()
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/nsenter")
    answer = f'{container.pid} ["PATH=/usr/bin:/bin","container=podman"]'
    calls: list = []
    found = _connection(module, "box", answer, calls)._container()
    assert found["pid"] == container.pid
    assert found["env"] == {"PATH": "/usr/bin:/bin", "container": "podman"}
    assert len(calls) == 1
    cached = json.loads((tmp_path / "podman-connection" / "box.json").read_text())
    assert cached["start"] == module._start_time(container.pid)

    again = _connection(module, "box", "unused", calls)._container()
    assert again["pid"] == container.pid and len(calls) == 1  # from the cache


@pytest.mark.skipif(os.geteuid() != 0, reason="the nsenter path is for root only")
def test_a_restarted_container_is_inspected_again(tmp_path, monkeypatch, container):
    module = _plugin()
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/nsenter")
    cache = tmp_path / "podman-connection" / "box.json"
    cache.parent.mkdir()
    # the same PID with another start time: a process that is not the container's any more
    cache.write_text(json.dumps({"pid": container.pid, "start": "1", "env": {}}))
    calls: list = []
    found = _connection(module, "box", f'{container.pid} ["A=b"]', calls)._container()
    assert len(calls) == 1 and found["env"] == {"A": "b"}


def test_a_stopped_container_is_an_error(tmp_path, monkeypatch):
    module = _plugin()
    if os.geteuid() != 0:
        pytest.skip("the nsenter path is for root only")
    monkeypatch.setenv("MOLECULE_EPHEMERAL_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(module.shutil, "which", lambda name: "/usr/bin/nsenter")
    from ansible.errors import AnsibleError

    with pytest.raises(AnsibleError, match="container box is not running"):
        _connection(module, "box", "0 null", [])._container()


def test_start_time_of_a_process_and_of_none():
    module = _plugin()
    assert module._start_time(os.getpid()) == module._start_time(os.getpid())
    assert module._start_time(2**22 + 12345) is None
