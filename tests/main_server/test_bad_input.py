"""Each malformed request that used to end in a 500 now gets a 4xx naming what was wrong."""

from __future__ import annotations

import json

import pytest

from .conftest import csrf, fake_login
from .raw import asgi

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def assign_raw(client, body: bytes, content_type: str = "application/json"):
    response = await client.post("/api/assign", data=body,
                                 headers={"Content-Type": content_type})
    return response.status_code, await response.get_json()


async def test_non_utf8_body_to_assign(app):
    client = app.test_client()
    await fake_login(client)
    status, body = await assign_raw(client, b'{"purpose": "l\xffist"}')
    assert status == 400 and body["error"] == "bad_unicode"
    assert "UTF-8" in body["message"]


async def test_json_nested_too_deep_to_assign(app):
    client = app.test_client()
    await fake_login(client)
    status, body = await assign_raw(client, b"[" * 20000 + b"]" * 20000)
    assert status == 400 and body["error"] == "too_deep"


async def test_not_json_and_wrong_shapes_to_assign(app):
    client = app.test_client()
    await fake_login(client)
    status, body = await assign_raw(client, b"{purpose: list}")
    assert status == 400 and body["error"] == "bad_json"
    for sent, field in (([], ""), ({"purpose": []}, "purpose"),
                        ({"purpose": "\ud83d"}, "purpose"),
                        ({"purpose": "workbook", "workbook": 10**400}, "workbook"),
                        ({"purpose": "workbook", "workbook": "w\ud800"}, "workbook")):
        raw = json.dumps(sent).encode()  # surrogates travel as \\ud83d escapes
        status, body = await assign_raw(client, raw)
        assert status == 400 and body["error"] == "invalid", sent
        assert body["field"] == field, sent


async def test_non_ascii_csrf_token_is_refused(app):
    client = app.test_client()
    await csrf(client)  # the browser has its CSRF cookie
    for path in ("/login/fake", "/login/anonymous", "/logout"):
        response = await client.post(path, form={"name": "alice", "csrf": "\u00e9t\u00e9"})
        assert response.status_code == 403, path


async def test_raw_non_ascii_query_string(app):
    for path in ("/", "/api/me", "/login/sso/callback", "/healthz"):
        status, body = await asgi(app, "GET", path, b"a=\xff\x80", [("Host", "localhost")],
                                  b"")
        assert status == 400, path
        assert "query string" in json.loads(body)["message"]


async def test_bad_host_header(app):
    status, body = await asgi(app, "GET", "/api/me", b"", [("Host", ".exe")], b"")
    assert status == 400 and "Host" in json.loads(body)["message"]
    assert (await app.test_client().get("/healthz")).status_code == 200


async def test_client_disconnect_mid_assign_leaves_the_database_usable(app, db):
    """A client that closes its socket right after sending /api/assign: Quart cancelled the
    handler inside the SQLite transaction and every later request failed ("cannot start a
    transaction within a transaction"); now the handler finishes and nothing is left open."""
    from .test_assign import add_wssvc

    client = app.test_client()
    login = await fake_login(client)
    session = login.headers["Set-Cookie"].split(";")[0]
    await add_wssvc(db, "a")
    headers = [("Host", "localhost"), ("Content-Type", "application/json"),
               ("Cookie", session)]
    for _ in range(20):
        await asgi(app, "POST", "/api/assign", b"", headers, b'{"purpose": "list"}',
                   disconnect=True)
    assert (await client.get("/healthz")).status_code == 200
    status, _ = await assign_raw(client, b'{"purpose": "list"}')
    assert status == 200
