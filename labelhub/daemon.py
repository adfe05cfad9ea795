"""The aiohttp application: its resources, middlewares and routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from labelhub import __version__, keys
from labelhub.accounts import ensure_demo_accounts
from labelhub.config import Settings
from labelhub.handlers import (
    annotator,
    auth,
    datasets,
    health,
    jobs,
    ops,
    tasks,
    users,
    webhooks,
)
from labelhub.handlers.middleware import serve_request
from labelhub.handlers.openapi import build_document
from labelhub.handlers.routing import Routes, add_routes
from labelhub.handlers.web import add_web
from labelhub.metrics import Metrics
from labelhub.security import LoginGuard, Passwords, Tokens
from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.migrate import migrate
from labelhub.studio.client import StudioClient
from labelhub.sync.importer import run_import
from labelhub.sync.reconcile_jobs import run_export, run_reconcile
from labelhub.sync.runner import JobHandler, JobRunner
from labelhub.sync.scheduler import Scheduler
from labelhub.sync.webhook_batcher import WebhookBatcher

log = structlog.get_logger(__name__)

MAX_LINE_BYTES = 64 * 1024
GC_YOUNG_THRESHOLD = 20_000
JOB_HANDLERS: dict[str, JobHandler] = {
    "import": run_import,
    "export": run_export,
    "reconcile": run_reconcile,
}

ROUTE_GROUPS: list[Routes] = [
    health.routes,
    ops.routes,
    auth.routes,
    users.routes,
    datasets.routes,
    jobs.routes,
    tasks.routes,
    annotator.routes,
    webhooks.routes,
]


def create_app(settings: Settings) -> web.Application:
    """Build the daemon; resources open on start-up and close on shutdown."""
    app = web.Application(
        middlewares=[serve_request],
        client_max_size=max(settings.webhook_max_body_mb, settings.items_max_body_mb)
        * 1024
        * 1024,
        # Long query strings reach the handlers, which name the bad parameter
        # in a JSON error, instead of a plain-text 400 from the HTTP parser.
        handler_args={
            "max_line_size": MAX_LINE_BYTES,
            "max_field_size": MAX_LINE_BYTES,
        },
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.TOKENS] = Tokens.from_settings(settings)
    app[keys.PASSWORDS] = Passwords(settings.bcrypt_rounds)
    app.cleanup_ctx.append(_store)
    app.cleanup_ctx.append(_studio)
    app.cleanup_ctx.append(_jobs)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_scheduler)
    add_routes(app, ROUTE_GROUPS)
    app[keys.OPENAPI] = build_document(ROUTE_GROUPS, __version__)
    add_web(app)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = create_engine(settings.database)
    if settings.labelhub_migrate_on_start:
        await migrate(engine)
        log.info("store_migrated", database=engine.dialect.name)
    app[keys.ENGINE] = engine
    app[keys.SESSIONS] = create_sessions(engine)
    app[keys.LOGIN_GUARD] = LoginGuard(
        app[keys.SESSIONS], settings.login_max_failures, settings.login_window_s
    )
    if settings.labelhub_demo:
        await ensure_demo_accounts(app[keys.SESSIONS], app[keys.PASSWORDS])
    yield
    await engine.dispose()


async def _studio(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None),
        connector=aiohttp.TCPConnector(limit=20),
        trust_env=True,
    )
    app[keys.STUDIO] = StudioClient.from_settings(session, settings, app[keys.METRICS])
    studio = app[keys.STUDIO]
    if studio is None:
        log.warning(
            "label_studio_not_configured",
            detail="set LS_BASE_URL and LS_API_TOKEN to import and reconcile",
        )
    else:
        log.info("label_studio_configured", url=studio.base_url, token=studio.auth.kind)
    yield
    await session.close()


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    runner = JobRunner(
        app[keys.SESSIONS],
        settings,
        app[keys.STUDIO],
        app[keys.METRICS],
        JOB_HANDLERS,
        workers=settings.job_workers,
    )
    app[keys.RUNNER] = runner
    runner.start()
    yield
    await runner.stop()


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    if settings.webhook_secret is None:
        log.warning(
            "webhook_secret_unset",
            detail="every webhook delivery is refused until WEBHOOK_SECRET is set",
        )
    batcher = WebhookBatcher(
        app[keys.ENGINE], app[keys.SESSIONS], app[keys.METRICS], settings.ls_project_id
    )
    app[keys.WEBHOOKS] = batcher
    batcher.start()
    yield
    await batcher.stop()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    scheduler = Scheduler(
        app[keys.SESSIONS], app[keys.SETTINGS], app[keys.RUNNER], app[keys.STUDIO]
    )
    scheduler.start()
    yield
    await scheduler.stop()


async def _freeze_heap(_app: web.Application) -> None:
    """Keep the garbage collector off the request path.

    The modules, models and compiled statements loaded by now live as long
    as the process; frozen, they are no longer walked by every full
    collection (a pause of tens of milliseconds in the middle of requests).
    And the youngest generation is collected after GC_YOUNG_THRESHOLD net
    new objects rather than 700: a webhook delivery alone decodes into
    hundreds, nearly all freed by reference counting, and the default
    collected every few requests, walking the deliveries waiting for their
    commit each time.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    log.debug("heap_frozen", objects=gc.get_freeze_count())


def run(settings: Settings, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; in-flight requests finish first."""
    log.info(
        "daemon_starting",
        version=__version__,
        host=host,
        port=port,
        **settings.summary(),
    )
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)  # after the resources: they are built
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=None,
        print=None,
        shutdown_timeout=30.0,
    )
    log.info("daemon_stopped")
