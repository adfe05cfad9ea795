"""Signing in and out of the dashboard."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SESSION = "sessionStorage.getItem('labelhub.session')"


def test_wrong_password_shows_the_error_message(page, daemon, screenshot):
    page.goto("/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("wrong username or password")
    screenshot(page, "login-wrong-password")

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate(SESSION) is None


def test_log_out_forgets_the_token_of_the_tab(page, daemon, sign_in):
    sign_in("ann", "ann123")
    assert page.evaluate(SESSION) is not None

    page.get_by_role("button", name="Log out").click()

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate(SESSION) is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_refused_token_returns_to_sign_in_with_the_reason(page, daemon):
    page.goto("/")
    page.evaluate(
        "sessionStorage.setItem('labelhub.session', JSON.stringify("
        "{token: 'not-a-token', role: 'admin', username: 'admin'}))"
    )

    page.reload()

    expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate(SESSION) is None
