"""The shadow index: users, datasets, tasks, annotations, jobs, webhook events.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from labelhub.store.migrations.triggers_0001 import (
    create_count_triggers,
    drop_count_triggers,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE_JOB = "status IN ('queued', 'running')"


def _where(condition: str) -> dict[str, Any]:
    return {
        "sqlite_where": sa.text(condition),
        "postgresql_where": sa.text(condition),
    }


def upgrade() -> None:
    _accounts()
    _datasets_and_tasks()
    _annotations()
    _jobs()
    _sync()
    create_count_triggers(op.get_bind())


def _accounts() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ls_user_id", sa.Integer(), nullable=True),
        sa.Column("ls_email", sa.String(254), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("role IN ('admin', 'annotator')", name="ck_users_role"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_index("ix_users_ls_user_id", "users", ["ls_user_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )


def _datasets_and_tasks() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name="fk_datasets_created_by_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_ls_project_id", "datasets", ["ls_project_id"])
    op.create_table(
        "tasks",
        sa.Column("id", BigId, nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("ls_task_id", sa.BigInteger(), nullable=True),
        sa.Column("ls_updated_at", Timestamp, nullable=True),
        sa.Column("import_sent_at", Timestamp, nullable=True),
        sa.Column("assigned_to", sa.Integer(), nullable=True),
        sa.Column("assigned_at", Timestamp, nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'imported', 'labeled', 'deleted')",
            name="ck_tasks_status",
        ),
        sa.CheckConstraint("origin IN ('labelhub', 'studio')", name="ck_tasks_origin"),
        sa.ForeignKeyConstraint(
            ["assigned_to"],
            ["users.id"],
            name="fk_tasks_assigned_to_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_tasks_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_dataset_id_id", "tasks", ["dataset_id", "id"])
    op.create_index(
        "ix_tasks_dataset_id_status_id", "tasks", ["dataset_id", "status", "id"]
    )
    op.create_index("ix_tasks_assigned_to_id", "tasks", ["assigned_to", "id"])
    op.create_index(
        "uq_tasks_ls_project_id_ls_task_id",
        "tasks",
        ["ls_project_id", "ls_task_id"],
        unique=True,
        **_where("status <> 'deleted' AND ls_task_id IS NOT NULL"),
    )
    op.create_index(
        "ix_tasks_unassigned",
        "tasks",
        ["dataset_id", "id"],
        **_where("status = 'imported' AND assigned_to IS NULL"),
    )
    op.create_table(
        "task_counts",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "dataset_id", "status", "assignee_id", "label", name="pk_task_counts"
        ),
    )
    op.create_index("ix_task_counts_assignee_id", "task_counts", ["assignee_id"])


def _annotations() -> None:
    op.create_table(
        "annotations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("ls_annotation_id", sa.BigInteger(), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("ls_task_id", sa.BigInteger(), nullable=False),
        sa.Column("task_id", BigId, nullable=True),
        sa.Column("completed_by", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("was_cancelled", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("ls_created_at", Timestamp, nullable=True),
        sa.Column("ls_updated_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name="fk_annotations_task_id_tasks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
        sa.UniqueConstraint("ls_annotation_id", name="uq_annotations_ls_annotation_id"),
    )
    op.create_index("ix_annotations_task_id", "annotations", ["task_id"])
    op.create_index(
        "ix_annotations_pending",
        "annotations",
        ["ls_project_id", "ls_task_id"],
        **_where("task_id IS NULL"),
    )


def _jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", Json, nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint(
            "kind IN ('import', 'export', 'reconcile')", name="ck_jobs_kind"
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'success', 'failed')",
            name="ck_jobs_status",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_jobs_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name="fk_jobs_requested_by_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_dataset_id_id", "jobs", ["dataset_id", "id"])
    op.create_index(
        "uq_jobs_active_per_dataset",
        "jobs",
        ["dataset_id", "kind"],
        unique=True,
        **_where(ACTIVE_JOB + " AND dataset_id IS NOT NULL"),
    )
    op.create_index(
        "uq_jobs_active_reconcile",
        "jobs",
        ["ls_project_id"],
        unique=True,
        **_where(ACTIVE_JOB + " AND kind = 'reconcile'"),
    )


def _sync() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=True),
        sa.Column("ls_ids", Json, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
    )
    op.create_index("ix_webhook_events_received_at", "webhook_events", ["received_at"])
    op.create_table(
        "sync_state",
        sa.Column("ls_project_id", sa.Integer(), nullable=False),
        sa.Column("watermark_at", Timestamp, nullable=True),
        sa.Column("last_full_at", Timestamp, nullable=True),
        sa.Column("last_success_at", Timestamp, nullable=True),
        sa.Column("early_requested_at", Timestamp, nullable=True),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("ls_project_id", name="pk_sync_state"),
    )


def downgrade() -> None:
    drop_count_triggers(op.get_bind())
    for table in (
        "sync_state",
        "webhook_events",
        "jobs",
        "annotations",
        "task_counts",
        "tasks",
        "datasets",
        "login_failures",
        "users",
    ):
        op.drop_table(table)
