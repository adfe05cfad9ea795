"""Small helpers for SQL that differs between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def upsert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports `on_conflict_do_update` on either database."""
    if dialect(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
