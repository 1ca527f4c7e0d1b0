"""Error answers and the headers every response carries."""

from __future__ import annotations

import logging

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

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


def install(app: Quart) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(StorageError, storage_error)
    app.register_error_handler(Exception, crashed)
    app.after_request(headers)
