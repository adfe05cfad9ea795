"""The annotator's page: only their own tasks, links into Label Studio, stats."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import LS_BASE_URL, LS_PROJECT_ID, LS_TASK_OFFSET

pytestmark = pytest.mark.browser


def assign(daemon, seeded, username, count):
    query = f"username={username}&count={count}"
    path = f"/datasets/{seeded.dataset_id}/auto_assign?{query}"
    return daemon.api("POST", path, token=seeded.admin_token)["task_ids"]


def text_of(daemon, seeded, task_id):
    return daemon.api("GET", f"/tasks/{task_id}", token=seeded.admin_token)["data"][
        "text"
    ]


def test_annotator_sees_only_her_own_tasks_with_links_and_her_stats(
    page, daemon, seeded, sign_in, rows_of, screenshot
):
    hers = assign(daemon, seeded, "ann", 4)
    his = assign(daemon, seeded, "bob", 3)
    daemon.execute(
        "UPDATE tasks SET status = 'labeled', label = 'OK' WHERE id = ?", hers[0]
    )
    texts = {task_id: text_of(daemon, seeded, task_id) for task_id in hers + his}

    sign_in("ann", "ann123")
    tasks = rows_of("My tasks")
    links = {
        task_id: page.get_by_role("link", name=f"Open task {task_id} in Label Studio")
        for task_id in hers
    }
    stats = page.locator("[data-stat]").all_inner_texts()
    screenshot(page, "annotator-tasks")

    assert [row[:4] for row in tasks] == [
        [
            str(task_id),
            texts[task_id],
            "labeled" if task_id == hers[0] else "imported",
            "OK" if task_id == hers[0] else "—",
        ]
        for task_id in hers
    ]
    assert not {texts[task_id] for task_id in his} & {row[1] for row in tasks}
    for task_id, link in links.items():
        ls_task_id = task_id + LS_TASK_OFFSET
        expect(link).to_have_attribute(
            "href", f"{LS_BASE_URL}/projects/{LS_PROJECT_ID}/data?task={ls_task_id}"
        )
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", "noopener")
    expect(page.get_by_role("link", name="Open task")).to_have_count(len(hers))
    assert stats == ["Assigned\n4", "Labeled\n1", "Remaining\n3"]
    expect(page.get_by_role("list", name="My labels")).to_have_text("OK: 1")
