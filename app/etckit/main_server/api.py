"""The api blueprint: what the pages ask with fetch(), and the load balancer's health check."""

from __future__ import annotations

import json

from quart import Blueprint, Response, jsonify, request

from .. import __version__, metrics
from ..auth import sessions, tickets
from ..storage import StorageError, check_schema
from .assign import NoService, assign
from .web import (
    SESSION_COOKIE,
    WORKBOOK_RE,
    api,
    current_site,
    current_user,
    log,
    owns,
    problem,
)

blueprint = Blueprint("api", __name__)


@blueprint.get("/healthz")
async def healthz():
    try:
        await check_schema(current_site().db)
    except StorageError as exc:
        log.warning("health check failed: %s", exc)
        return jsonify(status="unhealthy", error=str(exc)), 503
    return jsonify(status="ok", version=__version__)


@blueprint.get("/api/login-options")
async def login_options():
    site = current_site()
    cfg, oidc = site.cfg, site.oidc
    response = jsonify()
    body = dict(
        anonymous=cfg.auth.anonymous, fake_login=cfg.auth.fake_login,
        anonymous_lifetime=cfg.auth.anonymous_lifetime, sso=oidc is not None,
        registration_url=cfg.sso.registration_url if oidc is not None else "")
    response.set_data(json.dumps({**body, "csrf": site.csrf_for(response)}))
    return response


@blueprint.get("/api/me")
@api
async def me():
    user = await current_user()
    response = jsonify()
    response.set_data(json.dumps({"user": user.view(), "csrf": current_site().csrf_for(response)}))
    return response


async def json_body() -> object | Response:
    """The request body as JSON, or a 400 naming what is wrong with it."""
    if request.mimetype != "application/json":
        return problem(415, "json_only", "send the request as application/json")
    data = await request.get_data(cache=True)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return problem(400, "bad_unicode", "the body is not UTF-8 text")
    except RecursionError:
        return problem(400, "too_deep", "the body's JSON is nested too deeply")
    except ValueError as exc:
        return problem(400, "bad_json", f"the body is not JSON ({exc})")


async def assign_request() -> tuple[str, str | None] | Response:
    """(purpose, workbook) from the request body, or the error answer."""
    if not current_site().same_origin():
        return problem(403, "csrf", "request did not come from an etckit page")
    return await purpose_of_body()


async def purpose_of_body() -> tuple[str, str | None] | Response:
    """(purpose, workbook) from a JSON body, or the error answer (also POST /api/v1/ticket)."""
    body = await json_body()
    if isinstance(body, Response):
        return body
    if not isinstance(body, dict):
        return problem(400, "invalid", "the body must be a JSON object", field="")
    purpose = body.get("purpose")
    workbook = body.get("workbook")
    if purpose not in ("list", "workbook"):
        return problem(400, "invalid", "purpose must be 'list' or 'workbook'",
                       field="purpose")
    if purpose == "list":
        return purpose, None
    if not isinstance(workbook, str) or not WORKBOOK_RE.match(workbook):
        return problem(400, "invalid", "workbook must be a workbook id", field="workbook")
    return purpose, workbook


@blueprint.post("/api/assign")
@api
async def assign_wssvc():
    response = await _assign()
    if response.status_code >= 400:  # a ticket refused, by its error code
        metrics.TICKETS_REFUSED.labels(await _refusal(response)).inc()
    else:
        metrics.ASSIGNMENTS.inc()
    return response


REFUSALS = frozenset({"csrf", "json_only", "bad_unicode", "too_deep", "bad_json", "invalid",
                      "not_found", "no_wssvc"})


async def _refusal(response: Response) -> str:
    """The error code of a refused assignment (a bounded set, for the metrics)."""
    body = await response.get_json(silent=True)
    code = body.get("error") if isinstance(body, dict) else None
    return code if code in REFUSALS else "other"


async def _assign() -> Response:
    asked = await assign_request()
    if not isinstance(asked, tuple):
        return asked
    purpose, workbook = asked
    session = sessions.token_hash(request.cookies.get(SESSION_COOKIE, ""))
    return await ticket_answer(await current_user(), purpose, workbook, session)


async def ticket_answer(user: sessions.User, purpose: str, workbook: str | None, session: str,
                        scope: str = "write") -> Response:
    """A wssvc and a ticket for the user (the browser's login session, or an API token)."""
    site = current_site()
    cfg = site.cfg
    if workbook is not None and not await owns(user.id, workbook):
        return problem(404, "not_found", "there is no such workbook")
    try:
        chosen = await assign(site.db, user_id=user.id, purpose=purpose, workbook=workbook,
                              liveness=cfg.heartbeat.registry_liveness)
    except NoService:
        return problem(503, "no_wssvc", "no websocket service is available; "
                       "try again in a few seconds")
    ticket = tickets.issue(site.ticket_key, user=user.id, session=session,
                           pool=chosen.pool, purpose=purpose, workbook=workbook,
                           lifetime=cfg.auth.ticket_lifetime, scope=scope)
    return jsonify(url=f"{chosen.endpoint}/ws?ticket={ticket}", endpoint=chosen.endpoint,
                   ticket=ticket, pool=chosen.pool, service=chosen.service_id,
                   expires_in=cfg.auth.ticket_lifetime, origin=site.public_origin)
