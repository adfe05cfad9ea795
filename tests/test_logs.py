"""The log pipeline: fields, levels, secrets, and configuring again."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import structlog

from labelhub.logs import configure_logging

log = structlog.get_logger("labelhub.tests.logs")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_level_logger_time_and_bound_context():
    """Context bound through contextvars is added; a field given in the call wins."""
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    structlog.contextvars.bind_contextvars(request_id="r-1", job_id=7)
    try:
        log.info("thing_happened", job_id=8, size=3)
    finally:
        structlog.contextvars.clear_contextvars()

    (line,) = _lines(stream)
    assert line["event"] == "thing_happened"
    assert (line["level"], line["logger"]) == ("info", "labelhub.tests.logs")
    assert (line["request_id"], line["job_id"], line["size"]) == ("r-1", 8, 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["timestamp"])
    logged_at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - logged_at) < timedelta(seconds=5)


def test_configuring_again_changes_the_level_of_a_logger_already_used():
    first, second = io.StringIO(), io.StringIO()
    configure_logging("debug", "json", stream=first)
    log.debug("seen_at_debug")

    configure_logging("warning", "json", stream=second)
    log.info("dropped_at_warning")
    log.warning("kept_at_warning")
    log.exception("kept_as_error")

    assert [line["event"] for line in _lines(first)] == ["seen_at_debug"]
    assert [(line["event"], line["level"]) for line in _lines(second)] == [
        ("kept_at_warning", "warning"),
        ("kept_as_error", "error"),
    ]


def test_fields_named_like_secrets_are_masked():
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)

    log.info("login_tried", password="hunter2", api_token="abc", username="ann")

    (line,) = _lines(stream)
    assert (line["password"], line["api_token"]) == ("***", "***")
    assert line["username"] == "ann"
    assert "hunter2" not in stream.getvalue()


def test_an_exception_is_rendered_into_the_line():
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)

    try:
        raise ValueError("bad value 42")
    except ValueError:
        log.exception("step_failed")

    (line,) = _lines(stream)
    assert line["level"] == "error"
    assert "ValueError: bad value 42" in line["exception"]
