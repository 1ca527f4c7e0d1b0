"""Running the deployment kit's playbooks against throw-away inventories, on this machine only.

Every run uses connection=local and renders into a temporary directory; nothing is deployed
and nothing leaves loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.system import IN_CI

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "example"

# Test values for the secrets; the certificate and key come from certs/make-test-cert.
TEST_SECRETS = {
    "vault_etckit_database_password": "test-db-password/with:odd@chars",
    "vault_etckit_session_secret": "test-session-secret-0123456789-abcdef",
    "vault_etckit_sso_client_secret": "test-sso-secret",
}


def ansible_program(name: str) -> str:
    """An Ansible command from the test environment (skip, or fail under CI=true, without it)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        reason = f"{name} is not available (pip install -e '.[test]' installs ansible)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def make_test_cert(out: Path, domain: str = "etc.example.org") -> Path:
    subprocess.run([str(REPO / "certs" / "make-test-cert"), domain, str(out)],
                   check=True, capture_output=True, text=True)
    return out


class Inventory:
    """A copy of the example inventory with test secrets, to change and run playbooks on."""

    def __init__(self, root: Path, certs: Path) -> None:
        self.root = root
        shutil.copytree(EXAMPLE, root)
        vault = yaml.safe_load((certs / "vault-tls.yml").read_text())
        vault.update(TEST_SECRETS)
        # the CA of PostgreSQL's certificate, as etckit_postgresql would have made it
        vault["etckit_app_database_ca"] = (certs / "ca.crt").read_text()
        self.write_vars("all/vault.yml", vault)

    @property
    def hosts_file(self) -> Path:
        return self.root / "hosts.yml"

    def hosts(self) -> dict[str, Any]:
        return yaml.safe_load(self.hosts_file.read_text())

    def edit_hosts(self, change: Callable[[dict[str, Any]], None]) -> None:
        data = self.hosts()
        change(data)
        self.hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))

    def vars(self, name: str) -> dict[str, Any]:
        return yaml.safe_load((self.root / "group_vars" / name).read_text())

    def write_vars(self, name: str, data: dict[str, Any]) -> None:
        (self.root / "group_vars" / name).write_text(yaml.safe_dump(data, sort_keys=False))

    def edit_vars(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        data = self.vars(name)
        change(data)
        self.write_vars(name, data)


def run_playbook(playbook: Path, inventory: Inventory, work: Path,
                 extra_vars: dict[str, Any] | None = None,
                 limit: str | None = None) -> subprocess.CompletedProcess[str]:
    """ansible-playbook with connection=local, no become, and the repository's ansible.cfg."""
    work.mkdir(parents=True, exist_ok=True)
    extra = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    extra.update(extra_vars or {})
    extra_file = work / "extra-vars.json"
    extra_file.write_text(json.dumps(extra))
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_BECOME": "false",
        "ANSIBLE_CACHE_PLUGIN": "memory",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_FORKS": "5",
    })
    return subprocess.run(
        [ansible_program("ansible-playbook"), "-i", str(inventory.hosts_file), str(playbook),
         "-e", f"@{extra_file}", *(["--limit", limit] if limit else [])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )


def render(inventory: Inventory, certs: Path, out: Path, limit: str | None = None) -> Path:
    """Render every host's files (tests/kit/render.yml) into out/<host>/; fail on error."""
    prefix = out / "prefix"
    prefix.mkdir(parents=True)
    # Units name <prefix>/current/bin/etckit: let it be this environment's etckit.
    (prefix / "current").symlink_to(Path(sys.prefix))
    result = run_playbook(REPO / "tests" / "kit" / "render.yml", inventory, out / "work", {
        "etckit_test_out": str(out),
        "etckit_haproxy_certificate": str(certs / "wildcard.pem"),
        "etckit_haproxy_config_owner": _user(),
        "etckit_haproxy_config_group": _group(),
        "etckit_base_group": _group(),
        "etckit_base_prefix": str(prefix),
        "etckit_app_release_dir": sys.prefix,
    }, limit=limit)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for files in out.glob("*/files.json"):
        for name, content in json.loads(files.read_text()).items():
            (files.parent / name).write_text(content)
    return out


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def _group() -> str:
    import grp
    return grp.getgrgid(os.getgid()).gr_name
