"""One reconciliation of a project at a time.

On PostgreSQL a session-level advisory lock, held on a connection of its own
for the whole run, keeps every daemon sharing the database out; SQLite serves
one daemon, and an in-process lock is enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

LOCK_NAMESPACE = 0x1ABE
WAIT_STEP_S = 0.5
WAIT_LIMIT_S = 900.0
_local: dict[tuple[int, int], asyncio.Lock] = {}


@asynccontextmanager
async def project_lock(
    sessions: async_sessionmaker[Any], project_id: int, *, wait: bool
) -> AsyncIterator[bool]:
    """Hold the project's reconciliation lock; yields False when not taken."""
    engine: AsyncEngine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        lock = _local.setdefault((id(engine), project_id), asyncio.Lock())
        if lock.locked() and not wait:
            yield False
            return
        async with lock:
            yield True
        return

    async with engine.connect() as raw:
        connection = await raw.execution_options(isolation_level="AUTOCOMMIT")
        held = await _take(connection, project_id, wait)
        try:
            yield held
        finally:
            if held:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:space, :key)"),
                    {"space": LOCK_NAMESPACE, "key": project_id},
                )


async def _take(connection: Any, project_id: int, wait: bool) -> bool:
    waited_s = 0.0
    while True:
        taken = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:space, :key)"),
            {"space": LOCK_NAMESPACE, "key": project_id},
        )
        if taken or not wait or waited_s >= WAIT_LIMIT_S:
            return bool(taken)
        await asyncio.sleep(WAIT_STEP_S)
        waited_s += WAIT_STEP_S
