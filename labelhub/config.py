"""Settings, read once from the environment and an optional `.env` file.

Variable names are the field names in upper case (`LS_PROJECT_ID`, …); they
keep the names existing deployments use. `.env.example` documents each one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError
from sqlalchemy.engine import URL

from labelhub.errors import ConfigError
from labelhub.store.urls import masked, to_async_url

MIN_SECRET_BYTES = 32
DEFAULT_WEBHOOK_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
)
# The actions a Label Studio 1.23 webhook can subscribe to.
STUDIO_WEBHOOK_ACTIONS = (
    "PROJECT_CREATED",
    "PROJECT_UPDATED",
    "PROJECT_DELETED",
    "TASKS_CREATED",
    "TASKS_DELETED",
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "LABEL_LINK_CREATED",
    "LABEL_LINK_UPDATED",
    "LABEL_LINK_DELETED",
)
_SECRET_FIELDS = {"jwt_secret", "ls_api_token", "webhook_secret", "postgres_password"}


class Settings(BaseSettings):
    """labelhub's configuration; immutable once read."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    database_url: str | None = None
    postgres_db: str | None = None
    postgres_user: str | None = None
    postgres_password: SecretStr | None = None
    postgres_host: str | None = None
    postgres_port: int = Field(5432, ge=1, le=65535)
    labelhub_data_dir: Path = Path()

    jwt_secret: SecretStr | None = None
    jwt_expire_minutes: int = Field(120, ge=1, le=43_200)
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_window_s: int = Field(60, ge=1, le=86_400)

    ls_base_url: str | None = None
    ls_api_token: SecretStr | None = None
    ls_project_id: int | None = Field(None, ge=1)
    ls_label_from_name: str | None = None
    ls_import_batch: int = Field(500, ge=1, le=10_000)
    ls_timeout_s: float = Field(30.0, gt=0, le=3600)
    ls_import_settle_s: float = Field(120.0, ge=0, le=86_400)
    ls_retries: int = Field(4, ge=0, le=20)
    # NoDecode: the variable is a comma-separated list, not JSON.
    ls_webhook_actions: Annotated[tuple[str, ...], NoDecode] = DEFAULT_WEBHOOK_ACTIONS

    webhook_secret: SecretStr | None = None
    webhook_max_body_mb: int = Field(64, ge=1, le=1024)
    webhook_retention_days: int = Field(30, ge=1, le=3650)
    items_max_body_mb: int = Field(100, ge=1, le=4096)
    items_max_count: int = Field(200_000, ge=1, le=10_000_000)

    labelhub_public_url: str | None = None
    labelhub_host: str = "127.0.0.1"
    labelhub_port: int = Field(8000, ge=1, le=65535)
    labelhub_demo: bool = False
    labelhub_log_level: Literal["debug", "info", "warning", "error"] = "info"
    labelhub_log_format: Literal["auto", "json", "console"] = "auto"
    labelhub_migrate_on_start: bool = True

    reconcile_interval_s: int = Field(300, ge=0, le=86_400)
    reconcile_full_interval_s: int = Field(21_600, ge=60, le=604_800)
    reconcile_overlap_s: int = Field(120, ge=0, le=86_400)
    job_lease_s: int = Field(60, ge=5, le=3600)
    job_poll_s: float = Field(2.0, gt=0, le=600)
    job_workers: int = Field(2, ge=0, le=16)

    @field_validator("ls_base_url", "labelhub_public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip().rstrip("/")

    @field_validator("ls_webhook_actions", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("ls_webhook_actions")
    @classmethod
    def _known_actions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(STUDIO_WEBHOOK_ACTIONS))
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} not among Label Studio's webhook actions "
                f"({', '.join(STUDIO_WEBHOOK_ACTIONS)})"
            )
        if not value:
            raise ValueError("name at least one action")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < (
            MIN_SECRET_BYTES
        ):
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes long")
        return value

    @model_validator(mode="after")
    def _database_resolves(self) -> Settings:
        self.database  # noqa: B018 -- raises ConfigError early when malformed
        return self

    @property
    def database(self) -> URL:
        """The async SQLAlchemy URL of the store, SQLite when nothing is set."""
        if self.database_url:
            return to_async_url(self.database_url)
        if self.postgres_db:
            return URL.create(
                "postgresql+psycopg",
                username=self.postgres_user,
                password=(
                    self.postgres_password.get_secret_value()
                    if self.postgres_password
                    else None
                ),
                host=self.postgres_host or "127.0.0.1",
                port=self.postgres_port,
                database=self.postgres_db,
            )
        path = (self.labelhub_data_dir / "labelhub.db").resolve()
        return URL.create("sqlite+aiosqlite", database=str(path))

    @property
    def studio_configured(self) -> bool:
        return bool(self.ls_base_url and self.ls_api_token)

    def summary(self) -> dict[str, Any]:
        """Every setting for the start-up log, secrets reduced to whether
        they are set (true or false)."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRET_FIELDS:
                shown[name] = value is not None
            elif name == "database_url":
                continue
            else:
                shown[name] = str(value) if isinstance(value, Path) else value
        shown["database"] = masked(self.database)
        return shown


def is_loopback(host: str) -> bool:
    """Whether serving on `host` stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a bad value raises ConfigError naming its variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # a value the settings library could not read
        raise ConfigError(f"configuration: {exc}") from None


def _describe(exc: ValidationError) -> str:
    """One line naming the variable and what is wrong; never a secret's value."""
    error = exc.errors(include_url=False)[0]
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a check of several variables: its input is all
        return f"configuration: {message}"
    name = str(error["loc"][0]).upper()
    if name.lower() in _SECRET_FIELDS or name == "DATABASE_URL":
        return f"{name}: {message}"
    return f"{name}: {message} (got {error['input']!r})"
