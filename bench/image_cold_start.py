"""Cold start inside the image: process start to the first answer, for llmconfig-server (as the
image's entrypoint runs it: the installed console script, no editable-install finder) and for
two floors started the same way with the same Python: bench/bare_server.py (`make bench`'s
floor: one method on an empty message) and bench/bare_health_server.py (grpc.health.v1 only,
so the floor answers the same question). `deploy/image.sh cold-start` (`make image-bench`) runs
this inside the container with bench/ mounted read-only; it is not part of `make test`.

  python /bench/image_cold_start.py [--rounds N] [--importtime]

Prints the median of N rounds for each (the servers take turns in a shuffled order each round,
after one discarded warm-up round), the ratios, and with --importtime what one
`python -X importtime` start of llmconfig-server imports before it answers SERVING that the
bare+health floor does not, by package, with who imports it.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

HERE = Path(__file__).resolve().parent
HEALTH = "/grpc.health.v1.Health/Check"
SERVING = health_pb2.HealthCheckResponse.SERVING
# Servers on core 0, this client on core 1 (as `make bench` does), when there are two cores.
SERVER_CPUS = {0} if (os.cpu_count() or 1) >= 2 else None
CLIENT_CPUS = {1} if (os.cpu_count() or 1) >= 2 else None


def _pin_server() -> None:
    if SERVER_CPUS:
        os.sched_setaffinity(0, SERVER_CPUS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_script() -> str:
    found = shutil.which("llmconfig-server")
    if found is None:
        sys.exit("image_cold_start: llmconfig-server is not on PATH (run it inside the image)")
    return found


def commands(port: int) -> dict[str, tuple[list[str], str]]:
    """name -> (argv, method asked until it answers)."""
    return {
        "llmconfig": ([_server_script(), "--listen", f"127.0.0.1:{port}",
                       "--log-level", "warning"], HEALTH),
        "bare": ([sys.executable, str(HERE / "bare_server.py"), str(port)],
                 "/bench.v1.Bare/Call"),
        "bare+health": ([sys.executable, str(HERE / "bare_health_server.py"), str(port)],
                        HEALTH),
    }


def _ask_until_answered(port: int, method: str, began: float) -> float:
    """Seconds from `began` to the first answer (SERVING, for a health check)."""
    options = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
               ("grpc.max_reconnect_backoff_ms", 20)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        call = channel.unary_unary(method, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        deadline = began + 30
        while True:
            answer = call(b"", timeout=max(0.1, deadline - time.perf_counter()),
                          wait_for_ready=True)
            if method != HEALTH or health_pb2.HealthCheckResponse.FromString(
                    answer).status == SERVING:
                return time.perf_counter() - began
            time.sleep(0.002)


def time_to_answer(name: str) -> float:
    port = _free_port()
    argv, method = commands(port)[name]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, cwd="/", preexec_fn=_pin_server)
    try:
        return _ask_until_answered(port, method, began)
    finally:
        proc.terminate()
        proc.wait()


def _python_floor(code: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, preexec_fn=_pin_server)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
Row = tuple[int, int, int, str]  # own µs, cumulative µs, nesting level, module


def _imports_before_answer(name: str) -> tuple[list[Row], float]:
    """One start of `name` under -X importtime: the imports that finished before it answered,
    and the time to that answer (with importtime's own overhead)."""
    port = _free_port()
    argv, method = commands(port)[name]
    if argv[0] != sys.executable:
        argv = [sys.executable, *argv]  # the console script, run by the same Python
    proc = subprocess.Popen([argv[0], "-X", "importtime", *argv[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, cwd="/", preexec_fn=_pin_server)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        elapsed = _ask_until_answered(port, method, time.perf_counter())
        before_answer = len(lines)
    finally:
        proc.terminate()
        proc.wait()
        reader.join(5)
    rows = [(int(m[1]), int(m[2]), (len(m[3]) - 1) // 2, m[4])
            for line in lines[:before_answer] if (m := _IMPORT_LINE.match(line))]
    return rows, elapsed


def _importer_chain(rows: list[Row], index: int) -> list[str]:
    """Who imported rows[index]: importtime prints a module after everything it imports, one
    level deeper, so its importer is the next row one level up."""
    chain, level = [rows[index][3]], rows[index][2]
    for _own, _cumulative, depth, name in rows[index + 1:]:
        if depth < level:
            chain.append(name)
            level = depth
    return chain


def _owner(rows: list[Row], index: int) -> str:
    """The package a module is imported for: itself unless it is the standard library's, else
    the nearest importer that is not (the script itself when there is none)."""
    for name in _importer_chain(rows, index):
        top = name.split(".")[0]
        if top not in sys.stdlib_module_names:
            return "google.protobuf" if top == "google" else top
    return "(the standard library, for the script)"


def importtime(top: int) -> None:
    """What llmconfig-server imports before SERVING that the health floor does not."""
    ours, elapsed = _imports_before_answer("llmconfig")
    floor, _ = _imports_before_answer("bare+health")
    in_floor = {row[3] for row in floor}
    extra = [i for i, row in enumerate(ours) if row[3] not in in_floor]
    print(f"\n-X importtime, one start each ({elapsed * 1e3:.0f} ms to SERVING with importtime "
          f"on): llmconfig-server imports {len(ours)} modules ({sum(r[0] for r in ours) / 1e3:.0f}"
          f" ms) before SERVING, the bare+health floor {len(floor)} "
          f"({sum(r[0] for r in floor) / 1e3:.0f} ms); the {len(extra)} extra ones take "
          f"{sum(ours[i][0] for i in extra) / 1e3:.0f} ms, by the package they are imported for "
          f"(standard-library modules counted with the package that imports them):")
    by_owner: dict[str, list[int]] = {}
    for i in extra:
        by_owner.setdefault(_owner(ours, i), []).append(i)
    ranked = sorted(by_owner.items(), key=lambda item: -sum(ours[i][0] for i in item[1]))
    for owner, indexes in ranked[:top]:
        heaviest = sorted(indexes, key=lambda i: -ours[i][0])[:4]
        outermost = min((i for i in indexes if ours[i][3].split(".")[0] == owner.split(".")[0]),
                        key=lambda i: ours[i][2], default=None)
        via = ""
        if outermost is not None and len(chain := _importer_chain(ours, outermost)) > 1:
            via = f"; imported by {chain[1]}"
        print(f"  {sum(ours[i][0] for i in indexes) / 1e3:6.1f} ms  {owner} ({len(indexes)} "
              f"modules{via}; heaviest: "
              + ", ".join(f"{ours[i][3]} {ours[i][0] / 1e3:.1f}" for i in heaviest) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)
    names = list(commands(0))
    for name in names:  # warm-up: page cache, and a check that each one starts at all
        time_to_answer(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        random.shuffle(names)
        for name in names:
            times[name].append(time_to_answer(name))
    ms = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    print(f"cold start in the image, process start -> first answer, median of {args.rounds}:")
    for name, label in (("llmconfig", "llmconfig-server (health SERVING)"),
                        ("bare", "bare grpc.aio (empty method)"),
                        ("bare+health", "bare grpc.aio + grpc.health.v1 (SERVING)")):
        spread = f"{min(times[name]) * 1e3:.0f}-{max(times[name]) * 1e3:.0f}"
        print(f"  {label:44s} {ms[name]:6.0f} ms  (range {spread})")
    print(f"  ratio llmconfig / bare:        {ms['llmconfig'] / ms['bare']:.2f}  (target <= 1.3)")
    print(f"  ratio llmconfig / bare+health: {ms['llmconfig'] / ms['bare+health']:.2f}")
    floor_rounds = max(5, args.rounds // 2)
    print(f"  for scale: python -c pass {_python_floor('pass', floor_rounds) * 1e3:.0f} ms, "
          f"python -c 'import grpc' {_python_floor('import grpc', floor_rounds) * 1e3:.0f} ms")
    if args.importtime:
        importtime(args.top)


if __name__ == "__main__":
    main()
