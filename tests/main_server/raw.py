"""Requests straight into main_server's ASGI app, as a lenient HTTP server would pass them."""

from __future__ import annotations

import asyncio


async def asgi(app, method: str, path: str, query: bytes, headers: list[tuple[str, str]],
               body: bytes, *, disconnect: bool = False) -> tuple[int, bytes]:
    """One request straight into the ASGI app: raw query bytes and latin-1 headers, which
    Quart's test client cannot send but a real HTTP server passes on. With `disconnect`, the
    client goes away as soon as its body is sent."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "client": ("127.0.0.1", 40000),
             "server": ("localhost", 8080), "extensions": {},
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                         for k, v in headers]}
    sent = False
    answer: dict = {"status": 0, "body": b""}

    async def receive() -> dict:
        nonlocal sent
        if sent:
            if disconnect:
                return {"type": "http.disconnect"}
            await asyncio.Event().wait()  # the client waits for the answer
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]
