"""The export and reconcile jobs: reconciliation run by the job runner."""

from __future__ import annotations

from sqlalchemy import func, select

from labelhub.errors import Unavailable
from labelhub.store import datasets
from labelhub.store.models import Task
from labelhub.sync.importer import studio_of
from labelhub.sync.reconcile import Progress, reconcile
from labelhub.sync.runner import JobContext


def _progress(ctx: JobContext, verb: str) -> Progress:
    async def report(seen: int, total: int | None) -> None:
        of = f" of {total}" if total is not None else ""
        await ctx.progress(seen, total, f"{verb}: {seen}{of} tasks read")

    return report


async def run_export(ctx: JobContext) -> str:
    """A full reconciliation of the dataset's project; `exported N labeled tasks`."""
    studio = studio_of(ctx)
    if ctx.dataset_id is None:
        raise Unavailable("an export job needs a dataset")
    async with ctx.sessions() as session:
        dataset = await datasets.get(session, ctx.dataset_id)
    project_id = dataset.ls_project_id or ctx.settings.ls_project_id
    if project_id is None:
        raise Unavailable(
            f"dataset {dataset.id} names no Label Studio project; import it first"
        )

    drift = await reconcile(
        ctx.sessions,
        studio,
        ctx.settings,
        project_id,
        full=True,
        job_id=ctx.job_id,
        metrics=ctx.metrics,
        progress=_progress(ctx, "reading Label Studio"),
    )
    if drift is None:
        raise Unavailable(
            f"another daemon kept project {project_id} locked for its own "
            "reconciliation past the wait limit; retry the export when it ends"
        )
    ctx.result.update(drift.report())
    async with ctx.sessions() as session:
        labeled = await session.scalar(
            select(func.count()).where(
                Task.dataset_id == dataset.id, Task.status == "labeled"
            )
        )
    return f"exported {labeled or 0} labeled tasks"


async def run_reconcile(ctx: JobContext) -> str:
    """A scheduled (or requested) reconciliation of one project."""
    studio = studio_of(ctx)
    if ctx.ls_project_id is None:
        raise Unavailable("a reconcile job needs a Label Studio project")
    drift = await reconcile(
        ctx.sessions,
        studio,
        ctx.settings,
        ctx.ls_project_id,
        full=bool(ctx.params.get("full")),
        wait_for_lock=False,
        job_id=ctx.job_id,
        metrics=ctx.metrics,
        progress=_progress(ctx, "reconciling"),
    )
    if drift is None:
        return f"skipped: another daemon is reconciling project {ctx.ls_project_id}"
    ctx.result.update(drift.report())
    return (
        f"reconciled project {drift.project_id} ({drift.mode}): "
        f"{drift.total_repaired} repairs over {drift.tasks_seen} tasks"
    )
