"""Login attempt counters behind the login throttle.

An attempt is counted before its password is checked, in one atomic
statement per key: parallel attempts cannot all slip in under the limit
while the first ones are still being checked. A successful login takes its
own attempt back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import LoginFailure, utcnow
from labelhub.store.sql import upsert


async def count_attempt(
    session: AsyncSession, keys: list[str], max_failures: int, window_s: int
) -> int:
    """Count one attempt for each key; seconds to wait if it is one too many."""
    now = utcnow()
    wait_s = 0.0
    for key in sorted(keys):
        failures, started_at = await _count(session, key, now, window_s)
        remaining_s = (started_at + timedelta(seconds=window_s) - now).total_seconds()
        if failures > max_failures and remaining_s > 0:
            wait_s = max(wait_s, remaining_s)
    return math.ceil(wait_s)


async def _count(
    session: AsyncSession, key: str, now: datetime, window_s: int
) -> tuple[int, datetime]:
    expired = LoginFailure.window_started_at < now - timedelta(seconds=window_s)
    statement = upsert(session, LoginFailure).values(
        key=key, failures=1, window_started_at=now
    )
    row = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[LoginFailure.key],
            set_={
                "failures": case((expired, 1), else_=LoginFailure.failures + 1),
                "window_started_at": case(
                    (expired, now), else_=LoginFailure.window_started_at
                ),
            },
        ).returning(LoginFailure.failures, LoginFailure.window_started_at)
    )
    failures, started_at = row.one()
    return int(failures), started_at


async def take_back(session: AsyncSession, keys: list[str]) -> None:
    """Uncount one attempt of each key (a login that succeeded)."""
    await session.execute(
        update(LoginFailure)
        .where(LoginFailure.key.in_(keys), LoginFailure.failures > 0)
        .values(failures=LoginFailure.failures - 1)
    )


async def forget(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.key == key))
