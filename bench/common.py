"""Shared plumbing for the benchmarks: databases, the daemon process, figures.

Every benchmark creates its own PostgreSQL database named
`labelhub_bench_<something>` on the server in BENCH_PG_SERVER (default: the
local one) and drops it afterwards; no other database is touched. The daemon
under test runs as a real process (`python -m labelhub.cli serve`), and its
peak memory is read from /proc/<pid>/status (VmHWM).
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_SERVER = os.environ.get(
    "BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)
JWT_SECRET = "bench-jwt-secret-" + "j" * 47  # 64 characters
WEBHOOK_SECRET = "bench-webhook-secret-" + "w" * 27
ADMIN = ("admin", "admin123")
START_TIMEOUT_S = 60.0

# Keep the benchmarked processes free of a developer's settings.
_ENV_PREFIXES = ("LABELHUB_", "LS_", "POSTGRES_", "RECONCILE_", "JOB_", "WEBHOOK_")


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    pg = row[0] if row else "?"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"PostgreSQL {pg}, {platform.system()} {platform.release()}; {load()}"
    )


def load() -> str:
    """The load average, to tell a quiet machine from a busy one."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def pg_url(name: str) -> str:
    return PG_SERVER.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def database(suffix: str) -> Iterator[str]:
    """A fresh, migrated `labelhub_bench_<suffix>` database, dropped afterwards."""
    name = f"labelhub_bench_{suffix}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_url(name)
    try:
        subprocess.run(
            [PYTHON, "-m", "labelhub.cli", "migrate"],
            env=daemon_env(url),
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        yield url
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def daemon_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_ENV_PREFIXES) and name != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "JWT_SECRET": JWT_SECRET,
            "BCRYPT_ROUNDS": "4",
            "LABELHUB_DEMO": "1",
            "RECONCILE_INTERVAL_S": "0",
            "LABELHUB_LOG_LEVEL": "info",
            "LABELHUB_LOG_FORMAT": "json",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def proc_status_mb(pid: int, field: str) -> float:
    """A memory figure (VmHWM, VmRSS) of a process from /proc, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as answer,  # noqa: S310
        ):
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


class Process:
    """A server process on a free port, stopped with SIGTERM on exit."""

    def __init__(self, argv: list[str], env: dict[str, str], health: str) -> None:
        self.port = free_port()
        self.argv = [*argv, "--port", str(self.port)]
        self.env = env
        self.health = health
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open)
            prefix="labelhub-bench-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def vm_hwm_mb(self) -> float:
        return proc_status_mb(self.pid, "VmHWM")

    def vm_rss_mb(self) -> float:
        return proc_status_mb(self.pid, "VmRSS")

    def __enter__(self) -> Process:
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=self.log, stderr=self.log
        )
        try:
            wait_http(self.url + self.health, START_TIMEOUT_S, self.process)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-chars:]


def daemon(database_url: str, **extra_env: str) -> Process:
    """The labelhub daemon as a process (`serve --no-migrate`)."""
    return Process(
        [PYTHON, "-m", "labelhub.cli", "serve", "--no-migrate"],
        daemon_env(database_url, **extra_env),
        "/health",
    )


async def login(http: Any, base_url: str, user: tuple[str, str] = ADMIN) -> dict:
    """Authorization headers for `user` on the daemon at `base_url`."""
    username, password = user
    async with http.post(
        base_url + "/auth/login", json={"username": username, "password": password}
    ) as answer:
        answer.raise_for_status()
        token = (await answer.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def figure(name: str, values: list[float], unit: str, digits: int = 1) -> str:
    """`name: median X unit (runs: a, b, c)` for the report."""
    runs = ", ".join(f"{value:.{digits}f}" for value in values)
    return f"{name}: median {median(values):.{digits}f} {unit} (runs: {runs})"


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"
