"""The settings, units and firewall the kit renders for the example inventory."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from etckit.config import load
from tests.kit.support import REPO, TEST_SECRETS
from tests.support.system import missing, require_program

ETCKIT_HOSTS = ["front1", "front2", "internal1"]


def env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines()
             if line and not line.startswith("#")]
    # systemd takes a single-quoted value literally, as sh does
    return {key: value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
            for key, value in pairs}


def settings(host_dir: Path, env_name: str, monkeypatch):
    """What an etckit program started with this env file and etckit.toml sees."""
    for key in list(os.environ):
        if key.startswith("ETCKIT_"):
            monkeypatch.delenv(key)
    for key, value in env_file(host_dir / env_name).items():
        monkeypatch.setenv(key, value)
    return load(str(host_dir / "etckit.toml"))


@pytest.mark.parametrize("host", ETCKIT_HOSTS)
def test_etckit_toml_is_valid_and_holds_the_database_url(example_render, host):
    cfg = load(str(example_render / host / "etckit.toml"))
    # no role, no password: each program's own are in its environment file
    assert cfg.database.url == "postgresql://internal1.etc.example.org:5432/etckit"
    assert (cfg.database.user, cfg.database.password) == ("", "")
    assert (cfg.database.sslmode, cfg.database.sslrootcert) == (
        "verify-full", str(example_render / host / "postgresql-ca.crt"))
    assert "BEGIN CERTIFICATE" in (example_render / host / "postgresql-ca.crt").read_text()
    assert cfg.auth.fake_login is False
    assert cfg.auth.session_secret == ""  # main_server's alone: in main-server.env
    assert "session" not in (example_render / host / "etckit.toml").read_text()
    assert cfg.main_server.public_url == "https://www.etc.example.org"


def test_front_host_programs_see_their_settings(example_render, monkeypatch):
    front1 = example_render / "front1"
    wssvc = settings(front1, "wssvc.env", monkeypatch)
    assert (wssvc.wssvc.pool, wssvc.wssvc.public_host, wssvc.wssvc.port) == (
        "front1", "front1.etc.example.org", 8081)
    assert wssvc.wssvc.certfile == "/etc/ssl/certs/etckit-wildcard.crt"
    # wssvc checks tickets with the public key; it gets no secret of main_server's
    assert wssvc.auth.ticket_public_key == str(front1 / "ticket_ed25519.pub")
    assert (wssvc.auth.session_secret, wssvc.auth.ticket_private_key) == ("", "")
    main = settings(front1, "main-server.env", monkeypatch)
    assert main.auth.session_secret == "test-session-secret-0123456789-abcdef"
    assert (main.main_server.host, main.main_server.port) == ("0.0.0.0", 8080)
    assert list(main.main_server.trusted_proxies) == ["192.0.2.10"]
    broker = settings(front1, "broker-front1.env", monkeypatch)
    assert (broker.broker.pool, broker.broker.frontend_port, broker.broker.backend_port,
            broker.broker.host, broker.broker.advertise_host) == (
        "front1", 5551, 5552, "192.0.2.11", "192.0.2.11")


def test_internal_host_serves_both_pools(example_render, monkeypatch):
    internal = example_render / "internal1"
    brokers = {settings(internal, f"broker-{pool}.env", monkeypatch).broker.pool: pool
               for pool in ("front1", "front2")}
    assert brokers == {"front1": "front1", "front2": "front2"}
    front2 = settings(internal, "broker-front2.env", monkeypatch).broker
    assert (front2.frontend_port, front2.backend_port) == (5553, 5554)
    workers = sorted(p.name for p in internal.glob("worker-*.env"))
    assert workers == ["worker-front1-1.env", "worker-front1-2.env",
                       "worker-front2-1.env", "worker-front2-2.env"]
    assert settings(internal, "worker-front2-2.env", monkeypatch).worker.pool == "front2"
    assert not (internal / "wssvc.env").exists()


UNITS = [("front1", "etckit-main-server.service"), ("front1", "etckit-wssvc.service"),
         ("internal1", "etckit-broker@.service"), ("internal1", "etckit-worker@.service")]


@pytest.mark.parametrize(("host", "unit"), UNITS)
def test_units_are_hardened(example_render, host, unit):
    text = (example_render / host / unit).read_text()
    for line in ["User=etckit", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "Restart=on-failure", "RestartPreventExitStatus=2", "PartOf=etckit.target",
                 "WantedBy=etckit.target", "CapabilityBoundingSet=", "ProtectProc=invisible",
                 "SystemCallFilter=@system-service", "SystemCallErrorNumber=EPERM",
                 "Environment=OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1",
                 "StateDirectory=etckit/keys",
                 "Environment=ETCKIT_ZMQ__KEY_DIR=/var/lib/etckit/keys ETCKIT_ZMQ__KEY_NAME=%N"]:
        assert f"\n{line}\n" in text, line


# Each program's own lines of the one shared unit template: its limits, what only it needs.
UNIT_SPECIFICS = {
    "etckit-main-server.service": ["MemoryMax=512M", "TasksMax=128",
                                   "SupplementaryGroups=etckit-tickets",
                                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"],
    "etckit-wssvc.service": ["MemoryMax=1G", "TasksMax=128", "LimitNOFILE=65536",
                             "SupplementaryGroups=ssl-cert",
                             "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"],
    "etckit-broker@.service": ["MemoryMax=512M", "TasksMax=64", "IPAddressDeny=any",
                               "IPAddressAllow=localhost",
                               "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"],
    "etckit-worker@.service": ["MemoryMax=1280M", "TasksMax=64", "IPAddressDeny=any",
                               "IPAddressAllow=localhost",
                               "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"],
}


@pytest.mark.parametrize(("host", "unit"), UNITS)
def test_each_unit_gets_its_own_limits_from_the_shared_template(example_render, host, unit):
    lines = (example_render / host / unit).read_text().splitlines()
    for line in UNIT_SPECIFICS[unit]:
        assert line in lines, line
    key = [line for line in lines if line.startswith("Environment=ETCKIT_AUTH__TICKET_PRIVATE")]
    assert key == ([f"Environment=ETCKIT_AUTH__TICKET_PRIVATE_KEY={example_render / host}"
                    "/ticket_ed25519.key"] if unit == "etckit-main-server.service" else [])
    assert sum(line.startswith("IPAddressDeny=") for line in lines) == (
        1 if "IPAddressDeny=any" in UNIT_SPECIFICS[unit] else 0)
    assert sum(line.startswith("LimitNOFILE=") for line in lines) == (
        1 if unit == "etckit-wssvc.service" else 0)


MAX_EXPOSURE = 2.0


def exposure(unit_file: Path) -> float:
    """The overall exposure `systemd-analyze security --offline=true` gives a unit file."""
    analyze = require_program("systemd-analyze", "systemd")
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit_file)],
                            capture_output=True, text=True)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    if found is None and "offline" in result.stderr:
        missing("systemd-analyze security --offline (systemd 252 or newer)", "systemd")
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    return float(found.group(1))


@pytest.mark.parametrize(("host", "unit"), UNITS)
def test_units_score_at_most_2_in_systemd_analyze_security(example_render, host, unit):
    assert exposure(example_render / host / unit) <= MAX_EXPOSURE


def test_the_exposure_check_catches_a_weakened_unit(example_render, tmp_path):
    """A unit stripped of its system call filter and sandboxing scores above the bound."""
    weak = tmp_path / "etckit-worker@.service"
    text = (example_render / "internal1" / "etckit-worker@.service").read_text()
    dropped = ("SystemCallFilter=", "ProtectProc=", "PrivateMounts=", "IPAddress", "RemoveIPC=")
    weak.write_text("\n".join(line for line in text.splitlines()
                               if not line.startswith(dropped)) + "\n")
    assert exposure(weak) > MAX_EXPOSURE


@pytest.mark.parametrize(("host", "unit"), UNITS)
def test_units_pass_systemd_analyze_verify(example_render, host, unit):
    require_program("systemd-analyze", "systemd")
    checker = REPO / "roles" / "etckit_base" / "files" / "etckit-verify-unit"
    result = subprocess.run([str(checker), str(example_render / host / unit), unit],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unit_checker_rejects_an_unknown_key(example_render, tmp_path):
    require_program("systemd-analyze", "systemd")
    bad = tmp_path / "bad.service"
    text = (example_render / "front1" / "etckit-wssvc.service").read_text()
    bad.write_text(text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    checker = REPO / "roles" / "etckit_base" / "files" / "etckit-verify-unit"
    result = subprocess.run([str(checker), str(bad), "etckit-wssvc.service"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "NoNewPrivilege" in result.stderr


@pytest.mark.parametrize("host", ["lb1", "front1", "internal1"])
def test_firewall_rules_pass_nft_check(example_render, host):
    nft = require_program("nft", "nftables")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root")
    result = subprocess.run([nft, "-c", "-f", str(example_render / host / "nftables.conf")],
                            capture_output=True, text=True)
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft -c is not permitted in this sandbox")
    assert result.returncode == 0, result.stderr


def _program_password(program: str) -> str:
    return hashlib.sha256(f"{TEST_SECRETS['vault_etckit_database_password']}:{program}"
                          .encode()).hexdigest()


@pytest.mark.parametrize("host", ETCKIT_HOSTS)
def test_each_program_holds_its_own_database_password_alone(example_render, host,
                                                            monkeypatch):
    """etckit db grant's roles: a program's file carries its role and password, no other
    program's; the owner's password is in no file of an etckit host."""
    passwords = {p: _program_password(p) for p in ("main_server", "wssvc", "broker", "worker")}
    owner = TEST_SECRETS["vault_etckit_database_password"]
    files = sorted(p for p in (example_render / host).iterdir()
                   if p.is_file() and p.name != "files.json")  # files.json: all of them
    programs = {"main-server.env": "main_server", "wssvc.env": "wssvc"}
    seen = set()
    for path in files:
        text = path.read_text()
        assert owner not in text, path.name
        program = programs.get(path.name) or next(
            (p for p in ("broker", "worker") if path.name.startswith(p + "-")), None)
        for other, password in passwords.items():
            assert (password in text) == (other == program), (path.name, other)
        if program and path.name.endswith(".env"):
            cfg = settings(example_render / host, path.name, monkeypatch)
            assert (cfg.database.user, cfg.database.password) == (
                f"etckit_{program}", passwords[program])
            seen.add(program)
    assert seen  # every etckit host runs some program


def test_pg_hba_admits_each_role_from_its_own_hosts_over_tls_only(example_render):
    lines = [line.split() for line in (example_render / "internal1" / "pg_hba.conf")
             .read_text().splitlines() if line and not line.startswith("#")]
    assert not [line for line in lines if line[0] == "host"]
    assert ["hostnossl", "all", "all", "0.0.0.0/0", "reject"] in lines
    remote = {(line[2], line[3]) for line in lines
              if line[0] == "hostssl" and line[1] == "etckit"}
    fronts, internal = {"192.0.2.11/32", "192.0.2.12/32"}, {"192.0.2.21/32"}
    assert remote == {("etckit", a) for a in fronts | internal} | \
        {("etckit_main_server", a) for a in fronts} | {("etckit_wssvc", a) for a in fronts} | \
        {("etckit_broker", a) for a in fronts | internal} | \
        {("etckit_worker", a) for a in fronts | internal}
    conf = (example_render / "internal1" / "postgresql-etckit.conf").read_text()
    assert "ssl = on" in conf and "ssl_cert_file = '/etc/ssl/certs/etckit-postgresql.crt'" in conf
