"""Triggers that keep `task_counts` equal to a GROUP BY over `tasks`.

Statistics over a million tasks must answer in milliseconds, so counts are
kept as tasks change rather than counted on each request. PostgreSQL uses
statement-level triggers over transition tables (one aggregate per statement,
however many rows it touched); SQLite, which has no such triggers, one
row-level trigger per change. Frozen with migration 0001: a later change to
these triggers belongs in a new migration.
"""

from __future__ import annotations

from sqlalchemy import Connection

_KEY = (
    "dataset_id, status, coalesce(assigned_to, 0) AS assignee_id, "
    "coalesce(label, '') AS label"
)
_UPSERT = """
    INSERT INTO task_counts AS c (dataset_id, status, assignee_id, label, n)
    SELECT dataset_id, status, assignee_id, label, sum(d)
    FROM ({rows}) AS changes
    GROUP BY dataset_id, status, assignee_id, label
    HAVING sum(d) <> 0
    ORDER BY dataset_id, status, assignee_id, label
    ON CONFLICT (dataset_id, status, assignee_id, label)
    DO UPDATE SET n = c.n + excluded.n;
"""
# Fixed text only; nothing from outside reaches these statements.
_NEW = f"SELECT {_KEY}, 1 AS d FROM new_rows"  # noqa: S608
_OLD = f"SELECT {_KEY}, -1 AS d FROM old_rows"  # noqa: S608

_PG_FUNCTION = f"""
CREATE FUNCTION task_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_UPSERT.format(rows=_NEW)}
    ELSIF TG_OP = 'DELETE' THEN
        {_UPSERT.format(rows=_OLD)}
    ELSE
        {_UPSERT.format(rows=_NEW + " UNION ALL " + _OLD)}
    END IF;
    RETURN NULL;
END
$$;
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply()",
    "CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply()",
    "CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION task_counts_apply()",
)

_SQLITE_ADD = """
    INSERT INTO task_counts (dataset_id, status, assignee_id, label, n)
    VALUES ({r}.dataset_id, {r}.status, coalesce({r}.assigned_to, 0),
            coalesce({r}.label, ''), 1)
    ON CONFLICT (dataset_id, status, assignee_id, label) DO UPDATE SET n = n + 1;
"""
_SQLITE_REMOVE = """
    UPDATE task_counts SET n = n - 1
    WHERE dataset_id = {r}.dataset_id AND status = {r}.status
      AND assignee_id = coalesce({r}.assigned_to, 0)
      AND label = coalesce({r}.label, '');
"""
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN"
    + _SQLITE_ADD.format(r="NEW")
    + "END",
    "CREATE TRIGGER tasks_count_update "
    "AFTER UPDATE OF dataset_id, status, assigned_to, label ON tasks "
    "WHEN OLD.dataset_id IS NOT NEW.dataset_id OR OLD.status IS NOT NEW.status "
    "OR OLD.assigned_to IS NOT NEW.assigned_to OR OLD.label IS NOT NEW.label "
    "BEGIN" + _SQLITE_REMOVE.format(r="OLD") + _SQLITE_ADD.format(r="NEW") + "END",
    "CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN"
    + _SQLITE_REMOVE.format(r="OLD")
    + "END",
)


def create_count_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        statements: tuple[str, ...] = (_PG_FUNCTION, *_PG_TRIGGERS)
    else:
        statements = _SQLITE_TRIGGERS
    for statement in statements:
        connection.exec_driver_sql(statement)


def drop_count_triggers(connection: Connection) -> None:
    for name in ("tasks_count_insert", "tasks_count_update", "tasks_count_delete"):
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON tasks")
        else:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("DROP FUNCTION IF EXISTS task_counts_apply()")
