"""The prototype's whole manual, and more, against a real Label Studio.

The steps run in order against one daemon per variant; a failing step says
which step it was and what Label Studio or labelhub answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.e2e.conftest import Loop

pytestmark = pytest.mark.e2e
WEBHOOK_DEADLINE_S = 2.0
JOB_DEADLINE_S = 60.0


def wait_for(check: Callable[[], Any], deadline_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy, or fail saying `what`."""
    give_up = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < give_up:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {deadline_s} s (last seen: {last!r})")


def expect(answer: tuple[int, Any], status: int, step: str) -> Any:
    code, body = answer
    assert code == status, f"{step}: labelhub answered {code}: {body}"
    return body


def finished_job(loop: Loop, job_id: int, step: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = expect(loop.as_admin("GET", f"/jobs/{job_id}"), 200, step)
        return job if job["status"] in ("success", "failed") else None

    return wait_for(done, JOB_DEADLINE_S, f"{step}: job {job_id} to finish")


def studio_tasks(loop: Loop) -> list[dict[str, Any]]:
    """Every task of the project, with its annotations, from Label Studio."""
    tasks: list[dict[str, Any]] = []
    page = 1
    while True:
        code, body = loop.studio_api(
            "GET",
            "/api/tasks",
            project=loop.project_id,
            page=page,
            page_size=100,
            fields="all",
        )
        if code == 404:
            return tasks
        assert code == 200, f"Label Studio task list answered {code}: {body}"
        tasks += body["tasks"]
        page += 1


def index_tasks(loop: Loop, dataset_id: int) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    after = 0
    while True:
        page = expect(
            loop.as_admin(
                "GET", f"/datasets/{dataset_id}/tasks?limit=1000&after={after}"
            ),
            200,
            "reading the index",
        )
        tasks += page["tasks"]
        if page["next_after"] is None:
            return tasks
        after = page["next_after"]


def studio_label(task: dict[str, Any]) -> tuple[str, str | None]:
    notes = [note for note in task["annotations"] if not note["was_cancelled"]]
    if not notes:
        return "imported", None
    latest = max(notes, key=lambda note: (note["updated_at"], note["id"]))
    return "labeled", latest["result"][0]["value"]["choices"][0]


def annotate(loop: Loop, ls_task_id: int, label: str) -> dict[str, Any]:
    result = [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]
    code, body = loop.studio_api(
        "POST", f"/api/tasks/{ls_task_id}/annotations", {"result": result}
    )
    assert code == 201, f"Label Studio refused an annotation: {code} {body}"
    return body


def stats(loop: Loop) -> dict[str, Any]:
    dataset_id = loop.state["dataset_id"]
    return expect(loop.as_admin("GET", f"/datasets/{dataset_id}/stats"), 200, "stats")


def run_cli(loop: Loop, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**loop.daemon.env, "PATH": os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, "-m", "labelhub.cli", *args],
        env=env,
        cwd=loop.daemon.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_step_0_register_the_webhook_from_the_command_line(loop: Loop) -> None:
    result = run_cli(loop, "webhook", "register", "--url", loop.daemon.url)

    assert result.returncode == 0, f"webhook register failed: {result.stderr}"
    assert result.stdout.strip() == f"project {loop.project_id}: webhook created"


def test_step_1_admin_and_annotator_log_in(loop: Loop) -> None:
    loop.tokens["admin"] = loop.daemon.login("admin", "admin123")
    loop.tokens["annotator"] = loop.daemon.login("ann", "ann123")

    mine = expect(loop.as_admin("GET", "/me"), 200, "step 1: /me as admin")
    hers = expect(loop.as_annotator("GET", "/me"), 200, "step 1: /me as ann")

    assert (mine["username"], mine["role"]) == ("admin", "admin")
    assert (hers["username"], hers["role"]) == ("ann", "annotator")


def test_step_2_the_demo_dataset_holds_100_items(loop: Loop) -> None:
    created = expect(
        loop.as_admin("POST", "/datasets", {"name": "demo-dataset"}), 201, "step 2"
    )
    loop.state["dataset_id"] = created["dataset_id"]

    counted = stats(loop)

    assert (counted["total"], counted["new"]) == (100, 100)


def test_step_3_import_puts_exactly_100_tasks_in_label_studio(loop: Loop) -> None:
    dataset_id = loop.state["dataset_id"]
    accepted = expect(
        loop.as_admin("POST", f"/datasets/{dataset_id}/import_to_ls"), 202, "step 3"
    )

    job = finished_job(loop, accepted["job_id"], "step 3")

    assert (job["status"], job["message"]) == ("success", "imported 100 tasks"), job
    assert len(studio_tasks(loop)) == 100
    assert (stats(loop)["imported"], stats(loop)["new"]) == (100, 0)


def test_step_4_assignment_shows_the_annotator_exactly_her_21_tasks(loop: Loop) -> None:
    dataset_id = loop.state["dataset_id"]
    first = index_tasks(loop, dataset_id)[0]["id"]
    expect(loop.as_admin("POST", f"/tasks/{first}/assign/ann"), 200, "step 4: assign")
    assigned = expect(
        loop.as_admin(
            "POST", f"/datasets/{dataset_id}/auto_assign?username=ann&count=20"
        ),
        200,
        "step 4: auto_assign",
    )

    page = expect(
        loop.as_annotator(
            "GET", f"/annotator/tasks?dataset_id={dataset_id}&status=imported&limit=50"
        ),
        200,
        "step 4: her tasks",
    )
    own = expect(
        loop.as_annotator("GET", f"/annotator/stats?dataset_id={dataset_id}"),
        200,
        "step 4: her stats",
    )

    assert assigned["assigned"] == 20
    assert sorted(task["id"] for task in page["tasks"]) == sorted(
        [first, *assigned["task_ids"]]
    )
    assert (own["assigned"], own["labeled"], own["remaining"]) == (21, 0, 21)
    link = page["tasks"][0]["link"]
    assert link.startswith(
        f"{loop.studio.base_url}/projects/{loop.project_id}/data?task="
    )
    loop.state["hers"] = page["tasks"]


ADMIN_ROUTES = [
    ("GET", "/users"),
    ("POST", "/users"),
    ("PATCH", "/users/admin"),
    ("POST", "/datasets"),
    ("GET", "/datasets"),
    ("GET", "/datasets/{id}"),
    ("POST", "/datasets/{id}/items"),
    ("GET", "/datasets/{id}/tasks"),
    ("GET", "/datasets/{id}/stats"),
    ("POST", "/datasets/{id}/import_to_ls"),
    ("POST", "/datasets/{id}/export_from_ls"),
    ("POST", "/datasets/{id}/auto_assign?username=ann&count=1"),
    ("GET", "/jobs"),
    ("GET", "/jobs/1"),
    ("POST", "/jobs/1/retry"),
    ("GET", "/tasks/1"),
    ("POST", "/tasks/1/assign/ann"),
    ("DELETE", "/tasks/1/assign"),
]


def test_step_4_every_admin_route_refuses_the_annotator(loop: Loop) -> None:
    dataset_id = loop.state["dataset_id"]
    for method, path in ADMIN_ROUTES:
        code, body = loop.as_annotator(
            method, path.replace("{id}", str(dataset_id)), {}
        )
        assert code == 403, f"{method} {path} as ann answered {code}: {body}"


def test_step_5_webhooks_alone_bring_four_labels_in(loop: Loop) -> None:
    hers = loop.state["hers"]
    notes = [
        annotate(loop, task["ls_task_id"], label)
        for task, label in zip(hers[:4], ("OK", "OK", "NG", "NG"), strict=True)
    ]
    loop.state["notes"] = notes
    dataset_id = loop.state["dataset_id"]

    def four_labeled() -> dict[str, Any] | None:
        counted = stats(loop)
        return counted if counted["labeled"] == 4 else None

    counted = wait_for(
        four_labeled, WEBHOOK_DEADLINE_S, "step 5: 4 labeled via webhooks"
    )
    own = expect(
        loop.as_annotator("GET", f"/annotator/stats?dataset_id={dataset_id}"),
        200,
        "step 5",
    )
    assert counted["labels"] == {"OK": 2, "NG": 2}
    assert (own["labeled"], own["remaining"], own["labels"]) == (
        4,
        17,
        {"OK": 2, "NG": 2},
    )


def test_step_5_metrics_moved_during_the_loop(loop: Loop) -> None:
    code, text = loop.daemon.call_text("GET", "/metrics")

    assert code == 200
    created = '{action="ANNOTATION_CREATED",outcome="applied"}'
    assert f"labelhub_webhook_deliveries_total{created} 4.0" in text
    assert 'labelhub_jobs_total{kind="import",outcome="success"} 1.0' in text
    assert (
        'labelhub_studio_calls_total{endpoint="import",outcome="http_2xx"} 1.0' in text
    )
    assert (
        f'labelhub_tasks{{dataset="{loop.state["dataset_id"]}",status="labeled"}} 4.0'
        in text
    )


def test_step_6_an_update_and_a_deletion_in_label_studio_are_followed(
    loop: Loop,
) -> None:
    first, second = loop.state["notes"][:2]
    code, body = loop.studio_api(
        "PATCH",
        f"/api/annotations/{first['id']}",
        {"result": [dict(first["result"][0], value={"choices": ["NG"]})]},
    )
    assert code == 200, f"step 6: Label Studio PATCH answered {code}: {body}"
    code, body = loop.studio_api("DELETE", f"/api/annotations/{second['id']}")
    assert code == 204, f"step 6: Label Studio DELETE answered {code}: {body}"

    def followed() -> dict[str, Any] | None:
        counted = stats(loop)
        return counted if counted["labels"] == {"NG": 3} else None

    counted = wait_for(followed, WEBHOOK_DEADLINE_S, "step 6: labels NG 3")
    assert counted["labeled"] == 3


def test_step_7_export_reports_the_labeled_tasks(loop: Loop) -> None:
    dataset_id = loop.state["dataset_id"]
    accepted = expect(
        loop.as_admin("POST", f"/datasets/{dataset_id}/export_from_ls"), 202, "step 7"
    )

    job = finished_job(loop, accepted["job_id"], "step 7")

    assert (job["status"], job["message"]) == ("success", "exported 3 labeled tasks"), (
        job
    )
    assert job["result"]["total_repaired"] == 0, job["result"]
    assert job["result"]["webhook"] == "ok"


def test_step_8_changes_made_while_labelhub_was_down_are_reconciled(loop: Loop) -> None:
    hers = loop.state["hers"]
    first, _, third, _ = loop.state["notes"]
    stale_event = {
        "action": "ANNOTATION_CREATED",
        "annotation": dict(first, project=loop.project_id),
        "task": {"id": first["task"], "data": {}},
        "project": {"id": loop.project_id},
    }
    loop.daemon.stop()

    annotate(loop, hers[5]["ls_task_id"], "OK")
    code, body = loop.studio_api(
        "PATCH",
        f"/api/annotations/{third['id']}",
        {"result": [dict(third["result"][0], value={"choices": ["OK"]})]},
    )
    assert code == 200, f"step 8: changing an annotation answered {code}: {body}"
    note_id = loop.state["notes"][3]["id"]
    code, body = loop.studio_api("DELETE", f"/api/annotations/{note_id}")
    assert code == 204, f"step 8: deleting an annotation answered {code}: {body}"
    code, body = loop.studio_api("DELETE", f"/api/tasks/{hers[6]['ls_task_id']}")
    assert code == 204, f"step 8: deleting a task answered {code}: {body}"
    # Made and removed while labelhub was down: a late copy of its webhook
    # must not bring it back.
    fleeting = annotate(loop, hers[7]["ls_task_id"], "NG")
    code, body = loop.studio_api("DELETE", f"/api/annotations/{fleeting['id']}")
    assert code == 204, f"step 8: deleting an annotation answered {code}: {body}"
    fleeting_event = {
        "action": "ANNOTATION_CREATED",
        "annotation": dict(fleeting, project=loop.project_id),
        "task": {"id": fleeting["task"], "data": {}},
        "project": {"id": loop.project_id},
    }

    loop.daemon.start("--demo")
    loop.tokens["admin"] = loop.daemon.login("admin", "admin123")
    dataset_id = loop.state["dataset_id"]
    accepted = expect(
        loop.as_admin("POST", f"/datasets/{dataset_id}/export_from_ls"), 202, "step 8"
    )
    job = finished_job(loop, accepted["job_id"], "step 8")
    assert job["status"] == "success", job
    assert_index_equals_label_studio(loop)

    for event in (stale_event, fleeting_event):
        code, answer = loop.daemon.call(
            "POST",
            "/webhooks/label-studio",
            event,
            headers={"X-Webhook-Secret": WEBHOOK_SECRET},
        )
        assert (code, answer["status"]) == (200, "stale"), (
            f"step 8: a replayed {event['action']} answered {code}: {answer}"
        )
    assert_index_equals_label_studio(loop)


def assert_index_equals_label_studio(loop: Loop) -> None:
    truth = {task["id"]: studio_label(task) for task in studio_tasks(loop)}
    ours = {
        task["ls_task_id"]: (task["status"], task["label"])
        for task in index_tasks(loop, loop.state["dataset_id"])
        if task["status"] != "deleted"
    }
    differ = {
        ls_id: {"labelhub": ours.get(ls_id), "label_studio": truth.get(ls_id)}
        for ls_id in set(ours) | set(truth)
        if ours.get(ls_id) != truth.get(ls_id)
    }
    assert not differ, f"the index differs from Label Studio: {differ}"
    counted = stats(loop)
    labeled = [label for status, label in truth.values() if status == "labeled"]
    assert counted["labeled"] == len(labeled)
    assert counted["labels"] == {label: labeled.count(label) for label in set(labeled)}
    assert counted["deleted"] == 1


def test_step_9_the_webhook_is_registered_once_with_its_secret(loop: Loop) -> None:
    again = run_cli(loop, "webhook", "register", "--url", loop.daemon.url)
    code, hooks = loop.studio_api("GET", "/api/webhooks/", project=loop.project_id)

    assert again.returncode == 0, again.stderr
    assert code == 200, hooks
    assert len(hooks) == 1, json.dumps(hooks)
    hook = hooks[0]
    assert (
        hook["url"]
        == f"{loop.daemon.url}/webhooks/label-studio?project={loop.project_id}"
    )
    assert hook["headers"] == {"X-Webhook-Secret": WEBHOOK_SECRET}
    assert hook["is_active"] is True
