"""`labelhub users …`: manage accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labelhub import accounts
from labelhub.config import Settings
from labelhub.errors import Invalid
from labelhub.security import Passwords
from labelhub.store import users
from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.migrate import migrate

Work = Callable[[AsyncSession, Passwords], Awaitable[Any]]


def register(commands: Any) -> None:
    group = commands.add_parser("users", help="manage accounts")
    actions = group.add_subparsers(metavar="ACTION", required=True)

    add = actions.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=["admin", "annotator"], required=True)
    add.add_argument("--ls-user-id", type=int, help="the person's Label Studio user id")
    add.add_argument("--ls-email", help="the person's Label Studio e-mail")
    _password_source(add)
    add.set_defaults(command=_add)

    listing = actions.add_parser("list", help="list accounts")
    listing.set_defaults(command=_list)

    passwd = actions.add_parser("passwd", help="set an account's password")
    passwd.add_argument("name")
    _password_source(passwd)
    passwd.set_defaults(command=_passwd)

    deactivate = actions.add_parser("deactivate", help="stop an account logging in")
    deactivate.add_argument("name")
    deactivate.set_defaults(command=_deactivate)


def _password_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise Invalid(
            "no terminal to ask for the password on: pipe it in with --password-stdin"
        )
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise Invalid("the two passwords differ")
    return first


def _run(settings: Settings, work: Work) -> Any:
    from labelhub.cli import run_async

    async def session_work() -> Any:
        engine = create_engine(settings.database)
        try:
            await migrate(engine)
            async with create_sessions(engine).begin() as session:
                return await work(session, Passwords(settings.bcrypt_rounds))
        finally:
            await engine.dispose()

    return run_async(session_work())


def _add(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    identity = {"ls_user_id": args.ls_user_id, "ls_email": args.ls_email}
    _run(
        settings,
        lambda s, p: accounts.create(s, p, args.name, password, args.role, **identity),
    )
    print(f"created {args.role} {users.normalize(args.name)}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _run(settings, lambda session, _: users.list_all(session))
    print(f"{'USERNAME':<24} {'ROLE':<10} {'ACTIVE':<7} LABEL STUDIO")
    for user in rows:
        identity = " ".join(
            str(part) for part in (user.ls_user_id, user.ls_email) if part
        )
        active = "yes" if user.active else "no"
        print(f"{user.username:<24} {user.role:<10} {active:<7} {identity}")
    return 0


def _passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args)
    wanted = accounts.Change(password=password)
    _run(settings, lambda s, p: accounts.change(s, p, args.name, wanted))
    print(f"password of {users.normalize(args.name)} changed")
    return 0


def _deactivate(args: argparse.Namespace, settings: Settings) -> int:
    wanted = accounts.Change(active=False)
    _run(settings, lambda s, p: accounts.change(s, p, args.name, wanted))
    print(f"{users.normalize(args.name)} deactivated")
    return 0
