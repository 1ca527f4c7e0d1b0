"""Rollback goes back to exactly the release the last upgrade replaced (docs/operations.md
"Rolling upgrade and rollback"): etckit_app's activate.yml records it in `previous` when
`current` moves, rollback.yml goes there (or to etckit_app_rollback_to) and removes it.

The role's own task files run on the controller against a throw-away prefix
(tests/kit/rollback.yml); nothing is restarted, a handler only counts restarts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.kit.support import REPO, run_playbook

# The role's tasks make their links owned by root, as on a host.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role's links are owned by root")


class Site:
    """One host's /opt/etckit: releases/<name>/.complete, current, previous."""

    def __init__(self, tmp: Path) -> None:
        self.root = tmp
        self.prefix = tmp / "prefix"
        (self.prefix / "releases").mkdir(parents=True)
        self.inventory = tmp / "hosts"
        self.inventory.write_text("localhost\n")
        self.runs = 0

    def release(self, name: str, age: int, complete: bool = True) -> Path:
        """A release whose directory and .complete are AGE hours old."""
        path = self.prefix / "releases" / name
        path.mkdir()
        stamp = 1_700_000_000 - age * 3600
        if complete:
            (path / ".complete").write_text(f"{name}\n")
            os.utime(path / ".complete", (stamp, stamp))
        os.utime(path, (stamp, stamp))
        return path

    def run(self, action: str, **extra: object) -> subprocess.CompletedProcess[str]:
        self.runs += 1
        out = self.root / f"run{self.runs}"
        out.mkdir()
        self.out = out
        variables = {"etckit_test_action": action, "etckit_test_out": str(out),
                     "etckit_base_prefix": str(self.prefix), **extra}
        return run_playbook(REPO / "tests" / "kit" / "rollback.yml",
                            SimpleNamespace(hosts_file=self.inventory), out / "work", variables)

    def ok(self, action: str, **extra: object) -> None:
        result = self.run(action, **extra)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

    def activate(self, release: Path) -> None:
        self.ok("activate", etckit_app_release_dir=str(release))

    def link(self, name: str) -> str | None:
        path = self.prefix / name
        return os.readlink(path) if path.is_symlink() else None

    def restarts(self) -> int:
        restarts = self.out / "restarts"
        return len(restarts.read_text().split()) if restarts.exists() else 0

    def switched(self) -> bool:
        return (self.out / "switched").read_text().strip() == "True"


@pytest.fixture
def site(tmp_path) -> Site:
    return Site(tmp_path)


def install_a_then_b(site: Site) -> None:
    site.a, site.b = site.release("0.1.0-aaaaaaaaaaaa", 30), site.release("0.2.0-bbbbbbbbbbbb", 20)


@pytest.fixture
def upgraded(site) -> Site:
    """Installed with A, upgraded to B; C installed later (newer) but never made current,
    as an upgrade that installed everywhere and then stopped leaves it. The links are made
    here as the role makes them (test_an_upgrade_records_the_release_it_replaces_once runs
    the role's activate.yml for exactly this), which saves two playbook runs per test."""
    install_a_then_b(site)
    (site.prefix / "current").symlink_to(site.b)
    (site.prefix / "previous").symlink_to(site.a)
    site.c = site.release("0.3.0-cccccccccccc", 1)
    return site


def test_the_first_install_records_no_previous_release(site):
    site.activate(site.release("0.1.0-aaaaaaaaaaaa", 3))
    assert site.link("current") == str(site.prefix / "releases" / "0.1.0-aaaaaaaaaaaa")
    assert site.link("previous") is None
    assert site.restarts() == 1


def test_an_upgrade_records_the_release_it_replaces_once(site):
    install_a_then_b(site)
    site.activate(site.a)
    site.activate(site.b)
    upgraded = site
    assert upgraded.link("current") == str(upgraded.b)
    assert upgraded.link("previous") == str(upgraded.a)
    assert upgraded.restarts() == 1
    upgraded.activate(upgraded.b)  # the idempotent re-run: current does not move
    assert upgraded.link("previous") == str(upgraded.a)
    assert upgraded.restarts() == 0


def test_rollback_goes_to_the_release_before_the_upgrade_not_the_newest_other(upgraded):
    upgraded.ok("rollback")
    assert upgraded.link("current") == str(upgraded.a)  # the old code chose C, the newest
    assert upgraded.switched()
    assert upgraded.link("previous") is None


def test_a_second_rollback_fails_clearly_instead_of_going_forward_again(upgraded):
    upgraded.ok("rollback")
    second = upgraded.run("rollback")
    assert second.returncode != 0
    assert "no previous release recorded" in second.stdout
    assert "etckit_app_rollback_to" in second.stdout
    assert upgraded.link("current") == str(upgraded.a)


def test_rollback_to_a_named_release(upgraded):
    upgraded.ok("rollback", etckit_app_rollback_to=upgraded.c.name)
    assert upgraded.link("current") == str(upgraded.c)
    assert upgraded.switched()
    assert upgraded.link("previous") is None


def test_rollback_to_the_current_release_moves_nothing(upgraded):
    upgraded.ok("rollback", etckit_app_rollback_to=upgraded.b.name)
    assert upgraded.link("current") == str(upgraded.b)
    assert not upgraded.switched()


def test_rollback_refuses_an_incomplete_previous_release(upgraded):
    (upgraded.a / ".complete").unlink()  # e.g. an interrupted reinstall
    result = upgraded.run("rollback")
    assert result.returncode != 0
    assert f"cannot roll back to {upgraded.a.name}" in result.stdout
    assert "not a complete release" in result.stdout
    assert (upgraded.link("current"), upgraded.link("previous")) == (str(upgraded.b),
                                                                     str(upgraded.a))


@pytest.mark.parametrize("name", ["../../etc", "0.1.0/../x", "", "missing-release"])
def test_rollback_refuses_a_name_that_is_not_a_complete_release(upgraded, name):
    (upgraded.prefix / "previous").unlink()  # only the named release can be meant
    result = upgraded.run("rollback", etckit_app_rollback_to=name)
    assert result.returncode != 0
    expected = ("no previous release recorded" if not name else
                "not a complete release" if name == "missing-release" else
                "etckit_app_rollback_to: " + name + " is not a release name")
    assert expected in " ".join(result.stdout.split()), result.stdout[-2000:]
    assert upgraded.link("current") == str(upgraded.b)


def test_the_check_only_pass_changes_nothing(upgraded):
    upgraded.ok("rollback", etckit_app_rollback_check_only=True)
    assert (upgraded.link("current"), upgraded.link("previous")) == (str(upgraded.b),
                                                                     str(upgraded.a))
    assert not upgraded.switched()


def test_pruning_keeps_the_previous_release(upgraded):
    newest = upgraded.release("0.4.0-dddddddddddd", 0)
    upgraded.ok("prune", etckit_app_keep_releases=1, etckit_app_release_dir=str(newest))
    kept = sorted(p.name for p in (upgraded.prefix / "releases").iterdir())
    assert kept == [upgraded.a.name, upgraded.b.name, newest.name]  # C went
