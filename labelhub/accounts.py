"""Account rules shared by the HTTP API and the command line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labelhub.errors import Conflict, Invalid, NotFound
from labelhub.security import MAX_PASSWORD_BYTES, Passwords
from labelhub.store import users
from labelhub.store.models import User

log = structlog.get_logger(__name__)

MIN_PASSWORD_CHARS = 8
DEMO_ACCOUNTS = (("admin", "admin123", "admin"), ("ann", "ann123", "annotator"))


# Letters, digits and . _ @ - (not first), up to 64 characters.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


def check_username(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise Invalid(
            f"username: {username[:80]!r} must be 1 to 64 letters, digits or "
            "._@- and start with a letter or digit"
        )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid(f"password: must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Invalid(f"password: must be at most {MAX_PASSWORD_BYTES} bytes")


@dataclass(frozen=True)
class Change:
    """What to change in an account; None leaves a field as it is."""

    password: str | None = None
    role: str | None = None
    active: bool | None = None
    ls_user_id: int | None = None
    ls_email: str | None = None


async def create(
    session: AsyncSession,
    passwords: Passwords,
    username: str,
    password: str,
    role: str,
    **identity: Any,
) -> User:
    check_username(username)
    check_password(password)
    password_hash = await passwords.hash(password)
    user = await users.add(session, username, password_hash, role, **identity)
    log.info("user_created", username=user.username, role=role)
    return user


async def change(
    session: AsyncSession, passwords: Passwords, username: str, wanted: Change
) -> User:
    """Apply `wanted` to an account; the last active admin stays one."""
    user = await users.find(session, username)
    if user is None:
        raise NotFound(f"no user {users.normalize(username)!r}")
    if wanted.password is not None:
        check_password(wanted.password)
        user.password_hash = await passwords.hash(wanted.password)

    loses_admin = (
        user.role == "admin"
        and user.active
        and (
            (wanted.role is not None and wanted.role != "admin")
            or wanted.active is False
        )
    )
    if loses_admin and await _is_last_admin(session, user):
        raise Conflict(
            f"{user.username!r} is the last active admin; make another admin first"
        )
    for name in ("role", "active", "ls_user_id", "ls_email"):
        value = getattr(wanted, name)
        if value is not None:
            setattr(user, name, value)
    await session.flush()
    log.info("user_changed", username=user.username, fields=_changed_fields(wanted))
    return user


async def _is_last_admin(session: AsyncSession, user: User) -> bool:
    # Lock every active admin row, so two admins demoting each other at the
    # same moment cannot both succeed (SQLite serializes writers anyway).
    admins = await session.scalars(
        select(User.id)
        .where(User.role == "admin", User.active.is_(True))
        .with_for_update()
    )
    return list(admins) == [user.id]


def _changed_fields(wanted: Change) -> list[str]:
    return [name for name, value in vars(wanted).items() if value is not None]


async def ensure_demo_accounts(
    sessions: async_sessionmaker[Any], passwords: Passwords
) -> list[str]:
    """Create the demonstration accounts that do not exist yet."""
    created: list[str] = []
    async with sessions.begin() as session:
        for username, password, role in DEMO_ACCOUNTS:
            if await users.find(session, username) is None:
                await users.add(session, username, await passwords.hash(password), role)
                created.append(username)
    log.warning(
        "demo_accounts_ready",
        created=created,
        accounts=[username for username, _, _ in DEMO_ACCOUNTS],
        detail="demo mode: the demonstration accounts log in with the passwords "
        "published in the README; never use demo mode in production",
    )
    return created
