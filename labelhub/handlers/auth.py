"""Logging in and asking who one is."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from labelhub import keys
from labelhub.errors import Unauthorized
from labelhub.handlers.fields import NO_NUL
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import users

log = structlog.get_logger(__name__)
routes = Routes("auth")
WRONG_CREDENTIALS = "wrong username or password"


class LoginIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    username: str = Field(min_length=1, max_length=254, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=1024, pattern=NO_NUL)


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- a scheme, not a secret
    role: str
    expires_in: int = Field(description="seconds until the token expires")


class MeOut(BaseModel):
    username: str
    role: str
    ls_user_id: int | None
    ls_email: str | None
    created_at: datetime


@routes.post("/auth/login", access=Access.PUBLIC, errors=(401, 429))
async def login(call: Call, body: LoginIn) -> LoginOut:
    """Trade a username and password for a bearer token.

    Any wrong username or password answers 401 with one message, after the
    same bcrypt work either way. Repeated failures for a username or from an
    address answer 429 with `Retry-After` for the rest of the window.
    """
    app = call.app
    name_key = f"user:{users.normalize(body.username)}"
    throttle_keys = [name_key, f"addr:{call.request.remote or 'unknown'}"]
    await app[keys.LOGIN_GUARD].attempt(throttle_keys)

    async with app[keys.SESSIONS]() as session:
        user = await users.find(session, body.username)
    usable = user if user is not None and user.active else None
    stored_hash = usable.password_hash if usable else None
    valid = await app[keys.PASSWORDS].check(body.password, stored_hash)
    if usable is None or not valid:
        log.info("login_failed", username=users.normalize(body.username))
        raise Unauthorized(WRONG_CREDENTIALS)

    await app[keys.LOGIN_GUARD].succeeded(name_key, throttle_keys)
    tokens = app[keys.TOKENS]
    log.info("login_succeeded", username=usable.username, role=usable.role)
    return LoginOut(
        access_token=tokens.issue(usable.username, usable.role),
        role=usable.role,
        expires_in=tokens.expire_minutes * 60,
    )


@routes.get("/me", access=Access.USER)
async def me(call: Call) -> MeOut:
    """The caller's own account; any logged-in user."""
    async with call.app[keys.SESSIONS]() as session:
        user = await users.find(session, call.me.username)
    if user is None:
        raise Unauthorized("the account behind this token no longer exists")
    return MeOut(
        username=user.username,
        role=user.role,
        ls_user_id=user.ls_user_id,
        ls_email=user.ls_email,
        created_at=user.created_at,
    )
