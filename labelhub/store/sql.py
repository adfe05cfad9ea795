"""Small helpers for SQL that differs between PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, Text, any_, bindparam
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession


def dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def upsert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports `on_conflict_do_update` on either database."""
    if dialect(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def among(session: AsyncSession, column: Any, values: Collection[int]) -> Any:
    """`column IN values`; on PostgreSQL one array parameter instead of many.

    Reconciliation and import name a thousand ids per statement; as an IN
    list they cost more to render (SQLAlchemy) and to parse (psycopg) than
    PostgreSQL needs to run the query, and the SQL text differs each time.
    """
    if dialect(session) == "postgresql":
        array = bindparam(None, list(values), type_=ARRAY(BigInteger))
        return column == any_(array)
    return column.in_(list(values))


def id_list(values: Collection[int], postgresql: bool) -> Any:
    """Ids for an array parameter (`= ANY(:ids)`) on PostgreSQL, else a list.

    On PostgreSQL the array travels as its text form, `{1,2,3}`: building
    that string costs a tenth of what the driver's array adaptation does.
    """
    if postgresql:
        return "{" + ",".join(map(str, values)) + "}"
    return list(values)


def in_array(column: Any, name: str, postgresql: bool) -> Any:
    """`column IN (:name)`: one array parameter on PostgreSQL (given in its
    text form, see `id_list`), so that the SQL text and its prepared
    statement are the same whatever the list's length."""
    if postgresql:
        array = sql_cast(bindparam(name, type_=Text), ARRAY(BigInteger))
        return column == any_(array)
    return column.in_(bindparam(name, expanding=True))
