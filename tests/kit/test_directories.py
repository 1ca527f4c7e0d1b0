"""etckit_base's module etckit_directories (roles/etckit_base/library): several directories
with owner, group and mode in one module run, as ansible.builtin.file would leave each.

Run through `ansible localhost -m etckit_directories` on throw-away paths, as the user running
the tests (owner and group are that user's).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
from pathlib import Path

from tests.kit.support import REPO, ansible_program

LIBRARY = REPO / "roles" / "etckit_base" / "library"
USER = pwd.getpwuid(os.geteuid()).pw_name
GROUP = grp.getgrgid(os.getegid()).gr_name


def run(directories: list[dict], *extra: str) -> dict:
    """The module's result on localhost (its JSON), whatever the exit status."""
    args = json.dumps({"directories": directories})
    done = subprocess.run(
        [ansible_program("ansible"), "localhost", "-c", "local", "-M", str(LIBRARY),
         "-m", "etckit_directories", "-a", args, *extra],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
             "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOCALHOST_WARNING": "0"})
    out = json.loads(done.stdout)
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def entries(tmp: Path) -> list[dict]:
    return [{"path": str(tmp / "home"), "owner": USER, "group": GROUP, "mode": "0750"},
            {"path": str(tmp / "prefix" / "releases"), "owner": USER, "group": GROUP,
             "mode": "0755"},
            {"path": str(tmp / "config"), "owner": USER, "group": GROUP, "mode": "2750"}]


def test_missing_directories_are_made_with_their_modes_and_a_second_run_changes_nothing(
        tmp_path: Path) -> None:
    first = run(entries(tmp_path))
    assert first["changed"] is True, first
    assert sorted(first["changed_paths"]) == sorted(e["path"] for e in entries(tmp_path))
    assert oct((tmp_path / "home").stat().st_mode & 0o7777) == "0o750"
    assert oct((tmp_path / "config").stat().st_mode & 0o7777) == "0o2750"
    assert (tmp_path / "prefix").is_dir()  # a missing parent is made too
    second = run(entries(tmp_path))
    assert second["changed"] is False and second["changed_paths"] == [], second


def test_a_wrong_mode_is_set_back_and_only_that_directory_is_reported(tmp_path: Path) -> None:
    run(entries(tmp_path))
    (tmp_path / "home").chmod(0o777)
    again = run(entries(tmp_path))
    assert again["changed_paths"] == [str(tmp_path / "home")], again
    assert oct((tmp_path / "home").stat().st_mode & 0o7777) == "0o750"


def test_check_mode_reports_without_making_anything(tmp_path: Path) -> None:
    result = run(entries(tmp_path), "--check")
    assert result["changed"] is True, result
    assert not (tmp_path / "home").exists()


def test_bad_entries_fail_with_the_path_and_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    cases = {
        "is not a directory": {"path": str(tmp_path / "file"), "mode": "0755",
                               "owner": USER, "group": GROUP},
        "is not octal": {"path": str(tmp_path / "d"), "mode": "rwx", "owner": USER,
                         "group": GROUP},
        "no such user or group": {"path": str(tmp_path / "d"), "mode": "0755",
                                  "owner": "no-such-user-etckit", "group": GROUP},
        "is not absolute": {"path": "relative/d", "mode": "0755", "owner": USER,
                            "group": GROUP},
    }
    for message, entry in cases.items():
        result = run([entry])
        assert result.get("failed") is True and message in result["msg"], (message, result)
    assert (tmp_path / "file").read_text() == "x"
