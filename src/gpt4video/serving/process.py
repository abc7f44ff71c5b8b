"""Run ``gpt4video serve`` as a child process on loopback and wait until it is ready (for tests, benchmarks
and scripts that drive the server from outside, as its users do)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    key: str | None
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"the server did not stop within {timeout} s after SIGTERM:\n{self.log_tail()}")


def start_server(folder: Path, *args: str, key: str | None = None, timeout: float = 900,
                 env: dict[str, str] | None = None) -> ServerProcess:
    """``gpt4video serve --port FREE --storage-dir FOLDER/storage [--api-key KEY] ARGS`` with its log in
    ``folder/serve.log``; returns once /health answers ok (AssertionError with the log's tail if it never does)."""
    port = free_port()
    log = folder / "serve.log"
    command = [sys.executable, "-m", "gpt4video.cli", "serve", "--port", str(port), "--storage-dir",
               str(folder / "storage"), *args]
    if key is not None:
        command += ["--api-key", key]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    server = ServerProcess(f"http://127.0.0.1:{port}", key, process, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"gpt4video serve exited with status {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).json().get("status") == "ok":
                return server
        except (httpx.HTTPError, ValueError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"gpt4video serve was not ready after {timeout} s:\n{server.log_tail()}")
        time.sleep(0.5)
