"""Leaner task indexes: fewer and smaller entries written by assignments.

Assigning a task changes `assigned_to`, an indexed column, so PostgreSQL
writes the new row version into every index of `tasks` whose predicate it
meets. Two indexes become partial:

- on PostgreSQL, `ix_tasks_dataset_id_status_id` leaves out imported tasks,
  so assigning one (an imported task is what auto_assign hands out) writes no
  entry there. Its readers look for new, labeled or deleted tasks; imported
  ones are found through `ix_tasks_dataset_id_id` and `ix_tasks_unassigned`.
  SQLite keeps it whole: its planner does not see that `status = 'new'`
  implies `status <> 'imported'`, and would stop using the index.
- `ix_tasks_assigned_to_id` holds assigned tasks only: every query through it
  names an assignee. Unassigned tasks, most of a fresh dataset, take no room
  in it, and taking a task back writes no entry there.

Both indexes are rebuilt inside the migration's transaction, which holds
writes to `tasks` back meanwhile: a few seconds for a million tasks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ASSIGNED = "assigned_to IS NOT NULL"
NOT_IMPORTED = "status <> 'imported'"


def upgrade() -> None:
    op.drop_index("ix_tasks_assigned_to_id", table_name="tasks")
    op.create_index(
        "ix_tasks_assigned_to_id",
        "tasks",
        ["assigned_to", "id"],
        sqlite_where=text(ASSIGNED),
        postgresql_where=text(ASSIGNED),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_dataset_id_status_id", table_name="tasks")
        op.create_index(
            "ix_tasks_dataset_id_status_id",
            "tasks",
            ["dataset_id", "status", "id"],
            postgresql_where=text(NOT_IMPORTED),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_dataset_id_status_id", table_name="tasks")
        op.create_index(
            "ix_tasks_dataset_id_status_id", "tasks", ["dataset_id", "status", "id"]
        )
    op.drop_index("ix_tasks_assigned_to_id", table_name="tasks")
    op.create_index("ix_tasks_assigned_to_id", "tasks", ["assigned_to", "id"])
