"""Settings: the names deployments use, clear errors, no secret in the log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labelhub.config import Settings, load_settings
from labelhub.errors import ConfigError


def test_nothing_configured_means_sqlite_in_the_working_directory(tmp_path):
    settings = load_settings()

    assert settings.database.drivername == "sqlite+aiosqlite"
    assert settings.database.database == str(tmp_path / "labelhub.db")
    assert (settings.labelhub_host, settings.labelhub_port) == ("127.0.0.1", 8000)


def test_data_directory_moves_the_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LABELHUB_DATA_DIR", str(tmp_path / "var"))

    assert load_settings().database.database == str(tmp_path / "var" / "labelhub.db")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@db:5432/lh", "postgresql+psycopg://u@db:5432/lh"),
        ("postgres://u:pw@db/lh", "postgresql+psycopg://u:***@db/lh"),
        ("postgresql+psycopg2://u@db/lh", "postgresql+psycopg://u@db/lh"),
        ("postgresql+psycopg://u@db/lh", "postgresql+psycopg://u@db/lh"),
        ("sqlite:////srv/lh.db", "sqlite+aiosqlite:////srv/lh.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_database_url_accepts_the_plain_forms_people_write(
    monkeypatch, given, expected
):
    monkeypatch.setenv("DATABASE_URL", given)

    url = load_settings().database

    assert url.render_as_string(hide_password=True) == expected


def test_postgres_parts_compose_a_url(monkeypatch):
    for name, value in {
        "POSTGRES_DB": "aiplatform",
        "POSTGRES_USER": "aiplatform",
        "POSTGRES_PASSWORD": "change_me",
        "POSTGRES_HOST": "db",
    }.items():
        monkeypatch.setenv(name, value)

    url = load_settings().database

    assert url.render_as_string(hide_password=False) == (
        "postgresql+psycopg://aiplatform:change_me@db:5432/aiplatform"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LS_PROJECT_ID", "abc", "LS_PROJECT_ID: Input should be a valid integer"),
        ("LS_PROJECT_ID", "0", "LS_PROJECT_ID: Input should be greater than"),
        (
            "LS_BASE_URL",
            "localhost:8080",
            "LS_BASE_URL: must be an http:// or https://",
        ),
        ("LABELHUB_PORT", "99999", "LABELHUB_PORT: Input should be less than"),
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL: unsupported database 'mysql'"),
        ("DATABASE_URL", "not a url", "DATABASE_URL: not a database URL"),
        ("DATABASE_URL", "sqlite://", "DATABASE_URL: an in-memory SQLite database"),
        ("JWT_SECRET", "short", "JWT_SECRET: must be at least 32 bytes long"),
        ("LABELHUB_DEMO", "perhaps", "LABELHUB_DEMO: Input should be a valid boolean"),
    ],
)
def test_a_wrong_value_names_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert caught.value.message.startswith(message)


def test_a_bad_secret_is_never_echoed(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "hunter2")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert "hunter2" not in caught.value.message


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("LS_PROJECT_ID=7\nLS_IMPORT_BATCH=250\n")

    settings = load_settings()

    assert (settings.ls_project_id, settings.ls_import_batch) == (7, 250)


def test_settings_are_frozen():
    settings = load_settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.labelhub_port = 1  # type: ignore[misc]


def test_summary_masks_every_secret(monkeypatch):
    monkeypatch.setenv("JWT_SECRET", "j" * 40)
    monkeypatch.setenv("LS_API_TOKEN", "tok-abcdef")
    monkeypatch.setenv("WEBHOOK_SECRET", "w" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:dbpass@db/lh")

    shown = repr(load_settings().summary())

    for secret in ("j" * 40, "tok-abcdef", "w" * 40, "dbpass"):
        assert secret not in shown
    assert "'jwt_secret': True" in shown


def _labelhub(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "labelhub.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_broken_configuration_stops_start_up_with_one_line_and_status_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LS_PROJECT_ID": "abc"}

    result = _labelhub("serve", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("labelhub: configuration error: LS_PROJECT_ID:")
    assert "Traceback" not in result.stderr


def test_serving_on_a_public_address_without_a_secret_is_refused(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}

    result = _labelhub("serve", "--host", "0.0.0.0", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert "JWT_SECRET: must be set to serve on 0.0.0.0" in result.stderr


def test_version_flag_prints_the_version():
    result = _labelhub("--version")

    assert result.returncode == 0
    assert result.stdout.startswith("labelhub ")


def test_settings_type_has_a_documented_variable_for_every_field():
    example = (Path(__file__).parent.parent / ".env.example").read_text()

    for name in Settings.model_fields:
        assert f"{name.upper()}=" in example, f"{name.upper()} missing in .env.example"


def test_the_example_env_file_loads_as_it_is(tmp_path):
    """`cp .env.example .env` is the first thing people do."""
    example = Path(__file__).parent.parent / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())

    result = _labelhub("migrate", env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout


def test_webhook_actions_are_a_comma_list_of_label_studio_actions(monkeypatch):
    monkeypatch.setenv("LS_WEBHOOK_ACTIONS", "ANNOTATION_CREATED, TASKS_DELETED")
    assert load_settings().ls_webhook_actions == ("ANNOTATION_CREATED", "TASKS_DELETED")

    monkeypatch.setenv("LS_WEBHOOK_ACTIONS", "ANNOTATION_CREATED,BOGUS")
    with pytest.raises(ConfigError, match="LS_WEBHOOK_ACTIONS: BOGUS not among"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("postgresql://u:DbPw@h:5432x/db", "the port after the host must be a number"),
        ("postgresql://u:DbPw@h:99999/db", "port 99999 is not 1 to 65535"),
        ("postgresql://u:DbPw@[bad/db", "'[bad' is not a host name or address"),
    ],
)
def test_a_malformed_database_url_is_named_without_any_secret(tmp_path, url, complaint):
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": url,
        "JWT_SECRET": "J" * 40,
        "LS_API_TOKEN": "token-that-must-not-show",
        "WEBHOOK_SECRET": "W" * 40,
    }

    result = _labelhub("serve", env=env, cwd=tmp_path)

    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith(f"labelhub: configuration error: DATABASE_URL: {complaint}")
    assert "\n" not in line
    for secret in ("DbPw", "J" * 40, "token-that-must-not-show", "W" * 40):
        assert secret not in result.stderr


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u@127.0.0.1:9/db"}

    result = _labelhub("migrate", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("labelhub: the database cannot be used:")
    assert "Traceback" not in result.stderr


def test_a_taken_port_is_one_line_not_a_traceback(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin"}

        result = _labelhub("serve", "--port", str(port), env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert f"labelhub: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
