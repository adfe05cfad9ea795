"""labelhub's webhook in a Label Studio project: registered once, kept healthy.

Label Studio keeps a webhook that fails, but a restart with SSRF protection
on, a manual edit or a deletion silently stops deliveries; every
reconciliation checks the webhook, and repairs it when labelhub knows its own
public address (LABELHUB_PUBLIC_URL).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any
from urllib.parse import urlsplit

import structlog

from labelhub.config import Settings
from labelhub.errors import ConfigError, StudioError
from labelhub.studio.client import StudioClient

log = structlog.get_logger(__name__)

HOOK_PATH = "/webhooks/label-studio"
_locks: dict[int, asyncio.Lock] = {}
SECRET_HEADER = "X-Webhook-Secret"  # noqa: S105 -- a header name, not a secret


def hook_url(public_url: str, project_id: int) -> str:
    """The project rides in the URL, for deliveries sent without payload."""
    return f"{public_url.rstrip('/')}{HOOK_PATH}?project={project_id}"


def _is_ours(
    hook: dict[str, Any], public_url: str | None, secret: str | None = None
) -> bool:
    """Whether a project's webhook is labelhub's.

    Any webhook to labelhub's receiver path, unless `public_url` is given:
    then one under that address, or one that carries labelhub's secret (the
    same daemon at an address it had before, which must not stay behind as
    a second copy).
    """
    url = str(hook.get("url", ""))
    if not urlsplit(url).path.rstrip("/").endswith(HOOK_PATH):
        return False
    if not public_url or url.startswith(public_url.rstrip("/") + HOOK_PATH):
        return True
    headers = hook.get("headers")
    given = headers.get(SECRET_HEADER) if isinstance(headers, dict) else None
    return (
        secret is not None
        and isinstance(given, str)
        and hmac.compare_digest(given.encode(), secret.encode())
    )


def _wanted(settings: Settings, url: str) -> dict[str, Any]:
    if settings.webhook_secret is None:
        raise ConfigError(
            "WEBHOOK_SECRET: must be set before a webhook is registered, or "
            "labelhub would refuse every delivery"
        )
    return {
        "url": url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": sorted(settings.ls_webhook_actions),
        "headers": {SECRET_HEADER: settings.webhook_secret.get_secret_value()},
        "is_active": True,
    }


def _same(hook: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(
        (sorted(hook.get(key) or []) if key == "actions" else hook.get(key)) == value
        for key, value in wanted.items()
    )


async def register(
    studio: StudioClient, settings: Settings, project_id: int, public_url: str
) -> str:
    """Create or repair labelhub's webhook, never a second copy.

    Answers `created`, `updated` or `ok` (it was already as wanted).
    """
    wanted = _wanted(settings, hook_url(public_url, project_id))
    # The start-up registration and a reconciliation may meet here.
    async with _locks.setdefault(project_id, asyncio.Lock()):
        outcome = await _register(studio, project_id, public_url, wanted)
    if outcome != "ok":
        log.info("webhook_registered", project_id=project_id, outcome=outcome)
    return outcome


async def _register(
    studio: StudioClient, project_id: int, public_url: str, wanted: dict[str, Any]
) -> str:
    secret = wanted["headers"][SECRET_HEADER]
    mine = [
        hook
        for hook in await studio.list_webhooks(project_id)
        if _is_ours(hook, public_url, secret)
    ]
    if not mine:
        await studio.create_webhook(project_id, wanted)
        outcome = "created"
    else:
        first, *extra = mine
        for hook in extra:
            await studio.delete_webhook(int(hook["id"]))
        if _same(first, wanted):
            outcome = "ok" if not extra else "updated"
        else:
            await studio.update_webhook(int(first["id"]), wanted)
            outcome = "updated"
    return outcome


async def check_webhook(
    studio: StudioClient, settings: Settings, project_id: int
) -> str:
    """Whether labelhub's webhook is there and active; repaired when possible."""
    try:
        if settings.labelhub_public_url and settings.webhook_secret:
            return await register(
                studio, settings, project_id, settings.labelhub_public_url
            )
        mine = [
            hook
            for hook in await studio.list_webhooks(project_id)
            if _is_ours(hook, None)
        ]
    except StudioError as exc:
        log.warning("webhook_check_failed", project_id=project_id, reason=exc.reason)
        return f"unknown: {exc.reason}"
    if not mine:
        log.warning(
            "webhook_missing",
            project_id=project_id,
            detail="no labelhub webhook in the project: run `labelhub webhook "
            "register --url …` or set LABELHUB_PUBLIC_URL",
        )
        return "missing"
    if not any(hook.get("is_active") for hook in mine):
        log.warning("webhook_inactive", project_id=project_id)
        return "inactive"
    return "ok"
