"""Reconciliation speed: full passes against a fake Label Studio, and full
against incremental on a real one.

1. Fake: the test suite's fake Label Studio (answers at once from memory)
   runs in a process of its own (bench/fake_studio_server.py) with a project
   of 10,000 and then 100,000 tasks, a third of them annotated. The index is
   seeded with the matching items, not yet linked. The routine
   `labelhub.sync.reconcile.reconcile(full=True)` runs in a worker process:
   a first pass that links every task and creates every annotation, then
   three passes with nothing to repair. Reported: tasks/s of each pass, and
   the worker's memory growth (VmHWM after the passes minus VmRSS before).
2. Real: a real Label Studio 1.23.2 with a project of 10,000 tasks imported
   with labelhub's ids, 100 of them annotated, then (after a quiet spell
   longer than RECONCILE_OVERLAP_S, 120 s by default) one more annotation,
   so that an incremental run has only that one task in its window; after a
   first full pass, full and incremental runs alternate, three of each.

Targets: a full pass over 100,000 tasks >= 20,000 tasks/s with memory growth
< 100 MB, about the same at 10,000; incremental >= 10x faster than full.

    .venv/bin/python bench/reconcile.py            # 10k and 100k fake; real 10k
    .venv/bin/python bench/reconcile.py --small    # 2k and 10k fake; real 1k
    .venv/bin/python bench/reconcile.py --skip-real
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time

import aiohttp
import common
import psycopg

sys.path.insert(0, str(common.ROOT))
from tests.e2e.labelstudio import LabelStudio, create_project

FAKE_TOKEN = "deadbeefcafe0123456789abcdef0123456789ab"
RATE_TARGET = 20_000
GROWTH_TARGET_MB = 100
SPEEDUP_TARGET = 10
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text">'
    '<Choice value="OK"/><Choice value="NG"/></Choices></View>'
)


def seed_index(url: str, project_id: int, count: int) -> int:
    """A dataset of `count` new items in project `project_id`; the first id."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "INSERT INTO datasets (name, ls_project_id, created_at) "
            "VALUES ('reconcile', %s, now()) RETURNING id",
            (project_id,),
        ).fetchone()
        connection.execute(
            "INSERT INTO tasks (dataset_id, data, origin, status, created_at, "
            "updated_at) SELECT %s, jsonb_build_object('text', "
            "'Seeded inspection note ' || (i - 1)), 'labelhub', 'new', now(), now() "
            "FROM generate_series(1, %s) AS i",
            (row[0] if row else None, count),
        )
        connection.execute("VACUUM ANALYZE tasks")
        first = connection.execute("SELECT min(id), max(id) FROM tasks").fetchone()
    if first is None or first[1] - first[0] + 1 != count:
        raise RuntimeError("seeded task ids are not contiguous")
    return int(first[0])


def worker(args: list[str], env: dict[str, str]) -> list[dict]:
    """Run this script in worker mode; the JSON line of each pass."""
    command = [common.PYTHON, __file__, "--worker", *args]
    output = subprocess.run(
        command, env=env, check=True, capture_output=True, text=True
    ).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def fake_size(count: int, passes: int) -> list[dict]:
    with common.database(f"reconcile_{count}") as url:
        first_id = seed_index(url, 1, count)
        fake = subprocess.Popen(
            [
                common.PYTHON,
                str(common.ROOT / "bench/fake_studio_server.py"),
                "--tasks",
                str(count),
                "--first-id",
                str(first_id),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert fake.stdout is not None
            _, fake_url, project = fake.stdout.readline().split()
            if project != "1":
                raise RuntimeError(f"the fake made project {project}, not 1")
            return worker(
                [url, fake_url, FAKE_TOKEN, "1", f"full*{passes + 1}"],
                common.daemon_env(url),
            )
        finally:
            fake.terminate()
            fake.wait()


def _choice(label: str) -> list[dict]:
    return [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


async def import_direct(
    http: aiohttp.ClientSession,
    base_url: str,
    project_id: int,
    first_id: int,
    count: int,
) -> list[int]:
    """Tasks as labelhub's import makes them (its ids in data and meta)."""
    ls_ids: list[int] = []
    for start in range(0, count, 1000):
        batch = [
            {
                "data": {
                    "text": f"Seeded inspection note {index}",
                    "labelhub_task_id": first_id + index,
                },
                "meta": {"labelhub_task_id": first_id + index},
            }
            for index in range(start, min(count, start + 1000))
        ]
        async with http.post(
            f"{base_url}/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            json=batch,
        ) as answer:
            ls_ids += (await answer.json())["task_ids"]
    return ls_ids


async def annotate(http: aiohttp.ClientSession, base_url: str, ls_ids, label: str):
    for ls_id in ls_ids:
        async with http.post(
            f"{base_url}/api/tasks/{ls_id}/annotations", json={"result": _choice(label)}
        ) as answer:
            answer.raise_for_status()


async def prepare_studio(
    studio: LabelStudio, project_id: int, first_id: int, count: int, quiet_s: int
) -> None:
    """Import, annotate 100 tasks, stay quiet `quiet_s`, then annotate one more.

    An incremental run re-reads what changed within RECONCILE_OVERLAP_S before
    the newest change it saw; the quiet spell leaves only the last annotation
    in that window, as in a project that has been idle for a while.
    """
    headers = {"Authorization": f"Token {studio.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        ls_ids = await import_direct(http, studio.base_url, project_id, first_id, count)
        await annotate(http, studio.base_url, ls_ids[:: max(1, count // 100)], "OK")
        await asyncio.sleep(quiet_s)
        await annotate(http, studio.base_url, ls_ids[1:2], "NG")


def real_side(count: int, runs: int, overlap_s: int) -> list[dict]:
    with LabelStudio() as studio, common.database("reconcile_real") as url:
        project_id = create_project(
            studio.base_url, studio.token, "reconcile-bench", LABEL_CONFIG
        )
        first_id = seed_index(url, project_id, count)
        asyncio.run(prepare_studio(studio, project_id, first_id, count, overlap_s + 2))
        plan = "full*1," + ",".join(["full*1,incremental*1"] * runs)
        env = common.daemon_env(url, RECONCILE_OVERLAP_S=str(overlap_s))
        return worker([url, studio.base_url, studio.token, str(project_id), plan], env)


def rss_mb() -> tuple[float, float]:
    pid = os.getpid()
    return common.proc_status_mb(pid, "VmRSS"), common.proc_status_mb(pid, "VmHWM")


async def run_passes(url, studio_url, token, project_id, plan) -> None:
    """Worker: run the plan, e.g. `full*1,incremental*1`."""
    from labelhub.config import load_settings
    from labelhub.store.engine import create_engine, create_sessions
    from labelhub.studio.client import StudioClient
    from labelhub.sync.reconcile import reconcile

    settings = load_settings(ls_base_url=studio_url, ls_api_token=token)
    engine = create_engine(settings.database)
    sessions = create_sessions(engine)
    async with aiohttp.ClientSession() as http:
        studio = StudioClient.create(http, studio_url, token, timeout_s=300)
        gc.collect()
        before_mb, _ = rss_mb()
        for step in plan.split(","):
            mode, times = step.split("*")
            for _ in range(int(times)):
                started = time.perf_counter()
                drift = await reconcile(
                    sessions, studio, settings, int(project_id), full=mode == "full"
                )
                elapsed_s = time.perf_counter() - started
                assert drift is not None
                rss, hwm = rss_mb()
                print(
                    json.dumps(
                        {
                            "mode": drift.mode,
                            "seconds": elapsed_s,
                            "tasks_seen": drift.tasks_seen,
                            "repaired": drift.total_repaired,
                            "rss_before_mb": before_mb,
                            "rss_after_mb": rss,
                            "hwm_after_mb": hwm,
                        }
                    ),
                    flush=True,
                )
    await engine.dispose()


def show_fake(results: dict[int, list[dict]]) -> bool:
    met = True
    for count, passes in results.items():
        first, steady = passes[0], passes[1:]
        rates = [p["tasks_seen"] / p["seconds"] for p in steady]
        growth = max(p["hwm_after_mb"] for p in passes) - first["rss_before_mb"]
        print(
            f"fake, {count:,} tasks: first pass {first['seconds']:.2f} s "
            f"({first['tasks_seen'] / first['seconds']:,.0f} tasks/s, "
            f"{first['repaired']:,} repaired)"
        )
        print("  " + common.figure("full pass, nothing to repair", rates, "tasks/s", 0))
        print(f"  memory growth of the worker: {growth:.1f} MB (VmHWM - VmRSS before)")
        if count == max(results):
            met = common.median(rates) >= RATE_TARGET and growth < GROWTH_TARGET_MB
    return met


def show_real(passes: list[dict]) -> bool:
    full = [p["seconds"] for p in passes[1:] if p["mode"] == "full"]
    incremental = [p["seconds"] for p in passes[1:] if p["mode"] == "incremental"]
    print(f"real, first full pass (links all): {passes[0]['seconds']:.2f} s")
    print("  " + common.figure("full pass", full, "s", 3))
    print("  " + common.figure("incremental, nothing changed", incremental, "s", 3))
    seen = [p["tasks_seen"] for p in passes[1:] if p["mode"] == "incremental"]
    print(f"  tasks seen by the incremental runs: {seen}")
    speedups = [f / i for f, i in zip(full, incremental, strict=True)]
    print("  " + common.figure("speed-up per pair", speedups, "x", 1))
    speedup = common.median(full) / common.median(incremental)
    print(f"  speed-up of medians: {speedup:.1f}x")
    return speedup >= SPEEDUP_TARGET


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="small sizes")
    parser.add_argument("--skip-real", action="store_true", help="fake only")
    parser.add_argument("--skip-fake", action="store_true", help="real only")
    parser.add_argument("--passes", type=int, default=3, help="steady passes")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(run_passes(*args.worker))
        return

    print(f"machine: {common.machine()}")
    sizes = (2_000, 10_000) if args.small else (10_000, 100_000)
    if not args.skip_fake:
        results = {count: fake_size(count, args.passes) for count in sizes}
        met = show_fake(results)
        print(
            f"target >= {RATE_TARGET:,} tasks/s and < {GROWTH_TARGET_MB} MB at "
            f"{sizes[-1]:,} tasks: {common.verdict(met)}"
        )
    if not args.skip_real:
        count, overlap_s = (1_000, 2) if args.small else (10_000, 120)
        print(f"real Label Studio, {count:,} tasks, RECONCILE_OVERLAP_S={overlap_s}")
        met = show_real(real_side(count, args.passes, overlap_s))
        print(f"target incremental >= {SPEEDUP_TARGET}x faster: {common.verdict(met)}")


if __name__ == "__main__":
    main()
