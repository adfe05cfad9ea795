"""The two kinds of API token a Label Studio 1.23 hands out.

A legacy token is sent as `Authorization: Token …`. A personal access token is
a long-lived refresh JWT: it is exchanged at `/api/token/refresh/` for an access
token that lives five minutes, sent as `Authorization: Bearer …`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import aiohttp
import jwt

from labelhub.errors import StudioError

# Renew an access token this long before Label Studio would refuse it (at
# most a fifth of its lifetime: a five-minute token is renewed after four).
RENEW_MARGIN_S = 60.0


def _now() -> float:
    return time.monotonic()


class StudioAuth(Protocol):
    kind: str

    async def header(self, session: aiohttp.ClientSession) -> str: ...

    async def renew(self, session: aiohttp.ClientSession) -> bool:
        """Get fresh credentials after a 401; False when there is nothing to renew."""
        ...


def auth_for(token: str, base_url: str, timeout_s: float) -> StudioAuth:
    """Tell the token kinds apart: a personal access token is a refresh JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return LegacyToken(token)
    if claims.get("token_type") == "refresh":
        return PersonalAccessToken(token, base_url, timeout_s)
    return LegacyToken(token)


class LegacyToken:
    kind = "legacy"

    def __init__(self, token: str) -> None:
        self._token = token

    async def header(self, session: aiohttp.ClientSession) -> str:
        return f"Token {self._token}"

    async def renew(self, session: aiohttp.ClientSession) -> bool:
        return False


class PersonalAccessToken:
    kind = "personal_access_token"

    def __init__(self, refresh_token: str, base_url: str, timeout_s: float) -> None:
        self._refresh_token = refresh_token
        self._url = f"{base_url}/api/token/refresh/"
        self._timeout_s = timeout_s
        self._access: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def header(self, session: aiohttp.ClientSession) -> str:
        if self._access is None or _now() >= self._renew_at:
            await self.renew(session)
        return f"Bearer {self._access}"

    async def renew(self, session: aiohttp.ClientSession) -> bool:
        stale = self._access
        async with self._lock:
            if self._access is not stale and _now() < self._renew_at:
                return True  # another request renewed it while this one waited
            self._access, lifetime_s = await self._exchange(session)
            margin_s = min(RENEW_MARGIN_S, lifetime_s / 5)
            self._renew_at = _now() + lifetime_s - margin_s
        return True

    async def _exchange(self, session: aiohttp.ClientSession) -> tuple[str, float]:
        call = "POST /api/token/refresh/"
        try:
            async with session.post(
                self._url,
                json={"refresh": self._refresh_token},
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Renewing is safe to repeat: the call it serves is retried.
            raise StudioError(
                call,
                f"could not renew the access token: {exc!r}",
                kind="timeout" if isinstance(exc, TimeoutError) else "connect",
                retryable=True,
            ) from exc
        except ValueError as exc:
            raise StudioError(
                call, f"the renewal's answer is not JSON: {exc}", kind="invalid"
            ) from exc
        if status == 429 or status >= 500:
            raise StudioError(
                call,
                f"HTTP {status}: Label Studio could not renew the access token "
                "just now",
                http_status=status,
                retryable=True,
            )
        if status != 200 or not isinstance(body, dict) or "access" not in body:
            raise StudioError(
                call,
                f"HTTP {status}: the personal access token in LS_API_TOKEN was "
                "refused; create a new one in Label Studio's account settings",
                http_status=status,
            )
        access = str(body["access"])
        claims = jwt.decode(access, options={"verify_signature": False})
        lifetime_s = float(claims.get("exp", 0)) - float(claims.get("iat", 0))
        return access, lifetime_s if lifetime_s > 0 else 300.0
