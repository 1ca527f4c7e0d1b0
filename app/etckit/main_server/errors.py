"""Error answers and the headers every response carries."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from quart import Quart, Response, request
from werkzeug.exceptions import BadHost, HTTPException

from ..storage import StorageError
from .web import problem

log = logging.getLogger("etckit.main_server.app")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self';"
        " connect-src 'self' ws: wss: http: https:; img-src 'self' data: blob: http: https:;"
        " frame-ancestors 'none'; base-uri 'self'"),
}

MESSAGES = {404: "There is nothing here.", 405: "That method is not allowed here.",
            413: "The request is too large.", 400: "The request is not valid."}


async def http_error(exc: HTTPException) -> Response:
    message = MESSAGES.get(exc.code or 500, exc.description or "Request failed.")
    response = problem(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                       message, title=exc.name or "Error")
    if exc.code == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


async def storage_error(exc: StorageError) -> Response:
    log.error("database error: %s", exc, extra={"path": request.path})
    return problem(503, "unavailable", "etckit cannot reach its database right now; "
                   "try again in a moment.", title="Temporarily unavailable")


async def crashed(exc: Exception) -> Response:
    log.exception("request failed", extra={"path": request.path})
    return problem(500, "internal", "Something went wrong on our side; it has been logged.",
                   title="Internal error")


async def headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/") or response.mimetype == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


class RawGuard:
    """ASGI layer in front of Quart: a request target Quart cannot decode gets a 400 here.

    Quart decodes the query string as UTF-8 while routing, before any handler runs, so a
    raw non-ASCII byte there (HTTP/2 or a lenient proxy lets one through) would be a 500.
    """

    def __init__(self, asgi_app: Any) -> None:
        self.asgi_app = asgi_app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not _target_ok(scope):
            if scope["type"] == "http":
                await _json_answer(send, 400, "bad_request", "the query string must be ASCII"
                                   " (percent-encode other bytes)")
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http":
            receive = _finish_despite_disconnect(receive)
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.asgi_app(scope, receive, tracked)
        except HTTPException as exc:  # raised by Quart before any handler, e.g. BadHost
            if started or scope["type"] != "http":
                raise
            message = "the Host header is not valid" if isinstance(exc, BadHost) else (
                exc.description or "the request is not valid")
            await _json_answer(send, exc.code or 400, "bad_request", message)


def _finish_despite_disconnect(receive: Any) -> Any:
    """Once the whole body is in, a client's disconnect no longer cancels the handler.

    Quart cancels a handler when the client goes away; cancelled inside a database transaction
    (SQLite: between BEGIN and COMMIT) it could leave the shared connection in a transaction,
    so one client closing its socket mid-request broke every later request. main_server's
    handlers are short, so each runs to its end and its answer is dropped by the server.
    Until the body is complete the disconnect passes (Quart then stops reading it).
    """
    body_done = False

    async def guarded() -> dict:
        nonlocal body_done
        if body_done:
            await asyncio.Event().wait()  # cancelled by Quart once the answer is sent
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body_done = True
        return message

    return guarded


async def _json_answer(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _target_ok(scope: dict) -> bool:
    query = scope.get("query_string", b"")
    return query.isascii()


def install(app: Quart) -> None:
    app.asgi_app = RawGuard(app.asgi_app)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(StorageError, storage_error)
    app.register_error_handler(Exception, crashed)
    app.after_request(headers)
