"""The test suite's fake Label Studio as a process of its own, for benchmarks.

Creates one project holding `--tasks` tasks whose data and meta carry
labelhub's task ids `--first-id`, `--first-id`+1, ... (as labelhub's import
makes them), annotates every `--annotate-every`-th task with OK or NG, prints
`READY <url> <project id>` and serves until SIGTERM.

    .venv/bin/python bench/fake_studio_server.py --tasks 100000 --first-id 1
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import common

sys.path.insert(0, str(common.ROOT))
from tests.fake_studio import FakeStudio


def fill(fake: FakeStudio, tasks: int, first_id: int, every: int) -> int:
    project_id = fake.project("bench")
    datas = [
        {
            "text": f"Seeded inspection note {index}",
            "labelhub_task_id": first_id + index,
        }
        for index in range(tasks)
    ]
    metas = [{"labelhub_task_id": first_id + index} for index in range(tasks)]
    ls_ids = fake.add_tasks(project_id, datas, metas)
    for position, ls_id in enumerate(ls_ids):
        if position % every == 0:
            fake.annotate(ls_id, "OK" if position % 2 == 0 else "NG")
    return project_id


async def serve(args: argparse.Namespace) -> None:
    fake = FakeStudio()
    project_id = fill(fake, args.tasks, args.first_id, args.annotate_every)
    await fake.start()
    print(f"READY {fake.url} {project_id}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--first-id", type=int, default=1)
    parser.add_argument("--annotate-every", type=int, default=3)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
