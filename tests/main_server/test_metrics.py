"""main_server's counters: logins by kind, assignments, tickets refused by reason."""

from __future__ import annotations

from etckit import metrics

from .conftest import csrf, fake_login
from .test_assign import add_wssvc, assign

REGISTRY = metrics.registry_for("main_server")


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_logins_are_counted_by_kind(app):
    fake, anonymous = count("etckit_logins_total", kind="fake"), count(
        "etckit_logins_total", kind="anonymous")
    await fake_login(app.test_client())
    client = app.test_client()
    await client.post("/login/anonymous", form={"csrf": await csrf(client)})
    assert count("etckit_logins_total", kind="fake") == fake + 1
    assert count("etckit_logins_total", kind="anonymous") == anonymous + 1


async def test_assignments_and_refused_tickets_are_counted(app, db):
    client = app.test_client()
    await fake_login(client)
    made = count("etckit_assignments_total")
    no_wssvc = count("etckit_tickets_refused_total", reason="no_wssvc")
    invalid = count("etckit_tickets_refused_total", reason="invalid")
    assert (await assign(client, purpose="list"))[0] == 503
    assert (await assign(client, purpose="nonsense"))[0] == 400
    await add_wssvc(db, "w1")
    assert (await assign(client, purpose="list"))[0] == 200
    assert count("etckit_tickets_refused_total", reason="no_wssvc") == no_wssvc + 1
    assert count("etckit_tickets_refused_total", reason="invalid") == invalid + 1
    assert count("etckit_assignments_total") == made + 1


async def test_database_transactions_are_timed(db):
    before = count("etckit_db_transaction_seconds_count")
    await db.fetchval("SELECT 1 AS one")
    assert count("etckit_db_transaction_seconds_count") == before + 1
