"""Liveness, readiness, request ids and the error shape."""

from __future__ import annotations

from aiohttp import web

from labelhub.daemon import create_app


async def test_health_answers_ok(client):
    response = await client.get("/health")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_when_database_answers(client):
    response = await client.get("/ready")

    assert response.status == 200
    assert (await response.json())["checks"]["database"] == "ok"


async def test_ready_is_503_naming_the_database_when_it_is_down(
    aiohttp_client, make_settings
):
    settings = make_settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", labelhub_demo=False
    )
    client = await aiohttp_client(create_app(settings))

    response = await client.get("/ready")

    assert response.status == 503
    error = (await response.json())["error"]
    assert error["code"] == "unavailable"
    assert error["message"].startswith("not ready: database:")


async def test_request_id_is_honoured_and_echoed(client):
    response = await client.get("/health", headers={"X-Request-ID": "abc-123"})

    assert response.headers["X-Request-ID"] == "abc-123"


async def test_request_id_is_generated_when_absent_or_unsafe(client):
    response = await client.get("/health", headers={"X-Request-ID": "bad id; x"})

    assert len(response.headers["X-Request-ID"]) == 32


async def test_unknown_route_is_a_json_404(client):
    response = await client.get("/no/such/route")

    assert response.status == 404
    body = await response.json()
    assert body["error"]["message"] == "no route GET /no/such/route"


async def test_wrong_method_is_a_json_405(client):
    response = await client.delete("/health")

    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_unexpected_exception_is_logged_once_and_answers_bare_500(
    aiohttp_client, make_settings, logs
):
    async def crash(request):
        raise RuntimeError("boom")

    app = create_app(make_settings())
    app.router.add_get("/crash", crash)
    client = await aiohttp_client(app)

    response = await client.get("/crash")

    assert response.status == 500
    assert await response.json() == {
        "error": {"code": "internal", "message": "internal error"}
    }
    crashes = logs.events("request_crashed")
    assert len(crashes) == 1
    assert "RuntimeError: boom" in crashes[0]["exception"]


async def test_every_request_logs_one_finished_line(client, logs):
    await client.get("/health", headers={"X-Request-ID": "r-1"})

    lines = [
        line for line in logs.events("request_finished") if line["path"] == "/health"
    ]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "r-1"
    assert lines[0]["status"] == 200
    assert lines[0]["method"] == "GET"
    assert lines[0]["duration_ms"] >= 0


def test_app_factory_builds_without_a_running_loop(make_settings):
    app = create_app(make_settings())

    assert isinstance(app, web.Application)


async def test_the_dashboard_is_served_with_a_strict_content_policy(client):
    page = await client.get("/")
    script = await client.get("/static/app.js")

    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert script.status == 200
    assert script.headers["Cache-Control"] == "no-cache"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
