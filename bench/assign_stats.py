"""Assignment and statistics over a dataset of 1,000,000 tasks on PostgreSQL.

Seeds 1,000,000 tasks straight in SQL (INSERT ... SELECT generate_series; the
count triggers run as for any insert, and `task_counts` is checked against a
GROUP BY over `tasks` afterwards, and again after the assignment runs), then
times HTTP requests against the daemon running as its own process (aiohttp
client, keep-alive; 3 warm-up requests, then 20 timed, median reported):

* POST /datasets/{id}/auto_assign of 20,000 tasks. The API takes at most
  10,000 per call, so one run is two calls of 10,000 (timed together), for
  one annotator and balanced over five; the store routine `assign_free` is
  also timed in-process for 20,000 in one call. Before each run the previous
  run's assignments are taken back and the table vacuumed (untimed), so every
  run meets the same table; a last series runs back to back without that;
* GET /datasets/{id}/stats and GET /annotator/stats;
* GET /annotator/tasks?limit=50 deep into the list: the annotator holds
  50,000 tasks and `after=` is the id of their 49,900th.

Prints the EXPLAIN ANALYZE plans of the SQL those requests send.

Targets: auto_assign of 20,000 tasks < 0.5 s; both stats < 100 ms (median of
20); the deep annotator page < 20 ms.

    .venv/bin/python bench/assign_stats.py           # 1,000,000 tasks
    .venv/bin/python bench/assign_stats.py --small   # 100,000 tasks, fewer runs
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import aiohttp
import common
import plans
import psycopg

from labelhub.store import assignments, datasets, tasks
from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.urls import to_async_url

ASSIGN_TARGET_S = 0.5
STATS_TARGET_MS = 100.0
PAGE_TARGET_MS = 20.0
WARMUP = 3
DEEP_USER = ("deep", "deep-pass-123")
OTHERS = ("ann2", "ann3", "ann4", "ann5")
BULK = ("bulk1", "bulk2", "bulk3", "bulk4", "bulk5")

# Task i (1-based): every 100th is new (no Label Studio task yet); every
# 200th+1 deleted; one in five of the rest labeled OK or NG. Assignees by
# i % 20: 3 -> the deep annotator (50,000 of 1,000,000), 4..11 -> two slots
# for each of four others; the rest is unassigned.
SEED_SQL = """
INSERT INTO tasks (dataset_id, data, origin, status, ls_project_id, ls_task_id,
                   assigned_to, assigned_at, label, created_at, updated_at)
SELECT %(dataset)s,
       jsonb_build_object('text', 'Seeded inspection note ' || i,
                          'ext_id', 'seed-' || i),
       'labelhub', s.status,
       CASE WHEN s.status = 'new' THEN NULL ELSE 1 END,
       CASE WHEN s.status = 'new' THEN NULL ELSE i END,
       a.assignee,
       CASE WHEN a.assignee IS NULL THEN NULL ELSE now() END,
       CASE WHEN s.status = 'labeled'
            THEN CASE WHEN i %% 3 = 0 THEN 'NG' ELSE 'OK' END END,
       now(), now()
FROM generate_series(1, %(count)s) AS i
CROSS JOIN LATERAL (SELECT CASE
    WHEN i %% 100 = 0 THEN 'new'
    WHEN i %% 200 = 1 THEN 'deleted'
    WHEN (i / 20) %% 5 = 2 THEN 'labeled'
    ELSE 'imported' END AS status) AS s
CROSS JOIN LATERAL (SELECT CASE
    WHEN i %% 20 = 3 THEN %(deep)s
    WHEN i %% 20 BETWEEN 4 AND 11
        THEN (%(others)s::int[])[(i %% 20 - 4) / 2 + 1]
    END AS assignee) AS a
"""
CHECK_SQL = """
SELECT dataset_id, status, coalesce(assigned_to, 0), coalesce(label, ''), count(*)
FROM tasks GROUP BY 1, 2, 3, 4
"""


async def prepare(base_url: str, url: str) -> tuple[int, dict[str, int]]:
    """Annotators and an empty dataset, made through the API."""
    async with aiohttp.ClientSession() as http:
        headers = await common.login(http, base_url)
        for name in (DEEP_USER[0], *OTHERS, *BULK):
            body = {"username": name, "password": name + "-pass-123"}
            if name == DEEP_USER[0]:
                body["password"] = DEEP_USER[1]
            async with http.post(
                base_url + "/users",
                json={**body, "role": "annotator"},
                headers=headers,
            ) as answer:
                answer.raise_for_status()
        async with http.post(
            base_url + "/datasets",
            json={"name": "million", "ls_project_id": 1, "items": []},
            headers=headers,
        ) as answer:
            answer.raise_for_status()
            dataset_id = (await answer.json())["id"]
    with psycopg.connect(url) as connection:
        ids = dict(connection.execute("SELECT username, id FROM users").fetchall())
    return dataset_id, ids


def seed(url: str, dataset_id: int, users: dict[str, int], count: int) -> None:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            SEED_SQL,
            {
                "dataset": dataset_id,
                "count": count,
                "deep": users[DEEP_USER[0]],
                "others": [users[name] for name in OTHERS],
            },
        )
        seeded_s = time.perf_counter() - started
        connection.execute("VACUUM ANALYZE tasks")
        connection.execute("VACUUM ANALYZE task_counts")
    by_status = Counter()
    for (_, status, _, _), n in check_counts(url, "after seeding").items():
        by_status[status] += n
    print(
        f"seeded {count:,} tasks in {seeded_s:.1f} s (+ VACUUM ANALYZE); "
        f"by status: {dict(by_status)}"
    )


def check_counts(url: str, when: str) -> dict:
    """Fail unless `task_counts` equals a GROUP BY over `tasks`; answers it."""
    with psycopg.connect(url) as connection:
        grouped = {row[:4]: row[4] for row in connection.execute(CHECK_SQL)}
        kept = {
            row[:4]: row[4]
            for row in connection.execute(
                "SELECT dataset_id, status, assignee_id, label, n "
                "FROM task_counts WHERE n <> 0"
            )
        }
    if grouped != kept:
        raise RuntimeError(
            f"task_counts disagrees with tasks {when}: {grouped} != {kept}"
        )
    print(f"task_counts consistent with tasks {when}: {len(kept)} groups, all equal")
    return grouped


async def timed(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict, reps: int
) -> list[float]:
    """Milliseconds per request, after a few untimed warm-up requests."""
    for _ in range(WARMUP):
        async with http.request(method, url, headers=headers) as answer:
            answer.raise_for_status()
            await answer.read()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        async with http.request(method, url, headers=headers) as answer:
            await answer.read()
            times.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return times


async def read_figures(
    base_url: str, dataset_id: int, after: int, reps: int
) -> dict[str, list[float]]:
    async with aiohttp.ClientSession() as http:
        admin = await common.login(http, base_url)
        deep = await common.login(http, base_url, DEEP_USER)
        figures = {
            "GET /datasets/{id}/stats": await timed(
                http, "GET", f"{base_url}/datasets/{dataset_id}/stats", admin, reps
            ),
            "GET /annotator/stats": await timed(
                http, "GET", f"{base_url}/annotator/stats", deep, reps
            ),
            "GET /annotator/tasks?limit=50&after=<deep>": await timed(
                http,
                "GET",
                f"{base_url}/annotator/tasks?limit=50&after={after}",
                deep,
                reps,
            ),
            "GET /annotator/tasks?limit=50 (first page)": await timed(
                http, "GET", f"{base_url}/annotator/tasks?limit=50", deep, reps
            ),
        }
        async with http.get(
            f"{base_url}/annotator/tasks?limit=50&after={after}", headers=deep
        ) as answer:
            page = await answer.json()
        if len(page["tasks"]) != 50:
            raise RuntimeError(f"the deep page held {len(page['tasks'])} tasks")
    return figures


def take_back(url: str, users: dict[str, int]) -> None:
    """Undo the bulk annotators' assignments and vacuum, as autovacuum would.

    Each timed run then starts from the same table: the oldest free tasks
    unassigned, with no dead row versions left by the run before (a live
    database's autovacuum clears those after about 20% of a table changes,
    which two runs of 20,000 on 1,000,000 tasks would reach).
    """
    bulk = [users[name] for name in BULK]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "UPDATE tasks SET assigned_to = NULL, assigned_at = NULL "
            "WHERE assigned_to = ANY(%s)",
            (bulk,),
        )
        connection.execute("VACUUM ANALYZE tasks")


async def assign_twice(
    http: aiohttp.ClientSession, url: str, admin: dict, query: str, per_call: int
) -> float:
    """Seconds of two auto_assign calls of per_call tasks each."""
    started = time.perf_counter()
    for _ in range(2):
        async with http.post(
            f"{url}?{query}&count={per_call}", headers=admin
        ) as answer:
            answer.raise_for_status()
            assigned = (await answer.json())["assigned"]
        if assigned != per_call:
            raise RuntimeError(f"assigned {assigned} of {per_call}")
    return time.perf_counter() - started


async def assign_figures(
    base_url: str,
    url: str,
    dataset_id: int,
    users: dict[str, int],
    runs: int,
    per_call: int,
) -> dict[str, list[float]]:
    """Seconds to auto-assign 2 x per_call tasks through the API, per run.

    One untimed warm-up of each form, then `runs` timed runs of each, every
    one from the same vacuumed table (`take_back`); last, `runs` runs back to
    back with nothing taken back or vacuumed in between, for comparison.
    """
    forms = {
        f"auto_assign 2 x {per_call:,}, one annotator (API)": f"username={BULK[0]}",
        f"auto_assign 2 x {per_call:,}, balanced over 5 (API)": "usernames="
        + ",".join(BULK),
    }
    figures: dict[str, list[float]] = {name: [] for name in forms}
    async with aiohttp.ClientSession() as http:
        admin = await common.login(http, base_url)
        assign_url = f"{base_url}/datasets/{dataset_id}/auto_assign"
        for round_number in range(runs + 1):
            for name, query in forms.items():
                take_back(url, users)
                seconds = await assign_twice(http, assign_url, admin, query, per_call)
                if round_number:  # the first round warms up
                    figures[name].append(seconds)
        take_back(url, users)
        one_annotator = forms[next(iter(forms))]
        back_to_back = [
            await assign_twice(http, assign_url, admin, one_annotator, per_call)
            for _ in range(runs)
        ]
    figures[f"auto_assign 2 x {per_call:,}, one annotator, back to back, no vacuum"] = (
        back_to_back
    )
    return figures


async def routine_figures(
    url: str, dataset_id: int, users: dict[str, int], runs: int, count: int
) -> list[float]:
    """Seconds of `assign_free` of `count` tasks in one transaction, in-process."""
    engine = create_engine(to_async_url(url))
    sessions = create_sessions(engine)
    user_id = users[BULK[1]]
    times = []
    for _ in range(runs):
        take_back(url, users)
        started = time.perf_counter()
        async with sessions.begin() as session:
            given = await assignments.assign_free(session, dataset_id, user_id, count)
        times.append(time.perf_counter() - started)
        if len(given) != count:
            raise RuntimeError(f"assign_free gave {len(given)} of {count}")
    await engine.dispose()
    return times


async def show_plans(url: str, dataset_id: int, users: dict[str, int], after: int):
    deep = users[DEEP_USER[0]]
    cases = {
        "auto_assign (assign_free, 10,000)": lambda s: assignments.assign_free(
            s, dataset_id, users[BULK[0]], 10_000
        ),
        "auto_assign balanced (assign_balanced, 10,000 over 5)": lambda s: (
            assignments.assign_balanced(
                s, dataset_id, [users[name] for name in BULK], 10_000
            )
        ),
        "GET /datasets/{id}/stats": lambda s: datasets.stats(s, [dataset_id]),
        "GET /annotator/stats": lambda s: datasets.assignee_tally(s, deep, None),
        "GET /annotator/tasks deep page": lambda s: tasks.page(
            s,
            tasks.TaskFilter(assignee_id=deep),
            after=after,
            limit=50,
            with_data=True,
        ),
    }
    for title, work in cases.items():
        statements = await plans.capture(url, work)
        print(f"\n--- plan: {title} ---")
        for statement in statements:
            if statement[0].lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
                print("SQL:", plans.shorten(statement[0]))
                print(plans.explain(url, statement))


def report(figures: dict[str, list[float]], unit: str, digits: int) -> None:
    for name, values in figures.items():
        print(common.figure(name, values, unit, digits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="100,000 tasks")
    parser.add_argument("--tasks", type=int, help="tasks to seed")
    parser.add_argument("--reps", type=int, default=20, help="timed requests")
    parser.add_argument("--assign-runs", type=int, default=5, help="auto_assign runs")
    parser.add_argument("--no-plans", action="store_true", help="skip EXPLAIN")
    args = parser.parse_args()
    count = args.tasks or (100_000 if args.small else 1_000_000)
    per_call = 10_000 if count >= 1_000_000 else count // 100
    assign_runs = 2 if args.small else args.assign_runs

    print(f"machine: {common.machine()}")
    with common.database("assign") as url, common.daemon(url) as daemon:
        dataset_id, users = asyncio.run(prepare(daemon.url, url))
        seed(url, dataset_id, users, count)
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT id FROM tasks WHERE assigned_to = %s ORDER BY id "
                "OFFSET %s LIMIT 1",
                (users[DEEP_USER[0]], count // 20 - 100),
            ).fetchone()
        after = int(row[0]) if row else 0
        print(f"deep annotator holds {count // 20:,} tasks; after={after}\n")

        read = asyncio.run(read_figures(daemon.url, dataset_id, after, args.reps))
        report(read, "ms", 2)
        assigned = asyncio.run(
            assign_figures(daemon.url, url, dataset_id, users, assign_runs, per_call)
        )
        report(assigned, "s", 3)
        routine = asyncio.run(
            routine_figures(url, dataset_id, users, assign_runs, 2 * per_call)
        )
        print(
            common.figure(
                f"assign_free of {2 * per_call:,} in one call (in-process)",
                routine,
                "s",
                3,
            )
        )
        print(f"daemon peak memory (VmHWM): {daemon.vm_hwm_mb():.0f} MB")
        check_counts(url, "after the assignment runs")
        if not args.no_plans:
            asyncio.run(show_plans(url, dataset_id, users, after))

    print()
    stats_ms = max(
        common.median(read["GET /datasets/{id}/stats"]),
        common.median(read["GET /annotator/stats"]),
    )
    page_ms = common.median(read["GET /annotator/tasks?limit=50&after=<deep>"])
    assign_s = max(
        common.median(values)
        for name, values in assigned.items()
        if "back to back" not in name
    )
    print(
        f"target auto_assign of 20,000 < {ASSIGN_TARGET_S} s: "
        f"{common.verdict(assign_s < ASSIGN_TARGET_S)} "
        f"(slowest median {assign_s:.3f} s)"
    )
    print(
        f"target stats < {STATS_TARGET_MS:g} ms: "
        f"{common.verdict(stats_ms < STATS_TARGET_MS)} ({stats_ms:.2f} ms)"
    )
    print(
        f"target deep page < {PAGE_TARGET_MS:g} ms: "
        f"{common.verdict(page_ms < PAGE_TARGET_MS)} ({page_ms:.2f} ms)"
    )


if __name__ == "__main__":
    main()
