"""wssvc's plot cache and a revoked share (in-process; the worker is a fake that checks
rights as plot.render does).

The cache was keyed by (user, calculation, revision, kind) and a hit asked no worker, so a
user whose share of a workbook was revoked (her socket on it closed, 4004) still got that
workbook's plots from memory through a socket on a workbook of her own: the same URL, her
new socket's client id and key. A cached plot is now served only to a socket on the
calculation's own workbook, whose access the SessionWatcher keeps checking."""

from __future__ import annotations

import base64
import uuid

import pytest

from etckit import config
from etckit.wssvc.app import Service, create_app
from etckit.wssvc.hub import Client, Outbox

PNG = b"\x89PNG\r\n\x1a\nfake"
CALC, REVISION = "calc1", 3


class Worker:
    """plot.render as a worker answers it: the calculation of workbook ``shared``, drawn for
    whoever has a right on that workbook (``rights``), else not_found."""

    def __init__(self) -> None:
        self.rights = {("alice", "shared"), ("bob", "shared")}
        self.asked: list[tuple[str, str | None]] = []

    async def __call__(self, client: Client, message: dict) -> dict:
        self.asked.append((client.user, client.workbook))
        if (client.user, "shared") not in self.rights or message["calculation"] != CALC:
            return {"type": "error", "code": "not_found",
                    "message": f"no calculation {message['calculation']}"}
        return {"type": "plot", "calculation": CALC, "kind": message["kind"],
                "revision": REVISION, "workbook": "shared",
                "png": base64.b64encode(PNG).decode()}


@pytest.fixture
async def wssvc():
    env = {"ETCKIT_AUTH__SESSION_SECRET": "s"}
    service = Service(config.load(environ=env), db=None, pool="p")
    worker = service.ask_worker = Worker()
    yield service, worker, create_app(service).test_client()
    service.upstream.ctx.term()


def _socket(service: Service, user: str, workbook: str | None) -> Client:
    client = Client(id=uuid.uuid4().hex, user=user, workbook=workbook, queue=Outbox(8),
                    plot_key=uuid.uuid4().hex)
    service.hub.add(client)
    return client


async def _get(http, client: Client, kind: str = "snr_vs_time"):
    return await http.get(f"/plots/{CALC}/{REVISION}/{kind}.png",
                          query_string={"client": client.id, "key": client.plot_key})


async def test_a_revoked_user_gets_no_cached_plot_through_another_socket(wssvc):
    service, worker, http = wssvc
    on_shared = _socket(service, "bob", "shared")
    first = await _get(http, on_shared)
    assert first.status_code == 200 and await first.get_data() == PNG
    again = await _get(http, on_shared)
    assert again.headers["X-Plot-Cache"] == "hit" and len(worker.asked) == 1
    # alice revokes bob: the SessionWatcher closes his socket on the workbook (4004)
    worker.rights.discard(("bob", "shared"))
    service.hub.remove(on_shared)
    for workbook in ("his own", None):  # a socket on his own workbook, or the list's
        elsewhere = _socket(service, "bob", workbook)
        refused = await _get(http, elsewhere)
        assert refused.status_code == 404, (workbook, refused.headers.get("X-Plot-Cache"))
        assert (await refused.get_json())["error"] == "not_found"
    assert worker.asked[-2:] == [("bob", "his own"), ("bob", None)]


async def test_a_plot_of_another_workbook_is_drawn_each_time_and_not_kept(wssvc):
    service, worker, http = wssvc
    elsewhere = _socket(service, "alice", "another")
    for _ in range(2):
        reply = await _get(http, elsewhere)
        assert reply.status_code == 200 and reply.headers["X-Plot-Cache"] == "miss"
    assert len(worker.asked) == 2 and not service.plots.items
    on_shared = _socket(service, "alice", "shared")
    assert (await _get(http, on_shared)).headers["X-Plot-Cache"] == "miss"
    assert (await _get(http, on_shared)).headers["X-Plot-Cache"] == "hit"
