"""The SQL labelhub's store functions send, and PostgreSQL's plans for it.

A store function is run once in-process on an engine that records every
statement (with its bound parameters) and is then rolled back; each recorded
statement is run again under EXPLAIN (ANALYZE, BUFFERS) in a transaction that
is rolled back too, so the plans are those of the exact SQL the daemon sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.urls import to_async_url

Statement = tuple[str, Any]


async def capture(
    database_url: str, work: Callable[[AsyncSession], Awaitable[Any]]
) -> list[Statement]:
    """The statements `work` sends, recorded and rolled back."""
    engine = create_engine(to_async_url(database_url))
    seen: list[Statement] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with create_sessions(engine)() as session:
            await work(session)
            await session.rollback()
    finally:
        await engine.dispose()
    return seen


def explain(database_url: str, statement: Statement, max_lines: int = 40) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement, rolled back afterwards."""
    sql, params = statement
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + sql, params or None
        ).fetchall()
        connection.rollback()
    lines = [_clip(row[0]) for row in rows]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], f"... ({len(lines) - max_lines + 1} more)"]
    return "\n".join(lines)


def _clip(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 5] + " ...)"


def shorten(sql: str, limit: int = 400) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
