"""The shadow index and labelhub's own records, as SQLAlchemy tables.

The same models run on SQLite and PostgreSQL. `task_counts` is kept by
database triggers (see the first migration) so statistics never scan tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "annotator")
TASK_STATUSES = ("new", "imported", "labeled", "deleted")
TASK_ORIGINS = ("labelhub", "studio")
JOB_KINDS = ("import", "export", "reconcile")
JOB_STATUSES = ("queued", "running", "success", "failed")
ACTIVE_JOB = "status IN ('queued', 'running')"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware")
        return value.astimezone(UTC)

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: Json}


def _in(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    ls_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    ls_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    ls_project_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    """One dataset item and the Label Studio task it became."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(_in("status", TASK_STATUSES), name="status"),
        CheckConstraint(_in("origin", TASK_ORIGINS), name="origin"),
        Index("ix_tasks_dataset_id_id", "dataset_id", "id"),
        # Without imported tasks, so assigning one writes no entry here;
        # migration 0002 says why SQLite keeps the whole index.
        Index(
            "ix_tasks_dataset_id_status_id",
            "dataset_id",
            "status",
            "id",
            postgresql_where=text("status <> 'imported'"),
        ),
        # Every reader names an assignee; unassigned tasks take no room here.
        Index(
            "ix_tasks_assigned_to_id",
            "assigned_to",
            "id",
            sqlite_where=text("assigned_to IS NOT NULL"),
            postgresql_where=text("assigned_to IS NOT NULL"),
        ),
        Index(
            "uq_tasks_ls_project_id_ls_task_id",
            "ls_project_id",
            "ls_task_id",
            unique=True,
            sqlite_where=text("status <> 'deleted' AND ls_task_id IS NOT NULL"),
            postgresql_where=text("status <> 'deleted' AND ls_task_id IS NOT NULL"),
        ),
        Index(
            "ix_tasks_unassigned",
            "dataset_id",
            "id",
            sqlite_where=text("status = 'imported' AND assigned_to IS NULL"),
            postgresql_where=text("status = 'imported' AND assigned_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE")
    )
    data: Mapped[dict[str, Any]]
    origin: Mapped[str] = mapped_column(String(16), default="labelhub")
    status: Mapped[str] = mapped_column(String(16), default="new")
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    ls_task_id: Mapped[int | None] = mapped_column(BigInteger)
    ls_updated_at: Mapped[datetime | None]
    # Set while a batch holding this item is in flight to Label Studio, so an
    # interrupted import looks for it there before sending it again.
    import_sent_at: Mapped[datetime | None]
    assigned_to: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    assigned_at: Mapped[datetime | None]
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskCount(Base):
    """Tasks per (dataset, status, assignee, label); written only by triggers."""

    __tablename__ = "task_counts"
    __table_args__ = (Index("ix_task_counts_assignee_id", "assignee_id"),)

    dataset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    assignee_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: none
    label: Mapped[str] = mapped_column(String(200), primary_key=True)  # '': none
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class Annotation(Base):
    """A Label Studio annotation; `deleted` keeps a tombstone against replays."""

    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_task_id", "task_id"),
        Index(
            "ix_annotations_pending",
            "ls_project_id",
            "ls_task_id",
            sqlite_where=text("task_id IS NULL"),
            postgresql_where=text("task_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ls_annotation_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    ls_task_id: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tasks.id", ondelete="CASCADE")
    )
    completed_by: Mapped[int | None] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[list[Any] | None] = mapped_column(Json)
    was_cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    ls_created_at: Mapped[datetime | None]
    ls_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Job(Base):
    """A durable background job; the row is the truth, the runner only a worker."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", JOB_KINDS), name="kind"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_dataset_id_id", "dataset_id", "id"),
        Index(
            "uq_jobs_active_per_dataset",
            "dataset_id",
            "kind",
            unique=True,
            sqlite_where=text(ACTIVE_JOB + " AND dataset_id IS NOT NULL"),
            postgresql_where=text(ACTIVE_JOB + " AND dataset_id IS NOT NULL"),
        ),
        Index(
            "uq_jobs_active_reconcile",
            "ls_project_id",
            unique=True,
            sqlite_where=text(ACTIVE_JOB + " AND kind = 'reconcile'"),
            postgresql_where=text(ACTIVE_JOB + " AND kind = 'reconcile'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE")
    )
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    message: Mapped[str] = mapped_column(Text, default="")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(Json)
    result: Mapped[dict[str, Any] | None] = mapped_column(Json)
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """What a webhook delivery carried and did; never the whole payload."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64))
    ls_project_id: Mapped[int | None] = mapped_column(Integer)
    ls_ids: Mapped[dict[str, Any] | None] = mapped_column(Json)
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500), default="")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)


class SyncState(Base):
    """Where reconciliation of one Label Studio project stands."""

    __tablename__ = "sync_state"

    ls_project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watermark_at: Mapped[datetime | None]
    last_full_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    early_requested_at: Mapped[datetime | None]
    last_job_id: Mapped[int | None] = mapped_column(Integer)


class LoginFailure(Base):
    """Failed logins per username or client address in the current window."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
