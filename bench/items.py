"""Adding 100,000 items to a dataset through POST /datasets/{id}/items.

Measures the wall time of one JSON Lines upload of 100,000 items (from sending
the request to receiving the answer) against the daemon running as its own
process on PostgreSQL, and the daemon's peak memory (VmHWM) afterwards. Each
run uses a fresh database and a fresh daemon, so every peak is that run's own.

Target: under 5 s, with the daemon's peak memory under 300 MB.

    .venv/bin/python bench/items.py            # 100,000 items, 5 runs
    .venv/bin/python bench/items.py --small    # 10,000 items, 2 runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import common

TARGET_S = 5.0
TARGET_MB = 300.0


def jsonl_items(count: int) -> bytes:
    """`count` distinct items of about 130 bytes each, as JSON Lines."""
    lines = [
        json.dumps(
            {
                "text": f"Inspection note {index}: the weld seam of unit "
                f"{index % 977} shows {'no' if index % 3 else 'a'} hairline crack.",
                "ext_id": f"item-{index:07d}",
            }
        )
        for index in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


async def upload(base_url: str, body: bytes) -> tuple[float, dict]:
    async with aiohttp.ClientSession() as http:
        headers = await common.login(http, base_url)
        async with http.post(
            base_url + "/datasets", json={"name": "bench", "items": []}, headers=headers
        ) as answer:
            answer.raise_for_status()
            dataset_id = (await answer.json())["id"]
        started = time.perf_counter()
        async with http.post(
            f"{base_url}/datasets/{dataset_id}/items",
            data=body,
            headers={**headers, "Content-Type": "application/x-ndjson"},
        ) as answer:
            result = await answer.json()
            elapsed_s = time.perf_counter() - started
            if answer.status != 201:
                raise RuntimeError(f"upload answered {answer.status}: {result}")
    return elapsed_s, result


def one_run(index: int, count: int, body: bytes) -> tuple[float, float, float]:
    with (
        common.database(f"items_{index}") as url,
        common.daemon(url, ITEMS_MAX_COUNT=str(max(count, 200_000))) as daemon,
    ):
        idle_mb = daemon.vm_hwm_mb()
        elapsed_s, result = asyncio.run(upload(daemon.url, body))
        peak_mb = daemon.vm_hwm_mb()
    if result["added"] != count:
        raise RuntimeError(f"added {result['added']} of {count}")
    print(
        f"  run {index + 1}: {elapsed_s:.2f} s, {count / elapsed_s:,.0f} items/s, "
        f"daemon VmHWM {idle_mb:.0f} MB idle -> {peak_mb:.0f} MB",
        flush=True,
    )
    return elapsed_s, peak_mb, idle_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="10,000 items, 2 runs")
    parser.add_argument("--items", type=int, help="items per upload")
    parser.add_argument("--runs", type=int, help="repetitions (median reported)")
    args = parser.parse_args()
    count = args.items or (10_000 if args.small else 100_000)
    runs = args.runs or (2 if args.small else 5)

    body = jsonl_items(count)
    print(f"machine: {common.machine()}")
    print(f"items: {count:,} per upload, {len(body) / 1e6:.1f} MB of JSON Lines")
    results = [one_run(index, count, body) for index in range(runs)]

    times = [elapsed for elapsed, _, _ in results]
    peaks = [peak for _, peak, _ in results]
    print(common.figure("upload time", times, "s", 2))
    print(common.figure("daemon peak memory (VmHWM)", peaks, "MB", 0))
    print(
        common.figure(
            "daemon VmHWM before the upload", [r[2] for r in results], "MB", 0
        )
    )
    met = common.median(times) < TARGET_S and max(peaks) < TARGET_MB
    print(
        f"target: < {TARGET_S:g} s and < {TARGET_MB:g} MB "
        f"(for 100,000 items): {common.verdict(met)}"
    )


if __name__ == "__main__":
    main()
