"""Import and export against a (fake) Label Studio, followed on the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_admin_dashboard import IS_SAME_PAGE, MARK_PAGE, open_dataset

pytestmark = pytest.mark.browser
JOB_TIMEOUT_MS = 20_000  # a job is claimed within JOB_POLL_S, then runs


@pytest.fixture
def daemon(wired_daemon):
    """The pages here talk to a daemon that has a Label Studio to work with."""
    return wired_daemon


def test_an_import_shows_its_progress_and_an_export_started_elsewhere_its_drift(
    page, daemon, studio, sign_in, screenshot
):
    admin = daemon.login("admin", "admin123")
    daemon.api("POST", "/datasets", {"name": "to-label-studio"}, admin)
    sign_in("admin", "admin123")
    open_dataset(page, "to-label-studio")
    page.evaluate(MARK_PAGE)
    jobs = page.get_by_role("list", name="Jobs").get_by_role("listitem")
    legend = page.locator(".panel-progress .legend li")

    page.get_by_role("button", name="Import into Label Studio").click()
    imported = jobs.filter(has_text="Import job")
    expect(imported.locator(".job-status")).to_have_text(
        "success", timeout=JOB_TIMEOUT_MS
    )
    expect(imported.locator(".job-message")).to_have_text("imported 100 tasks")
    expect(legend).to_have_text(["new 0", "imported 100", "labeled 0"])

    # Annotators label three tasks; no webhook reaches labelhub. Another
    # admin starts the export: this page finds the job by itself.
    studio.run(
        lambda fake: [fake.annotate(ls_id, "OK") for ls_id in sorted(fake.tasks)[:3]]
    )
    daemon.api("POST", "/datasets/1/export_from_ls", token=admin)
    exported = jobs.filter(has_text="Export job")
    expect(exported.locator(".job-message")).to_have_text(
        "exported 3 labeled tasks", timeout=JOB_TIMEOUT_MS
    )
    drift = page.locator(".panel-drift")
    expect(drift.locator("[data-drift='annotations_created'] td")).to_have_text("3")
    expect(legend).to_have_text(["new 0", "imported 97", "labeled 3"])
    screenshot(page, "admin-dataset-export-drift")

    assert page.evaluate(IS_SAME_PAGE)
