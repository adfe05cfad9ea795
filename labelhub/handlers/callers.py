"""Who is calling: bearer token checked, account looked up on every request.

The account is read on each request (one primary-key lookup), so that a
deactivated account's tokens stop working at once and a role change applies
to the next request.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import structlog
from aiohttp import web

from labelhub import keys
from labelhub.errors import Forbidden, Unauthorized
from labelhub.security import LOGIN_AGAIN
from labelhub.store import users


@dataclass(frozen=True, slots=True)
class Caller:
    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def authenticate(request: web.Request, access: str) -> Caller | None:
    """The caller of a route with `access`, or 401/403 when not allowed."""
    if access == "public":
        return None
    if access == "webhook":
        check_webhook_secret(request)
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(LOGIN_AGAIN)
    claims = request.app[keys.TOKENS].verify(token.strip())

    async with request.app[keys.SESSIONS]() as session:
        user = await users.find(session, claims.username)
    if user is None or not user.active:
        raise Unauthorized("the account behind this token is unknown or deactivated")
    caller = Caller(id=user.id, username=user.username, role=user.role)
    structlog.contextvars.bind_contextvars(user=caller.username)

    if access == "admin" and not caller.is_admin:
        raise Forbidden("this route is for admins only")
    return caller


def check_webhook_secret(request: web.Request) -> None:
    """Label Studio proves itself with the static header it was registered with."""
    expected = request.app[keys.SETTINGS].webhook_secret
    if expected is None:
        raise Unauthorized(
            "webhooks are refused: WEBHOOK_SECRET is not configured on labelhub"
        )
    given = request.headers.get("X-Webhook-Secret", "")
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong X-Webhook-Secret header")
