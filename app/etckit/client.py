"""etckit.client: a small synchronous Python client of the scripting API, for scripts.

    from etckit.client import Client

    with Client("https://etc.example.org", token="etk_...") as etc:
        book = etc.create_workbook("Batch")
        source = etc.add_source(book["id"], "Star", etc.defaults(book["id"])["source"])
        scene = etc.add_scene(book["id"], "Field", [source["id"]])
        calc = etc.add_calculation(book["id"], "F200W", scene["id"], {...})
        print(etc.wait_result(book["id"], calc["id"])["result"]["snr"])

A personal API token (made on the API tokens page, /tokens) buys a wssvc ticket at
main_server (``POST /api/v1/ticket``), and the client speaks the browser's websocket protocol
(docs/protocol.md) over one socket for the workbook list and one per open workbook: the same
limits, quotas and fair share as a browser. It answers the server's pings whenever it reads,
waits and retries when told ``rate_limited`` or ``busy`` (nothing was done), and opens a new
socket when one was closed while idle. An edit sends the item's current ``item_revision`` as
its ``base_revision`` (the client remembers the revisions it has seen and asks the server
for one it has not): if someone else edited the item meanwhile, ``ConflictError`` carries the
item as it is now, unless ``overwrite=True`` asks to keep this edit anyway.

Needs the ``websockets`` package (``pip install 'etckit[client]'``); ``httpx`` comes with etckit.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import httpx

from .messaging.types import READ_TYPES

__all__ = ["Client", "ConflictError", "EtckitError"]

RETRIES = 5  # rate_limited / busy / no_wssvc answers waited out before giving up
KINDS = ("source", "scene", "calculation")


class EtckitError(Exception):
    """The server refused: `code` is its error code (docs/protocol.md), `reply` the answer."""

    def __init__(self, code: str, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reply = reply or {}
        self.field = self.reply.get("field")


class ConflictError(EtckitError):
    """The item was edited since the revision this edit was made from; `item` is it now."""

    @property
    def item(self) -> dict[str, Any]:
        return self.reply.get("item", {})


def _websockets():
    try:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect
    except ImportError:  # pragma: no cover - said once, clearly
        raise ImportError("etckit.client needs the websockets package: "
                          "pip install 'etckit[client]'") from None
    return connect, ConnectionClosed


class _Socket:
    """One websocket (the workbook list, or one workbook) with its own request ids."""

    def __init__(self, ticket: dict[str, Any], timeout: float) -> None:
        connect, self._closed_error = _websockets()
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(
            ticket["url"], origin=ticket.get("origin"), open_timeout=timeout,
            max_size=64 * 1024 * 1024))
        self.endpoint = ticket["endpoint"]
        self.timeout = timeout
        self.events: deque[dict[str, Any]] = deque(maxlen=10_000)  # broadcasts, oldest first
        self._ids = itertools.count(1)
        hello = self._read(timeout)
        if hello.get("type") != "hello":
            raise EtckitError("internal", f"expected hello, got {hello.get('type')!r}")
        self.client_id, self.plot_key = hello["client"], hello["plot_key"]

    @property
    def open(self) -> bool:
        return self.ws.protocol.state.name == "OPEN"

    def _read(self, timeout: float) -> dict[str, Any]:
        """The next message that is not a ping (pings are answered here)."""
        while True:
            message = json.loads(self.ws.recv(timeout=timeout))
            if message.get("type") == "ping":
                self.ws.send(json.dumps({"type": "pong", "id": f"p-{message['id']}",
                                         "ref": message["id"]}))
                continue
            return message

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request; its reply (broadcasts meanwhile go to `events`)."""
        mid = f"c{next(self._ids)}"
        self.ws.send(json.dumps({**message, "id": mid}))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(max(0.01, deadline - time.monotonic()))
            if reply.get("ref") == mid:
                return reply
            self.events.append(reply)

    def next_event(self, deadline: float) -> dict[str, Any]:
        if self.events:
            return self.events.popleft()
        return self._read(max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        self._stack.close()


class Client:
    """The scripting API as plain method calls (see the module's doc string)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 120.0,
                 verify: bool | str = True) -> None:
        self.timeout = timeout
        self.verify = verify
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=30.0, verify=verify,
                                  headers={"Authorization": f"Bearer {token}"})
        self._sockets: dict[str | None, _Socket] = {}
        self._revisions: dict[tuple[str, str], int] = {}  # (kind, id) -> item_revision seen

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self._http.close()

    # -- the HTTP side -------------------------------------------------------------------

    def _http_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(RETRIES + 1):
            response = self._http.request(method, path, **kwargs)
            try:
                body = response.json()
            except ValueError:
                body = {"error": "internal", "message": f"HTTP {response.status_code}"}
            if response.status_code < 400:
                return body
            if body.get("error") not in ("no_wssvc", "rate_limited") or attempt == RETRIES:
                raise EtckitError(body.get("error", "internal"), body.get("message", ""), body)
            time.sleep(float(body.get("retry_after", 1.0)))
        raise AssertionError("unreachable")

    def whoami(self) -> dict[str, Any]:
        """{"user": ..., "token": {name, scope, expires_at, ...}}."""
        return self._http_json("GET", "/api/v1/whoami")

    def _socket(self, workbook: str | None) -> _Socket:
        sock = self._sockets.get(workbook)
        if sock is None or not sock.open:
            body = ({"purpose": "workbook", "workbook": workbook} if workbook
                    else {"purpose": "list"})
            ticket = self._http_json("POST", "/api/v1/ticket", json=body)
            sock = self._sockets[workbook] = _Socket(ticket, self.timeout)
        return sock

    # -- the websocket side --------------------------------------------------------------

    def request(self, type_: str, workbook: str | None = None, /,
                **fields: Any) -> dict[str, Any]:
        """Any message of docs/protocol.md on the workbook's socket (None: the list's); the
        reply, or EtckitError. Waits out rate_limited and busy; a read is retried once on a
        lost connection."""
        message = {"type": type_, **fields}
        for attempt in range(RETRIES + 1):
            sock = self._socket(workbook)
            try:
                reply = sock.request(message)
            except sock._closed_error as exc:
                self._sockets.pop(workbook, None)
                code = exc.rcvd.code if exc.rcvd else None
                if code == 4003:
                    raise EtckitError("not_authenticated", "the API token was revoked or "
                                      "has expired") from None
                if type_ not in READ_TYPES or attempt == RETRIES:
                    raise EtckitError("connection_lost", f"the websocket closed ({code}); "
                                      f"{type_} may or may not have been done") from None
                continue
            if reply.get("type") != "error":
                self._remember(reply)
                return reply
            if reply.get("code") not in ("rate_limited", "busy") or attempt == RETRIES:
                raise (ConflictError if reply.get("code") == "conflict" else EtckitError)(
                    reply.get("code", "internal"), reply.get("message", ""), reply)
            time.sleep(float(reply.get("retry_after", 0.5)))
        raise AssertionError("unreachable")

    def _remember(self, reply: dict[str, Any]) -> None:
        item = reply.get("item")
        kind = reply.get("type", "").split(".")[0]
        if isinstance(item, dict) and kind in KINDS and "item_revision" in item:
            self._revisions[(kind, item["id"])] = item["item_revision"]

    # -- workbooks -----------------------------------------------------------------------

    def workbooks(self) -> list[dict[str, Any]]:
        return self.request("workbook.list")["workbooks"]

    def create_workbook(self, name: str, description: str = "") -> dict[str, Any]:
        return self.request("workbook.create", name=name,
                            description=description)["workbook"]

    def rename_workbook(self, workbook: str, name: str, *, overwrite: bool = False,
                        **fields: Any) -> dict[str, Any]:
        def send(base: int) -> dict[str, Any]:
            return self.request("workbook.rename", workbook=workbook, name=name,
                                base_revision=base, **fields)["workbook"]

        current = next((w for w in self.workbooks() if w["id"] == workbook), None)
        if current is None:
            raise EtckitError("not_found", f"no workbook {workbook}")
        return self._with_base(send, current["item_revision"], overwrite)

    def delete_workbook(self, workbook: str) -> None:
        self.request("workbook.delete", workbook=workbook)
        sock = self._sockets.pop(workbook, None)
        if sock is not None:
            sock.close()

    def open_workbook(self, workbook: str) -> dict[str, Any]:
        """{workbook, sources, scenes, calculations, defaults, catalog}."""
        content = self.request("workbook.open", workbook, workbook=workbook)
        for kind in KINDS:
            for item in content.get(f"{kind}s", []):
                self._revisions[(kind, item["id"])] = item["item_revision"]
        return content

    def defaults(self, workbook: str) -> dict[str, Any]:
        """Starting points for a new source, scene and calculation (the forms' defaults)."""
        return self.open_workbook(workbook)["defaults"]

    def export_workbook(self, workbook: str) -> dict[str, Any]:
        return self.request("workbook.export", workbook, workbook=workbook)["content"]

    # -- sources, scenes, calculations ---------------------------------------------------

    def add(self, kind: str, workbook: str, name: str, data: dict[str, Any],
            **fields: Any) -> dict[str, Any]:
        return self.request(f"{kind}.add", workbook, workbook=workbook, name=name, data=data,
                            **fields)["item"]

    def add_source(self, workbook: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in data.items() if k != "name"}  # the forms' default has one
        return self.add("source", workbook, name, clean)

    def add_scene(self, workbook: str, name: str, sources: list[str]) -> dict[str, Any]:
        """A scene of these sources (ids), each at the centre."""
        placed = [{"source_id": s, "offset_x_arcsec": 0.0, "offset_y_arcsec": 0.0}
                  for s in sources]
        return self.add("scene", workbook, name, {"sources": placed})

    def add_calculation(self, workbook: str, name: str, scene: str,
                        data: dict[str, Any]) -> dict[str, Any]:
        """Computed before the answer: the item carries its status and result."""
        return self.add("calculation", workbook, name, data, scene=scene)

    def items(self, kind: str, workbook: str) -> list[dict[str, Any]]:
        return self.open_workbook(workbook)[f"{kind}s"]

    def edit(self, kind: str, workbook: str, item: str, *, overwrite: bool = False,
             **changes: Any) -> dict[str, Any]:
        """Change `name`, `data` (and `scene`, for a calculation) of an item, from the
        revision last seen; ConflictError if another edit came first (unless overwrite)."""
        def send(base: int) -> dict[str, Any]:
            return self.request(f"{kind}.edit", workbook, workbook=workbook, base_revision=base,
                                **{kind: item}, **changes)["item"]

        base = self._revisions.get((kind, item))
        if base is None:
            self.open_workbook(workbook)
            base = self._revisions.get((kind, item))
        if base is None:
            raise EtckitError("not_found", f"no {kind} {item}")
        return self._with_base(send, base, overwrite)

    @staticmethod
    def _with_base(send: Any, base: int, overwrite: bool) -> dict[str, Any]:
        for _ in range(RETRIES):
            try:
                return send(base)
            except ConflictError as exc:
                if not overwrite or "item_revision" not in exc.item:
                    raise
                base = exc.item["item_revision"]  # keep this edit: from the one now stored
        return send(base)

    def delete(self, kind: str, workbook: str, item: str) -> None:
        self.request(f"{kind}.delete", workbook, workbook=workbook, **{kind: item})
        self._revisions.pop((kind, item), None)

    # -- results, downloads, plots -------------------------------------------------------

    def wait_result(self, workbook: str, calculation: str,
                    timeout: float | None = None) -> dict[str, Any]:
        """The calculation once it is no longer `pending` (its `status` is `ok` or `error`;
        the engine's report is in `result`); TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + (timeout or self.timeout)
        found = [c for c in self.items("calculation", workbook) if c["id"] == calculation]
        if not found:
            raise EtckitError("not_found", f"no calculation {calculation}")
        item = found[0]
        sock = self._socket(workbook)
        while item["status"] == "pending":
            if time.monotonic() > deadline:
                raise TimeoutError(f"calculation {calculation} is still pending")
            event = sock.next_event(deadline)
            new = event.get("item")
            if (event.get("type") == "calculation.saved" and isinstance(new, dict)
                    and new.get("id") == calculation
                    and new.get("revision", 0) >= item["revision"]):
                item = new
        return item

    def download(self, workbook: str, calculation: str, format: str = "csv") -> str:
        """The calculation's result as the page downloads it (`csv` or `json` text)."""
        return self.request("calculation.download", workbook, workbook=workbook,
                            calculation=calculation, format=format)["content"]

    def plot(self, workbook: str, calculation: str, kind: str = "snr_vs_time") -> bytes:
        """A PNG of the calculation's current revision, fetched from the workbook's wssvc over
        HTTP(S) as the page fetches it."""
        item = self.wait_result(workbook, calculation)
        sock = self._socket(workbook)
        base = sock.endpoint.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        url = (f"{base}/plots/{quote(calculation)}/{item['revision']}/{quote(kind)}.png"
               f"?client={quote(sock.client_id)}&key={quote(sock.plot_key)}")
        response = httpx.get(url, timeout=self.timeout, verify=self.verify)
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {"error": "internal", "message": f"HTTP {response.status_code}"}
            raise EtckitError(body.get("error", "internal"), body.get("message", ""), body)
        return response.content
