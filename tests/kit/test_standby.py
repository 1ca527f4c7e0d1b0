"""A database standby in the inventory (docs/operations.md "The database standby"): what the
kit renders for the primary, the standby and the etckit hosts."""

from __future__ import annotations

import re

import pytest

from etckit.config import load
from tests.kit.support import render
from tests.kit.test_firewall import FRONT1, FRONT2, INTERNAL1, INTERNAL2, admitted

URL = ("postgresql://internal1.etc.example.org:5432,internal2.etc.example.org:5432/etckit"
       "?target_session_attrs=read-write&connect_timeout=5")


def _add_standby(hosts):
    hosts["all"]["children"]["databases"]["hosts"]["internal2"] = None
    hosts["all"]["children"]["database_standby"] = {"hosts": {"internal2": None}}
    hosts["all"]["hosts"]["internal2"] = {"ansible_host": INTERNAL2}


@pytest.fixture(scope="module")
def standby_render(tmp_path_factory, test_certs):
    from tests.kit.support import Inventory

    base = tmp_path_factory.mktemp("standby")
    inventory = Inventory(base / "inventory", test_certs)
    inventory.edit_hosts(_add_standby)
    return render(inventory, test_certs, base / "out", limit="front1,internal1,internal2")


def test_programs_get_a_multi_host_url_that_finds_the_primary(standby_render):
    assert load(str(standby_render / "front1" / "etckit.toml")).database.url == URL


def test_both_database_hosts_admit_the_clients_and_each_other(standby_render):
    for host, other in (("internal1", INTERNAL2), ("internal2", INTERNAL1)):
        sources = {src for src, port in admitted(standby_render / host / "nftables.conf")
                   if port == 5432}
        assert sources == {FRONT1, FRONT2, INTERNAL1, other}, host


def test_replication_is_admitted_from_the_other_database_host_only_over_tls(standby_render):
    def replication(host):
        return [line.split() for line in (standby_render / host / "pg_hba.conf").read_text()
                .splitlines() if re.match(r"\w+\s+replication\s", line)]
    assert replication("internal1") == [
        ["hostssl", "replication", "etckit_replication", f"{INTERNAL2}/32", "scram-sha-256"]]
    assert replication("internal2") == [
        ["hostssl", "replication", "etckit_replication", f"{INTERNAL1}/32", "scram-sha-256"]]


def test_the_standby_streams_from_the_primary_which_waits_for_it(standby_render):
    standby = (standby_render / "internal2" / "postgresql-replication.conf").read_text()
    conninfo = re.search(r"^primary_conninfo = '(.*)'$", standby, re.M).group(1).split()
    assert {"host=internal1.etc.example.org", "user=etckit_replication", "sslmode=verify-full",
            "application_name=internal2"} <= set(conninfo)
    assert not any(p.startswith("password=") for p in conninfo)  # in a passfile instead
    assert "primary_conninfo" not in (
        standby_render / "internal1" / "postgresql-replication.conf").read_text()
    sync = (standby_render / "internal1" / "postgresql-synchronous.conf").read_text()
    assert "synchronous_standby_names = 'ANY 1 (\"internal2\")'" in sync
    assert "synchronous_standby_names = ''" in (
        standby_render / "internal2" / "postgresql-synchronous.conf").read_text()


def test_one_database_host_keeps_a_plain_url_and_no_replication(example_render):
    assert load(str(example_render / "front1" / "etckit.toml")).database.url == (
        "postgresql://internal1.etc.example.org:5432/etckit")
    assert not re.search(r"^\w+\s+replication\s", (example_render / "internal1" / "pg_hba.conf")
                         .read_text(), re.M)
    assert "synchronous_standby_names = ''" in (
        example_render / "internal1" / "postgresql-synchronous.conf").read_text()
