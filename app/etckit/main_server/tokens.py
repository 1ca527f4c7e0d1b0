"""The tokens blueprint: the API tokens page and its calls, and the scripting API's routes.

    GET    /tokens                 the API tokens page (logged in)
    GET    /api/tokens             the user's live tokens, the limits, whether it may make one
    POST   /api/tokens             {name, scope, expires_in_days} -> the token, shown once (201)
    DELETE /api/tokens/<id>        revoke one of the user's tokens
    POST   /api/v1/ticket          Authorization: Bearer <token>; {purpose, workbook?} -> a
                                   wssvc and a ticket, as /api/assign answers the browser
                                   (auth.api_tickets_per_minute per token: 429 beyond)
    GET    /api/v1/whoami          Authorization: Bearer <token> -> the user and the token
    GET    /api/v1/openapi.json    the OpenAPI description of these routes (no login)

The scripting API is the browser's websocket protocol (docs/protocol.md, "Scripting API"):
a script buys a ticket with its token and then speaks to wssvc like a page, under the same
limits and the same fair share at the broker. A ticket of a `read` token lets wssvc pass
only messaging.types.READ_TYPES.
"""

from __future__ import annotations

import logging

from quart import Blueprint, Response, current_app, jsonify, request
from quart.blueprints import BlueprintSetupState

from ..auth import tokens
from . import api
from .limits import LoginLimiter
from .openapi import document
from .web import WORKBOOK_RE, current_site, current_user, page, problem
from .web import api as logged_in_api

log = logging.getLogger(__name__)

blueprint = Blueprint("tokens", __name__)
LIMITER = "etckit.ticket_limiter"


@blueprint.record_once
def _ticket_limiter(state: BlueprintSetupState) -> None:
    """Tickets per token and minute, in this process (like the anonymous-login limit: N
    main_servers allow N times as many; wssvc's buckets still bound what a socket does)."""
    auth = state.app.extensions["etckit.config"].auth
    state.app.extensions[LIMITER] = LoginLimiter(
        per_minute=auth.api_tickets_per_minute, burst=auth.api_ticket_burst, per_day=0)


def _refusal(exc: tokens.TokenError) -> Response:
    status = {"invalid": 400, "bad_unicode": 400, "forbidden": 403,
              "quota": 409}.get(exc.code, 401)
    response = problem(status, exc.code, str(exc), **exc.extra)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@blueprint.get("/tokens")
@page
async def tokens_page():
    return await current_app.send_static_file("tokens.html")


@blueprint.get("/api/tokens")
@logged_in_api
async def list_tokens():
    user = await current_user()
    auth = current_site().cfg.auth
    held = await tokens.list_tokens(current_site().db, user.id)
    return jsonify(tokens=[t.view() for t in held], limit=auth.api_tokens_per_user,
                   max_days=auth.api_token_max_lifetime / 86400,
                   may_create=user.kind != "anonymous")


@blueprint.post("/api/tokens")
@logged_in_api
async def create_token():
    site = current_site()
    if not site.same_origin():
        return problem(403, "csrf", "request did not come from an etckit page")
    body = await api.json_body()
    if isinstance(body, Response):
        return body
    user = await current_user()
    try:
        if user.kind == "anonymous":  # before the body: the answer does not depend on it
            raise tokens.TokenError("forbidden", "anonymous users cannot create API tokens")
        name, scope, lifetime = tokens.check_request(body, site.cfg.auth.api_token_max_lifetime)
        secret, token = await tokens.create(site.db, user, name=name, scope=scope,
                                            lifetime=lifetime,
                                            limit=site.cfg.auth.api_tokens_per_user)
    except tokens.TokenError as exc:
        return _refusal(exc)
    log.info("API token created", extra={"user": user.id, "token": token.id, "scope": scope})
    response = jsonify(token=secret, item=token.view())
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.delete("/api/tokens/<token_id>")
@logged_in_api
async def revoke_token(token_id: str):
    site = current_site()
    if not site.same_origin():
        return problem(403, "csrf", "request did not come from an etckit page")
    user = await current_user()
    if not WORKBOOK_RE.match(token_id) or not await tokens.revoke(site.db, user.id, token_id):
        return problem(404, "not_found", f"no token {token_id[:64]}")
    log.info("API token revoked", extra={"user": user.id, "token": token_id})
    return jsonify(revoked=token_id)


async def bearer() -> tuple | Response:
    """(user, token, its hash) of the request's Authorization: Bearer token, or a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _refusal(tokens.TokenError(
            "not_authenticated", "send your API token as Authorization: Bearer <token>"))
    try:
        return await tokens.authenticate(current_site().db, secret.strip())
    except tokens.TokenError as exc:
        return _refusal(exc)


@blueprint.post("/api/v1/ticket")
async def api_ticket():
    found = await bearer()
    if isinstance(found, Response):
        return found
    user, token, digest = found
    refusal = current_app.extensions[LIMITER].take(digest)
    if refusal is not None:
        rate = current_site().cfg.auth.api_tickets_per_minute
        response = problem(429, "rate_limited", f"this API token asked for too many tickets "
                           f"(the limit is {rate:g} a minute)", retry_after=refusal.retry_after)
        response.headers["Retry-After"] = str(refusal.retry_after)
        return response
    asked = await api.purpose_of_body()
    if isinstance(asked, Response):
        return asked
    purpose, workbook = asked
    response = await api.ticket_answer(user, purpose, workbook,
                                       tokens.TICKET_PREFIX + digest, scope=token.scope)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/api/v1/whoami")
async def whoami():
    found = await bearer()
    if isinstance(found, Response):
        return found
    user, token, _ = found
    return jsonify(user=user.view(), token=token.view())


@blueprint.get("/api/v1/openapi.json")
async def openapi():
    return jsonify(document(current_site().cfg.main_server.public_url))

