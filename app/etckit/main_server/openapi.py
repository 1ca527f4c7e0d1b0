"""The OpenAPI 3.1 description of the scripting API, served at /api/v1/openapi.json.

It covers main_server's HTTP routes for scripts and for the tokens page, and wssvc's two
(`/ws`, the websocket, and `/plots/...`), whose server is the `endpoint` a ticket names. The
websocket's messages are described by reference: their types are listed from
messaging.types (so the list never drifts), their fields are in docs/protocol.md and
docs/workbooks.md.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..messaging.types import PLOT_KINDS, READ_TYPES, REQUEST_TYPES

DOCS = "docs/protocol.md#scripting-api"  # in the etckit source tree
_ERROR = {"$ref": "#/components/schemas/Error"}


def _answers(ok: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {ok: {"description": "success", "content": {
        "application/json": {"schema": schema}}}}
    for status in errors:
        out[status] = {"description": "see the error's code and message",
                       "content": {"application/json": {"schema": _ERROR}}}
    return out


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _components() -> dict[str, Any]:
    token = {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "scope": {"enum": ["read", "write"]}, "created_at": {"type": "number"},
        "expires_at": {"type": "number"}, "last_used_at": {"type": ["number", "null"]}}}
    ticket = {"type": "object", "properties": {
        "url": {"type": "string", "description": "the websocket URL, ticket included"},
        "endpoint": {"type": "string", "description": "ws(s)://host:port of the wssvc"},
        "ticket": {"type": "string"}, "pool": {"type": "string"},
        "service": {"type": "string"}, "expires_in": {"type": "number"},
        "origin": {"type": "string", "description": "the Origin header to send to wssvc"}}}
    return {
        "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer",
                      "description": "a personal API token (etk_...), made on /tokens"},
            "session": {"type": "apiKey", "in": "cookie", "name": "etckit_session"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"},
                "field": {"type": "string"}, "limit": {"type": "string"},
                "value": {}, "retry_after": {"type": "number"}}},
            "Token": token, "Ticket": ticket,
            "Purpose": {"type": "object", "required": ["purpose"], "properties": {
                "purpose": {"enum": ["list", "workbook"]}, "workbook": {"type": "string"}}},
            "NewToken": {"type": "object", "required": ["name", "scope", "expires_in_days"],
                         "properties": {"name": {"type": "string", "maxLength": 100},
                                        "scope": {"enum": ["read", "write"]},
                                        "expires_in_days": {"type": "number"}}},
        },
    }


def _main_paths() -> dict[str, Any]:
    token, session = [{"token": []}], [{"session": []}]
    return {
        "/api/v1/ticket": {"post": {
            "summary": "a wssvc and a single-use ticket for its websocket", "security": token,
            "requestBody": _json_body({"$ref": "#/components/schemas/Purpose"}),
            "responses": _answers("200", {"$ref": "#/components/schemas/Ticket"},
                                  "400", "401", "404", "415", "429", "503")}},
        "/api/v1/whoami": {"get": {
            "summary": "the token's user and the token", "security": token,
            "responses": _answers("200", {"type": "object"}, "401")}},
        "/api/v1/openapi.json": {"get": {
            "summary": "this document", "security": [],
            "responses": _answers("200", {"type": "object"})}},
        "/api/tokens": {
            "get": {"summary": "the logged-in user's live tokens", "security": session,
                    "responses": _answers("200", {"type": "object"}, "401")},
            "post": {"summary": "make a token; its secret is in this answer only",
                     "security": session,
                     "requestBody": _json_body({"$ref": "#/components/schemas/NewToken"}),
                     "responses": _answers("201", {"type": "object"},
                                           "400", "401", "403", "409", "415")}},
        "/api/tokens/{token_id}": {"delete": {
            "summary": "revoke a token (its open websockets close with 4003)",
            "security": session,
            "parameters": [{"name": "token_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": _answers("200", {"type": "object"}, "401", "403", "404")}},
    }


def _wssvc_paths() -> dict[str, Any]:
    wssvc = [{"url": "{endpoint}", "description": "the ticket's endpoint, http(s) for plots",
              "variables": {"endpoint": {"default": "https://front1.etc.example.org:8443"}}}]
    path = {"in": "path", "required": True, "schema": {"type": "string"}}
    query = {"in": "query", "required": True, "schema": {"type": "string"}}
    return {
        "/ws": {"get": {
            "summary": "the websocket (upgrade): JSON messages of docs/protocol.md",
            "servers": wssvc, "security": [],
            "parameters": [{"name": "ticket", **query}],
            "x-websocket-messages": {"all": sorted(REQUEST_TYPES | {"ping", "pong"}),
                                     "read_scope": sorted(READ_TYPES),
                                     "reference": DOCS},
            "responses": {"101": {"description": "switching to the websocket"},
                          "403": {"description": "origin, ticket or login refused"},
                          "503": {"description": "no broker: ask for a ticket again"}}}},
        "/plots/{calculation}/{revision}/{kind}.png": {"get": {
            "summary": "a plot of a calculation's current revision", "servers": wssvc,
            "security": [],
            "parameters": [{"name": "calculation", **path}, {"name": "revision", **path},
                           {"name": "kind", "in": "path", "required": True,
                            "schema": {"enum": list(PLOT_KINDS)}},
                           {"name": "client", **query}, {"name": "key", **query}],
            "responses": {"200": {"description": "the PNG",
                                  "content": {"image/png": {}}},
                          **{s: {"description": "see docs/protocol.md, Plot URLs"}
                             for s in ("400", "401", "404", "422", "429", "503")}}}},
    }


def document(public_url: str) -> dict[str, Any]:
    """The OpenAPI document for a main_server at public_url."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "etckit scripting API", "version": __version__,
                 "description": "Trade a personal API token for a wssvc ticket, then speak the "
                                "websocket protocol (see externalDocs); the Python client is "
                                "etckit.client."},
        "externalDocs": {"description": "docs/protocol.md, Scripting API", "url": DOCS},
        "servers": [{"url": public_url.rstrip("/")}],
        "paths": {**_main_paths(), **_wssvc_paths()},
        "components": _components(),
    }
