"""Load for the webhook benchmark: the events, wrk with Lua, a paced client.

Every event is a pure function of (run, stream, k): stream is a wrk thread
(or the paced client), k its k-th request. In each group of four, three
ANNOTATION_CREATED events create new annotations and the fourth is an
ANNOTATION_UPDATED of the group's first annotation, one label flipped and a
later updated_at. Python and the generated Lua compute the same events, so
the benchmark knows exactly what was sent and can check the index for it.
Bodies are the captured ANNOTATION_CREATED delivery with those fields changed.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import common

FIXTURE = common.ROOT / "tests/fixtures/webhooks/ANNOTATION_CREATED.json"
HOOK_PATH = "/webhooks/label-studio"
STREAM_IDS = 10_000_000  # annotation ids per (run, stream)
EPOCH_US = 1_800_000_000_000_000  # 2027-01-15, later than any capture
EVENT_STEP_US = 1000


@dataclass(frozen=True)
class Event:
    action: str
    annotation_id: int
    ls_task_id: int
    label: str
    created_us: int
    updated_us: int


def event(run: int, stream: int, k: int, tasks: int) -> Event:
    """The k-th event of a stream (must match `_LUA_EVENT`)."""
    group, position = divmod(k, 4)
    created_index = 3 * group + (0 if position == 3 else position)
    annotation_id = (run * 64 + stream) * STREAM_IDS + created_index + 1
    label = "OK" if created_index % 2 == 0 else "NG"
    base_us = EPOCH_US + run * 3_600_000_000 + stream * 60_000_000_000
    created_us = base_us + (k - 3 if position == 3 else k) * EVENT_STEP_US
    if position == 3:
        label = "NG" if label == "OK" else "OK"
    return Event(
        "ANNOTATION_UPDATED" if position == 3 else "ANNOTATION_CREATED",
        annotation_id,
        annotation_id % tasks + 1,
        label,
        created_us,
        base_us + k * EVENT_STEP_US,
    )


def iso(us: int) -> str:
    moment = datetime.fromtimestamp(us // 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}Z"


def template() -> list[str | tuple[str, str]]:
    """The captured body as literal text and (kind, slot) pieces."""
    body = json.loads(FIXTURE.read_text())
    note, task = body["annotation"], body["task"]
    body["action"] = "@@S:ACTION@@"
    note["id"] = "@@N:AID@@"
    note["result"][0]["value"]["choices"] = ["@@S:LABEL@@"]
    note["created_at"] = "@@S:CREATED@@"
    note["updated_at"] = "@@S:UPDATED@@"
    note["task"] = "@@N:TASK@@"
    task["id"] = "@@N:TASK@@"
    task["updated_at"] = "@@S:UPDATED@@"
    task["data"] = {
        "text": "Seeded inspection note @@S:TASK@@",
        "labelhub_task_id": "@@N:OURS@@",
    }
    task["meta"] = {"labelhub_task_id": "@@N:OURS@@"}
    text = json.dumps(body, separators=(",", ":"))
    pieces: list[str | tuple[str, str]] = []
    last = 0
    for found in re.finditer(r'"@@N:(\w+)@@"|@@S:(\w+)@@', text):
        pieces.append(text[last : found.start()])
        pieces.append(
            ("N", found.group(1)) if found.group(1) else ("S", found.group(2))
        )
        last = found.end()
    pieces.append(text[last:])
    return pieces


def body_of(pieces: list, item: Event, task_offset: int) -> bytes:
    values = {
        "ACTION": item.action,
        "AID": item.annotation_id,
        "LABEL": item.label,
        "CREATED": iso(item.created_us),
        "UPDATED": iso(item.updated_us),
        "TASK": item.ls_task_id,
        "OURS": item.ls_task_id + task_offset,
    }
    return "".join(
        piece if isinstance(piece, str) else str(values[piece[1]]) for piece in pieces
    ).encode()


_LUA_EVENT = """
local function event(k)
  local group, position = math.floor(k / 4), k % 4
  local ci = 3 * group + (position == 3 and 0 or position)
  local aid = (RUN * 64 + stream) * STREAM_IDS + ci + 1
  local label = (ci % 2 == 0) and "OK" or "NG"
  local base = EPOCH_US + RUN * 3600000000 + stream * 60000000000
  local created = base + ((position == 3) and (k - 3) or k) * EVENT_STEP_US
  if position == 3 then label = (label == "OK") and "NG" or "OK" end
  local action = (position == 3) and "ANNOTATION_UPDATED" or "ANNOTATION_CREATED"
  return action, aid, aid % TASKS + 1, label, created, base + k * EVENT_STEP_US
end

local function iso(us)
  local seconds = math.floor(us / 1000000)
  return os.date("!%Y-%m-%dT%H:%M:%S", seconds)
    .. string.format(".%06dZ", us - seconds * 1000000)
end
"""

_LUA_DRIVER = """
local threads = {}
function setup(thread)
  thread:set("stream", #threads)
  table.insert(threads, thread)
end

function init(args)
  n, acked, pending = 0, 0, {}
end

function request()
  local k = n
  n = n + 1
  local action, aid, task, label, created, updated = event(k)
  local values = {ACTION = action, AID = string.format("%d", aid),
    LABEL = label, CREATED = iso(created), UPDATED = iso(updated),
    TASK = string.format("%d", task), OURS = string.format("%d", task + OFFSET)}
  local parts = {}
  for i, piece in ipairs(PIECES) do
    parts[i] = SLOT[i] and values[piece] or piece
  end
  pending[k] = true
  return wrk.format("POST", PATH, {["Content-Type"] = "application/json",
    ["X-Webhook-Secret"] = SECRET, ["X-Request-ID"] = stream .. "-" .. k},
    table.concat(parts))
end

function response(status, headers, body)
  local rid = headers["X-Request-ID"] or headers["x-request-id"]
  if status == 200 and rid then
    local k = tonumber(string.match(rid, "-(%d+)$"))
    if pending[k] then pending[k] = nil; acked = acked + 1 end
  end
end

function done(summary, latency, requests)
  local out = io.open(OUTFILE, "w")
  for _, thread in ipairs(threads) do
    out:write(thread:get("stream"), " ", thread:get("n"), " ", thread:get("acked"))
    for k, _ in pairs(thread:get("pending")) do out:write(" ", k) end
    out:write("\\n")
  end
  out:close()
end
"""


def lua_script(run: int, tasks: int, task_offset: int, outfile: str) -> str:
    pieces = template()
    literal = [
        f"[==[{piece}]==]" if isinstance(piece, str) else f'"{piece[1]}"'
        for piece in pieces
    ]
    slots = ["false" if isinstance(piece, str) else "true" for piece in pieces]
    header = (
        f"RUN, TASKS, OFFSET = {run}, {tasks}, {task_offset}\n"
        f"STREAM_IDS, EPOCH_US, EVENT_STEP_US = {STREAM_IDS}, {EPOCH_US}, "
        f"{EVENT_STEP_US}\n"
        f'PATH, SECRET, OUTFILE = "{HOOK_PATH}", "{common.WEBHOOK_SECRET}", '
        f'"{outfile}"\n'
        f"PIECES = {{{', '.join(literal)}}}\n"
        f"SLOT = {{{', '.join(slots)}}}\n"
    )
    return header + _LUA_EVENT + _LUA_DRIVER


@dataclass
class Sent:
    """What one load run sent: per stream, requests made and those unanswered."""

    run: int
    streams: dict[int, tuple[int, set[int]]]

    def events(self, tasks: int) -> list[tuple[Event, bool]]:
        """(event, acknowledged with 200) for every request made."""
        return [
            (event(self.run, stream, k, tasks), k not in unanswered)
            for stream, (made, unanswered) in self.streams.items()
            for k in range(made)
        ]


@dataclass
class LoadFigures:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    detail: str = ""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> LoadFigures:
    def grab(pattern: str, default: str = "0") -> str:
        found = re.search(pattern, output)
        return found.group(1) if found else default

    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(n) for n in socket.groups()) if socket else 0
    errors += int(grab(r"Non-2xx or 3xx responses: (\d+)"))
    return LoadFigures(
        requests_per_s=float(grab(r"Requests/sec:\s+([\d.]+)")),
        p50_ms=_duration_ms(grab(r"\n\s+50%\s+(\S+)", "0ms")),
        p99_ms=_duration_ms(grab(r"\n\s+99%\s+(\S+)", "0ms")),
        requests=int(grab(r"(\d+) requests in")),
        errors=errors,
    )


def run_wrk(
    url: str,
    run: int,
    tasks: int,
    offset: int,
    threads: int,
    connections: int,
    duration_s: float,
) -> tuple[LoadFigures, Sent]:
    with tempfile.TemporaryDirectory(prefix="labelhub-wrk-") as folder:
        outfile = str(Path(folder) / "sent.txt")
        script = Path(folder) / "load.lua"
        script.write_text(lua_script(run, tasks, offset, outfile))
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s:g}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + HOOK_PATH,
        ]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True
        ).stdout
        streams = {}
        for line in Path(outfile).read_text().splitlines():
            stream, made, _acked, *unanswered = (int(word) for word in line.split())
            streams[stream] = (made, set(unanswered))
    return parse_wrk(output), Sent(run, streams)


async def paced(
    url: str, run: int, tasks: int, offset: int, rate_per_s: float, duration_s: float
) -> tuple[LoadFigures, Sent]:
    """Send at a fixed rate; latency counts from each request's scheduled time."""
    pieces = template()
    total = int(rate_per_s * duration_s)
    latencies_ms: list[float] = []
    unanswered: set[int] = set()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Secret": common.WEBHOOK_SECRET,
    }
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(k: int, due: float) -> None:
            body = body_of(pieces, event(run, 0, k, tasks), offset)
            try:
                async with http.post(url + HOOK_PATH, data=body, headers=headers) as a:
                    await a.read()
                    ok = a.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies_ms.append((time.perf_counter() - due) * 1000)
            if not ok:
                unanswered.add(k)

        started = time.perf_counter()
        sending = []
        for k in range(total):
            due = started + k / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(send(k, due)))
        await asyncio.gather(*sending)
        elapsed_s = time.perf_counter() - started
    figures = LoadFigures(
        requests_per_s=total / elapsed_s,
        p50_ms=common.percentile(latencies_ms, 0.50),
        p99_ms=common.percentile(latencies_ms, 0.99),
        requests=total,
        errors=len(unanswered),
        detail=f"max {max(latencies_ms):.1f} ms",
    )
    return figures, Sent(run, {0: (total, unanswered)})


def describe(figures: LoadFigures) -> dict[str, Any]:
    return {
        "req/s": round(figures.requests_per_s),
        "p50 ms": round(figures.p50_ms, 2),
        "p99 ms": round(figures.p99_ms, 2),
        "requests": figures.requests,
        "errors": figures.errors,
    }
