"""Transactions that reach PostgreSQL in as few round trips as possible.

A group commit of webhook deliveries reads the index once, then writes a few
statements whose results nobody reads. Sent one by one, each statement costs
a round trip (a send, a wait, a receive), and on a busy machine the round
trips, not the SQL, are most of a commit's cost. On PostgreSQL a `Batch`
sends its BEGIN with its first reads, and its writes with its COMMIT, each
group in one round trip (psycopg's pipeline mode), over a connection held
for the purpose. On SQLite, which runs in-process, every statement simply
runs at once.

Statements given to a `Batch` take plain values: psycopg adapts them itself,
without SQLAlchemy's bind processing (aware datetimes, lists of ids, JSON
text).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection as SAConnection,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

log = structlog.get_logger(__name__)

Query = tuple[Any, dict[str, Any]]


class Batch:
    """One transaction: reads answered together, writes sent with the COMMIT.

    `session` serves statements that need their results at once; call
    `flush` before using it, so that it runs after the writes queued so far.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self, *queries: Query) -> list[Sequence[Any]]:
        """The rows of each query, after every write queued before them."""
        return [list(await self.session.execute(sql, p)) for sql, p in queries]

    async def write(self, statement: Any, params: Any) -> None:
        """Queue a statement whose result is not needed (or run it now)."""
        await self.session.execute(statement, params)

    async def flush(self) -> None:
        """Send the queued writes now."""


class PipelinedBatch(Batch):
    def __init__(self, session: AsyncSession, driver: AsyncConnection[Any]) -> None:
        super().__init__(session)
        self._driver = driver
        self._dialect = session.get_bind().dialect
        self._queued: list[tuple[str, dict[str, Any]]] = [(_BEGIN, {})]

    async def read(self, *queries: Query) -> list[Sequence[Any]]:
        driver = self._driver
        # Leaving the pipeline sends one Sync and collects every result: a
        # single round trip for the queued writes and all of these reads.
        async with driver.pipeline():
            await self._send_queued()
            cursors = [
                await driver.execute(*self._sql(query, params))
                for query, params in queries
            ]
        return [await cursor.fetchall() for cursor in cursors]

    async def write(self, statement: Any, params: Any) -> None:
        self._queued.append(self._sql(statement, params))

    async def flush(self) -> None:
        if self._queued:
            async with self._driver.pipeline():
                await self._send_queued()

    async def commit(self) -> None:
        self._queued.append((_COMMIT, {}))
        await self.flush()

    async def _send_queued(self) -> None:
        queued, self._queued = self._queued, []
        for sql, params in queued:
            await self._driver.execute(sql, params)

    def _sql(
        self, statement: Any, params: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        compiled = _compiled(statement, self._dialect)
        return compiled.string, compiled.construct_params(params)


_BEGIN = "BEGIN"
_COMMIT = "COMMIT"
_COMPILED: dict[int, Any] = {}


def _compiled(statement: Any, dialect: Dialect) -> Any:
    # Batched statements are module-level constants: compiled once each.
    compiled = _COMPILED.get(id(statement))
    if compiled is None or compiled.statement is not statement:
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params:
            raise ValueError(
                "a batched statement cannot hold an IN list rendered at "
                "execution; use an array parameter"
            )
        _COMPILED[id(statement)] = compiled
    return compiled


class ConnectionLost(Exception):
    """The batch's connection broke; the batch was not committed."""


class Batches:
    """Where a component that commits in groups gets its transactions.

    On PostgreSQL it holds one connection of its own, in autocommit mode so
    that the driver sends no BEGIN of its own: the batch sends it, with its
    first reads. A broken connection is dropped (the batch raises
    `ConnectionLost`, and may be tried again) and the next batch opens
    another.
    """

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[Any]) -> None:
        self._engine = engine
        self._sessions = sessions
        self._connection: SAConnection | None = None

    @property
    def pipelined(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Batch]:
        """A batch, committed when the block ends, rolled back if it raises."""
        if not self.pipelined:
            async with self._sessions.begin() as session:
                yield Batch(session)
            return
        connection = await self._connect()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        if driver is None:
            raise RuntimeError("the held connection has no psycopg connection")
        session = self._sessions(bind=connection)
        batch = PipelinedBatch(session, driver)
        try:
            yield batch
            await batch.commit()
        except psycopg.OperationalError as exc:
            await self._drop()
            raise ConnectionLost(f"the database connection was lost: {exc}") from exc
        except BaseException:
            await self._abandon(driver)
            raise
        finally:
            with contextlib.suppress(psycopg.Error):
                await session.close()

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def _drop(self) -> None:
        """Forget a connection the server has closed; the next batch opens one."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.invalidate()

    async def _connect(self) -> SAConnection:
        if self._connection is None or self._connection.closed:
            connection = await self._engine.connect()
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            # The same few statements run for the connection's whole life:
            # a plan chosen while a table was still small (a new daemon's
            # first annotations) must not stick, so each run is planned for
            # the tables as they are.
            await connection.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
            self._connection = connection
        return self._connection

    async def _abandon(self, driver: AsyncConnection[Any]) -> None:
        """Roll back a failed batch; drop the connection if that fails too."""
        try:
            if driver.info.transaction_status != TransactionStatus.IDLE:
                await driver.execute("ROLLBACK")
        except psycopg.Error:
            log.warning("batch_connection_dropped", exc_info=True)
            await self._drop()
