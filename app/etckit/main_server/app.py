"""The main_server Quart app: pages, login, session cookies, wssvc assignment.

main_server keeps nothing in memory that another instance would need: sessions, users and
assignments live in the database, and the SSO login transaction travels in a signed cookie,
so any number of instances serve one browser interchangeably behind a load balancer. (The one
thing in memory, the anonymous-login limiter of `limits.py`, is an approximate per-process
guard that another instance never needs.)

The routes live in three blueprints: `pages` (HTML), `logins` (form posts) and `api` (JSON and
/healthz); `web.py` holds what they share, `errors.py` the error answers. While serving, a
background task deletes expired anonymous users and, with SSO on, the provider's discovery
document is fetched once so a misconfiguration shows in the log at start.

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
    GET  /system, /api/system   the System page (404 unless main_server.admins names you)
    GET  /tokens, /api/tokens…  API tokens; /api/v1/… the scripting API (tokens.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator
from functools import partial
from urllib.parse import urlsplit

from quart import Quart, Response, request

from ..auth import keys, sessions
from ..auth import tokens as api_tokens
from ..auth.oidc import OidcClient, SsoError
from ..config import Config
from ..http import serve_app
from ..lifecycle import Fatal
from ..resources import static_dir
from ..storage import Database, StorageError, connect
from . import api, errors, logins, pages, system, tokens
from .limits import LoginLimiter, client_address
from .web import CSRF_COOKIE, SESSION_COOKIE, SSO_COOKIE, SSO_PATH

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "SSO_COOKIE", "SSO_PATH", "Site", "create_app",
           "run"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 300.0


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
        self.login_limiter = LoginLimiter(
            per_minute=cfg.main_server.anonymous_logins_per_minute,
            burst=cfg.main_server.anonymous_login_burst,
            per_day=cfg.main_server.anonymous_accounts_per_day)
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

    def csrf_ok(self, token: str | None) -> bool:
        """A POSTed form's token matches this browser's CSRF cookie, from our own pages."""
        if token is not None and not token.isascii():
            return False  # a token is hex; compare_digest refuses non-ASCII text
        return self.same_origin() and sessions.csrf_ok(self.keys.csrf, self.csrf_seed(), token)

    def csrf_for(self, response: Response) -> str:
        """The form token; gives the browser a CSRF cookie first if it has none."""
        seed = self.csrf_seed()
        if not seed or len(seed) > 100:
            seed = secrets.token_urlsafe(24)
            self.set_cookie(response, CSRF_COOKIE, seed, max_age=None)
        return sessions.csrf_token(self.keys.csrf, seed)

    def client_address(self) -> str:
        """Who is asking: X-Forwarded-For believed only from a trusted proxy."""
        return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                              self.proxies)


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
    for blueprint in (pages.blueprint, logins.blueprint, api.blueprint, tokens.blueprint):
        app.register_blueprint(blueprint)
    errors.install(app)
    system.install(app, db, cfg.heartbeat.registry_liveness)  # /system for main_server.admins
    app.while_serving(partial(_background, site))
    return app


async def _background(site: Site) -> AsyncIterator[None]:
    """While the app serves: sweep expired anonymous users; look the SSO provider up once."""
    interval = min(SWEEP_INTERVAL, site.cfg.auth.anonymous_lifetime / 4)
    tasks = [asyncio.create_task(_sweeper(site.db, interval))]
    if site.oidc is not None:
        tasks.append(asyncio.create_task(_discover(site.oidc)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _discover(oidc: OidcClient) -> None:
    """Fetch the provider's discovery document at start, so a misconfiguration shows early."""
    with contextlib.suppress(SsoError):  # logged by metadata(); retried at the first login
        await oidc.metadata()


async def _sweeper(db: Database, interval: float) -> None:
    while True:
        try:
            gone = await sessions.sweep_expired(db)
            if gone:
                log.info("expired anonymous users removed", extra={"users": gone})
            dead = await api_tokens.sweep_dead(db)
            if dead:
                log.info("dead API tokens removed", extra={"tokens": dead})
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
    try:
        app = create_app(cfg, db)
        log.info("listening", extra={"host": cfg.main_server.host, "port": cfg.main_server.port})
        await serve_app(app, host=cfg.main_server.host, port=cfg.main_server.port, stop=stop)
    finally:
        await db.close()
    return 0
