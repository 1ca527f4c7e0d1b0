"""The one command: ``etckit SUBCOMMAND [--config PATH]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from . import __version__
from .config import Config, ConfigError, load


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH",
                        help="TOML settings file (default: built-in defaults + ETCKIT_* env)")
    parser = argparse.ArgumentParser(
        prog="etckit", parents=[common],
        description="etckit: an exposure time calculator service and its programs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("main-server", parents=[common], help="pages, login, wssvc assignment")
    sub.add_parser("wssvc", parents=[common], help="websocket service for browsers")
    sub.add_parser("broker", parents=[common], help="ZeroMQ broker between wssvc and workers")
    sub.add_parser("worker", parents=[common], help="does the work: workbooks, calculations")
    dev = sub.add_parser("dev", parents=[common], help="the whole system on this machine")
    dev.add_argument("--port", type=int, default=None, help="main_server port (default 8080)")
    db = sub.add_parser("db", parents=[common], help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    owner = argparse.ArgumentParser(add_help=False, parents=[common])
    owner.add_argument("--user", metavar="ROLE", help="log in as ROLE (database.user)")
    owner.add_argument("--password-stdin", action="store_true",
                       help="read the password (database.password) from the first line of "
                            "standard input, so it is on no command line and in no file")
    up = dbsub.add_parser("upgrade", parents=[owner], help="apply pending migrations")
    up.add_argument("--to", type=int, default=None, metavar="N", help="stop at version N")
    dbsub.add_parser("version", parents=[owner], help="print the schema version")
    grant = dbsub.add_parser("grant", parents=[owner],
                             help="give each program's role its privileges (as the owner)")
    grant.add_argument("--role-prefix", default="etckit", metavar="NAME",
                       help="roles are NAME_main_server, NAME_wssvc, ... (default etckit)")
    grant.add_argument("--print", action="store_true", dest="print_only",
                       help="print the statements instead of running them")
    status = sub.add_parser("status", parents=[common],
                            help="the cluster from the service registry; exit 1 on a problem")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_parser("version", parents=[common], help="print the etckit version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"etckit {__version__}")
        return 0
    try:
        cfg = load(args.config, _login_from_args(args))
    except ConfigError as exc:
        print(f"etckit: configuration error: {exc}", file=sys.stderr)
        return 2
    return _dispatch(args, cfg)


def _login_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The environment, with ``--user`` and ``--password-stdin`` of ``etckit db`` over it."""
    environ = dict(os.environ)
    if getattr(args, "user", None):
        environ["ETCKIT_DATABASE__USER"] = args.user
    if getattr(args, "password_stdin", False):
        environ["ETCKIT_DATABASE__PASSWORD"] = sys.stdin.readline().rstrip("\r\n")
    return environ


def _dispatch(args: argparse.Namespace, cfg: Config) -> int:
    from .lifecycle import run_program

    if args.command == "main-server":
        from .main_server.app import run
        return run_program("main_server", run, cfg)
    if args.command == "wssvc":
        from .wssvc.app import run
        return run_program("wssvc", run, cfg)
    if args.command == "broker":
        from .broker import run
        return run_program("broker", run, cfg)
    if args.command == "worker":
        from .worker import run
        return run_program("worker", run, cfg)
    if args.command == "dev":
        from .dev import run_dev
        return run_dev(cfg, args.config, port=args.port)
    if args.command == "db":
        return asyncio.run(_db(args, cfg))
    if args.command == "status":
        return asyncio.run(_status(args, cfg))
    raise AssertionError(args.command)


async def _db(args: argparse.Namespace, cfg: Config) -> int:
    from .storage import StorageError, connected, current_version, upgrade
    from .storage.grants import PRIVILEGES, apply_grants, grant_statements

    try:
        if args.db_command == "grant" and args.print_only:
            tables = sorted({table for grants in PRIVILEGES.values() for table in grants})
            print(";\n".join(grant_statements(tables, args.role_prefix)) + ";")
            return 0
        async with connected(cfg) as db:
            if args.db_command == "upgrade":
                applied = await upgrade(db, args.to)
                version = await current_version(db)
                if applied:
                    print(f"applied migrations {', '.join(map(str, applied))}; "
                          f"schema is at version {version}")
                else:
                    print(f"nothing to do; schema is at version {version}")
            elif args.db_command == "grant":
                done = await apply_grants(db, args.role_prefix)
                print(f"granted: {len(done)} statements for the roles {args.role_prefix}_*")
            else:
                print(await current_version(db))
    except (StorageError, ValueError) as exc:
        print(f"etckit db: {exc}", file=sys.stderr)
        return 1
    return 0


COLUMNS = ("host", "program", "pool", "clients/workers", "queue", "heartbeat")


def status_table(rows: list[dict[str, Any]], now: float) -> list[tuple[str, ...]]:
    """The lines of `etckit status`: a wssvc's clients, a broker's workers and queue, each
    service's heartbeat age."""
    table = []
    for r in rows:
        if r["kind"] == "wssvc":
            load = f"{r['load']} clients"
        elif r["kind"] == "broker":
            load = f"{r['load']} workers ({r['extra'].get('busy', 0)} busy)"
        else:
            load = "-"
        queue = str(r["extra"].get("queue", 0)) if r["kind"] == "broker" else "-"
        table.append((r["host"], r["kind"], r["pool"] or "-", load, queue,
                      f"{now - r['heartbeat_at']:.1f} s ago"))
    return table


def _render(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in [COLUMNS, *table])


async def _status(args: argparse.Namespace, cfg: Config) -> int:
    from .registry import everything, problems
    from .storage import StorageError, connected

    try:
        async with connected(cfg) as db:
            rows = await everything(db)
    except StorageError as exc:
        print(f"etckit status: cannot read the service registry: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    found = problems(rows, now, cfg.heartbeat.registry_liveness)
    if args.json:
        services = [{**r, "heartbeat_age": round(now - r["heartbeat_at"], 3)} for r in rows]
        print(json.dumps({"healthy": not found, "problems": found, "services": services},
                         indent=2))
    else:
        print(_render(status_table(rows, now)))
    for line in found:
        print(f"etckit status: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
