"""Where each etckit host serves metrics: one table for the units, the firewall and Prometheus.

Jinja filters (Ansible loads a role's filter_plugins/ for the whole playbook run):

  hostvars[host] | etckit_wssvc_instances   the host's wssvc processes, [{name, unit, env_file,
                                            port, public_port, pool, metrics_port}]
  hostvars[host] | etckit_metrics_ports     {unit: port} of the etckit programs of that host
  hostvars[host] | etckit_metrics_targets   the host's scrape targets, [{job, port, labels}]
  hostvars[host] | etckit_tls_targets       its TLS ports, probed for certificate expiry
  hostvars[host] | etckit_scrape_file       the two as Prometheus file_sd files (etckit_monitoring)
  hostvars[host] | etckit_tls_file

Every port is computed from the host's own inventory variables (its groups, broker instances
and worker counts), so `site.yml --limit newhost` can write the new host's targets without
reading any other host. Ports (docs/operations.md, "Monitoring"):

  main_server 9301, wssvc 9302 (etckit_wssvc_more_instances 9401.., sorted by name, at most
  9), brokers 9303.. (one per pool, sorted by pool name, at most 7), worker instance N of the
  host 9310+N (instances sorted as etckit_worker_instances: by pool, then 1..count), node
  exporter 9100, PostgreSQL exporter 9187, HAProxy 8405 (0: none), Prometheus 9090. The
  inventory may move these last four (the variables in PORT_VARS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAIN_SERVER_PORT = 9301
WSSVC_PORT = 9302
BROKER_FIRST_PORT = 9303
BROKER_LAST_PORT = 9309
WORKER_BASE_PORT = 9310
WORKER_LAST_PORT = 9399
WSSVC_MORE_FIRST_PORT = 9401
WSSVC_MORE_LAST_PORT = 9409
# An instance name: part of a unit name (etckit-wssvc@NAME), a file name and a metrics label.
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")

# Inventory variable -> default port, for the programs that have one port per host.
PORT_VARS = {
    "etckit_monitoring_node_exporter_port": 9100,
    "etckit_monitoring_postgres_exporter_port": 9187,
    "etckit_haproxy_metrics_port": 8405,
    "etckit_monitoring_prometheus_port": 9090,
}


class MetricsPortError(ValueError):
    """The inventory asks for more brokers or workers on one host than the port ranges hold."""


class WssvcInstanceError(ValueError):
    """etckit_wssvc_more_instances is malformed: a bad name, port or pool, or two that collide."""


def _port(hostvars: Mapping[str, Any], name: str) -> int:
    return int(hostvars.get(name, PORT_VARS[name]))


def _groups(hostvars: Mapping[str, Any]) -> list[str]:
    return list(hostvars.get("group_names", []))


def worker_instances(hostvars: Mapping[str, Any]) -> list[str]:
    """The host's worker instances, <pool>-<n>, in etckit_worker's order."""
    counts = hostvars.get("etckit_worker_counts") or {}
    return [f"{pool}-{n}" for pool in sorted(counts) for n in range(1, int(counts[pool]) + 1)]


def _tcp_port(host: str, what: str, value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536 or isinstance(value, bool):
        raise WssvcInstanceError(f"host {host}: {what} must be a TCP port (1-65535), not {value!r}")
    return port


def _more_wssvc(host: str, name: Any, spec: Any, metrics_port: int) -> dict[str, Any]:
    """One entry of etckit_wssvc_more_instances, checked."""
    what = f"etckit_wssvc_more_instances[{name!r}]"
    if not isinstance(name, str) or not INSTANCE_NAME.fullmatch(name):
        raise WssvcInstanceError(
            f"host {host}: {what}: a name is 1-32 lower-case letters, digits and '-'")
    if not isinstance(spec, Mapping) or "port" not in spec or "pool" not in spec:
        raise WssvcInstanceError(f"host {host}: {what} must be a mapping with port and pool")
    unknown = sorted(set(spec) - {"port", "pool", "public_port"})
    if unknown:
        raise WssvcInstanceError(f"host {host}: {what} has unknown keys {unknown} "
                                 "(port, pool, public_port)")
    pool = spec["pool"]
    if not isinstance(pool, str) or not pool.strip():
        raise WssvcInstanceError(f"host {host}: {what}.pool must be a non-empty string")
    port = _tcp_port(host, f"{what}.port", spec["port"])
    return {"name": name, "unit": f"etckit-wssvc@{name}", "env_file": f"wssvc-{name}.env",
            "port": port, "pool": pool, "metrics_port": metrics_port,
            "public_port": _tcp_port(host, f"{what}.public_port", spec.get("public_port", port))}


def wssvc_instances(hostvars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's wssvc processes: etckit-wssvc (etckit_wssvc_port, etckit_wssvc_pool), then
    one etckit-wssvc@NAME per entry of etckit_wssvc_more_instances ({NAME: {port, pool,
    public_port}}), sorted by name. Each has its own port, pool and metrics port."""
    if "wssvc_servers" not in _groups(hostvars):
        return []
    host = str(hostvars.get("inventory_hostname", "?"))
    port = _tcp_port(host, "etckit_wssvc_port", hostvars.get("etckit_wssvc_port", 8081))
    found = [{"name": "", "unit": "etckit-wssvc", "env_file": "wssvc.env", "port": port,
              "pool": str(hostvars.get("etckit_wssvc_pool") or host), "metrics_port": WSSVC_PORT,
              "public_port": _tcp_port(host, "etckit_wssvc_public_port",
                                       hostvars.get("etckit_wssvc_public_port", port))}]
    more = hostvars.get("etckit_wssvc_more_instances") or {}
    if not isinstance(more, Mapping):
        raise WssvcInstanceError(f"host {host}: etckit_wssvc_more_instances must be a mapping "
                                 "{name: {port, pool}}")
    if len(more) > WSSVC_MORE_LAST_PORT - WSSVC_MORE_FIRST_PORT + 1:
        raise WssvcInstanceError(
            f"host {host}: etckit_wssvc_more_instances has {len(more)} entries, at most "
            f"{WSSVC_MORE_LAST_PORT - WSSVC_MORE_FIRST_PORT + 1} fit the metrics ports "
            f"{WSSVC_MORE_FIRST_PORT}-{WSSVC_MORE_LAST_PORT}")
    for i, name in enumerate(sorted(more, key=str)):
        found.append(_more_wssvc(host, name, more[name], WSSVC_MORE_FIRST_PORT + i))
    for key in ("port", "pool"):
        values = [entry[key] for entry in found]
        twice = sorted({str(v) for v in values if values.count(v) > 1})
        if twice:
            raise WssvcInstanceError(f"host {host}: two wssvc of this host share the {key} "
                                     f"{', '.join(twice)}; each needs its own")
    return found


def metrics_ports(hostvars: Mapping[str, Any]) -> dict[str, int]:
    """{unit: port} of the etckit programs on the host (units as systemd names them)."""
    groups = _groups(hostvars)
    host = hostvars.get("inventory_hostname", "?")
    ports: dict[str, int] = {}
    if "main_servers" in groups:
        ports["etckit-main-server"] = MAIN_SERVER_PORT
    ports.update({w["unit"]: w["metrics_port"] for w in wssvc_instances(hostvars)})
    if "brokers" in groups:
        pools = sorted(hostvars.get("etckit_broker_instances") or {})
        if BROKER_FIRST_PORT + len(pools) - 1 > BROKER_LAST_PORT:
            raise MetricsPortError(
                f"host {host}: etckit_broker_instances has {len(pools)} brokers, at most "
                f"{BROKER_LAST_PORT - BROKER_FIRST_PORT + 1} fit the metrics ports "
                f"{BROKER_FIRST_PORT}-{BROKER_LAST_PORT}")
        ports.update({f"etckit-broker@{pool}": BROKER_FIRST_PORT + i
                      for i, pool in enumerate(pools)})
    if "workers" in groups:
        names = worker_instances(hostvars)
        if WORKER_BASE_PORT + len(names) > WORKER_LAST_PORT:
            raise MetricsPortError(
                f"host {host}: etckit_worker_counts has {len(names)} workers, at most "
                f"{WORKER_LAST_PORT - WORKER_BASE_PORT} fit the metrics ports "
                f"{WORKER_BASE_PORT + 1}-{WORKER_LAST_PORT}")
        ports.update({f"etckit-worker@{name}": WORKER_BASE_PORT + n
                      for n, name in enumerate(names, start=1)})
    return ports


def _program_target(unit: str, port: int, wssvc_pools: Mapping[str, str]) -> dict[str, Any]:
    program, _, instance = unit.partition("@")
    job = program.removeprefix("etckit-").replace("-", "_")
    labels = {}
    if program == "etckit-wssvc" and instance:
        labels = {"pool": wssvc_pools[unit], "wssvc": instance}
    elif program == "etckit-broker":
        labels = {"pool": instance}
    elif program == "etckit-worker":
        labels = {"pool": instance.rsplit("-", 1)[0], "worker": instance}
    return {"job": f"etckit_{job}", "port": port, "labels": labels}


def metrics_targets(hostvars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's scrape targets: [{job, port, labels}], node exporter first."""
    groups = _groups(hostvars)
    targets = [{"job": "node", "port": _port(hostvars, "etckit_monitoring_node_exporter_port"),
                "labels": {}}]
    pools = {w["unit"]: w["pool"] for w in wssvc_instances(hostvars)}
    targets += [_program_target(unit, port, pools)
                for unit, port in metrics_ports(hostvars).items()]
    if "loadbalancers" in groups and _port(hostvars, "etckit_haproxy_metrics_port") > 0:
        targets.append({"job": "haproxy", "labels": {},
                        "port": _port(hostvars, "etckit_haproxy_metrics_port")})
    if "databases" in groups:
        targets.append({"job": "postgresql", "labels": {},
                        "port": _port(hostvars, "etckit_monitoring_postgres_exporter_port")})
    if "monitoring" in groups:
        targets.append({"job": "prometheus", "labels": {},
                        "port": _port(hostvars, "etckit_monitoring_prometheus_port")})
    return targets


def tls_targets(hostvars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's TLS ports, whose certificates are probed: [{job, port, labels}]."""
    groups = _groups(hostvars)
    targets = []
    if "loadbalancers" in groups:
        targets.append({"job": "tls_haproxy", "port": 443, "labels": {}})
    targets += [{"job": "tls_wssvc", "port": w["port"],
                 "labels": {"wssvc": w["name"]} if w["name"] else {}}
                for w in wssvc_instances(hostvars)]
    return targets


def _address(hostvars: Mapping[str, Any]) -> str:
    address = str(hostvars.get("etckit_address") or hostvars.get("ansible_host")
                  or hostvars.get("inventory_hostname"))
    return f"[{address}]" if ":" in address else address


def _file_sd(hostvars: Mapping[str, Any], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    address = _address(hostvars)
    host = str(hostvars.get("inventory_hostname"))
    return [{"targets": [f"{address}:{t['port']}"],
             "labels": {"job": t["job"], "host": host, **t["labels"]}} for t in targets]


def scrape_file(hostvars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's file_sd file (scrape job etckit): one entry per target, with its labels."""
    return _file_sd(hostvars, metrics_targets(hostvars))


def tls_file(hostvars: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The host's file_sd file of TLS ports to probe (scrape job etckit_tls, via blackbox)."""
    return _file_sd(hostvars, tls_targets(hostvars))


class FilterModule:
    """Ansible's entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "etckit_wssvc_instances": wssvc_instances,
            "etckit_metrics_ports": metrics_ports,
            "etckit_metrics_targets": metrics_targets,
            "etckit_tls_targets": tls_targets,
            "etckit_scrape_file": scrape_file,
            "etckit_tls_file": tls_file,
        }
