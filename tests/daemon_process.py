"""A real labelhub daemon in a subprocess, for tests that drive it from outside."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """`labelhub serve` on a free loopback port; `stop()` sends SIGTERM."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "labelhub.log"
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(workdir),
            "DATABASE_URL": f"sqlite:///{workdir}/labelhub.db",
            "JWT_SECRET": "daemon-test-" + "s" * 60,
            "BCRYPT_ROUNDS": "4",
            "RECONCILE_INTERVAL_S": "0",
            "LABELHUB_LOG_FORMAT": "json",
            **env,
        }
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Daemon:
        command = [
            sys.executable,
            "-m",
            "labelhub.cli",
            "serve",
            "--port",
            str(self.port),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"labelhub exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"labelhub did not answer /health:\n{self.log_tail()}")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return (
            self.log_path.read_text(errors="replace")[-chars:]
            if self.log_path.exists()
            else ""
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One JSON request; the status and the decoded answer, errors included."""
        status, raw = self._send(method, path, body, token, headers)
        return status, json.loads(raw) if raw else None

    def call_text(self, method: str, path: str) -> tuple[int, str]:
        status, raw = self._send(method, path, None, None, None)
        return status, raw.decode()

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        token: str | None,
        headers: dict[str, str] | None,
    ) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def login(self, username: str, password: str) -> str:
        status, body = self.call(
            "POST", "/auth/login", {"username": username, "password": password}
        )
        if status != 200:
            raise RuntimeError(f"login as {username} failed: {status} {body}")
        return str(body["access_token"])
