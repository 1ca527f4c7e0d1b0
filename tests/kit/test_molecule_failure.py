"""Why a Molecule run failed, in the few lines that end it (all a CI summary shows): the verify
scripts' note (molecule/topology/verify_topology.py note_failure) and tests/molecule/why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHY = REPO / "tests" / "molecule" / "why"
NOTE = """
import sys, verify_topology as vt
vt.warnings_of = lambda host: "".join(f"{host} warning {i}\\n" for i in range(5)) + "w" * 400
vt.backend_changes = lambda lb: "".join(f"{lb} change {i}\\n" for i in range(3))
vt.FAILURE = vt.Path(sys.argv[1])
vt.note_failure("step grow failed after 9s: AssertionError: "
                "a calculation\\n  answered  " + "x" * 1000)
"""


def verify_env(tmp_path: Path, test_certs: Path) -> dict[str, str]:
    """The environment in which molecule/topology's verify scripts import without a site."""
    (tmp_path / "ephemeral").mkdir()
    (tmp_path / "ephemeral" / "certs").symlink_to(test_certs)
    return dict(os.environ, PYTHONPATH=str(REPO / "molecule" / "topology"),
                MOLECULE_EPHEMERAL_DIRECTORY=str(tmp_path / "ephemeral"),
                MOLECULE_INVENTORY_FILE=str(tmp_path / "ephemeral" / "inventory" / "hosts.yml"))


def test_a_failed_verify_step_notes_its_error_on_one_line_and_each_hosts_last_warnings(
        tmp_path, test_certs):
    env = verify_env(tmp_path, test_certs)
    subprocess.run([sys.executable, "-c", NOTE, tmp_path / "failure.txt"], env=env, check=True)
    lines = (tmp_path / "failure.txt").read_text().splitlines()
    assert lines[0].startswith("-c: step grow failed after 9s: AssertionError: a calculation "
                               "answered xxx")
    assert len(lines[0]) == len("-c: ") + 600
    hosts = ("front1", "front2", "internal1", "internal2")
    assert lines[1:] == [line for host in hosts
                         for line in (f"  {host}: {host} warning 4", f"  {host}: " + "w" * 300)
                         ] + [f"  {lb}: {lb} change {i}" for lb in ("lb1", "lb2") for i in (1, 2)]


def why(tmp_path: Path, log: str, failure: str | None = None) -> list[str]:
    (tmp_path / "step.log").write_text(log)
    note = tmp_path / "failure.txt"
    if failure is not None:
        note.write_text(failure)
    done = subprocess.run([WHY, "topology", "verify", "731", tmp_path / "step.log"],
                          capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "MOLECULE_FAILURE": str(note)})
    return done.stdout.splitlines()


def test_the_verify_scripts_note_is_the_reason(tmp_path):
    note = ("verify_drills.py: step failover failed after 12s: AssertionError: lb2 holds no VIP\n"
            "  front1: {\"level\": \"warning\", \"event\": \"worker dropped\"}\n")
    lines = why(tmp_path, "fatal: [localhost]: FAILED! => {\"msg\": \"non-zero return code\"}\n",
                note)
    assert lines[0] == ("molecule: scenario topology FAILED in verify after 731s; its whole "
                        f"output: {tmp_path / 'step.log'}")
    assert lines[1:] == note.splitlines()


def test_without_a_note_the_last_ansible_failures_are_the_reason_each_cut(tmp_path):
    log = "\n".join(["TASK [one]", "ok: [front1]"]
                    + [f"fatal: [front{i}]: FAILED! => {{\"msg\": \"{'x' * 900}\"}}"
                       for i in range(9)]
                    + ["PLAY RECAP", "front1 : ok=3 failed=1"]) + "\n"
    lines = why(tmp_path, log)
    assert [line[:17] for line in lines[1:]] == [f"fatal: [front{i}]: " for i in range(3, 9)]
    assert all(len(line) == 500 for line in lines[1:])


def test_a_log_without_a_failure_ends_with_its_last_lines(tmp_path):
    log = "".join(f"line {i}\n" for i in range(20))
    lines = why(tmp_path, log)
    assert lines[1] == f"(no Ansible failure in {tmp_path / 'step.log'}; its last lines:)"
    assert lines[2:] == [f"line {i}" for i in range(14, 20)]


def test_a_wrong_call_says_how_to_call_it():
    done = subprocess.run([WHY, "topology"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr


CHANGED = """
import json, verify_topology as vt
output = '''PLAY [Switch] ****
TASK [etckit_app : Point current at the release] ****
\\x1b[0;33mchanged: [front1]\\x1b[0m
ok: [front2]
changed: [internal1] => (item=x)
TASK [etckit_wssvc : Render settings] ****
ok: [front1]
RUNNING HANDLER [etckit_wssvc : Restart etckit-wssvc] ****
changed: [front2]
PLAY RECAP ****
'''
print(json.dumps(vt.changed_tasks(output)))
"""


def test_a_rerun_that_changed_something_names_the_tasks_and_hosts(tmp_path, test_certs):
    env = verify_env(tmp_path, test_certs)
    done = subprocess.run([sys.executable, "-c", CHANGED], env=env, check=True,
                          capture_output=True, text=True)
    assert json.loads(done.stdout) == [
        "etckit_app : Point current at the release: front1, internal1",
        "etckit_wssvc : Restart etckit-wssvc: front2"]
