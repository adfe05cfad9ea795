"""The API contract: a valid OpenAPI document of every route, and metrics."""

from __future__ import annotations

from openapi_spec_validator import validate

from labelhub import keys
from tests.conftest import WEBHOOK_SECRET


async def test_the_document_is_valid_openapi_3_1(client):
    response = await client.get("/openapi.json")

    document = await response.json()
    assert response.status == 200
    assert document["openapi"].startswith("3.1")
    validate(document)


async def test_every_api_route_is_in_the_document(client):
    document = await (await client.get("/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }

    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method != "HEAD" and route.name not in ("dashboard", "static")
    }

    assert served == documented


async def test_security_and_errors_are_documented(client):
    paths = (await (await client.get("/openapi.json")).json())["paths"]

    login = paths["/auth/login"]["post"]
    users = paths["/users"]["post"]
    hook = paths["/webhooks/label-studio"]["post"]
    assert login["security"] == []
    assert users["security"] == [{"bearer": []}]
    assert hook["security"] == [{"webhookSecret": []}]
    assert {"201", "400", "401", "403", "409", "413", "422"} <= set(users["responses"])
    error = users["responses"]["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


async def test_the_document_shows_the_same_limits_the_handlers_enforce(client, admin):
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    count = next(
        parameter
        for parameter in paths["/datasets/{dataset_id}/auto_assign"]["post"][
            "parameters"
        ]
        if parameter["name"] == "count"
    )

    response = await client.post(
        "/datasets/1/auto_assign?count=10001&username=ann", headers=admin
    )

    assert count["schema"]["maximum"] == 10_000
    assert response.status == 422


async def test_metrics_count_requests_by_route_and_status(client, admin):
    await client.get("/datasets/1", headers=admin)
    await client.get("/datasets/2", headers=admin)

    text = await (await client.get("/metrics")).text()

    assert (
        'labelhub_http_requests_total{method="GET",route="/datasets/{dataset_id}",'
        'status="404"} 2.0' in text
    )
    assert "labelhub_http_request_duration_seconds_bucket" in text


async def test_metrics_show_tasks_by_status_per_dataset(client, admin):
    await client.post("/datasets", json={"name": "d"}, headers=admin)

    text = await (await client.get("/metrics")).text()

    assert 'labelhub_tasks{dataset="1",status="new"} 100.0' in text


async def test_metrics_count_webhook_deliveries_by_action_and_outcome(
    aiohttp_client, make_settings
):
    from labelhub.daemon import create_app

    client = await aiohttp_client(
        create_app(make_settings(webhook_secret=WEBHOOK_SECRET))
    )
    headers = {"X-Webhook-Secret": WEBHOOK_SECRET}
    await client.post(
        "/webhooks/label-studio", json={"action": "PROJECT_UPDATED"}, headers=headers
    )
    await client.post("/webhooks/label-studio", data=b"[]", headers=headers)

    registry = client.app[keys.METRICS].registry

    assert (
        registry.get_sample_value(
            "labelhub_webhook_deliveries_total",
            {"action": "PROJECT_UPDATED", "outcome": "ignored"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "labelhub_webhook_deliveries_total",
            {"action": "(none)", "outcome": "rejected"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "labelhub_webhook_handling_seconds_count", {"action": "PROJECT_UPDATED"}
        )
        == 1
    )


async def test_an_incoming_request_id_reaches_every_log_line_of_the_request(
    client, logs
):
    """Lines logged inside the handler carry it, not only the closing one."""
    response = await client.post(
        "/auth/login",
        json={"username": "ann", "password": "wrong-password"},
        headers={"X-Request-ID": "trace-42"},
    )

    failed = logs.events("login_failed")
    finished = [
        line
        for line in logs.events("request_finished")
        if line["path"] == "/auth/login"
    ]
    assert response.headers["X-Request-ID"] == "trace-42"
    assert [line["request_id"] for line in failed] == ["trace-42"]
    assert [line["request_id"] for line in finished] == ["trace-42"]


async def test_metrics_follow_a_reconciliation(synced, fake_studio):
    """Runs, drift by kind, lag, the job's duration and Label Studio's calls."""
    from tests.test_reconcile import _export

    client = await synced(count=3)
    fake_studio.annotate(sorted(fake_studio.tasks)[0], "OK")
    await _export(client)

    metrics = await (await client.get("/metrics")).text()
    registry = client.app[keys.METRICS].registry
    value = registry.get_sample_value

    assert (
        value("labelhub_reconciliations_total", {"mode": "full", "outcome": "success"})
        == 1
    )
    assert value("labelhub_drift_repaired_total", {"kind": "annotations_created"}) == 1
    assert value("labelhub_job_duration_seconds_count", {"kind": "export"}) == 1
    assert value("labelhub_jobs_total", {"kind": "export", "outcome": "success"}) == 1
    assert (
        value("labelhub_studio_call_duration_seconds_count", {"endpoint": "tasks"}) >= 1
    )
    lag = value("labelhub_reconciliation_lag_seconds", {"project": str(client.project)})
    assert lag is not None
    assert 0 <= lag < 60
    assert 'labelhub_tasks{dataset="1",status="labeled"} 1.0' in metrics
