"""Logins, sessions, CSRF and the pages they open (main_server in-process)."""

from __future__ import annotations

import time

from etckit.auth import keys, sessions
from etckit.main_server.app import SESSION_COOKIE

from .conftest import SECRET, csrf, fake_login


def cookie(response, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.getlist('Set-Cookie')}")


async def test_fake_login_sets_a_session_cookie_and_opens_the_pages(app, db):
    client = app.test_client()
    assert (await client.get("/welcome")).status_code == 303  # not logged in yet
    response = await fake_login(client, "alice")
    assert response.status_code == 303 and response.headers["Location"] == "/welcome"
    header = cookie(response, SESSION_COOKIE)
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Secure" not in header  # plain http, cookie_secure = auto
    token = header.split(";")[0].split("=", 1)[1]
    stored = await db.fetchall("SELECT token_hash FROM sessions")
    assert stored == [{"token_hash": sessions.token_hash(token)}]  # only the hash is kept

    for path in ("/welcome", "/workbooks"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert "text/html" in page.headers["Content-Type"]
    assert (await client.get("/")).headers["Location"] == "/welcome"
    me = await (await client.get("/api/me")).get_json()
    assert me["user"]["name"] == "alice" and me["user"]["kind"] == "fake"

    # the same name logs in as the same user
    again = app.test_client()
    await fake_login(again, "alice")
    me2 = await (await again.get("/api/me")).get_json()
    assert me2["user"]["id"] == me["user"]["id"]


async def test_logout_revokes_the_session(app):
    client = app.test_client()
    await fake_login(client)
    token = await csrf(client)
    response = await client.post("/logout", form={"csrf": token})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert (await client.get("/api/me")).status_code == 401
    assert (await client.get("/workbooks")).status_code == 303


async def test_anonymous_login_and_logout_removes_its_workbooks(app, db):
    client = app.test_client()
    response = await client.post("/login/anonymous", form={"csrf": await csrf(client)})
    assert response.status_code == 303
    me = await (await client.get("/api/me")).get_json()
    user = me["user"]
    assert user["kind"] == "anonymous"
    assert 86000 < user["expires_at"] - time.time() <= 86400
    await db.execute("INSERT INTO workbooks (id, owner_id, name, created_at, updated_at)"
                     " VALUES ('w1', :u, 'mine', 0, 0)", {"u": user["id"]})
    await client.post("/logout", form={"csrf": me["csrf"]})
    assert await db.fetchval("SELECT COUNT(*) AS n FROM users") == 0
    assert await db.fetchval("SELECT COUNT(*) AS n FROM workbooks") == 0


async def test_expired_anonymous_users_are_swept(make_app, db):
    app = make_app(auth__anonymous_lifetime="60")
    client = app.test_client()
    await client.post("/login/anonymous", form={"csrf": await csrf(client)})
    assert (await client.get("/api/me")).status_code == 200
    await db.execute("UPDATE users SET expires_at = :t", {"t": time.time() - 1})
    assert (await client.get("/api/me")).status_code == 401  # expired even before the sweep
    assert await sessions.sweep_expired(db) == 1
    assert await db.fetchval("SELECT COUNT(*) AS n FROM users") == 0


async def test_fake_login_is_404_unless_enabled(make_app):
    app = make_app(auth__fake_login="false", auth__anonymous="false")
    client = app.test_client()
    options = await (await client.get("/api/login-options")).get_json()
    assert options["fake_login"] is False and options["anonymous"] is False
    assert options["sso"] is False and options["registration_url"] == ""
    token = options["csrf"]
    assert (await client.post("/login/fake", form={"name": "a", "csrf": token})).status_code \
        == 404
    assert (await client.post("/login/anonymous", form={"csrf": token})).status_code == 404
    assert (await client.post("/login/sso", form={"csrf": token})).status_code == 404


async def test_forms_need_the_csrf_token_and_our_origin(app):
    client = app.test_client()
    token = await csrf(client)
    for form in ({"name": "alice"}, {"name": "alice", "csrf": "forged"}):
        response = await client.post("/login/fake", form=form)
        assert response.status_code == 403
        assert "Form refused" in await response.get_data(as_text=True)
    evil = await client.post("/login/fake", form={"name": "alice", "csrf": token},
                             headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    ok = await client.post("/login/fake", form={"name": "alice", "csrf": token},
                           headers={"Origin": "http://127.0.0.1:8080"})
    assert ok.status_code == 303
    # a token from another browser's cookie is refused
    other = app.test_client()
    other_token = await csrf(other)
    assert (await client.post("/logout", form={"csrf": other_token})).status_code == 403


async def test_bad_user_names_are_refused(app):
    client = app.test_client()
    token = await csrf(client)
    for name in ("", " ", "x" * 65, "a<script>", "tab\there"):
        response = await client.post("/login/fake", form={"name": name, "csrf": token})
        assert response.status_code == 400, name


async def test_forged_or_missing_session_cookie(app):
    client = app.test_client()
    await fake_login(client)
    assert (await client.get("/workbooks")).status_code == 200
    client.set_cookie("localhost", SESSION_COOKIE, "forged-token")
    assert (await client.get("/workbooks")).status_code == 303
    response = await client.get("/api/me")
    assert response.status_code == 401
    assert (await response.get_json())["error"] == "not_logged_in"
    assert (await client.post("/api/assign", json={"purpose": "list"})).status_code == 401


async def test_secure_cookies(make_app):
    always = make_app(auth__cookie_secure="always", auth__cookie_domain="etc.example.org")
    # the test client keeps no Secure cookie over http: hand it the CSRF cookie by hand
    response = await always.test_client().post(
        "/login/fake",
        form={"name": "a", "csrf": sessions.csrf_token(keys.derive(SECRET).csrf, "seed")},
        headers={"Cookie": "etckit_csrf=seed"})
    header = cookie(response, SESSION_COOKIE)
    assert "Secure" in header and "Domain=etc.example.org" in header
    # auto: Secure when the trusted proxy says the browser used HTTPS
    proxied = make_app(main_server__trusted_proxies="127.0.0.0/8")
    client = proxied.test_client()
    token = await csrf(client)
    response = await client.post("/login/fake", form={"name": "a", "csrf": token},
                                 headers={"X-Forwarded-Proto": "https"},
                                 scope_base={"client": ("127.0.0.1", 40000)})
    assert "Secure" in cookie(response, SESSION_COOKIE)
    untrusted = make_app(main_server__trusted_proxies="10.0.0.0/8")
    client = untrusted.test_client()
    token = await csrf(client)
    response = await client.post("/login/fake", form={"name": "a", "csrf": token},
                                 headers={"X-Forwarded-Proto": "https"},
                                 scope_base={"client": ("127.0.0.1", 40000)})
    assert "Secure" not in cookie(response, SESSION_COOKIE)


async def test_bad_input(app):
    client = app.test_client()
    assert (await client.get("/no/such/page")).status_code == 404
    api = await client.get("/api/nothing")
    assert api.status_code == 404 and (await api.get_json())["error"] == "not_found"
    response = await client.get("/login/fake")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert (await client.delete("/welcome")).status_code == 405
    token = await csrf(client)
    big = await client.post("/login/fake", form={"name": "a", "csrf": token,
                                                  "pad": "x" * 70000})
    assert big.status_code == 413
    body = await big.get_data(as_text=True)
    assert "Traceback" not in body


async def test_healthz(app):
    response = await app.test_client().get("/healthz")
    assert response.status_code == 200 and (await response.get_json())["status"] == "ok"
