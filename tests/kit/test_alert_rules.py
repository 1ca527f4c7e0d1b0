"""The alert rules fire on what they name and stay quiet otherwise (promtool test rules).

The rules are rendered from the role's template with its defaults, by Ansible, exactly as
etckit_monitoring installs them (tests/kit/render_monitoring.yml); no copy of them lives here.
Each alert has a promtool unit-test file in tests/kit/alert_rules/<alert>.yml that feeds
synthetic series: some that make it fire once its `for:` has passed (with the labels and
annotations an operator sees), some that keep it quiet (just under the threshold, recovered,
or excluded). promtool comes from Debian's `prometheus` package (.ci/run installs it): skipped
here without it, failed under CI=true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from etckit import metrics
from tests.kit.support import REPO, Inventory
from tests.kit.test_monitoring import promtool, render_monitoring

UNIT_TESTS = Path(__file__).parent / "alert_rules"
ALERTS = sorted(path.stem for path in UNIT_TESTS.glob("*.yml"))


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory, test_certs) -> Path:
    """The rules the role renders with its defaults, as monitor1's etckit-rules.yml."""
    base = tmp_path_factory.mktemp("alert-rules")
    out = render_monitoring(Inventory(base / "inventory", test_certs), base / "out",
                            limit="monitor1")
    return out / "monitor1" / "etckit-rules.yml"


def rules_of(rules_file: Path) -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(rules_file.read_text())["groups"]
            for rule in group["rules"]}


def run_unit_test(rules: Path, alert: str, work: Path) -> subprocess.CompletedProcess[str]:
    """promtool test rules on the alert's unit-test file, beside a copy of `rules`."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(rules, work / "etckit-rules.yml")
    shutil.copy(UNIT_TESTS / f"{alert}.yml", work / f"{alert}.yml")
    return subprocess.run([promtool(), "test", "rules", f"{alert}.yml"], cwd=work,
                          capture_output=True, text=True, timeout=120)


def test_every_rule_has_a_unit_test(rules_file):
    assert sorted(rules_of(rules_file)) == ALERTS


@pytest.mark.parametrize("alert", ALERTS)
def test_each_unit_test_shows_the_alert_firing_and_quiet(alert):
    """The file of an alert checks only that alert, fires it at least once (with its labels
    and summary) and expects it quiet at least once (before `for:`, or for series that must
    not fire)."""
    tests = yaml.safe_load((UNIT_TESTS / f"{alert}.yml").read_text())["tests"]
    checks = [check for test in tests for check in test["alert_rule_test"]]
    assert {check["alertname"] for check in checks} == {alert}
    fired = [check["exp_alerts"] for check in checks if check["exp_alerts"]]
    assert fired, f"{alert} never fires in its unit test"
    assert all(expected["exp_labels"]["severity"] and expected["exp_annotations"]["summary"]
               for alerts in fired for expected in alerts)
    assert any(not check["exp_alerts"] for check in checks), f"{alert} is never quiet"


@pytest.mark.parametrize("alert", ALERTS)
def test_the_alert_fires_on_its_condition_and_only_then(rules_file, alert, tmp_path):
    result = run_unit_test(rules_file, alert, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_threshold_fails_its_unit_test(rules_file, tmp_path):
    """The unit tests have teeth: the queue rule with 30 for 20 no longer fires on 25."""
    text = rules_file.read_text()
    assert "(etckit_broker_queue_depth) > 20" in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("(etckit_broker_queue_depth) > 20",
                                   "(etckit_broker_queue_depth) > 30"))
    result = run_unit_test(broken, "EtckitQueueDepthHigh", tmp_path / "work")
    assert result.returncode != 0, result.stdout
    assert "EtckitQueueDepthHigh" in result.stdout + result.stderr


def _exported_names() -> set[str]:
    """The sample names etckit's programs export (docs/operations.md, "Metrics and status")."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    names = set()
    for program in metrics.FAMILIES:
        for family in metrics.registry_for(program).collect():
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_the_rules_use_metrics_the_programs_export(rules_file):
    # metric names in the expressions (label values, in quotes, are not)
    used = {name for rule in rules_of(rules_file).values()
            for name in re.findall(r"\betckit_[a-z_]+", re.sub(r'"[^"]*"', "", rule["expr"]))}
    assert used, "no rule reads an etckit metric"
    assert used <= _exported_names(), used - _exported_names()


QUERIES = REPO / "roles" / "etckit_monitoring" / "files" / "postgres-exporter-queries.yml"


def _exporter_metrics(url: str) -> dict[str, float]:
    """What prometheus-postgres-exporter makes of the role's query file on `url`: for each
    query, <key>_<column> = the value (one row), read as the role prometheus (pg_monitor)."""
    import psycopg

    values = {}
    with psycopg.connect(url, user="prometheus", autocommit=True) as conn:
        for key, query in yaml.safe_load(QUERIES.read_text()).items():
            row = conn.execute(query["query"])
            columns = [column.name for column in row.description]
            record = row.fetchone()
            for metric in query["metrics"]:
                (column,) = metric
                values[f"{key}_{column}"] = float(record[columns.index(column)])
    return values


@pytest.fixture(scope="module")
def standby(pg_server):
    import psycopg

    from tests.support.pgserver import PgServer
    from tests.support.system import free_port

    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS prometheus")
        conn.execute("CREATE ROLE prometheus LOGIN IN ROLE pg_monitor")
    server = PgServer(pg_server.bindir, free_port())
    server.start(standby_of=pg_server)
    yield server
    server.stop()


def test_the_replica_lag_query_reads_zero_on_a_primary_and_a_streaming_standby(
        rules_file, pg_server, standby):
    used = {name for rule in rules_of(rules_file).values()
            for name in re.findall(r"\bpg_etckit_[a-z_]+", rule["expr"])}
    assert used == {"pg_etckit_replica_lag_seconds", "pg_etckit_replica_is_replica"}
    assert _exporter_metrics(pg_server.admin_url) == {
        "pg_etckit_replica_is_replica": 0.0, "pg_etckit_replica_lag_seconds": 0.0}
    found = _wait_for(lambda: _exporter_metrics(standby.admin_url),
                      lambda m: m["pg_etckit_replica_lag_seconds"] == 0.0)
    assert found == {"pg_etckit_replica_is_replica": 1.0, "pg_etckit_replica_lag_seconds": 0.0}


def test_the_replica_lag_query_counts_a_standby_that_stopped_replaying(pg_server, standby):
    import psycopg

    with psycopg.connect(pg_server.admin_url, autocommit=True) as primary, \
            psycopg.connect(standby.admin_url, autocommit=True) as conn:
        primary.execute("CREATE TABLE IF NOT EXISTS lag_probe (n int)")
        lsn = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        _wait_for(lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                       (lsn,)).fetchone()[0], bool)
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            primary.execute("INSERT INTO lag_probe VALUES (1)")
            # received but not replayed: lag is the age of the last replayed transaction
            _wait_for(lambda: conn.execute("SELECT pg_last_wal_receive_lsn() >"
                                           " pg_last_wal_replay_lsn()").fetchone()[0],
                      bool)
            found = _exporter_metrics(standby.admin_url)
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
    assert found["pg_etckit_replica_is_replica"] == 1.0
    assert found["pg_etckit_replica_lag_seconds"] > 0.0


def _wait_for(read, done, tries: int = 300):
    """read() until done(value) (replication is asynchronous); the last value otherwise."""
    import time

    for _ in range(tries):
        value = read()
        if done(value):
            return value
        time.sleep(0.1)
    return value


def _documented_alerts() -> dict[str, list[str]]:
    """docs/operations.md's alert table (Monitoring): alert -> its cells."""
    text = (REPO / "docs" / "operations.md").read_text()
    table = text[text.index("| alert | condition (default threshold) | for | what to do |"):]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells
    return rows


def test_the_operations_doc_lists_every_alert_with_its_for(rules_file):
    rules = rules_of(rules_file)
    documented = _documented_alerts()
    assert sorted(documented) == sorted(rules)
    for alert, rule in rules.items():
        assert documented[alert][2] == rule.get("for", "at once"), alert
        assert documented[alert][3], f"{alert}: what to do is missing"
