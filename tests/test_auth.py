"""Login, tokens and who may call what."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from labelhub.daemon import create_app
from tests.conftest import JWT_SECRET, login


async def test_demo_accounts_log_in_with_their_roles(client):
    for username, password, role in (
        ("admin", "admin123", "admin"),
        ("ann", "ann123", "annotator"),
    ):
        response = await client.post(
            "/auth/login", json={"username": username, "password": password}
        )

        assert response.status == 200
        body = await response.json()
        assert body["token_type"] == "bearer"
        assert body["role"] == role
        assert body["access_token"]


async def test_me_answers_username_and_role(client, admin, ann):
    mine = await (await client.get("/me", headers=admin)).json()
    hers = await (await client.get("/me", headers=ann)).json()

    assert (mine["username"], mine["role"]) == ("admin", "admin")
    assert (hers["username"], hers["role"]) == ("ann", "annotator")


async def test_username_is_case_insensitive(client):
    response = await client.post(
        "/auth/login", json={"username": "ADMIN", "password": "admin123"}
    )

    assert response.status == 200


async def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    wrong = await client.post(
        "/auth/login", json={"username": "admin", "password": "nope"}
    )
    unknown = await client.post(
        "/auth/login", json={"username": "ghost", "password": "nope"}
    )

    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()


async def test_unknown_user_costs_a_bcrypt_check_too(client, monkeypatch):
    from labelhub import keys

    passwords = client.app[keys.PASSWORDS]
    checked = []
    original = passwords.check

    async def counting(password, hashed):
        checked.append(hashed)
        return await original(password, hashed)

    monkeypatch.setattr(passwords, "check", counting)

    await client.post("/auth/login", json={"username": "ghost", "password": "x"})
    await client.post("/auth/login", json={"username": "admin", "password": "x"})

    assert len(checked) == 2


def _token(**claims):
    now = datetime.now(UTC)
    payload = {
        "sub": "admin",
        "role": "admin",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "j1",
    }
    payload.update(claims)
    return payload


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_token(), JWT_SECRET, algorithm="HS512"),
        jwt.encode(
            _token(), "some-other-secret-that-is-long-enough!!", algorithm="HS256"
        ),
        jwt.encode(_token(), None, algorithm="none"),
        jwt.encode(
            _token(exp=datetime.now(UTC) - timedelta(seconds=5)),
            JWT_SECRET,
            algorithm="HS256",
        ),
        jwt.encode({"sub": "admin", "role": "admin"}, JWT_SECRET, algorithm="HS256"),
        "not-a-jwt",
        "",
    ],
    ids=[
        "hs512",
        "wrong-signature",
        "alg-none",
        "expired",
        "missing-claims",
        "garbage",
        "empty",
    ],
)
async def test_bad_tokens_are_refused(client, token):
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_a_well_formed_hs256_token_is_accepted(client):
    token = jwt.encode(_token(), JWT_SECRET, algorithm="HS256")

    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status == 200


async def test_no_token_is_401(client):
    response = await client.get("/me")

    assert response.status == 401


async def test_deactivation_stops_existing_tokens_at_once(client, admin, ann):
    await client.patch("/users/ann", json={"active": False}, headers=admin)

    response = await client.get("/me", headers=ann)

    assert response.status == 401


async def test_role_change_applies_to_the_next_request(client, admin, ann):
    assert (await client.get("/users", headers=ann)).status == 403

    await client.patch("/users/ann", json={"role": "admin"}, headers=admin)

    assert (await client.get("/users", headers=ann)).status == 200


async def test_deactivated_user_cannot_log_in(client, admin):
    await client.patch("/users/ann", json={"active": False}, headers=admin)

    response = await client.post(
        "/auth/login", json={"username": "ann", "password": "ann123"}
    )

    assert response.status == 401


async def test_repeated_failures_for_a_username_are_throttled(
    aiohttp_client, make_settings
):
    client = await aiohttp_client(create_app(make_settings(login_max_failures=3)))
    for _ in range(3):
        await client.post("/auth/login", json={"username": "admin", "password": "bad"})

    response = await client.post(
        "/auth/login", json={"username": "admin", "password": "admin123"}
    )

    assert response.status == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "too many failed logins" in (await response.json())["error"]["message"]


async def test_parallel_failures_cannot_slip_past_the_limit(
    aiohttp_client, make_settings
):
    """Forty wrong passwords at once: only the first three are even checked."""
    client = await aiohttp_client(create_app(make_settings(login_max_failures=3)))

    answers = await asyncio.gather(
        *(
            client.post("/auth/login", json={"username": "ann", "password": "bad"})
            for _ in range(40)
        )
    )

    statuses = sorted(answer.status for answer in answers)
    assert statuses == [401] * 3 + [429] * 37


async def test_good_logins_do_not_use_up_an_address_allowance(
    aiohttp_client, make_settings
):
    client = await aiohttp_client(create_app(make_settings(login_max_failures=2)))
    for _ in range(5):
        response = await client.post(
            "/auth/login", json={"username": "ann", "password": "ann123"}
        )
        assert response.status == 200

    bad = await client.post("/auth/login", json={"username": "x", "password": "bad"})

    assert bad.status == 401


async def test_failures_from_one_address_are_throttled_across_usernames(
    aiohttp_client, make_settings
):
    client = await aiohttp_client(create_app(make_settings(login_max_failures=3)))
    for name in ("a1", "a2", "a3"):
        await client.post("/auth/login", json={"username": name, "password": "bad"})

    response = await client.post(
        "/auth/login", json={"username": "ann", "password": "ann123"}
    )

    assert response.status == 429


async def test_throttle_window_ends(aiohttp_client, make_settings, database_url):
    client = await aiohttp_client(
        create_app(make_settings(login_max_failures=1, login_window_s=1))
    )
    await client.post("/auth/login", json={"username": "ann", "password": "bad"})
    assert (
        await client.post("/auth/login", json={"username": "ann", "password": "ann123"})
    ).status == 429

    from labelhub import keys
    from labelhub.store.models import LoginFailure

    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            LoginFailure.__table__.update().values(
                window_started_at=datetime.now(UTC) - timedelta(seconds=5)
            )
        )

    response = await client.post(
        "/auth/login", json={"username": "ann", "password": "ann123"}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ("not json", 400, "not valid JSON"),
        ("[1, 2]", 422, "Input should be a valid dictionary"),
        ('{"username": "admin"}', 422, "password: Field required"),
        (
            '{"username": 5, "password": "x"}',
            422,
            "username: Input should be a valid string",
        ),
        (
            '{"username": "admin", "password": "x", "extra": 1}',
            422,
            "extra: Extra inputs",
        ),
        (
            '{"username": "' + "a" * 300 + '", "password": "x"}',
            422,
            "username: String should",
        ),
        ("", 400, "needs a JSON body"),
    ],
)
async def test_bad_login_bodies_name_the_problem(client, body, status, mentions):
    response = await client.post(
        "/auth/login", data=body, headers={"Content-Type": "application/json"}
    )

    assert response.status == status
    assert mentions in (await response.json())["error"]["message"]


async def test_oversized_body_is_413(client):
    response = await client.post(
        "/auth/login", data=io.BytesIO(b'{"username": "' + b"a" * 2_000_000 + b'"}')
    )

    assert response.status == 413


async def test_no_password_or_token_reaches_the_log(client, logs):
    headers = await login(client, "admin", "admin123")
    await client.post(
        "/auth/login", json={"username": "ann", "password": "wrong-pw-123"}
    )
    await client.post(
        "/users",
        json={"username": "bob", "password": "bobs-secret-pw", "role": "annotator"},
        headers=headers,
    )

    text = logs.text()
    for secret in (
        "admin123",
        "wrong-pw-123",
        "bobs-secret-pw",
        headers["Authorization"][7:],
    ):
        assert secret not in text


def _admin_routes():
    from labelhub.daemon import ROUTE_GROUPS
    from labelhub.handlers.routing import Access

    return [
        (endpoint.method, re.sub(r"\{[^}]+\}", "1", endpoint.path))
        for group in ROUTE_GROUPS
        for endpoint in group.endpoints
        if endpoint.access is Access.ADMIN
    ]


@pytest.mark.parametrize(("method", "path"), _admin_routes())
async def test_every_admin_route_refuses_an_annotator(client, admin, ann, method, path):
    """Read from the route declarations: a new admin route is tried too."""
    await client.post("/datasets", json={"name": "d"}, headers=admin)

    response = await client.request(method, path, json={"name": "x"}, headers=ann)

    assert response.status == 403
    assert "admins only" in (await response.json())["error"]["message"]
