"""Admins manage accounts; the last admin stays one."""

from __future__ import annotations

import pytest

from tests.conftest import login


async def test_admin_lists_accounts(client, admin):
    response = await client.get("/users", headers=admin)

    assert response.status == 200
    names = [(user["username"], user["role"]) for user in await response.json()]
    assert names == [("admin", "admin"), ("ann", "annotator")]


async def test_admin_creates_an_account_that_can_log_in(client, admin):
    response = await client.post(
        "/users",
        json={
            "username": "Bob",
            "password": "long-enough",
            "role": "annotator",
            "ls_user_id": 12,
            "ls_email": "bob@example.com",
        },
        headers=admin,
    )

    assert response.status == 201
    created = await response.json()
    assert (created["username"], created["ls_user_id"]) == ("bob", 12)
    assert "password" not in created
    assert "password_hash" not in created
    await login(client, "bob", "long-enough")


async def test_taken_username_in_another_case_is_409(client, admin):
    response = await client.post(
        "/users",
        json={"username": "ANN", "password": "long-enough", "role": "annotator"},
        headers=admin,
    )

    assert response.status == 409
    assert "already exists" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"username": "bob", "password": "short", "role": "annotator"}, "password:"),
        ({"username": "bob", "password": "long-enough", "role": "boss"}, "role:"),
        (
            {"username": "b b", "password": "long-enough", "role": "annotator"},
            "username:",
        ),
        ({"username": "bob", "password": "x" * 73, "role": "annotator"}, "password:"),
        ({"username": "bob", "role": "annotator"}, "password: Field required"),
        ({"username": "bob", "password": 12345678, "role": "annotator"}, "password:"),
    ],
)
async def test_bad_account_bodies_are_422_naming_the_field(
    client, admin, body, mentions
):
    response = await client.post("/users", json=body, headers=admin)

    assert response.status == 422
    assert mentions in (await response.json())["error"]["message"]


async def test_admin_changes_a_password(client, admin):
    response = await client.patch(
        "/users/ann", json={"password": "a-new-password"}, headers=admin
    )

    assert response.status == 200
    await login(client, "ann", "a-new-password")


async def test_unknown_user_is_404(client, admin):
    response = await client.patch("/users/ghost", json={"active": False}, headers=admin)

    assert response.status == 404


@pytest.mark.parametrize("change", [{"active": False}, {"role": "annotator"}])
async def test_the_last_active_admin_cannot_be_removed(client, admin, change):
    response = await client.patch("/users/admin", json=change, headers=admin)

    assert response.status == 409
    assert "last active admin" in (await response.json())["error"]["message"]


async def test_an_admin_can_step_down_once_another_exists(client, admin):
    await client.patch("/users/ann", json={"role": "admin"}, headers=admin)

    response = await client.patch(
        "/users/admin", json={"role": "annotator"}, headers=admin
    )

    assert response.status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users", None),
        (
            "POST",
            "/users",
            {"username": "x1", "password": "long-enough", "role": "admin"},
        ),
        ("PATCH", "/users/ann", {"role": "admin"}),
    ],
)
async def test_annotators_cannot_manage_accounts(client, ann, method, path, body):
    response = await client.request(method, path, json=body, headers=ann)

    assert response.status == 403
