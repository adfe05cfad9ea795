"""Start a throwaway real Label Studio for end-to-end tests.

Pure standard library, so it can be imported from any test process. Label Studio
is installed once into its own virtualenv under :func:`cache_dir`, a migrated empty
data directory is cached next to it as a template, and every :class:`LabelStudio`
instance runs on a private copy of that template on a free loopback port.

Facts this relies on (measured on Label Studio 1.23.2): the first start on an empty
data directory runs about 400 migrations (~40 s); legacy ``Token`` auth must be
enabled when the organization is first created; Label Studio silently moves to the
next port when its port is busy; it reads ``LABEL_STUDIO_X``, ``HEARTEX_X`` and the
bare ``X`` from the environment, so stray variables are removed before it starts.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

LABEL_STUDIO_VERSION = "1.23.2"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "labelhub-e2e-Passw0rd"
ADMIN_TOKEN = "1abe1d0b0e2e0000000000000000000000c0ffee"

HOST = "127.0.0.1"
HEALTH_POLL_S = 0.2
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 30.0
LOG_TAIL_CHARS = 3000
START_ATTEMPTS = 2

INSTALLED_MARKER = ".installed"
TEMPLATE_MARKER = ".ready"
LOCK_FILE = ".lock"
LOG_FILE = "label-studio.log"
HOME_DIR = "home"
PORT_IN_USE_TEXT = "is in use"

# Variables Label Studio would also read under their bare names, and settings of
# the calling process (virtualenv, proxies, Django) that must not leak into it.
_STRIPPED_NAMES = frozenset(
    {
        "USERNAME",
        "PASSWORD",
        "USER_TOKEN",
        "PORT",
        "HOST",
        "DEBUG",
        "LOG_LEVEL",
        "WEBHOOK_TIMEOUT",
        "BASE_DATA_DIR",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
    }
)
_STRIPPED_PREFIXES = (
    "LABEL_STUDIO_",
    "HEARTEX_",
    "DJANGO_",
    "DATABASE_",
    "POSTGRE",
    "MYSQL_",
)
_PROXY_NAMES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LabelStudioError(RuntimeError):
    """Label Studio could not be installed, started or reached."""


class PortInUseError(LabelStudioError):
    """Label Studio found its port busy and moved to another one."""


def cache_dir() -> Path:
    """Return ``$LABELHUB_CACHE_DIR``, or ``~/.cache/labelhub`` when it is unset."""
    configured = os.environ.get("LABELHUB_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "labelhub"


def venv_path() -> Path:
    """Return where the pinned Label Studio virtualenv lives (or will live)."""
    return cache_dir() / f"label-studio-{LABEL_STUDIO_VERSION}"


def template_path() -> Path:
    """Return where the migrated empty data directory lives (or will live)."""
    return cache_dir() / f"label-studio-{LABEL_STUDIO_VERSION}-template"


@contextmanager
def _cache_lock() -> Iterator[None]:
    """Hold an exclusive lock on the cache dir, shared by all test processes."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_installed() -> Path:
    """Install ``label-studio`` (pinned) into its own cached virtualenv.

    Safe to call from parallel processes; returns the virtualenv path.
    """
    venv = venv_path()
    if not (venv / INSTALLED_MARKER).exists():
        with _cache_lock():
            _install_locked(venv)
    return venv


def _install_locked(venv: Path) -> None:
    """Create the virtualenv and install Label Studio unless already done."""
    if (venv / INSTALLED_MARKER).exists():
        return
    if venv.exists():
        shutil.rmtree(venv)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"label-studio=={LABEL_STUDIO_VERSION}"], check=True)
    (venv / INSTALLED_MARKER).write_text(LABEL_STUDIO_VERSION + "\n")


def ensure_template() -> Path:
    """Create (once) a migrated, empty data directory with the admin user.

    The admin has the legacy token :data:`ADMIN_TOKEN`, and legacy tokens are
    enabled for the organization. Returns the template path.
    """
    template = template_path()
    if not (template / TEMPLATE_MARKER).exists():
        with _cache_lock():
            _install_locked(venv_path())
            _build_template_locked(template)
    return template


def _build_template_locked(template: Path) -> None:
    """Start Label Studio once on an empty directory, then keep it as template."""
    if (template / TEMPLATE_MARKER).exists():
        return
    staging = Path(tempfile.mkdtemp(prefix=".template-", dir=cache_dir()))
    started_s = time.monotonic()
    try:
        process, _ = _start_server(venv_path(), staging, {})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _terminate(process)
    shutil.rmtree(staging / HOME_DIR, ignore_errors=True)
    (staging / LOG_FILE).unlink(missing_ok=True)
    if template.exists():
        shutil.rmtree(template)
    staging.rename(template)
    elapsed_s = time.monotonic() - started_s
    (template / TEMPLATE_MARKER).write_text(f"built in {elapsed_s:.1f} s\n")


def _free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _is_stray(name: str) -> bool:
    """Tell whether an inherited variable must not reach Label Studio."""
    return (
        name in _STRIPPED_NAMES
        or name.startswith(_STRIPPED_PREFIXES)
        or name.lower() in _PROXY_NAMES
    )


def _server_env(data_dir: Path, extra_env: Mapping[str, str]) -> dict[str, str]:
    """Build Label Studio's environment: clean, offline, SQLite, known admin."""
    env = {name: value for name, value in os.environ.items() if not _is_stray(name)}
    env.update(
        {
            "HOME": str(data_dir / HOME_DIR),
            "PYTHONUNBUFFERED": "1",
            "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
            "LABEL_STUDIO_PASSWORD": ADMIN_PASSWORD,
            "LABEL_STUDIO_USER_TOKEN": ADMIN_TOKEN,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DJANGO_DB": "sqlite",
            "LABEL_STUDIO_SSRF_PROTECTION_ENABLED": "false",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }
    )
    env.update(extra_env)
    return env


def _spawn(
    venv: Path, data_dir: Path, port: int, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``label-studio start`` in its own process group, logging to a new file."""
    (data_dir / HOME_DIR).mkdir(exist_ok=True)
    command = [
        str(venv / "bin" / "label-studio"),
        "start",
        "--no-browser",
        "--data-dir",
        str(data_dir),
        "--internal-host",
        HOST,
        "-p",
        str(port),
        "--enable-legacy-api-token",
    ]
    with open(data_dir / LOG_FILE, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=data_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _log_tail(log_path: Path) -> str:
    """Return the end of a log file, or an empty string when there is none."""
    try:
        return log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except FileNotFoundError:
        return ""


def _health_ok(port: int) -> bool:
    """Tell whether ``GET /health`` on the port answers 200."""
    try:
        with _OPENER.open(f"http://{HOST}:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Wait until this process serves ``/health`` on exactly ``port``."""
    own_banner = f"development server at http://{HOST}:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        log = _log_tail(log_path)
        if PORT_IN_USE_TEXT in log:
            raise PortInUseError(f"port {port} was busy:\n{log}")
        if process.poll() is not None:
            raise LabelStudioError(f"exited with {process.returncode}:\n{log}")
        if own_banner in log and _health_ok(port):
            return
        time.sleep(HEALTH_POLL_S)
    raise LabelStudioError(f"no /health on port {port} after {START_TIMEOUT_S} s")


def _start_server(
    venv: Path, data_dir: Path, extra_env: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start Label Studio on a free port, retrying once if the port was taken."""
    env = _server_env(data_dir, extra_env)
    for attempt in range(START_ATTEMPTS):
        port = _free_port()
        process = _spawn(venv, data_dir, port, env)
        try:
            _wait_ready(process, port, data_dir / LOG_FILE)
            return process, port
        except PortInUseError:
            _terminate(process)
            if attempt + 1 == START_ATTEMPTS:
                raise
        except BaseException:
            _terminate(process)
            raise
    raise AssertionError("unreachable")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


class LabelStudio:
    """A private Label Studio server on a copy of the cached template.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. A still
    running instance is stopped at interpreter exit.
    """

    def __init__(
        self,
        *,
        webhook_timeout_s: float | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """Configure the server; nothing is started until :meth:`start`."""
        self._extra_env = dict(extra_env or {})
        if webhook_timeout_s is not None:
            self._extra_env["LABEL_STUDIO_WEBHOOK_TIMEOUT"] = str(webhook_timeout_s)
        self._process: subprocess.Popen[bytes] | None = None
        self.token = ADMIN_TOKEN
        self.port = 0
        self.data_dir = Path()

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:<port>`` of the running server."""
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the file that receives the server's stdout and stderr."""
        return self.data_dir / LOG_FILE

    def start(self) -> LabelStudio:
        """Copy the template into a temporary dir and start the server on it."""
        if self._process is not None:
            raise LabelStudioError("already started")
        template = ensure_template()
        self.data_dir = Path(tempfile.mkdtemp(prefix="labelhub-ls-"))
        ignore = shutil.ignore_patterns(TEMPLATE_MARKER)
        shutil.copytree(template, self.data_dir, ignore=ignore, dirs_exist_ok=True)
        try:
            self._process, self.port = _start_server(
                venv_path(), self.data_dir, self._extra_env
            )
        except BaseException:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        """Stop the server's process group and remove its data dir. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        _terminate(process)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LabelStudio:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def api(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        query: Mapping[str, object] | None = None,
    ) -> tuple[int, Any]:
        """Call the admin API with the legacy token; see :func:`api`."""
        return api(self.base_url, self.token, method, path, json_body, query)


def api(
    base_url: str,
    token: str,
    method: str,
    path: str,
    json_body: Any = None,
    query: Mapping[str, object] | None = None,
    *,
    scheme: str = "Token",
) -> tuple[int, Any]:
    """Send one JSON request with ``Authorization: <scheme> <token>``.

    Returns the HTTP status and the decoded JSON body (the raw text when it is not
    JSON, ``None`` when empty). HTTP errors are returned, not raised.
    """
    url = base_url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return _send(method, url, json_body, {"Authorization": f"{scheme} {token}"})


def _send(
    method: str, url: str, json_body: Any, headers: Mapping[str, str]
) -> tuple[int, Any]:
    """Send one request; return the status and decoded body, also on errors."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    data = None if json_body is None else json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, method=method.upper())
    for name, value in headers.items():
        request.add_header(name, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(body: bytes) -> Any:
    """Decode a response body as JSON, falling back to text."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _expect(status: int, body: Any, expected: int, what: str) -> Any:
    """Return ``body`` if ``status`` is ``expected``, else raise with details."""
    if status != expected:
        raise LabelStudioError(f"{what}: HTTP {status}: {body!r}")
    return body


def create_project(base_url: str, token: str, title: str, label_config: str) -> int:
    """Create a project (title of at least 3 characters) and return its id."""
    body = {"title": title, "label_config": label_config}
    status, answer = api(base_url, token, "POST", "/api/projects", body)
    return int(_expect(status, answer, 201, "create project")["id"])


def create_personal_access_token(base_url: str, token: str) -> str:
    """Create the user's personal access token (a refresh JWT) via the legacy token.

    Label Studio allows one per user: a second call answers 409.
    """
    status, answer = api(base_url, token, "POST", "/api/token/")
    return str(_expect(status, answer, 201, "create personal access token")["token"])


def refresh_access_token(base_url: str, personal_access_token: str) -> str:
    """Exchange a personal access token for a short-lived (300 s) access token."""
    url = base_url.rstrip("/") + "/api/token/refresh/"
    body = {"refresh": personal_access_token}
    status, answer = _send("POST", url, body, {})
    return str(_expect(status, answer, 200, "refresh access token")["access"])
