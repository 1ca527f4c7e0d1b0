"""The System page: admins only (404 for everyone else), its data from the registry."""

from __future__ import annotations

import json
import time

from etckit import metrics
from etckit.main_server.system import History, pools_of

from .conftest import fake_login
from .test_assign import add_wssvc


async def test_system_page_is_404_for_a_normal_user_and_anonymous(make_app):
    app = make_app(main_server__admins="root,ops")
    for login in ("alice", None):
        client = app.test_client()
        if login:
            await fake_login(client, login)
        else:
            from .conftest import csrf
            await client.post("/login/anonymous", form={"csrf": await csrf(client)})
        assert (await client.get("/system")).status_code == 404
        assert (await client.get("/api/system")).status_code == 404
    assert (await app.test_client().get("/api/system")).status_code == 404  # not logged in


async def test_admin_sees_the_page_services_and_alerts(make_app, db):
    app = make_app(main_server__admins="root,ops")
    client = app.test_client()
    await fake_login(client, "ops")
    page = await client.get("/system")
    assert page.status_code == 200
    assert "uPlot.iife.min.js" in (await page.get_data(as_text=True))
    await add_wssvc(db, "w1", load=4)  # a pool without broker or worker
    body = await (await client.get("/api/system")).get_json()
    assert [s["id"] for s in body["services"]] == ["w1"]
    assert body["alerts"] == ["wssvc pool pool-w1 has no broker"]


def _rows(now: float, requests: int, latency: list[int], queue: int = 0) -> list[dict]:
    return [{"id": "w1", "kind": "wssvc", "pool": "p", "load": 2, "heartbeat_at": now,
             "extra": {"requests": requests, "latency": latency}},
            {"id": "b1", "kind": "broker", "pool": "p", "load": 1, "heartbeat_at": now,
             "extra": {"queue": queue, "busy": 1}},
            {"id": "k1", "kind": "worker", "pool": "p", "load": 0, "heartbeat_at": now,
             "extra": {}},
            {"id": "old", "kind": "worker", "pool": "p", "load": 0, "heartbeat_at": now - 99,
             "extra": {}}]


def test_history_gives_rates_and_percentiles_per_pool():
    n = len(metrics.LATENCY_BUCKETS) + 1
    history = History()
    t0 = 1000.0
    history.add(t0, _rows(t0, 100, [0] * n), 10)
    # 100 more requests in 10 s: 50 under 5 ms, 48 more under 10 ms, 2 in 0.5..1 s
    later = [50, 98, 98, 98, 98, 98, 98, 100] + [100] * (n - 8)
    history.add(t0 + 10, _rows(t0 + 10, 200, later, queue=3), 10)
    series = history.series()["p"]
    assert series["t"] == [t0, t0 + 10]
    assert series["clients"] == [2, 2] and series["queue"] == [0, 3]
    assert series["busy"] == [1, 1] and series["workers"] == [1, 1]  # the stale one is not
    assert series["rps"] == [None, 10.0]
    assert series["p50"] == [None, 5.0]
    assert series["p99"] == [None, 750.0]  # halfway into the 0.5..1 s bucket


def test_a_restarted_wssvc_never_makes_negative_rates():
    n = len(metrics.LATENCY_BUCKETS) + 1
    history = History()
    history.add(0.0, _rows(0.0, 500, [500] * n), 10)
    rows = _rows(10.0, 3, [3] * n)
    rows[0]["id"] = "w2"  # a new process: a new id, counters from zero
    history.add(10.0, rows, 10)
    assert history.series()["p"]["rps"] == [None, 0.0]


def test_pools_of_ignores_unreadable_extra():
    rows = _rows(5.0, 1, [1])
    rows[0]["extra"] = json.loads('{"latency": "nonsense"}')
    assert pools_of(rows, 5.0, 10)["p"]["wssvc"] == {}
    assert pools_of(rows, time.time() + 1000, 10) == {}


def test_quantile_interpolates_inside_its_bucket():
    bounds = (1.0, 2.0, 4.0)
    assert metrics.quantile(0.5, [0, 10, 10, 10], bounds) == 1.5
    assert metrics.quantile(0.99, [0, 0, 0, 10], bounds) == 4.0  # in +Inf: the top bound
    assert metrics.quantile(0.5, [0, 0, 0, 0], bounds) is None


async def test_sso_users_are_admins_by_email_never_by_display_name(make_app, db):
    from etckit.auth import sessions
    from etckit.main_server.web import SESSION_COOKIE

    app = make_app(main_server__admins="root,ops@example.org")

    async def status_as(name: str, email: str) -> int:
        user = await sessions.upsert_user(db, issuer="https://idp", subject=email, kind="sso",
                                          display_name=name, email=email)
        token, _ = await sessions.create_session(db, user, 3600)
        client = app.test_client()
        client.set_cookie("127.0.0.1", SESSION_COOKIE, token)
        return (await client.get("/api/system")).status_code

    assert await status_as("root", "mallory@example.org") == 404  # a chosen display name
    assert await status_as("Ops", "ops@example.org") == 200


def test_an_unverified_email_is_not_kept_from_the_provider():
    """Admins are named by e-mail: an address the provider did not verify is dropped."""
    from etckit.auth.oidc import identity_from

    claims = {"sub": "u1", "name": "Mallory", "email": "ops@example.org"}
    assert identity_from("https://idp", claims).email == ""
    assert identity_from("https://idp", {**claims, "email_verified": "true"}).email == ""
    verified = identity_from("https://idp", {**claims, "email_verified": True})
    assert (verified.email, verified.name, verified.subject) == ("ops@example.org", "Mallory",
                                                                 "u1")
