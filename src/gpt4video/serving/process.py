"""Start ``gpt4video serve`` (the shipped smol model) as a subprocess on loopback, for the serving tests."""

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


def start_server(folder: Path, *args: str, key: str | None = None, timeout: float = 300) -> ServerProcess:
    """``gpt4video serve --port FREE [--api-key KEY] ARGS`` with its log in ``folder``; waits for /health."""
    port = free_port()
    log = folder / "serve.log"
    command = [sys.executable, "-m", "gpt4video.cli", "serve", "--port", str(port), "--storage-dir",
               str(folder / "storage"), *args]
    if key is not None:
        command += ["--api-key", key]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
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
