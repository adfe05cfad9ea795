"""The store: migrations match the models; counts follow every task change."""

from __future__ import annotations

import random
import re

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, insert, inspect, select, text, update

from labelhub.store.engine import create_engine
from labelhub.store.migrate import alembic_config, migrate, pending_revisions
from labelhub.store.models import Base, Dataset, Task, TaskCount, User
from labelhub.store.urls import to_async_url


async def _engine(url):
    return create_engine(to_async_url(url))


async def test_migrations_build_exactly_the_models(database_url):
    engine = await _engine(database_url)

    async with engine.connect() as connection:
        diffs = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync), Base.metadata
            )
        )
    await engine.dispose()

    assert diffs == []


def _predicate(where):
    """An index's WHERE clause without the casts and brackets a database adds."""
    if where is None:
        return ""
    written = re.sub(r"::\w+|[()]", "", str(getattr(where, "text", where)))
    return " ".join(written.lower().split())


def _partial_indexes(sync_connection):
    """Each index of `tasks` with its predicate, as the database holds it."""
    where_key = f"{sync_connection.dialect.name}_where"
    return {
        index["name"]: _predicate(index.get("dialect_options", {}).get(where_key))
        for index in inspect(sync_connection).get_indexes("tasks")
    }


def _modelled_partial_indexes(dialect_name):
    return {
        index.name: _predicate(index.dialect_options[dialect_name].get("where"))
        for index in Task.__table__.indexes
    }


async def test_migrations_build_the_models_index_predicates(database_url):
    """compare_metadata does not look at partial index predicates; this does."""
    engine = await _engine(database_url)

    async with engine.connect() as connection:
        held = await connection.run_sync(_partial_indexes)
    await engine.dispose()

    assert held == _modelled_partial_indexes(engine.dialect.name)


async def test_second_migration_downgrades_and_upgrades_again(database_url):
    engine = await _engine(database_url)

    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: command.downgrade(alembic_config(sync), "0001")
        )
        first = await connection.run_sync(_partial_indexes)
    await migrate(engine)
    async with engine.connect() as connection:
        again = await connection.run_sync(_partial_indexes)
    await engine.dispose()

    assert first["ix_tasks_assigned_to_id"] == ""
    assert first["ix_tasks_dataset_id_status_id"] == ""
    assert again == _modelled_partial_indexes(engine.dialect.name)


async def test_migrate_twice_is_a_no_op(database_url):
    engine = await _engine(database_url)

    await migrate(engine)

    assert await pending_revisions(engine) == []
    await engine.dispose()


async def test_sqlite_runs_with_wal_foreign_keys_and_busy_timeout(tmp_path):
    engine = create_engine(to_async_url(f"sqlite:///{tmp_path}/x.db"))

    async with engine.connect() as connection:
        pragmas = [
            (await connection.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        ]
    await engine.dispose()

    assert pragmas == ["wal", 1, 30000]


async def _true_counts(session):
    key = (
        Task.dataset_id,
        Task.status,
        func.coalesce(Task.assigned_to, 0),
        func.coalesce(Task.label, ""),
    )
    rows = await session.execute(select(*key, func.count()).group_by(*key))
    return {tuple(row[:4]): row[4] for row in rows}


async def _kept_counts(session):
    rows = await session.execute(
        select(
            TaskCount.dataset_id,
            TaskCount.status,
            TaskCount.assignee_id,
            TaskCount.label,
            TaskCount.n,
        ).where(TaskCount.n != 0)
    )
    return {tuple(row[:4]): row[4] for row in rows}


async def test_task_counts_follow_inserts_updates_and_deletes(database_url):
    engine = await _engine(database_url)
    rng = random.Random(7)

    async with engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {"username": f"u{i}", "password_hash": "x", "role": "annotator"}
                for i in range(3)
            ],
        )
        await connection.execute(insert(Dataset), [{"name": "a"}, {"name": "b"}])
        await connection.execute(
            insert(Task),
            [{"dataset_id": 1 + i % 2, "data": {"i": i}} for i in range(60)],
        )
    for _ in range(25):
        low = rng.randint(1, 60)
        high = rng.randint(low, 60)
        change = rng.choice(
            [
                {"status": "imported"},
                {"status": "labeled", "label": rng.choice(["OK", "NG"])},
                {"assigned_to": rng.choice([None, 1, 2, 3])},
                {"label": None, "status": "imported"},
            ]
        )
        async with engine.begin() as connection:
            await connection.execute(
                update(Task).where(Task.id.between(low, high)).values(**change)
            )
    async with engine.begin() as connection:
        await connection.execute(delete(Task).where(Task.id % 7 == 0))

    async with engine.connect() as connection:
        kept, true = await _kept_counts(connection), await _true_counts(connection)
    await engine.dispose()

    assert kept == true
    assert sum(true.values()) == 60 - 8
