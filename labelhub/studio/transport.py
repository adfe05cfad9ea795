"""One call to Label Studio: auth, timeout, retries, metrics, clear errors.

Calls that are safe to repeat are retried with exponential backoff and jitter
on connection errors, timeouts, 429 (honouring `Retry-After`) and 5xx. A call
that is not safe to repeat (an import) is retried only when it certainly never
reached Label Studio (the connection could not be opened).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from labelhub.errors import StudioError
from labelhub.metrics import Metrics
from labelhub.studio.auth import StudioAuth

log = structlog.get_logger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 10.0
_MAX_REASON_CHARS = 300
# orjson turns an integer beyond 64 bits into a float; the standard library
# keeps it exact. Any such literal has a run of 19 digits or more.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


class Transport:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        auth: StudioAuth,
        *,
        timeout_s: float,
        retries: int,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout_s = timeout_s
        self.retries = retries
        self.metrics = metrics
        self._backoff = wait_random_exponential(
            multiplier=BACKOFF_BASE_S, max=BACKOFF_MAX_S
        )
        self._sleep = sleep

    async def call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        safe: bool,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        raw_answer: bool = False,
    ) -> Any:
        """The decoded JSON answer (None for an empty one), or StudioError.

        With `raw_answer` a successful answer's body comes back undecoded, for
        a caller that reads it with `decode_json` in its own way.
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _worth_retrying(exc, safe)),
            before_sleep=_log_retry,
            reraise=True,
            sleep=self._sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(
                    method, path, endpoint, params, json_body, raw_answer
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, StudioError) and error.retry_after_s is not None:
            return min(error.retry_after_s, BACKOFF_MAX_S * 3)
        return float(self._backoff(state))

    async def _once(
        self,
        method: str,
        path: str,
        endpoint: str,
        params: dict[str, str] | None,
        json_body: Any,
        raw_answer: bool,
    ) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            status, body, headers = await self._send(method, path, params, json_body)
            if status == 401 and await self.auth.renew(self.session):
                status, body, headers = await self._send(
                    method, path, params, json_body
                )
            outcome = f"http_{status // 100}xx"
            call = f"{method} {path}"
            _raise_for_status(call, status, body, headers)
            return body if raw_answer else decode_json(call, body)
        except StudioError as exc:
            outcome = exc.kind if exc.http_status is None else outcome
            raise
        finally:
            self._observe(endpoint, outcome, time.perf_counter() - started)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json_body: Any,
    ) -> tuple[int, bytes, dict[str, str]]:
        call = f"{method} {path}"
        headers = {"Authorization": await self.auth.header(self.session)}
        body: dict[str, Any] = {"json": json_body}
        if isinstance(json_body, bytes):  # encoded by the caller, see encode_json
            body = {"data": json_body}
            headers["Content-Type"] = "application/json"
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                params=params,
                headers=headers,
                **body,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                return response.status, await response.read(), dict(response.headers)
        except TimeoutError:
            raise StudioError(
                call,
                f"no answer within {self.timeout_s:g} s",
                kind="timeout",
                retryable=True,
                maybe_applied=True,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise StudioError(
                call,
                f"cannot connect to {self.base_url} ({exc.os_error.strerror or exc})",
                kind="connect",
                retryable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise StudioError(
                call,
                f"the connection broke before an answer ({type(exc).__name__})",
                kind="disconnected",
                retryable=True,
                maybe_applied=True,
            ) from exc

    def _observe(self, endpoint: str, outcome: str, duration_s: float) -> None:
        if self.metrics is not None:
            self.metrics.studio_calls.labels(endpoint, outcome).inc()
            self.metrics.studio_seconds.labels(endpoint).observe(duration_s)


def encode_json(value: Any) -> bytes:
    """`value` as a JSON request body, for a caller that encodes ahead of time.

    orjson, falling back to the standard library for what it refuses
    (integers beyond 64 bits, keys that are not strings).
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode()


def decode_json(call: str, body: bytes) -> Any:
    """A successful answer's JSON (None for an empty body), or StudioError."""
    if not body:
        return None
    try:
        return _loads(body)
    except ValueError:
        raise StudioError(
            call, "a successful answer with a body that is not JSON", kind="invalid"
        ) from None


def _raise_for_status(
    call: str, status: int, body: bytes, headers: dict[str, str]
) -> None:
    if 200 <= status < 300:
        return
    reason = f"HTTP {status}: {_detail(body)}"
    if status == 401:
        reason += " (check LS_API_TOKEN)"
    raise StudioError(
        call,
        reason,
        http_status=status,
        retryable=status == 429 or status >= 500,
        maybe_applied=status >= 500,
        retry_after_s=_retry_after(headers) if status == 429 else None,
    )


def _loads(body: bytes) -> Any:
    """JSON as the standard library reads it, at orjson's speed where they agree.

    A page of a thousand tasks with their annotations is a megabyte; orjson
    reads it in half the time. What it reads differently (huge integers) or
    refuses (NaN, a byte order mark) is left to the standard library.
    """
    if _LONG_DIGIT_RUN not in body.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _detail(body: bytes) -> str:
    try:
        decoded = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return (text or "(empty body)")[:_MAX_REASON_CHARS]
    if isinstance(decoded, dict):
        parts = [
            str(decoded[key])
            for key in ("detail", "validation_errors")
            if key in decoded
        ]
        if parts:
            return "; ".join(parts)[:_MAX_REASON_CHARS]
    return json.dumps(decoded)[:_MAX_REASON_CHARS]


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _worth_retrying(exc: BaseException, safe: bool) -> bool:
    if not isinstance(exc, StudioError) or not exc.retryable:
        return False
    return safe or not exc.maybe_applied


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "studio_call_retried",
        attempt=state.attempt_number,
        reason=str(error),
        wait_s=round(state.upcoming_sleep, 2),
    )
