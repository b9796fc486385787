"""Start the servers under test as processes of their own, and read their memory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    target: str

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# With two or more cores, servers run on core 0 and the load client on core 1, so the scheduler
# does not add its own noise to the comparison (the floor and llmconfig are treated alike).
SERVER_CPUS = {0} if (os.cpu_count() or 1) >= 2 else None
CLIENT_CPUS = {1} if (os.cpu_count() or 1) >= 2 else None


def pin_server() -> None:
    if SERVER_CPUS:
        os.sched_setaffinity(0, SERVER_CPUS)


def pin_client() -> None:
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)


def _spawn(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
    environ = {**os.environ, **(env or {})}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=environ, cwd="/", stdin=subprocess.DEVNULL,
                            preexec_fn=pin_server)
    assert proc.stderr is not None
    for line in proc.stderr:
        if match := re.search(r"serving on (\S+)", line):
            # keep draining stderr so the server never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return ServerProcess(proc, match.group(1))
    raise RuntimeError(f"{args} exited with {proc.wait()} before serving")


def llmconfig(env: dict[str, str] | None = None, *args: str,
              listen: str = "127.0.0.1:0") -> ServerProcess:
    # No background model listing: a bench key must never reach a real provider's API.
    return _spawn([sys.executable, "-m", "llmconfig_server", "--listen", listen,
                   "--models-refresh-interval", "0", *args],
                  {"HOME": "/nonexistent", **(env or {})})


ROOT = Path(__file__).resolve().parent.parent
BARE_ENV = {"PYTHONPATH": str(ROOT)}  # `bench` is not installed; it runs from the checkout


def bare(listen: str = "0") -> ServerProcess:
    """The floor, on a TCP port (`0`: any free one) or `unix:PATH`."""
    return _spawn([sys.executable, "-m", "bench.bare_server", listen], BARE_ENV)
