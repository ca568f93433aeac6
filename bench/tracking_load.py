"""The tracking benchmark's serving and loading: gunicorn on 127.0.0.1, wrk, CPU accounting.

`Server` runs one target under gunicorn with the counting hooks of
bench/tracking_gunicorn.py; `run_wrk` loads it for a fixed time with
bench/tracking_rotate.lua (a new path per request) and returns wrk's own figures;
`Snapshot` and `cpu_shares` say where the machine's CPU went meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far: the machine (busy, total, irq), and every process by pid."""

    busy: float
    total: float
    irq: float
    processes: dict[int, tuple[str, float]]  # pid -> (name, seconds)

    TICK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def take() -> Snapshot:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        processes = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                line = stat.read_text()
                name = line[line.index("(") + 1 : line.rindex(")")]
                after = line[line.rindex(")") + 2 :].split()
                seconds = (int(after[11]) + int(after[12])) / Snapshot.TICK  # utime, stime
                if name == "postgres":  # which database a backend serves: its title says
                    title = Path(stat.parent, "cmdline").read_bytes().replace(b"\0", b" ")
                    name = title.decode(errors="replace").strip()
                processes[int(stat.parent.name)] = (name, seconds)
        return Snapshot(
            busy=(sum(values) - idle) / Snapshot.TICK,
            total=sum(values) / Snapshot.TICK,
            irq=(values[5] + values[6]) / Snapshot.TICK,
            processes=processes,
        )


def cpu_shares(
    before: Snapshot, after: Snapshot, workers: list[int], ours: set[int], database: str, wrk: float
) -> tuple[dict[str, float], str]:
    """Where the machine's CPU went between two snapshots, as shares of all its cores,
    and the busiest processes that were not ours (what may have skewed the figures)."""
    wall = (after.total - before.total) or 1.0
    shares = {"workers": 0.0, "postgres": 0.0, "other": 0.0}
    others: dict[str, float] = {}
    for pid, (name, seconds) in after.processes.items():
        used = seconds - before.processes.get(pid, (name, 0.0))[1]
        if used <= 0 or pid in ours:
            continue
        if pid in workers:
            shares["workers"] += used / wall
        elif name.startswith("postgres") and database in name:
            shares["postgres"] += used / wall
        else:
            shares["other"] += used / wall
            label = "postgres" if name.startswith("postgres") else name.split(" ")[0]
            others[label] = others.get(label, 0.0) + used
    shares["wrk"] = wrk / wall
    shares["kernel"] = (after.irq - before.irq) / wall
    shares["machine"] = (after.busy - before.busy) / wall
    ranked = sorted(others.items(), key=lambda item: -item[1])[:3]
    busiest = ", ".join(f"{name} {used / wall:.0%}" for name, used in ranked if used / wall >= 0.01)
    return shares, busiest


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            line = stat.read_text()
            if int(line[line.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """gunicorn serving one target on 127.0.0.1, its answers counted by the hooks."""

    def __init__(
        self, target: str, worker_class: str, args: argparse.Namespace, env: dict[str, str]
    ):
        self.port = free_port()
        self.counts = Path(tempfile.mkdtemp(prefix="counts-", dir=args.folder))
        command = [
            str(BIN / "gunicorn"),
            "--config",
            str(BENCH / "tracking_gunicorn.py"),
            "--workers",
            str(args.workers),
            "--worker-class",
            worker_class,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--chdir",
            str(BENCH if target == "bare" or args.prototype else ROOT),
        ]
        if worker_class == "gthread":
            command += ["--threads", str(args.threads)]
        if target == "bare":
            command.append("tracking_app:app")
        elif args.prototype:
            command.append("tracking_prototype:app")
            env = {**env, "TRACKING_BENCH_VARIANT": args.prototype}
        else:
            command.append("wsgi:app")
        self.log = args.folder / f"gunicorn-{target}-{worker_class}.log"
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env, "TRACKING_BENCH_COUNTS": str(self.counts)},
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(args.workers)

    def _wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn stopped at start:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                # Any answer will do (a 404 here: not counted with the pixels or clicks);
                # the warm-up then brings every worker up to speed.
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/ready")
                connection.getresponse().read()
                connection.close()
                if len(self.workers()) == workers:
                    return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within 60 s:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> Counter[str]:
        """Stop gracefully (each worker finishes its request) and add up the answers."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        answered: Counter[str] = Counter()
        for found in self.counts.glob("counts-*.json"):
            answered.update(json.loads(found.read_text()))
        return answered


@dataclass
class Load:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu: float  # the load generator's own CPU seconds

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def answered(self) -> int:
        return self.requests - self.status_errors


def run_wrk(
    port: int, paths: Path, start: int, agent: str, seconds: float, connections: int
) -> Load:
    """Load 127.0.0.1:`port` for `seconds`, each request taking the next line of `paths`
    (from line `start` on) with this User-Agent; wrk's own counts and latencies."""
    command = [
        "wrk",
        "--threads",
        "1",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--script",
        str(BENCH / "tracking_rotate.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths),
        str(start),
        agent,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in output.splitlines() if x.startswith("RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{output}")
    found = json.loads(line.removeprefix("RESULT "))
    return Load(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        status_errors=found["status_errors"],
        socket_errors=sum(
            found[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        mean_ms=found["mean_us"] / 1000,
        p50_ms=found["p50_us"] / 1000,
        p90_ms=found["p90_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        max_ms=found["max_us"] / 1000,
        cpu=usage.ru_utime + usage.ru_stime,
    )
