"""The logins blueprint: fake, anonymous and single sign-on logins, and logout."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, redirect, request

from ..auth import sessions
from ..auth.oidc import SsoError
from .web import (
    NAME_RE,
    SESSION_COOKIE,
    SSO_COOKIE,
    SSO_PATH,
    checked_form,
    current_site,
    log,
    logged_in,
    not_here,
    problem,
    refused,
)

blueprint = Blueprint("logins", __name__)


@blueprint.post("/login/fake")
async def login_fake():
    site = current_site()
    if not site.cfg.auth.fake_login:
        return not_here()
    form = await checked_form()
    if form is None:
        return refused()
    name = (form.get("name") or "").strip()
    if not NAME_RE.match(name):
        return problem(400, "invalid", "A user name is 1 to 64 letters, digits, spaces "
                       "or . @ + - _", title="Not a user name", field="name")
    user = await sessions.upsert_user(site.db, issuer=sessions.FAKE_ISSUER, subject=name,
                                      kind="fake", display_name=name)
    return await logged_in(user, "fake")


def rate_limited(message: str, retry_after: int) -> Response:
    """429 with Retry-After: JSON for scripts and fetch, a page for a browser's form."""
    accept = request.accept_mimetypes
    if accept.quality("text/html") > accept.quality("application/json"):
        response = problem(429, "rate_limited", f"{message}; try again in {retry_after}"
                           f" second{'s' if retry_after != 1 else ''}.",
                           title="Too many logins")
    else:
        response = jsonify(error="rate_limited", message=message, retry_after=retry_after)
        response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


@blueprint.post("/login/anonymous")
async def login_anonymous():
    site = current_site()
    cfg = site.cfg
    if not cfg.auth.anonymous:
        return not_here()
    form = await checked_form()
    if form is None:
        return refused()
    address = site.client_address()
    refusal = site.login_limiter.take(address)
    if refusal is not None:
        log.info("anonymous login refused: rate limit",
                 extra={"address": address, "retry_after": refusal.retry_after})
        return rate_limited(refusal.message, refusal.retry_after)
    user = await sessions.create_anonymous(site.db, cfg.auth.anonymous_lifetime)
    return await logged_in(user, "anonymous")


@blueprint.post(SSO_PATH)
async def login_sso():
    site = current_site()
    oidc = site.oidc
    if oidc is None:
        return not_here()
    form = await checked_form()
    if form is None:
        return refused()
    try:
        url, transaction = await oidc.begin()
    except SsoError as exc:
        return problem(502, "sso", str(exc), title="Single sign-on failed")
    response = redirect(url, 303)
    site.set_cookie(response, SSO_COOKIE, transaction, max_age=600, path=SSO_PATH)
    return response


@blueprint.get(SSO_PATH + "/callback")
async def sso_callback():
    site = current_site()
    oidc = site.oidc
    if oidc is None:
        return not_here()
    try:
        who = await oidc.finish(dict(request.args), request.cookies.get(SSO_COOKIE))
    except SsoError as exc:
        response = problem(400, "sso", str(exc), title="Single sign-on failed")
        site.clear_cookie(response, SSO_COOKIE, path=SSO_PATH)
        return response
    user = await sessions.upsert_user(site.db, issuer=who.issuer, subject=who.subject,
                                      kind="sso", display_name=who.name or who.subject,
                                      email=who.email)
    response = await logged_in(user, "sso")
    site.clear_cookie(response, SSO_COOKIE, path=SSO_PATH)
    return response


@blueprint.post("/logout")
async def logout():
    site = current_site()
    form = await checked_form()
    if form is None:
        return refused()
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await sessions.logout(site.db, token)
    response = redirect("/", 303)
    site.clear_cookie(response, SESSION_COOKIE)
    return response
