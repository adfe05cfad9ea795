"""Typed keys for what the daemon keeps on its aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from labelhub.config import Settings

if TYPE_CHECKING:
    from labelhub.metrics import Metrics
    from labelhub.security import LoginGuard, Passwords, Tokens
    from labelhub.studio.client import StudioClient
    from labelhub.sync.runner import JobRunner
    from labelhub.sync.webhook_batcher import WebhookBatcher

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[Any])
PASSWORDS: web.AppKey[Passwords] = web.AppKey("passwords")
LOGIN_GUARD: web.AppKey[LoginGuard] = web.AppKey("login_guard")
TOKENS: web.AppKey[Tokens] = web.AppKey("tokens")
STUDIO: web.AppKey[StudioClient | None] = web.AppKey("studio")
RUNNER: web.AppKey[JobRunner] = web.AppKey("runner")
WEBHOOKS: web.AppKey[WebhookBatcher] = web.AppKey("webhooks")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
