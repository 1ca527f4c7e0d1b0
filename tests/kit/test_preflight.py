"""The safety rails: playbooks/preflight.yml refuses what must not be deployed, by name."""

from __future__ import annotations

import pytest

from tests.kit.support import REPO, run_playbook

PREFLIGHT = REPO / "playbooks" / "preflight.yml"


def preflight(inventory, tmp_path):
    return run_playbook(PREFLIGHT, inventory, tmp_path / "work")


def refused(result, message: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]


def test_example_inventory_with_its_secrets_passes(inventory, tmp_path):
    result = preflight(inventory, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("secret", ["vault_etckit_database_password", "vault_etckit_session_secret",
                                    "vault_etckit_tls_key", "vault_etckit_sso_client_secret"])
def test_a_missing_secret_is_refused_by_name(inventory, tmp_path, secret):
    inventory.edit_vars("all/vault.yml", lambda v: v.pop(secret))
    refused(preflight(inventory, tmp_path), f"secret {secret} is missing")


def test_a_placeholder_secret_counts_as_missing(inventory, tmp_path):
    inventory.edit_vars("all/vault.yml",
                        lambda v: v.update(vault_etckit_session_secret="CHANGE-ME"))
    refused(preflight(inventory, tmp_path), "secret vault_etckit_session_secret is missing")


@pytest.mark.parametrize("weak", ["short-secret-of-31-characters-x", "x" * 31 + "'quote"])
def test_a_weak_session_secret_is_refused_without_showing_it(inventory, tmp_path, weak):
    inventory.edit_vars("all/vault.yml", lambda v: v.update(vault_etckit_session_secret=weak))
    result = preflight(inventory, tmp_path)
    refused(result, "vault_etckit_session_secret must be at least 32 characters")
    assert weak not in result.stdout + result.stderr


def test_the_sso_secret_is_needed_only_with_sso(inventory, tmp_path):
    inventory.edit_vars("all/vault.yml", lambda v: v.pop("vault_etckit_sso_client_secret"))
    inventory.edit_vars("all/main.yml", lambda v: v.update(etckit_sso_enabled=False))
    assert preflight(inventory, tmp_path).returncode == 0


def test_fake_login_is_refused_on_production(inventory, tmp_path):
    inventory.edit_vars("all/main.yml", lambda v: v.update(etckit_fake_login=True))
    refused(preflight(inventory, tmp_path),
            "fake_login is enabled for front1 but this inventory is marked production")


def test_fake_login_through_the_settings_is_refused_on_production(inventory, tmp_path):
    inventory.edit_vars("all/main.yml",
                        lambda v: v["etckit_app_settings"]["auth"].update(fake_login=True))
    refused(preflight(inventory, tmp_path), "fake_login is enabled for")


def test_fake_login_is_allowed_on_a_test_system(inventory, tmp_path):
    inventory.edit_vars("all/main.yml",
                        lambda v: v.update(etckit_fake_login=True, etckit_environment="test"))
    assert preflight(inventory, tmp_path).returncode == 0


def test_a_wssvc_without_broker_is_refused(inventory, tmp_path):
    def drop_front2_brokers(hosts):
        brokers = hosts["all"]["children"]["brokers"]["hosts"]
        del brokers["front2"]
        del brokers["internal1"]["etckit_broker_instances"]["front2"]

    inventory.edit_hosts(drop_front2_brokers)
    refused(preflight(inventory, tmp_path), "wssvc pool front2 has no broker")


def test_a_pool_without_worker_is_refused(inventory, tmp_path):
    def drop_front1_workers(hosts):
        workers = hosts["all"]["children"]["workers"]["hosts"]
        workers["front1"]["etckit_worker_counts"] = {"front1": 0}
        del workers["internal1"]["etckit_worker_counts"]["front1"]

    inventory.edit_hosts(drop_front1_workers)
    refused(preflight(inventory, tmp_path), "pool front1 has no worker")


def test_a_broker_for_a_pool_without_wssvc_is_refused(inventory, tmp_path):
    inventory.edit_hosts(lambda h: h["all"]["children"]["brokers"]["hosts"]["internal1"]
                         ["etckit_broker_instances"].update(front9={"frontend_port": 5561,
                                                                    "backend_port": 5562}))
    refused(preflight(inventory, tmp_path), "pool front9 has brokers or workers but no wssvc")


def test_a_host_without_an_address_is_refused(inventory, tmp_path):
    inventory.edit_hosts(lambda h: h["all"]["hosts"]["front2"].update(ansible_host="front2.lan"))
    refused(preflight(inventory, tmp_path), "host front2 has no IP address")
