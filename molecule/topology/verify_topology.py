"""The topology scenario's verify: a real client on the controller against the deployed site.

Run by verify.yml (Molecule sets MOLECULE_* in the environment). The client trusts only the test
CA and resolves *.etc.example.org to the containers' addresses on the scenario's network, the
way a browser with that CA and DNS would: SNI, Host and cookies all carry the real names.
Each step prints one line and raises on the first behaviour that is wrong.

    python verify_topology.py [STEP ...]     default: every step, in order
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

HERE = Path(__file__).resolve().parent
PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", HERE.parent.parent))
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY_DIR = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
GROW = HERE / "inventory" / "grow.yml"
CA = EPHEMERAL / "certs" / "ca.crt"
DOMAIN = "etc.example.org"
PUBLIC = f"https://www.{DOMAIN}"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


# The floating address keepalived keeps on lb1 or lb2: www.etc.example.org points at it.
VIP = yaml.safe_load((HERE / "inventory" / "group_vars" / "loadbalancers" / "keepalived.yml")
                     .read_text())["etckit_lb_vip"]


def _addresses() -> dict[str, str]:
    found: dict[str, str] = {}
    for source in (HERE / "inventory" / "hosts.yml", GROW):
        for name, hv in (yaml.safe_load(source.read_text())["all"]["hosts"] or {}).items():
            found[name] = hv["etckit_address"]
    found["www"] = VIP
    return found


ADDRESSES = _addresses()
_getaddrinfo = socket.getaddrinfo


def _resolve(host, *args, **kwargs):  # a --resolve for every client library at once
    if isinstance(host, bytes):  # anyio (httpx) passes the IDNA-encoded name
        host = host.decode("ascii")
    if isinstance(host, str) and host.endswith("." + DOMAIN):
        host = ADDRESSES[host[: -len(DOMAIN) - 1]]
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve
TLS = ssl.create_default_context(cafile=str(CA))


GROUPS = yaml.safe_load((HERE / "inventory" / "hosts.yml").read_text())["all"]["children"]


def _wssvc() -> dict[tuple[str, int], tuple[str, str]]:
    """Every wssvc of the site, (host, port) -> (its unit, its pool), from the inventory:
    front2 runs a second one (etckit_wssvc_more_instances)."""
    found = {}
    for host, settings in GROUPS["wssvc_servers"]["hosts"].items():
        found[(host, 8081)] = ("etckit-wssvc.service", host)
        for name, spec in ((settings or {}).get("etckit_wssvc_more_instances") or {}).items():
            found[(host, int(spec["port"]))] = (f"etckit-wssvc@{name}.service", spec["pool"])
    return found


WSSVC = _wssvc()


def pool_of(conn: Connection) -> str:
    """The pool of the wssvc CONN is connected to."""
    return WSSVC[(conn.front, conn.port)][1]


def workers_of(pool: str, groups: dict[str, Any] = GROUPS) -> list[tuple[str, str]]:
    """(host, unit) of every worker of POOL in the inventory GROUPS."""
    return [(host, f"etckit-worker@{pool}-{n}.service")
            for host, settings in groups["workers"]["hosts"].items()
            for n in range(1, int(settings["etckit_worker_counts"].get(pool, 0)) + 1)]


def workers_of_every_pool(groups: dict[str, Any]) -> list[tuple[str, str]]:
    pools = {pool for settings in groups["workers"]["hosts"].values()
             for pool in settings["etckit_worker_counts"]}
    return [worker for pool in sorted(pools) for worker in workers_of(pool, groups)]


def brokers_of(pool: str) -> list[str]:
    """The hosts that run a broker of POOL."""
    return [host for host, settings in GROUPS["brokers"]["hosts"].items()
            if pool in settings["etckit_broker_instances"]]


def say(message: str) -> None:
    print(f"verify: {message}", flush=True)


# -- the hosts ------------------------------------------------------------------------------

def on(host: str, *argv: str, check: bool = True) -> str:
    done = subprocess.run(["podman", "exec", host, *argv], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{host}: {' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def unit_state(host: str, unit: str) -> dict[str, str]:
    out = on(host, "systemctl", "show", unit, "-p", "ActiveState,MainPID,NRestarts,"
             "ExecMainStartTimestampMonotonic")
    return dict(line.split("=", 1) for line in out.splitlines())


def etckit_units(host: str) -> list[str]:
    out = on(host, "systemctl", "list-units", "--plain", "--no-legend", "etckit-*.service")
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def wait_until(what: str, test, timeout: float = 60, interval: float = 1):
    deadline = time.monotonic() + timeout
    while True:
        result = test()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(interval)


def playbook(name: str, *args: str, grown: bool = True) -> str:
    """Runs a playbook of the kit against the scenario's inventory (and grow.yml)."""
    argv = [ANSIBLE_PLAYBOOK, "-i", str(INVENTORY_DIR)]
    if grown:
        argv += ["-i", str(GROW)]
    argv += [str(PROJECT / "playbooks" / name), *args]
    done = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise AssertionError(f"ansible-playbook {name} {' '.join(args)} failed")
    return done.stdout


def recap(output: str) -> dict[str, dict[str, int]]:
    hosts = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        # host : ok=N changed=N ... (other callbacks, such as profile_tasks, add lines after it)
        m = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            hosts[m[1]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[2])}
    return hosts


def changed_tasks(output: str, limit: int = 8) -> list[str]:
    """The tasks that changed something in a playbook's OUTPUT, as "task: host, host", the
    first LIMIT of them (what a run that should change nothing did)."""
    found: dict[str, list[str]] = {}
    task = "?"
    for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif m := re.match(r"^changed: \[([^\]]+)\]", line):
            found.setdefault(task, []).append(m[1])
    return [f"{name}: {', '.join(hosts)}" for name, hosts in list(found.items())[:limit]]


def haproxy_sessions() -> dict[str, int]:
    """Total sessions per main_server as HAProxy's runtime API counts them."""
    script = ("import socket; s = socket.socket(socket.AF_UNIX); "
              "s.connect('/run/haproxy/admin.sock'); s.sendall(b'show stat\\n'); "
              "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())")
    out = on("lb1", "python3", "-c", script)
    header = out.splitlines()[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in out.splitlines()[1:]]
    return {r["svname"]: int(r["stot"]) for r in rows
            if r.get("pxname") == "etckit_main_servers" and r.get("svname") not in
            ("FRONTEND", "BACKEND")}


# -- the client -----------------------------------------------------------------------------

class ConnectionLost(Exception):
    """The websocket closed under a request (the documented reconnect follows)."""


class Connection:
    """One websocket: a reader task answers the server's pings and hands replies to requests."""

    def __init__(self, ws, hello: dict[str, Any], assignment: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.url = assignment["url"]
        self.front = re.match(r"wss://([^.]+)\.", self.url)[1]
        self.port = int(re.match(r"wss://[^/]+:(\d+)/", self.url)[1])
        self.closed: str | None = None
        self._n = 0
        self._pending: dict[str, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                _note_revision(message)
                if message.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong", "id": f"c-{message['id']}",
                                                   "ref": message["id"]}))
                elif message.get("ref") in self._pending:
                    self._pending.pop(message["ref"]).set_result(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = f"closed with {self.ws.close_code}"
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionLost(self.closed))

    async def request(self, type_: str, timeout: float = 60, **fields) -> dict[str, Any]:
        if self.closed:
            raise ConnectionLost(self.closed)
        if type_ == "workbook.rename" and "base_revision" not in fields:
            fields["base_revision"] = REVISIONS.get(fields.get("workbook"), 1)
        self._n += 1
        mid = f"{type_}-{self._n}"
        future = asyncio.get_running_loop().create_future()
        self._pending[mid] = future
        try:
            await self.ws.send(json.dumps({"id": mid, "type": type_, **fields}))
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        return await asyncio.wait_for(future, timeout)

    async def ok(self, type_: str, **fields) -> dict[str, Any]:
        reply = await self.request(type_, **fields)
        if reply.get("type") == "error":
            raise AssertionError(f"{type_} on {self.front}: {reply['code']}: {reply['message']}")
        return reply

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


# A workbook's latest item_revision heard of (replies, broadcasts, conflicts): a rename names
# it as its base_revision, as the page does.
REVISIONS: dict[str, int] = {}


def _note_revision(message: dict[str, Any]) -> None:
    for key in ("workbook", "item"):
        seen = message.get(key)
        if isinstance(seen, dict) and "item_revision" in seen and "id" in seen:
            REVISIONS[seen["id"]] = max(REVISIONS.get(seen["id"], 0), seen["item_revision"])


class Browser:
    """What the pages do: fake_login, /api/assign, the websocket, plots."""

    def __init__(self) -> None:
        # idle connections are let go after 2 s, before HAProxy's `timeout http-keep-alive`
        # (5 s) closes them: with httpx's default (also 5 s) a request could go out on a
        # connection HAProxy was closing that instant (a ReadError), which a browser retries
        self.http = httpx.AsyncClient(base_url=PUBLIC, verify=TLS, timeout=30,
                                      headers={"Origin": PUBLIC},
                                      limits=httpx.Limits(keepalive_expiry=2.0))
        self.assign_errors: list[str] = []  # /api/assign calls that met a network error

    async def login(self, name: str) -> None:
        options = (await self.http.get("/api/login-options")).raise_for_status().json()
        assert options["fake_login"], "fake_login is off on the test site"
        r = await self.http.post("/login/fake", data={"name": name, "csrf": options["csrf"]})
        assert r.status_code == 303, f"fake_login answered {r.status_code}: {r.text[:200]}"
        (await self.http.get("/api/me")).raise_for_status()

    async def connect(self, purpose: str = "list", workbook: str | None = None,
                      timeout: float = 60) -> Connection:
        """Asks main_server for a wssvc and opens the websocket, retrying as the page does."""
        body: dict[str, Any] = {"purpose": purpose}
        if workbook:
            body["workbook"] = workbook
        deadline = time.monotonic() + timeout
        delay, last = 0.25, ""
        while time.monotonic() < deadline:
            try:
                r = await self.http.post("/api/assign", json=body)
            except httpx.TransportError as exc:  # the page's fetch throws, and it asks again
                last = f"/api/assign: {exc!r}"
                self.assign_errors.append(last)
                await asyncio.sleep(delay)
                continue
            if r.status_code == 200:
                assignment = r.json()
                try:
                    ws = await websockets.connect(assignment["url"], ssl=TLS, origin=PUBLIC,
                                                  open_timeout=10, max_size=2**24)
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert hello["type"] == "hello", hello
                    return Connection(ws, hello, assignment)
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    last = f"{assignment['url'].split('?')[0]}: {exc!r}"
            elif r.status_code == 503:
                last = "503 no_wssvc"
            else:
                raise AssertionError(f"/api/assign answered {r.status_code}: {r.text[:200]}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
        raise AssertionError(f"no websocket within {timeout:.0f}s; last: {last}")

    async def plot(self, conn: Connection, calc: dict[str, Any], kind: str = "snr_vs_time"):
        url = (f"https://{conn.front}.{DOMAIN}:{conn.port}/plots/{calc['id']}/{calc['revision']}/"
               f"{kind}.png")
        r = await self.http.get(url, params={"client": conn.hello["client"],
                                             "key": conn.hello["plot_key"]})
        assert r.status_code == 200, f"plot from {conn.front}: {r.status_code} {r.text[:200]}"
        assert r.content.startswith(b"\x89PNG"), "the plot is not a PNG"
        return r

    async def close(self) -> None:
        await self.http.aclose()


async def call(s: State, type_: str, **fields) -> dict[str, Any]:
    """A request that survives the documented reconnect (1012, 1001): ask main_server again."""
    for _ in range(3):
        try:
            return await s.conn.ok(type_, **fields)
        except ConnectionLost:
            s.conn = await s.browser.connect("workbook", s.workbook)
    raise AssertionError(f"{type_}: the websocket kept closing")


# -- the steps ------------------------------------------------------------------------------

class State:
    browser: Browser
    workbook: str
    conn: Connection
    calc: dict[str, Any]


async def step_client(s: State) -> None:
    """Log in through HAProxy, no affinity, a workbook with a calculation and its plot."""
    s.browser = Browser()
    before = haproxy_sessions()
    assert set(before) == {"front1", "front2"}, f"HAProxy's main_servers: {sorted(before)}"
    await s.browser.login("molecule")
    for _ in range(10):  # each request is balanced on its own: the session is in the database
        (await s.browser.http.get("/api/me")).raise_for_status()
    after = haproxy_sessions()
    served = {name: after[name] - before[name] for name in after}
    assert all(n > 0 for n in served.values()), f"requests per main_server: {served}"
    say(f"logged in through HAProxy; requests per main_server: {served}")

    lister = await s.browser.connect("list")
    s.workbook = (await lister.ok("workbook.create", name="Molecule field"))["workbook"]["id"]
    await lister.close()
    s.conn = await s.browser.connect("workbook", s.workbook)
    content = await s.conn.ok("workbook.open")
    d = content["defaults"]
    source = (await s.conn.ok("source.add", name="Galaxy", data=d["source"]))["item"]
    scene = (await s.conn.ok("scene.add", name="Field", data={"sources": [
        {"source_id": source["id"], "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}]}))["item"]
    s.calc = (await s.conn.ok("calculation.add", name="F200W", scene=scene["id"],
                              data=d["calculation"]))["item"]
    assert s.calc["status"] == "ok" and s.calc["result"]["snr"] > 0, s.calc
    await s.browser.plot(s.conn, s.calc)
    say(f"workbook {s.workbook} on wssvc {s.conn.front} (wss, wildcard certificate): "
        f"calculation S/N {s.calc['result']['snr']:.1f}, plot fetched over HTTPS")


async def step_kill_worker(s: State) -> None:
    """kill -9 every worker of the client's pool: systemd restarts them, the next request works."""
    pool = pool_of(s.conn)
    victims = workers_of(pool)
    before = {v: unit_state(*v) for v in victims}
    for (host, _unit), state in before.items():
        on(host, "kill", "-9", state["MainPID"])
    for v in victims:
        await asyncio.to_thread(wait_until, f"systemd restarted {v[1]} on {v[0]}",
                   lambda v=v: (st := unit_state(*v))["ActiveState"] == "active"
                   and st["MainPID"] not in ("0", before[v]["MainPID"]))
        assert int(unit_state(*v)["NRestarts"]) > int(before[v]["NRestarts"]), v
    started = time.monotonic()
    while True:  # the restarted workers join their broker within a few heartbeats
        reply = await s.conn.request("workbook.open")
        if reply.get("type") != "error":
            break
        assert reply["code"] in ("busy", "unavailable") and time.monotonic() - started < 30, reply
        await asyncio.sleep(1)
    assert [c["id"] for c in reply["calculations"]] == [s.calc["id"]]
    say(f"kill -9 of the {pool} workers on {', '.join(h for h, _ in victims)}: systemd "
        f"restarted each; the next request succeeded after {time.monotonic() - started:.1f}s")


async def step_stop_wssvc(s: State) -> None:
    """Stop the client's wssvc: it is assigned another and its workbook is intact."""
    gone, port = s.conn.front, s.conn.port
    unit = WSSVC[(gone, port)][0]
    on(gone, "systemctl", "stop", unit)
    try:
        with contextlib.suppress(ConnectionLost):
            await s.conn.request("workbook.open", timeout=10)
            raise AssertionError(f"the websocket to {gone}:{port} survived its wssvc")
        s.conn = await s.browser.connect("workbook", s.workbook)
        assert (s.conn.front, s.conn.port) != (gone, port), \
            f"assigned the stopped wssvc {gone}:{port} again"
        content = await s.conn.ok("workbook.open")
        assert [c["id"] for c in content["calculations"]] == [s.calc["id"]], content
        assert content["calculations"][0]["result"] == s.calc["result"]
        await s.browser.plot(s.conn, content["calculations"][0])
        renamed = await s.conn.ok("workbook.rename", workbook=s.workbook, name="After failover")
        assert renamed["type"] != "error"
        say(f"{unit} of {gone} (port {port}) stopped: reassigned to {s.conn.front}:"
            f"{s.conn.port}; workbook intact, plot and edit work there")
    finally:
        on(gone, "systemctl", "start", unit)
    await asyncio.to_thread(wait_until, f"{gone}'s wssvc on {port} answers again",
                            lambda: _healthz(gone, port) == 200)


def _healthz(front: str, port: int) -> int:
    try:
        return httpx.get(f"https://{front}.{DOMAIN}:{port}/healthz", verify=TLS,
                         timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _running(hosts: list[str]) -> dict[tuple[str, str], str]:
    return {(h, u): unit_state(h, u)["ExecMainStartTimestampMonotonic"]
            for h in hosts for u in etckit_units(h)}


def start_internal2() -> None:
    """The fifth container, like the others (molecule.yml), on the scenario's network."""
    subprocess.run(["podman", "rm", "--force", "--ignore", "internal2"], check=True,
                   capture_output=True)
    subprocess.run(["podman", "run", "--detach", "--name", "internal2", "--hostname", "internal2",
                    "--systemd=always", "--network", "etckit-mol-topology",
                    "--ip", ADDRESSES["internal2"], "--cap-add=SYS_ADMIN", "--cap-add=NET_ADMIN",
                    "--cap-add=SYS_PTRACE",
                    "--ulimit=nofile=16384:16384", "--ulimit=nproc=4096:4096",
                    f"--network-alias=internal2.{DOMAIN}", "--label", "owner=molecule",
                    "localhost/etckit-molecule-bookworm:latest", "/sbin/init"],
                   check=True, capture_output=True)
    on("internal2", "systemctl", "is-system-running", "--wait", check=False)


def worker_counts(host: str, index: int) -> dict[str, float]:
    """The transaction and plot counts on the /metrics of the host's worker instance number
    ``index`` (0-based, in unit order; its port is 9311 + index, etckit_metrics.py)."""
    url = f"http://{ADDRESSES[host]}:{9311 + index}/metrics"
    text = on(host, "python3", "-c", "import sys, urllib.request; sys.stdout.write("
              f"urllib.request.urlopen({url!r}, timeout=10).read().decode())")
    counts = {"etckit_db_transaction_seconds_count": 0.0,
              "etckit_worker_plot_seconds_count": 0.0}
    for line in text.splitlines():
        metric, _, value = line.partition(" ")
        family = metric.split("{", 1)[0]
        if family in counts:
            counts[family] += float(value)
    return counts


async def step_grow(s: State) -> None:
    """Add internal2 as a worker host (site.yml --limit): used at once, nothing else restarts."""
    old_hosts = ["front1", "front2", "internal1"]
    before = _running(old_hosts)
    await asyncio.to_thread(start_internal2)
    await asyncio.to_thread(playbook, "cluster-access.yml")
    await asyncio.to_thread(playbook, "site.yml", "--limit", "internal2")
    after = _running(old_hosts)
    restarted = sorted(f"{h}:{u}" for (h, u), t in before.items() if after.get((h, u)) != t)
    assert not restarted, f"adding internal2 restarted {restarted}"
    new = etckit_units("internal2")
    grown = yaml.safe_load(GROW.read_text())["all"]["children"]
    assert new == sorted(unit for _, unit in workers_of_every_pool(grown)), new
    # Its workers are used: with every other worker of the client's pool stopped, and the
    # pool's brokers on other hosts than its wssvc's too (a broker without workers queues
    # requests), requests still succeed, so internal2's worker answered them.
    pool = pool_of(s.conn)
    stopped = workers_of(pool) + [(h, f"etckit-broker@{pool}.service") for h in brokers_of(pool)
                                  if h != s.conn.front]
    for host, unit in stopped:
        on(host, "systemctl", "stop", unit)
    try:
        for n in range(3):
            await call(s, "workbook.rename", workbook=s.workbook, name=f"grown {n}")
        calc = (await call(s, "calculation.copy", calculation=s.calc["id"]))["item"]
        assert calc["status"] == "ok", calc
        await s.browser.plot(s.conn, calc)
        counted = worker_counts("internal2", new.index(f"etckit-worker@{pool}-1.service"))
        assert counted["etckit_db_transaction_seconds_count"] >= 3, counted  # the renames
        assert counted["etckit_worker_plot_seconds_count"] >= 1, counted
        # Prometheus found the new host by itself (site.yml --limit wrote its targets) and
        # counts what its workers served.
        await asyncio.to_thread(wait_until, "Prometheus scrapes internal2, every target up",
                                lambda: every_target_up(["internal2"]), 60, 2)
        query = "query?query=sum(etckit_db_transaction_seconds_count%7Bhost%3D%22internal2%22%7D)"
        await asyncio.to_thread(
            wait_until, "Prometheus counts internal2's worker transactions",
            lambda: sum(float(r["value"][1]) for r in prometheus(query)["result"]) >= 3, 30, 2)
    finally:
        for host, unit in reversed(stopped):
            on(host, "systemctl", "start", unit)
    say(f"internal2 added with site.yml --limit: nothing else restarted ({len(before)} units "
        f"checked); with the other {pool} workers and internal1's {pool} broker stopped, "
        "internal2's worker served edits, a calculation and its plot, and its /metrics "
        "counted them, as did Prometheus, which scraped the new host by itself")


def prometheus(path: str) -> Any:
    """The data of a Prometheus API call (internal1's; only the monitoring host reaches it)."""
    url = f"http://{ADDRESSES['internal1']}:9090/api/v1/{path}"
    text = on("internal1", "python3", "-c", "import sys, urllib.request; sys.stdout.write("
              f"urllib.request.urlopen({url!r}, timeout=10).read().decode())")
    return json.loads(text)["data"]


def targets_by_host() -> dict[str, list[tuple[str, str]]]:
    """Prometheus' active targets: host -> [(job, health)]."""
    found: dict[str, list[tuple[str, str]]] = {}
    for t in prometheus("targets?state=active")["activeTargets"]:
        found.setdefault(t["labels"]["host"], []).append((t["labels"]["job"], t["health"]))
    return found


def every_target_up(hosts: list[str]) -> bool:
    """Each host is scraped: its node exporter and one target per etckit program, all up."""
    try:
        found = targets_by_host()
    except subprocess.CalledProcessError:  # Prometheus not answering (yet)
        return False
    for host in hosts:
        jobs = found.get(host, [])
        programs = [j for j, _ in jobs if j.startswith("etckit_")]
        if ("node", "up") not in jobs or len(programs) != len(etckit_units(host)):
            return False
        if any(health != "up" for _, health in jobs):
            return False
    return True


def firing(alert: str) -> list[dict[str, str]]:
    return [a["labels"] for a in prometheus("alerts")["alerts"]
            if a["labels"]["alertname"] == alert and a["state"] == "firing"]


async def step_monitoring(s: State) -> None:
    """Prometheus scrapes every host and program; a pool without workers fires its alert."""
    hosts = ["lb1", "lb2", "front1", "front2", "internal1"]
    await asyncio.to_thread(wait_until, "Prometheus finds every target of every host up",
                            lambda: every_target_up(hosts), 90, 3)
    # The pool the client does not use: its workers stop, the alert fires, they start again.
    pool = "front2" if s.conn.front == "front1" else "front1"
    stopped = [(pool, f"etckit-worker@{pool}-1.service"),
               ("internal1", f"etckit-worker@{pool}-1.service")]
    assert not firing("EtckitPoolWithoutWorkers"), firing("EtckitPoolWithoutWorkers")
    started = time.monotonic()
    try:
        for host, unit in stopped:
            on(host, "systemctl", "stop", unit)
        await asyncio.to_thread(wait_until, f"EtckitPoolWithoutWorkers fires for pool {pool}",
                                lambda: [a["pool"] for a in firing("EtckitPoolWithoutWorkers")]
                                == [pool], 120, 2)
        fired = time.monotonic() - started
    finally:
        for host, unit in stopped:
            on(host, "systemctl", "start", unit)
    started = time.monotonic()
    await asyncio.to_thread(wait_until, "EtckitPoolWithoutWorkers clears",
                            lambda: not firing("EtckitPoolWithoutWorkers"), 120, 2)
    say(f"Prometheus on internal1: every target of {len(hosts)} hosts up; with pool {pool}'s "
        f"workers stopped EtckitPoolWithoutWorkers fired after {fired:.0f}s (for: 20s, "
        f"scrape 5s), and cleared {time.monotonic() - started:.0f}s after they started")


def build_wheel(version: str) -> None:
    """This checkout as etckit VERSION, in place of the etckit wheel of every wheelhouse."""
    build = Path(tempfile.mkdtemp(prefix="etckit-upgrade-"))
    try:
        for part in ("app", "static", "pyproject.toml", "README.md"):
            src = PROJECT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, build / part)
        init = build / "app" / "etckit" / "__init__.py"
        init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"',
                               init.read_text()))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "--disable-pip-version-check", "--wheel-dir", str(build / "dist"),
                        str(build)], check=True, capture_output=True)
        wheels = list((build / "dist").glob("etckit-*.whl"))
        assert len(wheels) == 1, wheels
        for house in (PROJECT / "wheelhouse").iterdir():
            if house.is_dir() and not house.name.startswith("."):
                for old in house.glob("etckit-*.whl"):
                    old.unlink()
                shutil.copy(wheels[0], house)
    finally:
        shutil.rmtree(build, ignore_errors=True)


async def reopen(s: State, stats: dict[str, Any], attempts: int = 10,
                 opening=None) -> dict[str, Any]:
    """Connect again (main_server assigns a live wssvc) and open the workbook, as the page
    does, again after each documented close met meanwhile (a 1012 while the new wssvc's broker
    restarts, a 1001 as the next host restarts); the workbook's content. OPENING(conn) opens
    it (default: conn.ok("workbook.open"))."""
    for _ in range(attempts):
        s.conn = await s.browser.connect("workbook", s.workbook)
        stats["reconnects"] += 1
        try:
            if opening is not None:
                return await opening(s.conn)
            return await s.conn.ok("workbook.open")
        except ConnectionLost:
            stats["lost"] += 1
            await asyncio.sleep(0.5)
    raise AssertionError(f"the workbook did not open again in {attempts} connections")


async def step_rolling_upgrade(s: State) -> None:
    """A new wheel, rolled out host by host while a client keeps working."""
    version = f"0.1.0+molecule.{int(time.time())}"
    await asyncio.to_thread(build_wheel, version)

    stats = {"edits": 0, "http": 0, "reconnects": 0, "lost": 0, "fronts": set()}
    stop = asyncio.Event()

    async def keep_working() -> None:
        while not stop.is_set():
            r = await s.browser.http.get("/api/me")
            assert r.status_code == 200, (
                f"main_server through HAProxy answered {r.status_code}: {r.text[:200]}")
            stats["http"] += 1
            try:
                name = f"edit {stats['edits'] + 1}"
                reply = await s.conn.request("workbook.rename", workbook=s.workbook, name=name,
                                             timeout=30)
                if reply.get("type") == "error":
                    raise AssertionError(f"workbook.rename failed during the upgrade: {reply}")
                stats["edits"] += 1
                stats["last"] = name
            except ConnectionLost:  # the documented reconnect: ask main_server again
                stats["lost"] += 1
                # as the page does: open the workbook again, which tells its current revision;
                # a rename whose reply the close lost may have been saved all the same
                content = await reopen(s, stats)
                if content["workbook"]["name"] == name:
                    stats["edits"] += 1
                    stats["last"] = name
            stats["fronts"].add(s.conn.front)
            await asyncio.sleep(0.3)

    worker = asyncio.create_task(keep_working())
    try:
        output = await asyncio.to_thread(playbook, "rolling-upgrade.yml")
    finally:
        stop.set()
        await worker  # re-raises what the client saw go wrong
    failed = {h: r for h, r in recap(output).items() if r.get("failed") or r.get("unreachable")}
    assert not failed, failed
    content = await s.conn.ok("workbook.open")
    assert content["workbook"]["name"] == stats["last"], (content["workbook"], stats["last"])
    hosts = list(APP_HOSTS)
    release = {h: on(h, "readlink", "/opt/etckit/current") for h in hosts}
    for host in hosts:
        assert on(host, "/opt/etckit/current/bin/etckit", "version").endswith(version), host
        for unit in etckit_units(host):  # every running program loaded the new release
            pid = unit_state(host, unit)["MainPID"]
            maps = on(host, "cat", f"/proc/{pid}/maps")
            assert release[host] in maps, f"{host} {unit} does not run {release[host]}"
    for front, port in WSSVC:
        health = (await s.browser.http.get(f"https://{front}.{DOMAIN}:{port}/healthz")).json()
        assert health["version"] == version, (front, port, health)
    assert (await s.browser.http.get("/healthz")).json()["version"] == version
    say(f"rolling upgrade to {version}: {stats['edits']} edits and {stats['http']} HTTP "
        f"requests, none failed; {stats['lost']} requests cut by a close and "
        f"{stats['reconnects']} reconnects (documented), {len(s.browser.assign_errors)} of "
        f"them asked main_server again after a network error {s.browser.assign_errors}; the "
        f"last edit kept; every program on {', '.join(hosts)} runs the new release")
    await s.conn.close()


# The four hosts of inventories/example, the site issue 13's re-run target (2 minutes) names.
EXAMPLE_SITE = ["lb1", "front1", "front2", "internal1"]


async def rerun(what: str, *args: str) -> tuple[int, float]:
    """site.yml again (ARGS: e.g. a --limit): nothing may change. (hosts, seconds), recorded
    in test-artifacts/molecule-times.txt."""
    started = time.monotonic()
    output = await asyncio.to_thread(playbook, "site.yml", *args)
    took = time.monotonic() - started
    changed = {h: r["changed"] for h, r in recap(output).items() if r["changed"]}
    assert not changed, (f"site.yml ({what}) changed something: {changed}; "
                         f"{'; '.join(changed_tasks(output))}")
    hosts = len(recap(output))
    times = PROJECT / "test-artifacts" / "molecule-times.txt"
    times.parent.mkdir(exist_ok=True)
    with times.open("a") as out:
        print(f"topology idempotent re-run of site.yml, {what}, {hosts} hosts: {took:.0f}s",
              file=out)
    return hosts, took


async def step_idempotent(s: State) -> None:
    """site.yml over the whole grown, upgraded topology changes nothing; and, timed for issue
    13's target, over the four hosts of inventories/example alone. (The scenario has no
    Molecule idempotence step: this one checks the same on more hosts, after more history.)"""
    hosts, took = await rerun("every host")
    example, took_example = await rerun("the example site", "--limit", ",".join(EXAMPLE_SITE))
    assert example == len(EXAMPLE_SITE), example
    say(f"site.yml on all {hosts} hosts after growth and upgrade: nothing changed ({took:.0f}s);"
        f" on the {example} hosts of the example site alone: {took_example:.0f}s")


STEPS = {
    "client": step_client,
    "kill-worker": step_kill_worker,
    "stop-wssvc": step_stop_wssvc,
    "monitoring": step_monitoring,
    "grow": step_grow,
    "rolling-upgrade": step_rolling_upgrade,
    "idempotent": step_idempotent,
}


APP_HOSTS = ("front1", "front2", "internal1", "internal2")  # every etckit host, once grown


def warnings_of(host: str, minutes: int = 30) -> str:
    """The warnings and errors HOST's etckit programs logged in the last MINUTES (a broker's
    "worker dropped" and its reason, a worker's "broker lost"), at most 80 lines."""
    return on(host, "sh", "-c", f"journalctl -u 'etckit*' --since -{minutes}min --no-pager "
              "-o cat | grep -E '\"level\": ?\"(warning|error)\"' | tail -n 80", check=False)


def unusual_requests(lb: str, minutes: int = 30) -> str:
    """The requests LB's HAProxy logged in the last MINUTES that did not end normally (their
    termination state is not ----: a client or server that closed or timed out, a 5xx), at
    most 40, and keepalived's state changes."""
    requests = on(lb, "sh", "-c", f"journalctl -u haproxy --since -{minutes}min --no-pager "
                  "-o short-precise | grep -E ' [A-Za-z-]{4} [0-9]+/[0-9]+/' | "
                  "grep -v ' ---- ' | tail -n 40", check=False)
    states = on(lb, "sh", "-c", f"journalctl -u keepalived --since -{minutes}min --no-pager "
                "-o short-precise | grep -E 'STATE|Script' | tail -n 10", check=False)
    return f"{requests}\n{states}"


def backend_changes(lb: str, minutes: int = 30) -> str:
    """What LB's HAProxy logged in the last MINUTES about main_servers going in or out of
    service (maintenance, DOWN, UP), at most 20 lines."""
    return on(lb, "sh", "-c", f"journalctl -u haproxy --since -{minutes}min --no-pager "
              "-o short-precise | grep -F 'Server etckit_main_servers/' | grep -vF '[WARNING]' "
              "| tail -n 20", check=False)


def diagnose() -> None:
    """What the hosts say, for a failed step: every etckit unit, its last log lines, and the
    warnings of the last half hour; what the load balancers saw go wrong."""
    for host in APP_HOSTS:
        units = on(host, "systemctl", "list-units", "--plain", "--no-legend", "--all",
                   "etckit*", check=False)
        print(f"--- {host}\n{units}", file=sys.stderr)
        print(on(host, "journalctl", "-u", "etckit*", "-n", "40", "--no-pager", "-o", "cat",
                 check=False), file=sys.stderr)
        print(f"--- {host}: warnings\n{warnings_of(host)}", file=sys.stderr)
    for lb in ("lb1", "lb2"):
        print(f"--- {lb}: requests that did not end normally, keepalived\n"
              f"{unusual_requests(lb)}\n{backend_changes(lb)}", file=sys.stderr)


FAILURE = PROJECT / "test-artifacts" / "molecule-failure.txt"


def note_failure(what: str) -> None:
    """Writes WHAT, with the last warnings of each app host and the last main_server state
    changes each load balancer logged, to FAILURE: tests/molecule/run prints
    it as the last lines of a failed run, which are all a CI summary may show."""
    lines = [f"{Path(sys.argv[0]).name}: {' '.join(what.split())[:600]}"]
    for host in APP_HOSTS:
        for warning in warnings_of(host).splitlines()[-2:]:
            lines.append(f"  {host}: {warning[:300]}")
    for lb in ("lb1", "lb2"):  # main_servers in and out of HAProxy's service
        for change in backend_changes(lb).splitlines()[-2:]:
            lines.append(f"  {lb}: {change[:300]}")
    FAILURE.parent.mkdir(exist_ok=True)
    FAILURE.write_text("\n".join(lines) + "\n")


async def run_steps(s: State, steps: dict[str, Any], names: list[str], diagnose_hosts,
                    record=None) -> int:
    """Runs the NAMES of STEPS (all, in order, when empty) on S, logging in with the "client"
    step first if needed. A failed step prints DIAGNOSE_HOSTS()'s view of the hosts and
    raises; RECORD(name, seconds), if given, notes each passed step's time."""
    try:
        for name in names or list(steps):
            if name != "client" and not hasattr(s, "browser"):
                await steps["client"](s)
            started = time.monotonic()
            try:
                await steps[name](s)
            except BaseException as e:
                took = time.monotonic() - started
                say(f"step {name} FAILED after {took:.0f}s")
                diagnose_hosts()
                note_failure(f"step {name} failed after {took:.0f}s: {type(e).__name__}: {e}")
                raise
            took = time.monotonic() - started
            say(f"step {name} passed in {took:.0f}s")
            if record is not None:
                record(name, took)
    finally:
        if hasattr(s, "browser"):
            with contextlib.suppress(Exception):
                await s.browser.close()
    return 0


async def main(names: list[str]) -> int:
    return await run_steps(State(), STEPS, names, diagnose)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
