"""Queries over accounts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.errors import Conflict
from labelhub.store.models import User


def normalize(username: str) -> str:
    """Usernames are case-insensitive: stored and looked up in lower case."""
    return username.strip().lower()


async def find(session: AsyncSession, username: str) -> User | None:
    wanted = normalize(username)
    return await session.scalar(select(User).where(User.username == wanted))


async def list_all(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.username))).all()


async def add(
    session: AsyncSession,
    username: str,
    password_hash: str,
    role: str,
    *,
    ls_user_id: int | None = None,
    ls_email: str | None = None,
) -> User:
    """Add an account; 409 when the name is taken (in any letter case)."""
    user = User(
        username=normalize(username),
        password_hash=password_hash,
        role=role,
        active=True,
        ls_user_id=ls_user_id,
        ls_email=ls_email,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"user {user.username!r} already exists") from None
    return user


async def count_active_admins(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).where(User.role == "admin", User.active.is_(True))
    )
    return count or 0
