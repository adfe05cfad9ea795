"""The daemon as a process: serves with nothing configured, stops gracefully."""

from __future__ import annotations

import json
import signal
import threading
import time

from tests.daemon_process import Daemon


def test_nothing_configured_serves_health_on_sqlite_and_stops_on_sigterm(tmp_path):
    daemon = Daemon(tmp_path)
    daemon.env.pop("DATABASE_URL")

    daemon.start()
    status, body = daemon.call("GET", "/health")
    code = daemon.stop()

    assert (status, body) == (200, {"status": "ok"})
    assert code == 0
    assert (tmp_path / "labelhub.db").exists()
    events = [
        json.loads(line)["event"] for line in daemon.log_tail(100_000).splitlines()
    ]
    assert "daemon_starting" in events
    assert events[-1] == "daemon_stopped"


def test_a_request_in_flight_finishes_before_the_daemon_stops(tmp_path):
    daemon = Daemon(tmp_path, BCRYPT_ROUNDS="14").start("--demo")
    answers = []

    def log_in():  # a bcrypt check at cost 14 takes about a second
        answers.append(
            daemon.call(
                "POST", "/auth/login", {"username": "admin", "password": "admin123"}
            )
        )

    worker = threading.Thread(target=log_in)
    worker.start()
    time.sleep(0.3)
    daemon.process.send_signal(signal.SIGTERM)
    worker.join(timeout=30)
    code = daemon.process.wait(timeout=30)

    assert answers
    assert answers[0][0] == 200
    assert code == 0


def test_the_start_up_line_shows_settings_without_secrets(tmp_path):
    daemon = Daemon(tmp_path, LS_API_TOKEN="very-secret-token", WEBHOOK_SECRET="w" * 40)

    daemon.start()
    daemon.stop()

    log = daemon.log_tail(100_000)
    start = next(
        json.loads(line) for line in log.splitlines() if '"daemon_starting"' in line
    )
    assert (start["ls_api_token"], start["webhook_secret"]) == (True, True)
    assert start["postgres_password"] is False
    assert "very-secret-token" not in log
    assert "w" * 40 not in log
    assert start["database"].startswith("sqlite+aiosqlite:///")
