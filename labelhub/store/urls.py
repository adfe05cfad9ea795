"""Turn the database URLs people write into the async URLs SQLAlchemy needs."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from labelhub.errors import ConfigError

_POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
}
_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}


def to_async_url(raw: str) -> URL:
    """Parse `raw` and pick labelhub's async driver for its database.

    `postgres://…`, `postgresql://…` and explicit driver forms become
    `postgresql+psycopg://…`; `sqlite:///path` becomes `sqlite+aiosqlite:///path`.
    """
    text = raw.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text.removeprefix("postgres://")
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL: not a database URL; write e.g. "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.db"
        ) from None
    except ValueError:  # the port is not a number
        raise ConfigError(
            "DATABASE_URL: the port after the host must be a number, e.g. "
            "postgresql://user@host:5432/db"
        ) from None

    if url.drivername in _POSTGRES_SCHEMES:
        _check_server(url)
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in _SQLITE_SCHEMES:
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                "DATABASE_URL: an in-memory SQLite database cannot be shared "
                "between connections; give a file, e.g. sqlite:///labelhub.db"
            )
        return url.set(drivername="sqlite+aiosqlite")
    raise ConfigError(
        f"DATABASE_URL: unsupported database {url.drivername!r}; "
        "labelhub runs on PostgreSQL or SQLite"
    )


def _check_server(url: URL) -> None:
    if not url.database:
        raise ConfigError("DATABASE_URL: names no database (…/dbname)")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigError(f"DATABASE_URL: port {url.port} is not 1 to 65535")
    host = url.host or ""
    if any(char in host for char in "[]/ ") or (host and not host.strip(".")):
        raise ConfigError(f"DATABASE_URL: {host!r} is not a host name or address")


def masked(url: URL) -> str:
    """The URL as text with its password hidden, for logs."""
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"
