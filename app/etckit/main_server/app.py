"""The main_server Quart app: pages, login, session cookies, wssvc assignment.

main_server keeps nothing in memory that another instance would need: sessions, users and
assignments live in the database, and the SSO login transaction travels in a signed cookie,
so any number of instances serve one browser interchangeably behind a load balancer.

Routes (docs/auth.md tells the whole story):

    GET  /                      login page (logged in: redirect to /welcome)
    GET  /welcome               "you are logged in" with Proceed
    GET  /workbooks             the Workbook List
    GET  /workbooks/<id>        one workbook (404 unless it is the user's)
    POST /login/fake            fake_login (404 unless auth.fake_login)
    POST /login/anonymous       anonymous login (404 unless auth.anonymous)
    POST /login/sso             start single sign-on (404 unless sso.enabled)
    GET  /login/sso/callback    the provider's redirect back
    POST /logout                end the session (an anonymous user is deleted)
    GET  /api/login-options     which login buttons to show, and the CSRF token
    GET  /api/me                the logged-in user and the CSRF token (401 if none)
    POST /api/assign            {purpose, workbook} -> wssvc URL and ticket
    GET  /healthz               database and schema check for the load balancer
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from quart import Quart, Response, g, jsonify, redirect, request
from werkzeug.exceptions import HTTPException

from .. import __version__
from ..auth import keys, sessions, tickets
from ..auth.oidc import OidcClient, SsoError
from ..config import Config
from ..http import serve_app
from ..lifecycle import Fatal
from ..resources import static_dir
from ..storage import Database, StorageError, check_schema, connect
from .assign import NoService, assign
from .pages import error_page

log = logging.getLogger(__name__)

SESSION_COOKIE = "etckit_session"
CSRF_COOKIE = "etckit_csrf"
SSO_COOKIE = "etckit_sso"
SSO_PATH = "/login/sso"
NAME_RE = re.compile(r"^[\w .@+-]{1,64}$")
WORKBOOK_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SWEEP_INTERVAL = 300.0

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self';"
        " connect-src 'self' ws: wss: http: https:; img-src 'self' data: blob: http: https:;"
        " frame-ancestors 'none'; base-uri 'self'"),
}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Site:
    """What every request handler needs: settings, database, keys, the SSO client."""

    def __init__(self, cfg: Config, db: Database) -> None:
        self.cfg = cfg
        self.db = db
        secrets_ = keys.main_server_secrets(cfg.auth.session_secret,
                                            cfg.auth.ticket_private_key)
        self.keys = secrets_.site  # CSRF, session and SSO-state keys, each its own
        self.ticket_key = secrets_.ticket_key
        self.public_origin = origin_of(cfg.main_server.public_url)
        self.proxies = [ipaddress.ip_network(p, strict=False)
                        for p in cfg.main_server.trusted_proxies]
        self.oidc: OidcClient | None = None
        if cfg.sso.enabled:
            self.oidc = OidcClient(
                issuer=cfg.sso.issuer, client_id=cfg.sso.client_id,
                client_secret=cfg.sso.client_secret, scopes=list(cfg.sso.scopes),
                redirect_uri=cfg.main_server.public_url.rstrip("/") + SSO_PATH + "/callback",
                ca_file=cfg.sso.ca_file, secret=self.keys.sso_state)

    # -- what the request says about itself ------------------------------------------------

    def from_proxy(self) -> bool:
        try:
            addr = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        return any(addr in net for net in self.proxies)

    def https(self) -> bool:
        if request.scheme == "https":
            return True
        return self.from_proxy() and request.headers.get("X-Forwarded-Proto") == "https"

    def secure_cookies(self) -> bool:
        mode = self.cfg.auth.cookie_secure
        return mode == "always" or (mode == "auto" and self.https())

    def set_cookie(self, response: Response, name: str, value: str, *, max_age: float | None,
                   path: str = "/") -> None:
        response.set_cookie(name, value, max_age=None if max_age is None else int(max_age),
                            path=path, domain=self.cfg.auth.cookie_domain or None,
                            secure=self.secure_cookies(), httponly=True, samesite="Lax")

    def clear_cookie(self, response: Response, name: str, path: str = "/") -> None:
        response.delete_cookie(name, path=path, domain=self.cfg.auth.cookie_domain or None,
                               secure=self.secure_cookies(), httponly=True, samesite="Lax")

    def same_origin(self) -> bool:
        """A POST comes from our own pages (when the browser says where it comes from)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # old browsers and tools: the CSRF token alone decides
        scheme = "https" if self.https() else request.scheme
        return origin in (self.public_origin, f"{scheme}://{request.host}")

    def csrf_seed(self) -> str | None:
        return request.cookies.get(CSRF_COOKIE)


def create_app(cfg: Config, db: Database) -> Quart:
    app = Quart(__name__, static_folder=str(static_dir()), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = cfg.main_server.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = cfg.main_server.max_body_bytes
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    site = Site(cfg, db)
    app.secret_key = site.keys.session
    app.extensions["etckit.db"] = db
    app.extensions["etckit.config"] = cfg
    app.extensions["etckit.site"] = site

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    def problem(status: int, code: str, message: str, *, title: str = "",
                href: str = "/", link: str = "Back to the login page") -> Response:
        if wants_json():
            response = jsonify(error=code, message=message)
            response.status_code = status
            return response
        return Response(error_page(title or message, message, href=href, link=link), status,
                        content_type="text/html; charset=utf-8")

    # -- session handling -------------------------------------------------------------

    async def current_user() -> sessions.User | None:
        if "user" not in g:
            g.user = await sessions.session_user(db, request.cookies.get(SESSION_COOKIE))
        return g.user

    def page(handler: Callable[..., Awaitable[Any]]):
        """A page for logged-in users; anyone else goes to the login page."""
        @wraps(handler)
        async def wrapper(*args, **kwargs):
            if await current_user() is None:
                return redirect("/", 303)
            return await handler(*args, **kwargs)
        return wrapper

    def api(handler: Callable[..., Awaitable[Any]]):
        """An API call for logged-in users; anyone else gets 401."""
        @wraps(handler)
        async def wrapper(*args, **kwargs):
            if await current_user() is None:
                return problem(401, "not_logged_in", "log in first (no valid session)")
            return await handler(*args, **kwargs)
        return wrapper

    async def checked_form() -> dict[str, str] | None:
        """The POSTed form, or None if its CSRF token or Origin is wrong."""
        form = await request.form
        if not site.same_origin() or not sessions.csrf_ok(site.keys.csrf, site.csrf_seed(),
                                                          form.get("csrf")):
            log.info("form refused: CSRF", extra={"path": request.path,
                                                  "origin": request.headers.get("Origin")})
            return None
        return dict(form)

    def refused() -> Response:
        return problem(403, "csrf", "This form has expired or did not come from etckit. "
                       "Go back, reload the page and try again.", title="Form refused")

    def csrf_for(response: Response) -> str:
        """The form token; gives the browser a CSRF cookie first if it has none."""
        seed = site.csrf_seed()
        if not seed or len(seed) > 100:
            seed = secrets.token_urlsafe(24)
            site.set_cookie(response, CSRF_COOKIE, seed, max_age=None)
        return sessions.csrf_token(site.keys.csrf, seed)

    async def logged_in(user: sessions.User, how: str) -> Response:
        token, expires = await sessions.create_session(db, user, cfg.auth.session_lifetime)
        log.info("login", extra={"user": user.id, "kind": user.kind, "via": how})
        response = redirect("/welcome", 303)
        site.set_cookie(response, SESSION_COOKIE, token, max_age=expires - time.time())
        return response

    # -- health and errors ------------------------------------------------------------

    @app.get("/healthz")
    async def healthz():
        try:
            await check_schema(db)
        except StorageError as exc:
            log.warning("health check failed: %s", exc)
            return jsonify(status="unhealthy", error=str(exc)), 503
        return jsonify(status="ok", version=__version__)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException):
        messages = {404: "There is nothing here.", 405: "That method is not allowed here.",
                    413: "The request is too large.", 400: "The request is not valid."}
        message = messages.get(exc.code or 500, exc.description or "Request failed.")
        response = problem(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                           message, title=exc.name or "Error")
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(StorageError)
    async def storage_error(exc: StorageError):
        log.error("database error: %s", exc, extra={"path": request.path})
        return problem(503, "unavailable", "etckit cannot reach its database right now; "
                       "try again in a moment.", title="Temporarily unavailable")

    @app.errorhandler(Exception)
    async def crashed(exc: Exception):
        log.exception("request failed", extra={"path": request.path})
        return problem(500, "internal", "Something went wrong on our side; it has been logged.",
                       title="Internal error")

    @app.after_request
    async def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/") or response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- pages ------------------------------------------------------------------------

    @app.get("/")
    async def index():
        if await current_user() is not None:
            return redirect("/welcome", 303)
        return await app.send_static_file("login.html")

    @app.get("/welcome")
    @page
    async def welcome():
        return await app.send_static_file("welcome.html")

    @app.get("/workbooks")
    @page
    async def workbook_list():
        return await app.send_static_file("workbooks.html")

    @app.get("/workbooks/<workbook>")
    @page
    async def workbook_page(workbook: str):
        user = await current_user()
        if not WORKBOOK_RE.match(workbook) or not await owns(user.id, workbook):
            return problem(404, "not_found", "There is no such workbook.",
                           title="Workbook not found", href="/workbooks",
                           link="Back to your workbooks")
        return await app.send_static_file("workbook.html")

    async def owns(user_id: str, workbook: str) -> bool:
        row = await db.fetchone("SELECT owner_id FROM workbooks WHERE id = :id",
                                {"id": workbook})
        return row is not None and row["owner_id"] == user_id

    # -- logins -----------------------------------------------------------------------

    @app.post("/login/fake")
    async def login_fake():
        if not cfg.auth.fake_login:
            return problem(404, "not_found", "There is nothing here.", title="Not Found")
        form = await checked_form()
        if form is None:
            return refused()
        name = (form.get("name") or "").strip()
        if not NAME_RE.match(name):
            return problem(400, "invalid", "A user name is 1 to 64 letters, digits, spaces "
                           "or . @ + - _", title="Not a user name")
        user = await sessions.upsert_user(db, issuer=sessions.FAKE_ISSUER, subject=name,
                                          kind="fake", display_name=name)
        return await logged_in(user, "fake")

    @app.post("/login/anonymous")
    async def login_anonymous():
        if not cfg.auth.anonymous:
            return problem(404, "not_found", "There is nothing here.", title="Not Found")
        form = await checked_form()
        if form is None:
            return refused()
        user = await sessions.create_anonymous(db, cfg.auth.anonymous_lifetime)
        return await logged_in(user, "anonymous")

    @app.post(SSO_PATH)
    async def login_sso():
        if site.oidc is None:
            return problem(404, "not_found", "There is nothing here.", title="Not Found")
        form = await checked_form()
        if form is None:
            return refused()
        try:
            url, transaction = await site.oidc.begin()
        except SsoError as exc:
            return problem(502, "sso", str(exc), title="Single sign-on failed")
        response = redirect(url, 303)
        site.set_cookie(response, SSO_COOKIE, transaction, max_age=600, path=SSO_PATH)
        return response

    @app.get(SSO_PATH + "/callback")
    async def sso_callback():
        if site.oidc is None:
            return problem(404, "not_found", "There is nothing here.", title="Not Found")
        try:
            who = await site.oidc.finish(dict(request.args), request.cookies.get(SSO_COOKIE))
        except SsoError as exc:
            response = problem(400, "sso", str(exc), title="Single sign-on failed")
            site.clear_cookie(response, SSO_COOKIE, path=SSO_PATH)
            return response
        user = await sessions.upsert_user(db, issuer=who.issuer, subject=who.subject,
                                          kind="sso", display_name=who.name or who.subject,
                                          email=who.email)
        response = await logged_in(user, "sso")
        site.clear_cookie(response, SSO_COOKIE, path=SSO_PATH)
        return response

    @app.post("/logout")
    async def logout():
        form = await checked_form()
        if form is None:
            return refused()
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await sessions.logout(db, token)
        response = redirect("/", 303)
        site.clear_cookie(response, SESSION_COOKIE)
        return response

    # -- the API the pages call ----------------------------------------------------------

    @app.get("/api/login-options")
    async def login_options():
        response = jsonify(
            anonymous=cfg.auth.anonymous, fake_login=cfg.auth.fake_login,
            anonymous_lifetime=cfg.auth.anonymous_lifetime, sso=site.oidc is not None,
            registration_url=cfg.sso.registration_url if site.oidc is not None else "")
        body = await response.get_json()
        response.set_data(json.dumps({**body, "csrf": csrf_for(response)}))
        return response

    @app.get("/api/me")
    @api
    async def me():
        user = await current_user()
        response = jsonify(user=user.view())
        response.set_data(json.dumps({"user": user.view(), "csrf": csrf_for(response)}))
        return response

    @app.post("/api/assign")
    @api
    async def assign_wssvc():
        if not site.same_origin():
            return problem(403, "csrf", "request did not come from an etckit page")
        if request.mimetype != "application/json":
            return problem(415, "json_only", "send the request as application/json")
        body = await request.get_json(silent=True)
        if not isinstance(body, dict):
            return problem(400, "invalid", "the body must be a JSON object")
        purpose = body.get("purpose")
        workbook = body.get("workbook")
        if purpose not in ("list", "workbook"):
            return problem(400, "invalid", "purpose must be 'list' or 'workbook'")
        user = await current_user()
        if purpose == "workbook":
            if not isinstance(workbook, str) or not WORKBOOK_RE.match(workbook):
                return problem(400, "invalid", "workbook must be a workbook id")
            if not await owns(user.id, workbook):
                return problem(404, "not_found", "there is no such workbook")
        else:
            workbook = None
        try:
            chosen = await assign(db, user_id=user.id, purpose=purpose, workbook=workbook,
                                  liveness=cfg.heartbeat.registry_liveness)
        except NoService:
            return problem(503, "no_wssvc", "no websocket service is available; "
                           "try again in a few seconds")
        session = sessions.token_hash(request.cookies.get(SESSION_COOKIE, ""))
        ticket = tickets.issue(site.ticket_key, user=user.id, session=session,
                               pool=chosen.pool, purpose=purpose, workbook=workbook,
                               lifetime=cfg.auth.ticket_lifetime)
        return jsonify(url=f"{chosen.endpoint}/ws?ticket={ticket}", endpoint=chosen.endpoint,
                       ticket=ticket, pool=chosen.pool, service=chosen.service_id,
                       expires_in=cfg.auth.ticket_lifetime)

    return app


async def _sweeper(db: Database, interval: float) -> None:
    while True:
        try:
            gone = await sessions.sweep_expired(db)
            if gone:
                log.info("expired anonymous users removed", extra={"users": gone})
        except StorageError as exc:
            log.warning("sweep of expired users failed: %s", exc)
        await asyncio.sleep(interval)


async def run(cfg: Config, stop: asyncio.Event) -> int:
    try:  # every secret checked before anything starts; the message never holds a value
        await asyncio.to_thread(keys.main_server_secrets, cfg.auth.session_secret,
                                cfg.auth.ticket_private_key)
    except keys.SecretError as exc:
        raise Fatal(str(exc)) from None
    db = await connect(cfg)
    interval = min(SWEEP_INTERVAL, cfg.auth.anonymous_lifetime / 4)
    sweeper = asyncio.create_task(_sweeper(db, interval))
    try:
        app = create_app(cfg, db)
        log.info("listening", extra={"host": cfg.main_server.host, "port": cfg.main_server.port})
        await serve_app(app, host=cfg.main_server.host, port=cfg.main_server.port, stop=stop)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await db.close()
    return 0
