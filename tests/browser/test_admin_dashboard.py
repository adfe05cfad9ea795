"""The admin's pages: datasets, one dataset's numbers, assigning, and jobs."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

# Set before an action and read after it: a reload of the page would lose it.
MARK_PAGE = "window.sameDocument = true"
IS_SAME_PAGE = "window.sameDocument === true"


def open_dataset(page: Page, name: str) -> None:
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


def test_admin_sees_dataset_progress_then_its_label_chart_and_annotators(
    page, daemon, seeded, sign_in, rows_of, screenshot
):
    for username, count in (("ann", 5), ("bob", 3)):
        query = f"username={username}&count={count}"
        path = f"/datasets/{seeded.dataset_id}/auto_assign?{query}"
        daemon.api("POST", path, token=seeded.admin_token)

    sign_in("admin", "admin123")
    datasets = rows_of("Tasks of each dataset by status")
    legend = page.locator(f"[data-dataset='{seeded.dataset_id}'] .legend li")
    parts = legend.all_inner_texts()
    screenshot(page, "admin-datasets")
    open_dataset(page, "browser-demo")
    expect(
        page.get_by_text(
            "8 assigned, 92 unassigned (63 in Label Studio and free to assign)"
        )
    ).to_be_visible()
    labels = rows_of("Labeled tasks by label")
    annotators = rows_of("Tasks of each annotator")
    screenshot(page, "admin-dataset")

    assert [row[:2] for row in datasets] == [["browser-demo", "100"]]
    assert parts == ["new 20", "imported 71", "labeled 9"]
    assert "9 of 100 tasks labeled (9%)" in datasets[0][2]
    assert labels == [["OK", "", "6", "67%"], ["NG", "", "3", "33%"]]
    assert annotators == [["ann", "5", "0", "5", ""], ["bob", "3", "0", "3", ""]]


def test_auto_assign_from_the_page_shows_the_new_numbers_without_reloading(
    page, seeded, sign_in, rows_of
):
    sign_in("admin", "admin123")
    open_dataset(page, "browser-demo")
    expect(page.get_by_text("No task is assigned yet.")).to_be_visible()
    page.evaluate(MARK_PAGE)

    page.get_by_role("checkbox", name="ann").check()
    page.get_by_label("Tasks to assign").fill("20")
    page.get_by_role("button", name="Assign tasks").click()

    expect(page.get_by_role("status")).to_have_text("Assigned 20 of 20 tasks: ann 20.")
    expect(page.get_by_text("20 assigned, 80 unassigned")).to_be_visible()
    assert rows_of("Tasks of each annotator") == [["ann", "20", "0", "20", ""]]
    assert page.evaluate(IS_SAME_PAGE)


def test_failed_import_shows_its_final_status_and_message_without_reloading(
    page, seeded, sign_in, screenshot
):
    sign_in("admin", "admin123")
    open_dataset(page, "browser-demo")
    page.evaluate(MARK_PAGE)

    page.get_by_role("button", name="Import into Label Studio").click()
    job = page.get_by_role("list", name="Jobs").get_by_role("listitem")
    expect(job.locator(".job-status")).to_have_text("failed")
    screenshot(page, "admin-dataset-import-failed")

    expect(job).to_contain_text("Import job 1: failed")
    expect(job.locator(".job-message")).to_contain_text(
        "set LS_BASE_URL and LS_API_TOKEN"
    )
    expect(page.get_by_role("button", name="Import into Label Studio")).to_be_enabled()
    assert page.evaluate(IS_SAME_PAGE)
