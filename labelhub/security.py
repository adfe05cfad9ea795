"""Passwords (bcrypt), access tokens (JWT, HS256) and login throttling."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker

from labelhub.config import Settings
from labelhub.errors import TooManyRequests, Unauthorized
from labelhub.store import logins

log = structlog.get_logger(__name__)

ALGORITHM = "HS256"
MAX_PASSWORD_BYTES = 72
LOGIN_AGAIN = "missing, invalid or expired token; log in again at POST /auth/login"


class Passwords:
    """bcrypt hashing, run in a thread so a login never stalls the event loop."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        # Checked against when the username is unknown, so that a wrong name
        # costs as much time as a wrong password and reveals nothing.
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        salt = bcrypt.gensalt(self.rounds)
        hashed = await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)
        return hashed.decode()

    async def check(self, password: str, hashed: str | None) -> bool:
        candidate = password.encode()
        # bcrypt reads at most 72 bytes; no stored password is longer, so a
        # longer one cannot match, but it costs the same work to say so.
        fits = len(candidate) <= MAX_PASSWORD_BYTES
        target = hashed.encode() if hashed and fits else self._decoy
        matches = await asyncio.to_thread(
            bcrypt.checkpw, candidate[:MAX_PASSWORD_BYTES], target
        )
        return matches and fits and hashed is not None


@dataclass(frozen=True, slots=True)
class Claims:
    username: str
    role: str
    token_id: str
    expires_at: datetime


class Tokens:
    """Issues and verifies labelhub's bearer tokens; HS256 and nothing else."""

    def __init__(self, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self.expire_minutes = expire_minutes

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        if settings.jwt_secret is None:
            log.warning(
                "jwt_secret_generated",
                detail="JWT_SECRET is unset: a random secret was made for this "
                "process, so tokens stop working when it restarts",
            )
            secret = secrets.token_urlsafe(48)
        else:
            secret = settings.jwt_secret.get_secret_value()
        return cls(secret, settings.jwt_expire_minutes)

    def issue(self, username: str, role: str) -> str:
        now = datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": username,
            "role": role,
            "iat": now,
            "exp": now + timedelta(minutes=self.expire_minutes),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            raise Unauthorized(LOGIN_AGAIN) from None
        if not isinstance(payload["sub"], str) or not isinstance(payload["jti"], str):
            raise Unauthorized(LOGIN_AGAIN)
        return Claims(
            username=payload["sub"],
            role=str(payload["role"]),
            token_id=payload["jti"],
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )


class LoginGuard:
    """Refuses logins for a username or address after repeated failures.

    Counts live in the database, so replicas behind one load balancer share
    them; a window starts at the first attempt and lasts `window_s`. Each
    attempt is counted before its password is checked, so that parallel
    attempts cannot pass the limit; a good one is taken back.
    """

    def __init__(
        self, sessions: async_sessionmaker[Any], max_failures: int, window_s: int
    ) -> None:
        self._sessions = sessions
        self.max_failures = max_failures
        self.window_s = window_s

    async def attempt(self, keys: list[str]) -> None:
        """Count a login attempt for each key; 429 if one is over the limit."""
        async with self._sessions.begin() as session:
            retry_after_s = await logins.count_attempt(
                session, keys, self.max_failures, self.window_s
            )
        if retry_after_s > 0:
            raise TooManyRequests(
                f"too many failed logins; try again in {retry_after_s} s",
                retry_after_s=retry_after_s,
            )

    async def succeeded(self, name_key: str, keys: list[str]) -> None:
        """The attempt was good: the username starts afresh, the rest take
        this attempt back."""
        async with self._sessions.begin() as session:
            await logins.forget(session, name_key)
            await logins.take_back(session, [key for key in keys if key != name_key])
