"""Prefect test helpers: one harness per pytest session, and real servers started/stopped by PID.

    from prefect_fixtures import prefect_harness  # noqa: F401  (then @pytest.mark.usefixtures)

    with PrefectServer(tmp_path / "home") as server:          # `prefect server start` on 127.0.0.1
        env = server.env()                                    # PREFECT_API_URL for clients
        proc = start_process([python, "-m", "flows.serve"], env=env, log=tmp_path / "serve.log")
        ...
        stop_process(proc)

Every process is started in its own session and killed by process group (its children with
it), with bounded waits, so nothing outlives a test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """A temporary Prefect server and database for the whole session; yields its API URL.

    The URL is also exported as PREFECT_API_URL so processes the tests start (Dask workers, CLIs)
    talk to this server instead of each starting a temporary one.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # offline: no telemetry attempts in the log
    try:
        with prefect_test_harness(server_startup_timeout=120):
            url = PREFECT_API_URL.value()
            os.environ["PREFECT_API_URL"] = url
            yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(cmd: list[str], *, env: dict[str, str], log: Path, cwd: str | Path | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session (so its whole group can be killed), output to `log`."""
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of `proc`, SIGKILL it after `timeout` seconds."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200; fail with the log tail when `proc` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not healthy after {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


class PrefectServer:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME; stopped by process group."""

    def __init__(self, home: Path, *, timeout: float = 90.0) -> None:
        self.home = Path(home)
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.timeout = timeout
        self.log = self.home / "server.log"
        self.proc: subprocess.Popen | None = None

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a client of this server (PREFECT_HOME, PREFECT_API_URL, extras)."""
        env = {**os.environ, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": self.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        return {**env, **extra}

    def __enter__(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env()
        env.pop("PREFECT_API_URL")  # the server itself must not point at any API
        self.proc = start_process([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                                  env=env, log=self.log)
        try:
            wait_healthy(f"{self.api_url}/health", self.proc, self.log, self.timeout)
        except BaseException:
            stop_process(self.proc)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
