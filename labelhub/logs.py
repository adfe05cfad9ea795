"""Structured logging: JSON lines off a terminal, readable lines on one.

Request and job ids are bound through contextvars, so every line logged while
serving a request or running a job carries them. A last processor masks any
field whose name says it holds a secret, so a slip cannot leak one.

labelhub's own lines go through structlog alone (a level filter that costs
nothing for dropped lines, orjson for rendering): one line is logged per
request, so this is on every request's path. Lines from libraries (aiohttp,
SQLAlchemy, APScheduler) come through the standard library and are rendered
by the same processors into the same stream.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog

_SECRET_WORDS = ("password", "secret", "token", "authorization", "cookie")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@functools.lru_cache(maxsize=4096)
def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in event:
        if _is_secret(key):
            event[key] = "***"
    return event


def _dumps(event: Any, **_options: Any) -> str:
    try:
        rendered = orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS)
        return rendered.decode()
    except TypeError:  # an integer beyond 64 bits, say
        return json.dumps(event, default=repr)


class _Sink:
    """Where rendered lines go; replaced when logging is configured again."""

    stream: TextIO = sys.stderr


class LineLogger:
    """structlog's final logger: writes one rendered line to the sink."""

    def __init__(self, name: str) -> None:
        self.name = name  # read by add_logger_name

    def msg(self, line: str) -> None:
        _Sink.stream.write(line + "\n")
        _Sink.stream.flush()

    debug = info = warning = error = critical = exception = msg


def _line_logger(*args: Any) -> LineLogger:
    return LineLogger(str(args[0]) if args else "labelhub")


def configure_logging(
    level: str = "info", log_format: str = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library through one renderer."""
    stream = stream or sys.stderr
    _Sink.stream = stream
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: Any
    if as_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    threshold = _LEVELS.get(level, logging.ERROR)

    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_line_logger,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # Not cached, so that configuring again (tests do) takes effect.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(threshold)
    # aiohttp's access log would repeat labelhub's own request line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # labelhub logs each tick itself, as `scheduler_ticked`.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
