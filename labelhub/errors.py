"""labelhub's own errors.

Every error a caller can cause or a person can act on is a `LabelhubError`.
The error middleware turns one into `{"error": {"code", "message"}}` with its
`status`; anything else reaching the middleware is a bug and answers 500.
"""

from __future__ import annotations

from typing import Any


class LabelhubError(Exception):
    """Base class of labelhub's errors; `status` is the HTTP answer it maps to."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(LabelhubError):
    status = 400
    code = "bad_request"


class Invalid(LabelhubError):
    """The request parsed, but a field breaks the contract."""

    status = 422
    code = "invalid"


class Unauthorized(LabelhubError):
    status = 401
    code = "unauthorized"


class Forbidden(LabelhubError):
    status = 403
    code = "forbidden"


class NotFound(LabelhubError):
    status = 404
    code = "not_found"


class Conflict(LabelhubError):
    status = 409
    code = "conflict"


class PayloadTooLarge(LabelhubError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(LabelhubError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(LabelhubError):
    status = 503
    code = "unavailable"


class StudioError(LabelhubError):
    """A call to Label Studio failed; the message names the call and the cause.

    `kind` says what went wrong: `http` (an error answer), `timeout`,
    `connect` (nothing was sent), `disconnected` or `invalid` (an answer
    labelhub cannot use). `retryable`: the same call may succeed later
    (connection trouble, 429, 5xx). `maybe_applied`: Label Studio may have
    carried the call out although no success answer arrived, so repeating a
    non-idempotent call is unsafe.
    """

    status = 502
    code = "label_studio_error"

    def __init__(
        self,
        call: str,
        reason: str,
        *,
        kind: str = "http",
        http_status: int | None = None,
        retryable: bool = False,
        maybe_applied: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"Label Studio call {call} failed: {reason}")
        self.call = call
        self.reason = reason
        self.kind = kind
        self.http_status = http_status
        self.retryable = retryable
        self.maybe_applied = maybe_applied
        self.retry_after_s = retry_after_s


class ConfigError(LabelhubError):
    """A setting is missing or malformed; start-up stops with this message."""

    code = "config"
