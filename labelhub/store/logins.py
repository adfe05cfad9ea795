"""Failed-login counters behind the login throttle."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import LoginFailure, utcnow
from labelhub.store.sql import upsert


async def blocked_for(
    session: AsyncSession, keys: list[str], max_failures: int, window_s: int
) -> int:
    """Seconds until a login may be tried again for any of `keys`; 0: now."""
    now = utcnow()
    rows = await session.execute(
        select(LoginFailure.failures, LoginFailure.window_started_at).where(
            LoginFailure.key.in_(keys)
        )
    )
    wait_s = 0.0
    for failures, started_at in rows:
        remaining_s = (started_at + timedelta(seconds=window_s) - now).total_seconds()
        if failures >= max_failures and remaining_s > 0:
            wait_s = max(wait_s, remaining_s)
    return math.ceil(wait_s)


async def record_failure(session: AsyncSession, keys: list[str], window_s: int) -> None:
    now = utcnow()
    expired = LoginFailure.window_started_at < now - timedelta(seconds=window_s)
    for key in sorted(keys):
        statement = upsert(session, LoginFailure).values(
            key=key, failures=1, window_started_at=now
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[LoginFailure.key],
                set_={
                    "failures": case((expired, 1), else_=LoginFailure.failures + 1),
                    "window_started_at": case(
                        (expired, now), else_=LoginFailure.window_started_at
                    ),
                },
            )
        )


async def forget(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.key == key))
