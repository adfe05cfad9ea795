"""Structured logging: JSON lines off a terminal, readable lines on one.

Request and job ids are bound through contextvars, so every line logged while
serving a request or running a job carries them. A last processor masks any
field whose name says it holds a secret, so a slip cannot leak one.

labelhub's own lines go through structlog alone: one line is logged per
request, so this is on every request's path, and it is kept short: loggers
are built once and cached, the fields every line carries (context, level,
logger, time) are added in one step, and orjson renders. Lines from
libraries (aiohttp, SQLAlchemy, APScheduler) come through the standard
library and are rendered with the same fields into the same stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import sys
import time
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
# The names structlog's methods log under, and their levels.
_METHOD_LEVELS = {
    "debug": ("debug", logging.DEBUG),
    "info": ("info", logging.INFO),
    "msg": ("info", logging.INFO),
    "warning": ("warning", logging.WARNING),
    "warn": ("warning", logging.WARNING),
    "error": ("error", logging.ERROR),
    "exception": ("error", logging.ERROR),
    "critical": ("critical", logging.CRITICAL),
    "fatal": ("critical", logging.CRITICAL),
}


@functools.lru_cache(maxsize=4096)
def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        # True or False (whether a secret is set) tells nothing of it.
        if _is_secret(key) and not isinstance(value, bool):
            event[key] = "***"
    return event


class _Fields:
    """The fields of every labelhub line, added in one step.

    Drops a line below the configured level, then adds the context bound
    through contextvars (a field given in the call wins), the level, the
    logger's name and the time, and masks secrets. The level is checked
    here rather than by structlog's level-bound classes, so that configuring
    again changes the level of loggers already cached.
    """

    threshold = logging.INFO
    _second = -1
    _second_text = ""

    @classmethod
    def add(
        cls, logger: Any, method_name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        level_name, level = _METHOD_LEVELS.get(method_name, ("info", logging.INFO))
        if level < cls.threshold:
            raise structlog.DropEvent
        for key, value in structlog.contextvars.get_contextvars().items():
            event.setdefault(key, value)
        event["level"] = level_name
        event["logger"] = logger.name
        event["timestamp"] = cls.timestamp()
        return _mask_secrets(logger, method_name, event)

    @classmethod
    def timestamp(cls) -> str:
        """Now, as ISO 8601 in UTC with microseconds (`…T06:22:28.791503Z`).

        The date and time of day are formatted once per second.
        """
        now_s = time.time()
        second = int(now_s)
        if second != cls._second:
            cls._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            cls._second = second
        micros = min(int((now_s - second) * 1_000_000), 999_999)
        return f"{cls._second_text}.{micros:06d}Z"


def _dumps_bytes(event: Any, **_options: Any) -> bytes:
    try:
        return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits, say
        return json.dumps(event, default=repr).encode()


def _dumps(event: Any, **options: Any) -> str:
    return _dumps_bytes(event, **options).decode()


class _Sink:
    """Where rendered lines go; replaced when logging is configured again.

    Lines go to the stream's byte buffer when it has one, and are flushed
    once per turn of the event loop: under load one write carries the lines
    of many requests instead of one write each. Outside a running loop, and
    on streams without a buffer, every line is written at once.
    """

    stream: TextIO = sys.stderr
    binary: io.BufferedIOBase | None = None
    flush_due = False

    @classmethod
    def use(cls, stream: TextIO) -> None:
        cls.flush()
        cls.stream = stream
        buffer = getattr(stream, "buffer", None)
        cls.binary = buffer if isinstance(buffer, io.BufferedIOBase) else None

    @classmethod
    def write(cls, line: str | bytes) -> None:
        binary = cls.binary
        if binary is None:
            text = line.decode() if isinstance(line, bytes) else line
            cls.stream.write(text + "\n")
            cls.stream.flush()
            return
        binary.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
        if cls.flush_due:
            return
        try:
            asyncio.get_running_loop().call_soon(cls.flush)
        except RuntimeError:
            cls.flush()
            return
        cls.flush_due = True

    @classmethod
    def flush(cls) -> None:
        cls.flush_due = False
        if cls.binary is not None:
            with contextlib.suppress(ValueError):  # closed at interpreter exit
                cls.binary.flush()


class LineLogger:
    """structlog's final logger: hands one rendered line to the sink."""

    def __init__(self, name: str) -> None:
        self.name = name  # read by add_logger_name

    def msg(self, line: str | bytes) -> None:
        _Sink.write(line)

    debug = info = warning = error = critical = exception = msg


# Every level's method is kept: _Fields drops what is below the threshold.
_BoundLogger = structlog.make_filtering_bound_logger(logging.DEBUG)
_PROCESSORS: list[Any] = []


def _line_logger(*args: Any) -> LineLogger:
    return LineLogger(str(args[0]) if args else "labelhub")


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The standard library's lines, after labelhub's own pending ones."""

    def emit(self, record: logging.LogRecord) -> None:
        _Sink.flush()
        super().emit(record)


def configure_logging(
    level: str = "info", log_format: str = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and the standard library through one renderer."""
    stream = stream or sys.stderr
    _Sink.use(stream)
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    own: list[Any] = [_Fields.add]
    renderer: Any
    line_renderer: Any
    if as_json:
        shared.append(structlog.processors.format_exc_info)
        own.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_dumps)
        line_renderer = structlog.processors.JSONRenderer(serializer=_dumps_bytes)
    else:
        renderer = line_renderer = structlog.dev.ConsoleRenderer()
    threshold = _LEVELS.get(level, logging.ERROR)
    _Fields.threshold = threshold

    # The processor list is changed in place, the level lives in _Fields and
    # the stream in _Sink: loggers cached before configuring again (tests
    # do) follow the new configuration.
    _PROCESSORS[:] = [*own, line_renderer]
    structlog.configure(
        processors=_PROCESSORS,
        logger_factory=_line_logger,
        wrapper_class=_BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = _StreamHandler(stream)
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
