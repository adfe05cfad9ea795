"""`labelhub reconcile` and `labelhub webhook register`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import async_sessionmaker

from labelhub.config import Settings, load_settings
from labelhub.errors import ConfigError
from labelhub.store import datasets, sync_state
from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.migrate import migrate
from labelhub.studio.client import StudioClient
from labelhub.sync.reconcile import reconcile
from labelhub.sync.webhook_setup import register as register_webhook

BAR_WIDTH = 30


def register(commands: Any) -> None:
    run = commands.add_parser(
        "reconcile",
        help="make the shadow index equal Label Studio now; prints the drift report",
    )
    run.add_argument("--dataset", type=int, help="only the project of this dataset")
    run.add_argument(
        "--full", action="store_true", help="a full pass (finds deleted tasks too)"
    )
    run.set_defaults(command=_reconcile)

    hook = commands.add_parser("webhook", help="labelhub's webhook in Label Studio")
    actions = hook.add_subparsers(metavar="ACTION", required=True)
    add = actions.add_parser(
        "register", help="create or update the webhook (never a second copy)"
    )
    add.add_argument(
        "--url",
        help="labelhub's address as Label Studio reaches it (LABELHUB_PUBLIC_URL)",
    )
    add.add_argument("--dataset", type=int, help="only the project of this dataset")
    add.set_defaults(command=_register)


@dataclass
class Tools:
    sessions: async_sessionmaker[Any]
    studio: StudioClient


@asynccontextmanager
async def _tools(settings: Settings) -> AsyncIterator[Tools]:
    engine = create_engine(settings.database)
    await migrate(engine)
    async with aiohttp.ClientSession() as session:
        studio = StudioClient.from_settings(session, settings)
        if studio is None:
            raise ConfigError("LS_BASE_URL and LS_API_TOKEN: both must be set")
        try:
            yield Tools(create_sessions(engine), studio)
        finally:
            await engine.dispose()


async def _projects(
    tools: Tools, settings: Settings, dataset_id: int | None
) -> list[int]:
    async with tools.sessions() as session:
        if dataset_id is not None:
            dataset = await datasets.get(session, dataset_id)
            project = dataset.ls_project_id or settings.ls_project_id
            if project is None:
                raise ConfigError(
                    f"LS_PROJECT_ID: dataset {dataset_id} names no project"
                )
            return [project]
        return sorted(
            await sync_state.tracked_projects(session, settings.ls_project_id)
        )


def _in_tools(settings: Settings, work: Callable[[Tools], Awaitable[int]]) -> int:
    from labelhub.cli import run_async

    async def wrapped() -> int:
        async with _tools(settings) as tools:
            return await work(tools)

    return int(run_async(wrapped()))


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    async def work(tools: Tools) -> int:
        for project in await _projects(tools, settings, args.dataset):
            drift = await reconcile(
                tools.sessions,
                tools.studio,
                settings,
                project,
                full=args.full,
                progress=_bar(project) if sys.stderr.isatty() else None,
            )
            if sys.stderr.isatty():
                print(file=sys.stderr)
            report = (
                drift.report()
                if drift
                else {"project_id": project, "skipped": "locked"}
            )
            print(json.dumps(report, indent=2))
        return 0

    return _in_tools(settings, work)


def _bar(project: int) -> Callable[[int, int | None], Awaitable[None]]:
    async def show(seen: int, total: int | None) -> None:
        if total:
            filled = int(BAR_WIDTH * min(seen / total, 1.0))
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            line = f"project {project} [{bar}] {seen:,}/{total:,} tasks"
        else:
            line = f"project {project}: {seen:,} tasks"
        print(f"\r{line}", end="", file=sys.stderr, flush=True)

    return show


def _register(args: argparse.Namespace, settings: Settings) -> int:
    if args.url:  # checked like the setting it stands in for
        settings = load_settings(labelhub_public_url=args.url)
    url = settings.labelhub_public_url
    if not url:
        raise ConfigError("LABELHUB_PUBLIC_URL: give --url or set it")

    async def work(tools: Tools) -> int:
        projects = await _projects(tools, settings, args.dataset)
        if not projects:
            raise ConfigError(
                "LS_PROJECT_ID: no project yet; set it or create a dataset"
            )
        for project in projects:
            outcome = await register_webhook(tools.studio, settings, project, url)
            print(f"project {project}: webhook {outcome}")
        return 0

    return _in_tools(settings, work)
