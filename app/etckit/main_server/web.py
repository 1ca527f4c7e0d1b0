"""What the blueprints share: the names of cookies, error answers, the logged-in user.

The app's `Site` (settings, database, keys, SSO client) sits in ``app.extensions`` and
``current_site()`` fetches it for the request at hand, so the blueprints hold no state of their own.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from html import escape
from typing import TYPE_CHECKING, Any

from quart import Response, current_app, g, jsonify, redirect, request

from .. import metrics
from ..auth import sessions

if TYPE_CHECKING:
    from .app import Site

log = logging.getLogger("etckit.main_server.app")

SESSION_COOKIE = "etckit_session"
CSRF_COOKIE = "etckit_csrf"
SSO_COOKIE = "etckit_sso"
SSO_PATH = "/login/sso"
NAME_RE = re.compile(r"^[\w .@+-]{1,64}$")
WORKBOOK_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>etckit — {title}</title>
  <link rel="stylesheet" href="/static/etckit.css">
</head>
<body>
  <main class="card" id="error-page">
    <h1>{title}</h1>
    <p class="message">{message}</p>
    <p><a class="button" id="back" href="{href}">{link}</a></p>
  </main>
</body>
</html>
"""


def error_page(title: str, message: str, *, href: str = "/",
               link: str = "Back to the login page") -> str:
    """The short page main_server renders for an error, with a way back."""
    return _PAGE.format(title=escape(title), message=escape(message), href=escape(href),
                        link=escape(link))


def current_site() -> Site:
    return current_app.extensions["etckit.site"]


def wants_json() -> bool:
    """API paths answer JSON; so does any request that asks for JSON rather than HTML."""
    if request.path.startswith("/api/"):
        return True
    accept = request.accept_mimetypes
    return accept.quality("application/json") > accept.quality("text/html")


def problem(status: int, code: str, message: str, *, title: str = "", href: str = "/",
            link: str = "Back to the login page", **extra: Any) -> Response:
    """An error: JSON ``{"error": code, "message": ..., **extra}`` or a short page."""
    if wants_json():
        response = jsonify(error=code, message=message, **extra)
        response.status_code = status
        return response
    return Response(error_page(title or message, message, href=href, link=link), status,
                    content_type="text/html; charset=utf-8")


def not_here() -> Response:
    return problem(404, "not_found", "There is nothing here.", title="Not Found")


async def current_user() -> sessions.User | None:
    if "user" not in g:
        g.user = await sessions.session_user(current_site().db, request.cookies.get(SESSION_COOKIE))
    return g.user


def page(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A page for logged-in users; anyone else goes to the login page."""
    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if await current_user() is None:
            return redirect("/", 303)
        return await handler(*args, **kwargs)
    return wrapper


def api(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An API call for logged-in users; anyone else gets 401."""
    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if await current_user() is None:
            return problem(401, "not_logged_in", "log in first (no valid session)")
        return await handler(*args, **kwargs)
    return wrapper


async def checked_form() -> dict[str, str] | None:
    """The POSTed form, or None if its CSRF token or Origin is wrong."""
    form = await request.form
    if not current_site().csrf_ok(form.get("csrf")):
        log.info("form refused: CSRF", extra={"path": request.path,
                                              "origin": request.headers.get("Origin")})
        return None
    return dict(form)


def refused() -> Response:
    return problem(403, "csrf", "This form has expired or did not come from etckit. "
                   "Go back, reload the page and try again.", title="Form refused")


async def logged_in(user: sessions.User, how: str) -> Response:
    site = current_site()
    token, expires = await sessions.create_session(site.db, user,
                                                   site.cfg.auth.session_lifetime)
    log.info("login", extra={"user": user.id, "kind": user.kind, "via": how})
    metrics.LOGINS.labels(how).inc()
    response = redirect("/welcome", 303)
    site.set_cookie(response, SESSION_COOKIE, token, max_age=expires - time.time())
    return response


async def owns(user_id: str, workbook: str) -> bool:
    """Whether the user may open the workbook: their own, or shared with them (any right;
    what each message may do is the worker's check, worker/rights.py)."""
    row = await current_site().db.fetchone(
        "SELECT w.owner_id, s.user_id FROM workbooks w LEFT JOIN workbook_shares s"
        " ON s.workbook_id = w.id AND s.user_id = :u WHERE w.id = :id",
        {"id": workbook, "u": user_id})
    return row is not None and user_id in (row["owner_id"], row["user_id"])
