"""The `labelhub` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from labelhub import __version__, cli_sync, cli_users
from labelhub.config import Settings, is_loopback, load_settings
from labelhub.errors import ConfigError, LabelhubError, Unavailable
from labelhub.logs import configure_logging

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.labelhub_log_level, settings.labelhub_log_format)
        command: Command = args.command
        return command(args, settings)
    except ConfigError as exc:
        print(f"labelhub: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except LabelhubError as exc:
        print(f"labelhub: {exc.message}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        print(f"labelhub: {database_problem(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelhub",
        description="Task assignment, annotator views and a shadow index "
        "for a Label Studio project.",
    )
    parser.add_argument(
        "--version", action="version", version=f"labelhub {__version__}"
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--host", help="address to listen on (LABELHUB_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (LABELHUB_PORT)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create the accounts admin/admin123 and ann/ann123 if absent "
        "(LABELHUB_DEMO=1)",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply database migrations on start",
    )
    serve.set_defaults(command=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(command=_migrate)

    cli_users.register(commands)
    cli_sync.register(commands)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from labelhub.daemon import run

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["labelhub_host"] = args.host
    if args.port is not None:
        overrides["labelhub_port"] = args.port
    if args.demo:
        overrides["labelhub_demo"] = True
    if args.no_migrate:
        overrides["labelhub_migrate_on_start"] = False
    settings = load_settings(**overrides) if overrides else settings

    host = settings.labelhub_host
    if settings.jwt_secret is None and not is_loopback(host):
        raise ConfigError(
            f"JWT_SECRET: must be set to serve on {host}, a non-loopback address; "
            "generate one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'"
        )
    try:
        run(settings, host, settings.labelhub_port)
    except OSError as exc:  # the address is taken, or not this machine's
        raise Unavailable(
            f"cannot listen on {host}:{settings.labelhub_port}: "
            f"{exc.strerror or exc}; choose another --host or --port"
        ) from None
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from labelhub.store.engine import create_engine
    from labelhub.store.migrate import migrate, pending_revisions

    async def apply() -> list[str]:
        engine = create_engine(settings.database)
        try:
            pending = await pending_revisions(engine)
            await migrate(engine)
            return pending
        finally:
            await engine.dispose()

    pending = run_async(apply())
    if pending:
        print(f"applied {len(pending)} migration(s): {', '.join(reversed(pending))}")
    else:
        print("database is up to date")
    return 0


def database_problem(exc: DBAPIError) -> str:
    """One line on a database that cannot be used, without the SQL or a secret."""
    text = str(exc.orig or "").strip()
    reason = text.splitlines()[0] if text else type(exc.orig).__name__
    return f"the database cannot be used: {reason}"


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
