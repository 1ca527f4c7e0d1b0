"""The one command: ``etckit SUBCOMMAND [--config PATH]``."""

from __future__ import annotations

import argparse
import asyncio
import sys

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
    up = dbsub.add_parser("upgrade", parents=[common], help="apply pending migrations")
    up.add_argument("--to", type=int, default=None, metavar="N", help="stop at version N")
    dbsub.add_parser("version", parents=[common], help="print the schema version")
    grant = dbsub.add_parser("grant", parents=[common],
                             help="give each program's role its privileges (as the owner)")
    grant.add_argument("--role-prefix", default="etckit", metavar="NAME",
                       help="roles are NAME_main_server, NAME_wssvc, ... (default etckit)")
    grant.add_argument("--print", action="store_true", dest="print_only",
                       help="print the statements instead of running them")
    sub.add_parser("version", parents=[common], help="print the etckit version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"etckit {__version__}")
        return 0
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"etckit: configuration error: {exc}", file=sys.stderr)
        return 2
    return _dispatch(args, cfg)


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
    raise AssertionError(args.command)


async def _db(args: argparse.Namespace, cfg: Config) -> int:
    from .storage import StorageError, connect, current_version, upgrade
    from .storage.grants import PRIVILEGES, apply_grants, grant_statements

    try:
        if args.db_command == "grant" and args.print_only:
            tables = sorted({table for grants in PRIVILEGES.values() for table in grants})
            print(";\n".join(grant_statements(tables, args.role_prefix)) + ";")
            return 0
        db = await connect(cfg)
        try:
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
        finally:
            await db.close()
    except (StorageError, ValueError) as exc:
        print(f"etckit db: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
