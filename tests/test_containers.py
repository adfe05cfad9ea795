"""The container files say what the README promises (Docker cannot run here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from labelhub.config import Settings

ROOT = Path(__file__).parent.parent


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_names_postgres_labelhub_and_label_studio():
    services = _compose()["services"]

    assert set(services) == {"db", "labelhub", "label-studio"}
    assert services["db"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])


def test_labelhub_waits_for_a_healthy_database_and_publishes_8000():
    labelhub = _compose()["services"]["labelhub"]

    assert labelhub["depends_on"]["db"]["condition"] == "service_healthy"
    assert "8000:8000" in labelhub["ports"]
    assert labelhub["environment"]["POSTGRES_HOST"] == "db"


def test_labelhub_environment_uses_only_known_variables():
    known = {name.upper() for name in Settings.model_fields}

    environment = _compose()["services"]["labelhub"]["environment"]

    assert set(environment) <= known, set(environment) - known


def test_label_studio_can_deliver_webhooks_to_labelhub():
    studio = _compose()["services"]["label-studio"]["environment"]

    assert studio["LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert studio["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert studio["LATEST_VERSION_CHECK"] == "false"


def test_dockerfile_runs_as_non_root_with_a_health_check():
    dockerfile = (ROOT / "Dockerfile").read_text()

    user = re.search(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user
    assert user.group(1) not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", dockerfile, re.MULTILINE)
    assert 'CMD ["labelhub", "serve"]' in dockerfile
