"""The Label Studio client: both token kinds, timeouts, retries, paging."""

from __future__ import annotations

import gc
import json
import math

import aiohttp
import pytest

from labelhub.errors import StudioError
from labelhub.metrics import Metrics
from labelhub.studio.auth import auth_for
from labelhub.studio.client import StudioClient, updated_after
from labelhub.studio.payloads import Malformed, parse_time
from labelhub.studio.transport import Transport, encode_json


async def _no_wait(seconds):
    _no_wait.waits.append(seconds)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


def _client(session, fake, token=None, *, retries=3, timeout_s=5.0):
    token = token or fake.legacy_token
    _no_wait.waits = []
    transport = Transport(
        session,
        fake.url,
        auth_for(token, fake.url, timeout_s),
        timeout_s=timeout_s,
        retries=retries,
        metrics=Metrics(),
        sleep=_no_wait,
    )
    return StudioClient(transport)


async def test_legacy_token_is_sent_as_token(session, fake_studio):
    client = _client(session, fake_studio)

    assert (await client.whoami())["email"] == "admin@example.com"
    assert client.auth.kind == "legacy"


async def test_personal_access_token_is_exchanged_and_reused(session, fake_studio):
    client = _client(session, fake_studio, fake_studio.pat)

    for _ in range(3):
        await client.whoami()

    assert client.auth.kind == "personal_access_token"
    assert fake_studio.refresh_count == 1


async def test_access_token_is_renewed_before_it_expires(
    session, fake_studio, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr("labelhub.studio.auth._now", lambda: now[0])
    client = _client(session, fake_studio, fake_studio.pat)
    await client.whoami()

    now[0] += 230  # a 300 s token: still used
    await client.whoami()
    now[0] += 20  # 250 s: within the last minute, renewed first
    await client.whoami()

    assert fake_studio.refresh_count == 2


async def test_a_401_renews_the_access_token_once(session, fake_studio):
    client = _client(session, fake_studio, fake_studio.pat)
    await client.whoami()
    fake_studio.advance_clock(400)  # the fake now refuses the access token

    await client.whoami()

    assert fake_studio.refresh_count == 2


@pytest.mark.parametrize("fault", [{"status": 503}, {"drop": True}])
async def test_a_failed_renewal_is_retried_like_the_call_it_serves(
    session, fake_studio, fault
):
    """Label Studio restarts just when the access token is due."""
    client = _client(session, fake_studio, fake_studio.pat)
    fake_studio.fail("POST", "/api/token/refresh", **fault)

    assert (await client.whoami())["email"] == "admin@example.com"
    assert fake_studio.refresh_count == 1
    assert len(_no_wait.waits) == 1


async def test_a_refused_personal_access_token_says_what_to_do(session, fake_studio):
    fake_pat = fake_studio.pat[:-4] + "AAAA"
    client = _client(session, fake_studio, fake_pat)

    with pytest.raises(StudioError, match="personal access token in LS_API_TOKEN"):
        await client.whoami()


async def test_a_wrong_legacy_token_names_the_setting(session, fake_studio):
    client = _client(session, fake_studio, "0" * 40)

    with pytest.raises(StudioError) as caught:
        await client.whoami()

    assert caught.value.http_status == 401
    assert "check LS_API_TOKEN" in caught.value.message
    assert "GET /api/current-user/whoami" in caught.value.message


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_safe_calls_are_retried_with_backoff(session, fake_studio, status):
    fake_studio.fail("GET", "/api/current-user/whoami", status=status, times=2)
    client = _client(session, fake_studio)

    await client.whoami()

    assert len(_no_wait.waits) == 2
    assert all(0 <= wait <= 10 for wait in _no_wait.waits)


async def test_retry_after_is_honoured(session, fake_studio):
    fake_studio.fail("GET", "/api/current-user/whoami", status=429, retry_after_s=7)
    client = _client(session, fake_studio)

    await client.whoami()

    assert _no_wait.waits == [7.0]


async def test_retries_stop_and_say_why(session, fake_studio):
    fake_studio.fail("GET", "/api/current-user/whoami", status=503, times=None)
    client = _client(session, fake_studio, retries=2)

    with pytest.raises(StudioError, match="HTTP 503"):
        await client.whoami()

    assert len(_no_wait.waits) == 2


async def test_a_client_error_is_not_retried(session, fake_studio):
    client = _client(session, fake_studio)

    with pytest.raises(StudioError) as caught:
        await client.get_project(999)

    assert caught.value.http_status == 404
    assert _no_wait.waits == []


async def test_an_import_that_may_have_been_applied_is_not_repeated(
    session, fake_studio
):
    project = fake_studio.project()
    fake_studio.fail(
        "POST", f"/api/projects/{project}/import", status=500, after_commit=True
    )
    client = _client(session, fake_studio)

    with pytest.raises(StudioError) as caught:
        await client.import_tasks(project, [{"data": {"text": "a"}}])

    assert caught.value.maybe_applied
    assert len(fake_studio.tasks) == 1


async def test_an_import_that_never_connected_is_retried(session):
    client = StudioClient(
        Transport(
            session,
            "http://127.0.0.1:9",
            auth_for("0" * 40, "http://127.0.0.1:9", 1.0),
            timeout_s=1.0,
            retries=2,
            sleep=_no_wait,
        )
    )
    _no_wait.waits = []

    with pytest.raises(StudioError) as caught:
        await client.import_tasks(1, [{"data": {"text": "a"}}])

    assert caught.value.kind == "connect"
    assert "cannot connect to http://127.0.0.1:9" in caught.value.message
    assert len(_no_wait.waits) == 2


async def test_a_slow_answer_times_out_with_a_clear_message(session, fake_studio):
    fake_studio.fail("GET", "/api/current-user/whoami", delay_s=2, times=None)
    client = _client(session, fake_studio, retries=0, timeout_s=0.3)

    with pytest.raises(StudioError, match=r"no answer within 0\.3 s"):
        await client.whoami()


async def test_a_dropped_connection_is_retried_for_a_safe_call(session, fake_studio):
    fake_studio.fail("GET", "/api/current-user/whoami", drop=True, times=3)
    client = _client(session, fake_studio, retries=3)

    assert (await client.whoami())["id"] == 1


async def test_pages_cover_every_task_once_in_id_order(session, fake_studio):
    project = fake_studio.project()
    fake_studio.add_tasks(project, [{"text": str(i)} for i in range(2500)])
    client = _client(session, fake_studio)

    seen = []
    async for page in client.iter_task_pages(project, page_size=1000):
        assert len(page.tasks) <= 1000
        seen += [task["id"] for task in page.tasks]

    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 2500


async def test_each_task_is_parsed_as_its_page_is_read(session, fake_studio):
    project = fake_studio.project()
    ids = fake_studio.add_tasks(project, [{"text": str(i)} for i in range(5)])
    client = _client(session, fake_studio)

    pages = [
        page
        async for page in client.iter_task_pages(
            project, parse=lambda task: task["id"], page_size=2
        )
    ]

    assert [page.tasks for page in pages] == [ids[:2], ids[2:4], ids[4:]]
    assert [page.last_id for page in pages] == [ids[1], ids[3], ids[4]]


async def test_a_refused_task_leaves_garbage_collection_on(session, fake_studio):
    project = fake_studio.project()
    fake_studio.add_tasks(project, [{"text": "odd"}])
    client = _client(session, fake_studio)

    def refuse(task):
        raise Malformed("task.id: expected an integer, got str")

    with pytest.raises(Malformed):
        async for _ in client.iter_task_pages(project, parse=refuse):
            pass

    assert gc.isenabled()


async def test_task_data_arrives_as_the_standard_library_reads_it(session, fake_studio):
    project = fake_studio.project()
    huge = [2**70 + 1, -(2**63) - 1]
    fake_studio.add_tasks(project, [{"huge": huge}, {"ratio": float("nan")}])
    client = _client(session, fake_studio)

    pages = [page async for page in client.iter_task_pages(project, page_size=1)]

    first, second = (page.tasks[0]["data"] for page in pages)
    assert first["huge"] == huge
    assert math.isnan(second["ratio"])


async def test_an_empty_project_has_no_pages(session, fake_studio):
    project = fake_studio.project()
    client = _client(session, fake_studio)

    pages = [page async for page in client.iter_task_pages(project)]

    assert pages == []


async def test_paging_filters_on_updated_at(session, fake_studio):
    project = fake_studio.project()
    ids = fake_studio.add_tasks(project, [{"text": str(i)} for i in range(5)])
    moment = parse_time(fake_studio.timestamp(), "now")
    fake_studio.annotate(ids[3], "OK")
    client = _client(session, fake_studio)

    pages = [
        page
        async for page in client.iter_task_pages(
            project, filters=[updated_after(moment)]
        )
    ]

    assert [task["id"] for page in pages for task in page.tasks] == [ids[3]]
    first = pages[0].tasks[0]
    assert first["annotations"][0]["result"][0]["value"]["choices"] == ["OK"]


async def test_labelhub_tasks_are_found_by_their_id(session, fake_studio):
    project = fake_studio.project()
    fake_studio.add_tasks(
        project, [{"text": str(i), "labelhub_task_id": 100 + i} for i in range(10)]
    )
    client = _client(session, fake_studio)

    found = await client.find_labelhub_tasks(project, 103, 105)

    assert [task["data"]["labelhub_task_id"] for task in found] == [103, 104, 105]


async def test_calls_are_counted_by_endpoint_and_outcome(session, fake_studio):
    client = _client(session, fake_studio)
    fake_studio.fail("GET", "/api/current-user/whoami", status=500)

    await client.whoami()

    metrics = client._transport.metrics
    assert (
        metrics.registry.get_sample_value(
            "labelhub_studio_calls_total", {"endpoint": "whoami", "outcome": "http_5xx"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "labelhub_studio_calls_total", {"endpoint": "whoami", "outcome": "http_2xx"}
        )
        == 1
    )


def test_a_body_encoded_ahead_keeps_what_orjson_refuses():
    """Integers beyond 64 bits and integer keys still encode, exactly."""
    value = [{"data": {"big": 2**70 + 1}, "meta": {1: "one"}}]

    assert json.loads(encode_json(value)) == [
        {"data": {"big": 2**70 + 1}, "meta": {"1": "one"}}
    ]
    assert json.loads(encode_json([{"text": "plain"}])) == [{"text": "plain"}]
