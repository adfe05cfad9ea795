"""Alembic environment: runs on the connection labelhub hands it.

`labelhub migrate` (and `serve`) pass an open connection. Run directly through
the `alembic` command (for `revision --autogenerate`), it builds an engine
from labelhub's settings instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from labelhub.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_settings() -> None:
    from labelhub.config import load_settings
    from labelhub.store.engine import create_engine

    engine = create_engine(load_settings().database)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_from_settings())
