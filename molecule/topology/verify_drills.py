"""The topology scenario's drills: the kit's operations run while a real client keeps working.

Run by verify.yml after verify_topology.py (Molecule sets MOLECULE_* in the environment), on
the grown site verify_topology.py leaves behind: its rolling upgrade done, internal2 added. The
client is verify_topology.py's (it trusts only the test CA and resolves *.etc.example.org
itself); www.etc.example.org is keepalived's floating address on lb1 and lb2. Each step prints
one line with its figures, appends its time to test-artifacts/molecule-times.txt, and raises on
the first behaviour that is wrong.

    python verify_drills.py [STEP ...]     default: every step, in order

The rollback step goes back from the release verify_topology.py's rolling-upgrade step
installed (rolling upgrade then rollback: the drill of docs/operations.md); failover comes last
because it stops lb1's container (and starts it again).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import verify_topology as vt  # noqa: E402  (the client, the host helpers)

DOMAIN = vt.DOMAIN
INVENTORY = yaml.safe_load((HERE / "inventory" / "hosts.yml").read_text())["all"]
VIP = vt.VIP
LBS = list(INVENTORY["children"]["loadbalancers"]["hosts"])
APPS = list(INVENTORY["children"]["main_servers"]["hosts"])
DATABASE = next(iter(INVENTORY["children"]["databases"]["hosts"]))
TIMES = vt.PROJECT / "test-artifacts" / "molecule-times.txt"
ETCKIT_GROUPS = ("main_servers", "wssvc_servers", "brokers", "workers")
# Every host that runs etckit programs, internal2 (added from grow.yml) included.
ETCKIT_HOSTS = sorted({host for source in (INVENTORY, yaml.safe_load(vt.GROW.read_text())["all"])
                       for group in ETCKIT_GROUPS
                       for host in source["children"].get(group, {}).get("hosts") or {}})
say = vt.say
on = vt.on


TOOK: dict[str, float] = {}  # seconds each playbook of the drills took, last run


def playbook(name: str, *args: str) -> str:
    started = time.monotonic()
    out = vt.playbook(name, *args)
    TOOK[name] = time.monotonic() - started
    return out


def served_serial(host: str, port: int, address: str | None = None) -> int:
    """The serial number of the certificate HOST:PORT serves (verified against the test CA)."""
    import socket

    with socket.create_connection((address or vt.ADDRESSES[host.split(".")[0]], port), 10) as raw:
        with vt.TLS.wrap_socket(raw, server_hostname=host) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def vip_holders() -> list[str]:
    return [lb for lb in LBS if on(lb, "ip", "-o", "-4", "addr", "show", check=False)
            .count(f" {VIP}/") > 0]


async def healthy_www() -> None:
    def test() -> bool:
        try:
            return httpx.get(f"https://www.{DOMAIN}/healthz", verify=vt.TLS, timeout=5)\
                .status_code == 200
        except httpx.HTTPError:
            return False
    await asyncio.to_thread(vt.wait_until, "www answers /healthz", test, 120)


async def settled(conn: vt.Connection, type_: str, **fields) -> dict[str, Any]:
    """A request right after programs restarted: `busy`/`unavailable` until the workers have
    joined their broker (a few heartbeats), then it must succeed."""
    started = time.monotonic()
    while True:
        reply = await conn.request(type_, **fields)
        if reply.get("type") != "error":
            return reply
        assert reply["code"] in ("busy", "unavailable") and time.monotonic() - started < 60, reply
        await asyncio.sleep(1)


async def names(s: vt.State) -> dict[str, str]:
    lister = await s.browser.connect("list")
    try:
        return {w["id"]: w["name"] for w in (await settled(lister, "workbook.list"))["workbooks"]}
    finally:
        await lister.close()


class Load:
    """A client that keeps working: an HTTP request through the floating address and an edit
    over its websocket, in a loop. A failed request raises; a websocket closed under a
    request (the documented 1012/1001 closes) reconnects through main_server and is counted."""

    def __init__(self, s: vt.State) -> None:
        self.s = s
        self.stats: dict[str, Any] = {"edits": 0, "http": 0, "closes": 0, "reconnects": 0,
                                      "lost": 0}
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        s = self.s
        while not self._stop.is_set():
            r = await s.browser.http.get("/api/me")
            assert r.status_code == 200, f"main_server through HAProxy answered {r.status_code}"
            self.stats["http"] += 1
            try:
                name = f"edit {self.stats['edits'] + 1}"
                reply = await s.conn.request("workbook.rename", workbook=s.workbook, name=name,
                                             timeout=30)
                assert reply.get("type") != "error", f"workbook.rename failed: {reply}"
                self.stats["edits"] += 1
                self.stats["last"] = name
            except vt.ConnectionLost:
                # Cut by a documented close: reconnect through main_server and reopen the
                # workbook as the page does, again if the next host's restart closes the new
                # socket too (the cut rename may have been saved: then its revision is learnt
                # here and it counts as acknowledged).
                self.stats["closes"] += 1
                reopened = await vt.reopen(
                    s, self.stats, opening=lambda conn: settled(conn, "workbook.open"))
                if reopened["workbook"]["name"] == name:
                    self.stats["last"] = name
            await asyncio.sleep(0.3)

    def __enter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def finish(self) -> str:
        self._stop.set()
        await self._task  # re-raises what the client saw go wrong
        content = await vt.call(self.s, "workbook.open")
        assert content["workbook"]["name"] == self.stats["last"], (content["workbook"],
                                                                    self.stats["last"])
        return (f"{self.stats['edits']} edits and {self.stats['http']} HTTP requests, none "
                f"failed; {self.stats['closes']} documented closes, each reconnected "
                f"({self.stats['reconnects']} connections, {self.stats['lost']} of them closed "
                "again while reopening)")

    def __exit__(self, *exc) -> None:
        self._stop.set()


# -- the steps ------------------------------------------------------------------------------

async def step_client(s: vt.State) -> None:
    """Log in through the floating address, a workbook with a calculation and its plot."""
    s.browser = vt.Browser()
    await s.browser.login("drills")
    lister = await s.browser.connect("list")
    s.workbook = (await lister.ok("workbook.create", name="Drills"))["workbook"]["id"]
    await lister.close()
    s.conn = await s.browser.connect("workbook", s.workbook)
    d = (await s.conn.ok("workbook.open"))["defaults"]
    source = (await s.conn.ok("source.add", name="Galaxy", data=d["source"]))["item"]
    scene = (await s.conn.ok("scene.add", name="Field", data={"sources": [
        {"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}))["item"]
    s.calc = (await s.conn.ok("calculation.add", name="F200W", scene=scene["id"],
                              data=d["calculation"]))["item"]
    assert s.calc["status"] == "ok", s.calc
    await s.browser.plot(s.conn, s.calc)
    say(f"logged in through {VIP} (www); workbook {s.workbook} with a calculation on "
        f"{s.conn.front}")


def dump_is_private(local: Path) -> str:
    """The dump on the controller and on the database host: not readable by etckit or others."""
    assert local.stat().st_mode & 0o077 == 0, f"{local} is mode {local.stat().st_mode:o}"
    remote = f"/var/backups/etckit/{local.name}"
    mode = on(DATABASE, "stat", "-c", "%a %U", remote)
    assert int(mode.split()[0], 8) & 0o007 == 0, f"{DATABASE}:{remote} is {mode}"
    done = subprocess.run(["podman", "exec", DATABASE, "runuser", "-u", "etckit", "--",
                           "head", "-c", "1", remote], capture_output=True)
    assert done.returncode != 0 and not done.stdout, f"the etckit user reads {remote}"
    return mode


async def step_backup_restore(s: vt.State) -> None:
    """backup, more writes, restore: what was acknowledged before the backup, nothing later."""
    lister = await s.browser.connect("list")
    for n in range(3):
        await lister.ok("workbook.create", name=f"before the backup {n}")
    await lister.close()
    await vt.call(s, "workbook.rename", workbook=s.workbook, name="renamed before the backup")
    before = await names(s)
    out = await asyncio.to_thread(playbook, "backup-database.yml",
                                  "-e", f"etckit_backup_local_dir={vt.EPHEMERAL}/backups")
    local = Path(re.search(r"backup in (\S+\.dump)", out)[1])
    mode = dump_is_private(local)

    lister = await s.browser.connect("list")
    later = [(await lister.ok("workbook.create", name=f"after the backup {n}"))["workbook"]["id"]
             for n in range(2)]
    await lister.close()
    await vt.call(s, "workbook.rename", workbook=s.workbook, name="renamed after the backup")
    assert set(later) <= set(await names(s))

    await asyncio.to_thread(playbook, "restore-database.yml", "-e",
                            f"etckit_restore_file={local}", "-e", "etckit_restore_confirm=yes")
    await healthy_www()
    after = await names(s)  # the session made before the backup is in the dump: still logged in
    assert after == before, f"after the restore: {after}, acknowledged before the backup: {before}"
    s.conn = await s.browser.connect("workbook", s.workbook)  # its wssvc restarted
    vt.REVISIONS.clear()  # the restore took the workbooks back: relearn them, as a page reloads
    content = await settled(s.conn, "workbook.open")
    assert [c["id"] for c in content["calculations"]] == [s.calc["id"]], content
    copy = (await s.conn.ok("calculation.copy", calculation=s.calc["id"]))["item"]
    assert copy["status"] == "ok", copy
    await s.browser.plot(s.conn, copy)
    say(f"backup {local.name} in {TOOK['backup-database.yml']:.0f}s, restore in "
        f"{TOOK['restore-database.yml']:.0f}s (controller 0600, host {mode}, the etckit user "
        "cannot read it); "
        f"restore: the {len(before)} workbooks acknowledged before it are back as they were, "
        f"the {len(later)} created and the rename made after it are gone; a new calculation "
        "and its plot work")


def releases() -> dict[str, str]:
    return {h: on(h, "readlink", "/opt/etckit/current") for h in ETCKIT_HOSTS}


def runs(host: str, release: str) -> list[str]:
    """The etckit units of HOST whose process did not load RELEASE."""
    return [u for u in vt.etckit_units(host)
            if release not in on(host, "cat", f"/proc/{vt.unit_state(host, u)['MainPID']}/maps")]


async def versions(s: vt.State) -> set[str]:
    """What /healthz says on every wssvc and through the floating address."""
    urls = [f"https://{h}.{DOMAIN}:{port}/healthz" for h, port in vt.WSSVC] + ["/healthz"]
    return {(await s.browser.http.get(url)).json()["version"] for url in urls}


async def step_rollback(s: vt.State) -> None:
    """rollback.yml after verify_topology.py's rolling upgrade, while the client works: every
    program on every host runs the release from before the upgrade again."""
    upgraded = releases()
    previous = {h: on(h, "readlink", "/opt/etckit/previous", check=False) for h in ETCKIT_HOSTS}
    assert all(previous.values()), f"a host has no previous release recorded: {previous}"
    assert all(previous[h] != upgraded[h] for h in ETCKIT_HOSTS), (previous, upgraded)
    old_version = on(APPS[0], f"{previous[APPS[0]]}/bin/etckit", "version").split()[-1]
    new_version = await versions(s)
    assert len(new_version) == 1 and old_version not in new_version, (old_version, new_version)
    with Load(s) as load:
        await asyncio.to_thread(playbook, "rollback.yml")
        seen = await load.finish()
    assert releases() == previous, f"after the rollback: {releases()}, before: {previous}"
    stale = {h: runs(h, previous[h]) for h in ETCKIT_HOSTS}
    assert not any(stale.values()), f"programs not on the previous release: {stale}"
    assert await versions(s) == {old_version}, (await versions(s), old_version)
    gone = [h for h in ETCKIT_HOSTS if on(h, "readlink", "/opt/etckit/previous", check=False)]
    assert not gone, f"previous is left on {gone}: a second rollback would go forward"
    say(f"rollback from {new_version.pop()} to {old_version} ({TOOK['rollback.yml']:.0f}s): "
        f"every program on {', '.join(ETCKIT_HOSTS)} runs the previous release again; "
        f"meanwhile {seen}")


def new_certificate() -> tuple[Path, int]:
    """A new wildcard certificate from the same test CA (a new key and serial)."""
    old, new = vt.EPHEMERAL / "certs", vt.EPHEMERAL / f"certs-{int(time.time())}"
    new.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy(old / name, new / name)
    subprocess.run([str(vt.PROJECT / "certs" / "make-test-cert"), DOMAIN, str(new)],
                   check=True, capture_output=True)
    return new, x509.load_pem_x509_certificate((new / "wildcard.crt").read_bytes()).serial_number


def serials() -> dict[str, int]:
    found = {f"{lb} (HAProxy)": served_serial(f"www.{DOMAIN}", 443, vt.ADDRESSES[lb])
             for lb in LBS}
    found.update({f"{h}:{port} (wssvc)": served_serial(f"{h}.{DOMAIN}", port)
                  for h, port in vt.WSSVC})
    return found


async def step_rotate_certificate(s: vt.State) -> None:
    """rotate-certificate.yml with a new certificate: everything serves it, no request fails."""
    before = await asyncio.to_thread(serials)
    certs, serial = await asyncio.to_thread(new_certificate)
    assert serial not in before.values()
    with Load(s) as load:
        await asyncio.to_thread(playbook, "rotate-certificate.yml",
                                "-e", f"etckit_molecule_certs={certs}")
        seen = await load.finish()
    after = await asyncio.to_thread(serials)
    wrong = {where: f"{got:x}" for where, got in after.items() if got != serial}
    assert not wrong, f"still the old certificate (new serial {serial:x}): {wrong}"
    say(f"certificate rotated to serial {serial:x} in {TOOK['rotate-certificate.yml']:.0f}s: "
        f"served by {', '.join(after)}; meanwhile {seen}")


KEYS = "/var/lib/etckit/keys"
PROBE = vt.HERE / "probe_zmq.py"  # the topology's stray ZeroMQ peer


def ticket_key_dir() -> Path:
    """Where the kit keeps the ticket keypair on the controller (etckit_app_ticket_key_dir)."""
    return vt.PROJECT / "secrets" / DOMAIN


def resigned(ticket: str, key: Ed25519PrivateKey) -> str:
    """TICKET's payload (a fresh one from main_server) signed again with KEY."""
    version, payload, _ = ticket.split(".")
    signature = key.sign(f"{version}.{payload}".encode())
    return f"{version}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def ticket_answer(endpoint: str, ticket: str) -> str:
    """"accepted" when wssvc says hello to TICKET, else what it answered."""
    try:
        async with websockets.connect(f"{endpoint}/ws?ticket={ticket}", ssl=vt.TLS,
                                      origin=vt.PUBLIC, open_timeout=10) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return "accepted" if hello.get("type") == "hello" else f"said {hello}"
    except websockets.InvalidStatus as exc:
        return f"{exc.response.status_code} {exc.response.body.decode(errors='replace')}"


async def assignment(s: vt.State) -> dict[str, Any]:
    r = await s.browser.http.post("/api/assign", json={"purpose": "list"})
    assert r.status_code == 200, f"/api/assign answered {r.status_code}: {r.text[:200]}"
    return r.json()


def probe(host: str, *argv: str) -> str:
    """probe_zmq.py on HOST with the release's pyzmq (its answer: "reply …", "no reply", …)."""
    return on(host, "/opt/etckit/current/bin/python", "-c", PROBE.read_text(), *argv,
              check=False).strip()


def curve_request(host: str, secret: str, user: str, name: str) -> str:
    """A wssvc's request to HOST's broker frontend, with the CURVE secret key file SECRET."""
    return probe(host, "request", f"tcp://{vt.ADDRESSES[host]}:5551",
                 f"{KEYS}/etckit-broker@{host}.public", secret, user, name)


def curve_publics() -> dict[str, str]:
    return {f"{h}:{f}": on(h, "cat", f"{KEYS}/{f}") for h in APPS
            for f in on(h, "ls", KEYS).split() if f.endswith(".public")}


async def step_rotate_keys(s: vt.State) -> None:
    """rotate-keys.yml under the client: new ticket key and CURVE keys; the old ones refused."""
    host = APPS[0]
    old_key = serialization.load_pem_private_key(
        (ticket_key_dir() / "ticket_ed25519.key").read_bytes(), password=None)
    user = (await s.browser.http.get("/api/me")).json()["user"]["id"]
    # Controls: before the rotation the old key's ticket and the wssvc's old CURVE key work.
    fresh = await assignment(s)
    control = await ticket_answer(fresh["endpoint"], resigned(fresh["ticket"], old_key))
    assert control == "accepted", f"a ticket signed with the current key: {control}"
    unused = await assignment(s)  # minted before the rotation, presented after it
    for name in ("etckit-wssvc", f"etckit-worker@{host}-1"):
        on(host, "cp", f"{KEYS}/{name}.secret", f"/root/drill-old-{name}.secret")
    old_wssvc = "/root/drill-old-etckit-wssvc.secret"
    reply = curve_request(host, old_wssvc, user, "curve control")
    assert reply.startswith("reply"), f"the wssvc's own CURVE key before the rotation: {reply}"
    publics = curve_publics()

    with Load(s) as load:
        out = await asyncio.to_thread(playbook, "rotate-keys.yml")
        seen = await load.finish()
    new_pub = (ticket_key_dir() / "ticket_ed25519.pub").read_text().strip()
    old_pub = old_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert new_pub != old_pub.strip(), "the controller still holds the old ticket keypair"
    assert not list(ticket_key_dir().glob("ticket_ed25519.next.*")), "the next keypair is left"
    for h in APPS:
        installed = on(h, "cat", "/etc/etckit/ticket_ed25519.pub").strip()
        assert installed == new_pub, f"{h}: wssvc verifies with {installed!r}, not the new key"
    fresh = await assignment(s)
    new = await ticket_answer(fresh["endpoint"], fresh["ticket"])
    assert new == "accepted", f"a ticket main_server signed with the new key: {new}"
    fresh = await assignment(s)
    forged = await ticket_answer(fresh["endpoint"], resigned(fresh["ticket"], old_key))
    assert forged.startswith("403") and "signature" in forged, f"old key's ticket: {forged}"
    stale = await ticket_answer(unused["endpoint"], unused["ticket"])
    assert stale.startswith("403"), f"a ticket from before the rotation: {stale}"

    after = curve_publics()
    same = sorted(k for k in publics if after.get(k) == publics[k])
    assert not same and set(after) == set(publics), f"CURVE keys not rotated: {same}"
    refused = curve_request(host, old_wssvc, user, "curve old key")
    assert refused == "no reply", f"the broker answered the wssvc's old CURVE key: {refused}"
    worker = probe(host, "ready", f"tcp://{vt.ADDRESSES[host]}:5552",
                   f"{KEYS}/etckit-broker@{host}.public",
                   f"/root/drill-old-etckit-worker@{host}-1.secret")
    assert worker == "no answer", f"the broker answered a worker's old CURVE key: {worker}"
    reply = curve_request(host, f"{KEYS}/etckit-wssvc.secret", user, "curve new key")
    assert reply.startswith("reply"), f"the wssvc's new CURVE key: {reply}"
    s.conn = await s.browser.connect("workbook", s.workbook)
    copy = (await settled(s.conn, "calculation.copy", calculation=s.calc["id"]))["item"]
    assert copy["status"] == "ok", copy
    await s.browser.plot(s.conn, copy)
    assert "failed=0" in out
    say(f"keys rotated in {TOOK['rotate-keys.yml']:.0f}s (the ticket key, {len(after)} CURVE "
        "keys): a new ticket is accepted, one signed with the old key "
        f"refused ({forged[:60]}), one minted before refused ({stale[:60]}); the broker "
        "ignores the old wssvc and worker keys and answers the new; a calculation and its "
        f"plot work; meanwhile {seen}")


class Prober:
    """A new HTTPS connection to the floating address every 0.1 s, until the outage is over:
    the address has moved (`moved`, set by outage()) and ten answers came after the last
    failure, or thirty after the move when none failed. It stops itself then, so a failure
    after that cannot leave the gap without an end. The gap is the time from the last answer
    before the first failure to the first answer after the last."""

    def __init__(self) -> None:
        self.ok: list[float] = []
        self.failed: list[float] = []
        self.moved: float | None = None

    async def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(verify=vt.TLS, timeout=1, limits=limits) as http:
            while not self.settled():
                try:
                    r = await http.get(f"https://www.{DOMAIN}/healthz")
                    (self.ok if r.status_code == 200 else self.failed).append(time.monotonic())
                except httpx.HTTPError:
                    self.failed.append(time.monotonic())
                await asyncio.sleep(0.1)

    def settled(self) -> bool:
        if self.moved is None:
            return False
        if self.failed:
            return sum(t > self.failed[-1] for t in self.ok) >= 10
        return sum(t > self.moved for t in self.ok) >= 30

    def gap(self) -> float:
        if not self.failed:
            return 0.0
        first = self.failed[0]
        last_ok = max((t for t in self.ok if t < first), default=first)
        return min(t for t in self.ok if t > self.failed[-1]) - last_ok


async def outage(what: str, action, holder_after: str) -> float:
    prober = Prober()
    task = asyncio.create_task(prober.run())
    try:
        await asyncio.sleep(1)
        await asyncio.to_thread(action)
        await asyncio.to_thread(vt.wait_until, f"{holder_after} holds {VIP} after {what}",
                                lambda: vip_holders() == [holder_after], 60)
        prober.moved = time.monotonic()
        try:
            await asyncio.wait_for(task, 60)
        except TimeoutError:
            raise AssertionError(f"www did not answer again within 60s after {what}: "
                                 f"{len(prober.failed)} failures") from None
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return prober.gap()


async def step_failover(s: vt.State) -> None:
    """keepalived: lb1's HAProxy stops, then its container; the client carries on via lb2."""
    first, second = LBS
    await asyncio.to_thread(vt.wait_until, f"{first} holds {VIP}",
                            lambda: vip_holders() == [first], 60)
    gap_haproxy = await outage(f"{first}'s HAProxy stopped", lambda: on(
        first, "systemctl", "stop", "haproxy.service"), second)
    await vt.call(s, "workbook.rename", workbook=s.workbook, name="via lb2")
    assert (await s.browser.http.get("/api/me")).status_code == 200
    back = await outage(f"{first}'s HAProxy started", lambda: on(
        first, "systemctl", "start", "haproxy.service"), first)
    try:
        gap_host = await outage(f"{first}'s container stopped", lambda: subprocess.run(
            ["podman", "stop", first], check=True, capture_output=True), second)
        assert (await s.browser.http.get("/api/me")).status_code == 200
        content = await vt.call(s, "workbook.open")
        assert content["workbook"]["name"] == "via lb2", content["workbook"]
    finally:
        await asyncio.to_thread(subprocess.run, ["podman", "start", first], capture_output=True)
    say(f"failover to {second}: {gap_haproxy:.1f}s without an answer after {first}'s HAProxy "
        f"stopped, {gap_host:.1f}s after its container stopped ({back:.1f}s when the address "
        "went back); the logged-in client carried on")


STEPS = {
    "client": step_client,
    "backup-restore": step_backup_restore,
    "rotate-certificate": step_rotate_certificate,
    "rotate-keys": step_rotate_keys,
    "rollback": step_rollback,
    "failover": step_failover,
}


def diagnose() -> None:
    for host in APPS + LBS:
        print(f"--- {host}", file=sys.stderr)
        print(on(host, "systemctl", "list-units", "--plain", "--no-legend", "--all",
                 "etckit*", "haproxy*", "keepalived*", check=False), file=sys.stderr)
        print(on(host, "journalctl", "-u", "etckit*", "-u", "keepalived*", "-n", "30",
                 "--no-pager", "-o", "cat", check=False), file=sys.stderr)
        print(f"--- {host}: warnings\n{vt.warnings_of(host)}", file=sys.stderr)


def record(name: str, took: float) -> None:
    """A drill's time, in the scenario's times file."""
    TIMES.parent.mkdir(exist_ok=True)
    with TIMES.open("a") as times:
        print(f"drills {name}: {took:.0f}s", file=times)


async def main(steps: list[str]) -> int:
    return await vt.run_steps(vt.State(), STEPS, steps, diagnose, record)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main(sys.argv[1:])))
