"""Webhook throughput and latency of the daemon, side by side with a bare handler.

A 100,000-task dataset (project 1, every task imported) is seeded in SQL on
PostgreSQL; the daemon runs as its own process, and so does a bare aiohttp
app that only parses the body (bench/bare_handler.py). Load comes from the
same machine:

* throughput: wrk (-t1, 64 connections, --latency) with a Lua script that
  makes every request a distinct ANNOTATION_CREATED/ANNOTATION_UPDATED body
  shaped like the captured one (see bench/webhook_load.py); bare and daemon
  alternate, 3 runs each, medians of requests/s, p50 and p99;
* fixed rate: 500 events/s for 20 s from an aiohttp client that paces its
  requests and measures each from its scheduled time (wrk2 is not installed);
* no event lost: afterwards every annotation the daemon acknowledged is in
  the index with its last label (or a later one that was sent), and every
  task's label is the one its latest annotation gives.

Targets: daemon throughput >= 1/3 of the bare handler's; p99 < 25 ms at 500
events/s; no event lost.

    .venv/bin/python bench/webhooks.py            # full
    .venv/bin/python bench/webhooks.py --small    # 10,000 tasks, short runs
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiohttp
import common
import psycopg
import webhook_load
from webhook_load import LoadFigures, Sent

RATE_PER_S = 500
P99_TARGET_MS = 25.0
RATIO_TARGET = 1 / 3

SEED_SQL = """
INSERT INTO tasks (dataset_id, data, origin, status, ls_project_id, ls_task_id,
                   created_at, updated_at)
SELECT %(dataset)s, jsonb_build_object('text', 'Seeded inspection note ' || i),
       'labelhub', 'imported', 1, i, now(), now()
FROM generate_series(1, %(count)s) AS i
"""


async def make_dataset(base_url: str) -> int:
    async with aiohttp.ClientSession() as http:
        headers = await common.login(http, base_url)
        async with http.post(
            base_url + "/datasets",
            json={"name": "webhooks", "ls_project_id": 1, "items": []},
            headers=headers,
        ) as answer:
            answer.raise_for_status()
            return int((await answer.json())["id"])


def seed(url: str, dataset_id: int, count: int) -> int:
    """Tasks with Label Studio ids 1..count; answers labelhub id - ls id."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SEED_SQL, {"dataset": dataset_id, "count": count})
        connection.execute("VACUUM ANALYZE tasks")
        offsets = connection.execute(
            "SELECT DISTINCT id - ls_task_id FROM tasks"
        ).fetchall()
    if len(offsets) != 1:
        raise RuntimeError("seeded ids are not contiguous")
    return int(offsets[0][0])


def verify(url: str, sent: list[Sent], tasks: int) -> list[str]:
    """What the index gets wrong about the events sent; empty when nothing."""
    expected: dict[int, list] = {}
    for batch in sent:
        for item, acknowledged in batch.events(tasks):
            expected.setdefault(item.annotation_id, []).append((item, acknowledged))
    with psycopg.connect(url) as connection:
        stored = {
            ls_id: (label, updated_at, task_id)
            for ls_id, label, updated_at, task_id in connection.execute(
                "SELECT ls_annotation_id, label, ls_updated_at, task_id "
                "FROM annotations WHERE NOT deleted"
            )
        }
        derived = dict(
            connection.execute(
                "SELECT DISTINCT ON (task_id) task_id, label FROM annotations "
                "WHERE NOT deleted AND NOT was_cancelled AND task_id IS NOT NULL "
                "ORDER BY task_id, ls_updated_at DESC NULLS LAST, "
                "ls_annotation_id DESC"
            ).fetchall()
        )
        labels = {
            task_id: (label, status)
            for task_id, label, status in connection.execute(
                "SELECT id, label, status FROM tasks"
            )
        }
    problems = _annotation_problems(expected, stored)
    for task_id, (label, status) in labels.items():
        wanted = (
            (derived[task_id], "labeled") if task_id in derived else (None, "imported")
        )
        if (label, status) != wanted:
            problems.append(f"task {task_id}: {(label, status)} != {wanted}")
    return problems


def _annotation_problems(expected: dict, stored: dict) -> list[str]:
    problems = []
    for annotation_id, events in expected.items():
        acknowledged = [item for item, ok in events if ok]
        row = stored.get(annotation_id)
        if row is None:
            if acknowledged:
                problems.append(f"annotation {annotation_id}: acknowledged, missing")
            continue
        label, updated_at, task_id = row
        micros = int(updated_at.timestamp()) * 1_000_000 + updated_at.microsecond
        match = [item for item, _ in events if item.updated_us == micros]
        if not match or match[0].label != label or task_id is None:
            problems.append(f"annotation {annotation_id}: stored {row} not sent")
        elif acknowledged and micros < max(item.updated_us for item in acknowledged):
            problems.append(f"annotation {annotation_id}: an acknowledged update lost")
    return problems


def throughput(args, daemon, bare, offset: int) -> tuple[dict, list[Sent]]:
    figures: dict[str, list[LoadFigures]] = {"bare": [], "daemon": []}
    sent: list[Sent] = []
    run = 1
    for round_number in range(args.runs):
        for name, server in (("bare", bare), ("daemon", daemon)):
            result, what = webhook_load.run_wrk(
                server.url,
                run,
                args.tasks,
                offset,
                args.threads,
                args.connections,
                args.duration,
            )
            run += 1
            if name == "daemon":
                sent.append(what)
            figures[name].append(result)
            print(
                f"  wrk round {round_number + 1} {name:6s}: "
                f"{webhook_load.describe(result)}",
                flush=True,
            )
    return figures, sent


def fixed_rate(args, daemon, bare, offset: int) -> tuple[dict, list[Sent]]:
    figures: dict[str, LoadFigures] = {}
    sent: list[Sent] = []
    for run, (name, server) in enumerate((("bare", bare), ("daemon", daemon)), 50):
        result, what = asyncio.run(
            webhook_load.paced(
                server.url, run, args.tasks, offset, RATE_PER_S, args.paced_duration
            )
        )
        if name == "daemon":
            sent.append(what)
        figures[name] = result
        print(
            f"  {RATE_PER_S}/s {name:6s}: {webhook_load.describe(result)} "
            f"{result.detail}",
            flush=True,
        )
    return figures, sent


def report(loads: dict, paced: dict, problems: list[str], hwm_mb: float) -> None:
    for name, runs in loads.items():
        print(common.figure(f"{name} req/s", [r.requests_per_s for r in runs], "", 0))
        print(common.figure(f"{name} p50", [r.p50_ms for r in runs], "ms", 2))
        print(common.figure(f"{name} p99", [r.p99_ms for r in runs], "ms", 2))
    ratio = common.median([r.requests_per_s for r in loads["daemon"]]) / common.median(
        [r.requests_per_s for r in loads["bare"]]
    )
    daemon_paced = paced["daemon"]
    print(f"daemon peak memory (VmHWM): {hwm_mb:.0f} MB")
    print(f"throughput ratio daemon/bare: {ratio:.3f}")
    print(f"target throughput >= 1/3 of bare: {common.verdict(ratio >= RATIO_TARGET)}")
    print(
        f"target p99 < {P99_TARGET_MS:g} ms at {RATE_PER_S}/s: "
        f"{common.verdict(daemon_paced.p99_ms < P99_TARGET_MS)} "
        f"({daemon_paced.p99_ms:.2f} ms, errors {daemon_paced.errors})"
    )
    print(f"target no event lost: {common.verdict(not problems)}")
    for problem in problems[:20]:
        print("  ", problem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="short runs")
    parser.add_argument("--runs", type=int, help="wrk runs per server")
    parser.add_argument("--duration", type=float, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=64, help="wrk conns")
    parser.add_argument("--paced-duration", type=float, help="s at 500/s")
    args = parser.parse_args()
    args.tasks = 10_000 if args.small else 100_000
    args.runs = args.runs or (1 if args.small else 3)
    args.duration = args.duration or (3.0 if args.small else 10.0)
    args.paced_duration = args.paced_duration or (4.0 if args.small else 20.0)

    print(f"machine: {common.machine()}")
    print(
        f"{args.tasks:,} tasks; wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s x {args.runs} per server; "
        f"{RATE_PER_S}/s for {args.paced_duration:g} s"
    )
    bare_argv = [common.PYTHON, str(common.ROOT / "bench/bare_handler.py")]
    with (
        common.database("webhooks") as url,
        common.daemon(url, LS_PROJECT_ID="1") as daemon,
        common.Process(bare_argv, common.daemon_env(url), "/health") as bare,
    ):
        offset = seed(url, asyncio.run(make_dataset(daemon.url)), args.tasks)
        loads, sent = throughput(args, daemon, bare, offset)
        paced, more = fixed_rate(args, daemon, bare, offset)
        hwm_mb = daemon.vm_hwm_mb()
        problems = verify(url, sent + more, args.tasks)
        if problems and "--debug" in sys.argv:
            print(daemon.log_tail())
    report(loads, paced, problems, hwm_mb)


if __name__ == "__main__":
    main()
