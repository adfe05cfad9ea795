"""A contract fuzzer: schemathesis drives a running daemon from its own document.

Every route, as an annotator and as an admin, with a fixed seed and a bounded
number of examples: no answer may be a 5xx, and every answer must conform to
the document (status, content type, schema, headers).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import WEBHOOK_SECRET
from tests.daemon_process import Daemon

pytestmark = pytest.mark.fuzz
EXAMPLES_PER_ROUTE = 25
FUZZ = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fuzz")
    running = Daemon(workdir, WEBHOOK_SECRET=WEBHOOK_SECRET).start("--demo")
    admin = running.login("admin", "admin123")
    running.call("POST", "/datasets", {"name": "fuzz"}, token=admin)
    running.tokens = {"admin": admin, "annotator": running.login("ann", "ann123")}
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_schema(daemon):
    return schemathesis.openapi.from_url(f"{daemon.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def _headers(daemon, role):
    return {
        "Authorization": f"Bearer {daemon.tokens[role]}",
        "X-Webhook-Secret": WEBHOOK_SECRET,
    }


# The annotator goes first: the admin's run may deactivate her account.
@schema.parametrize()
@FUZZ
def test_every_route_keeps_its_contract_for_an_annotator(case, daemon):
    case.call_and_validate(base_url=daemon.url, headers=_headers(daemon, "annotator"))


@schema.parametrize()
@FUZZ
def test_every_route_keeps_its_contract_for_an_admin(case, daemon):
    case.call_and_validate(base_url=daemon.url, headers=_headers(daemon, "admin"))
