"""The intake benchmark's HTTP side: the real app served on 127.0.0.1, and keep-alive
clients posting pre-encoded batches to `POST /api/v1/leads/batch`.

The server is gunicorn (`wsgi:app`, gthread workers), the way the app is deployed, or
werkzeug's threaded server in a thread of this process (`--server werkzeug`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intake_cpu import children

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PATH = "/api/v1/leads/batch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gunicorn:
    """`gunicorn wsgi:app` on 127.0.0.1, configured by `NURTURE_*` variables."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.ready = Path(tempfile.mkdtemp(prefix="ready-", dir=log.parent))
        command = [
            str(BIN / "gunicorn"),
            "--config",
            str(ROOT / "bench" / "intake_gunicorn.py"),
            "--workers",
            str(workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "600",  # a batch waiting for SQLite's write lock is not a hung worker
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
            "wsgi:app",
        ]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **env, "INTAKE_BENCH_READY": str(self.ready)},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.workers = workers
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn stopped at start:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/healthz")
                status = connection.getresponse().status
                connection.close()
                if status == 200 and len(list(self.ready.iterdir())) == self.workers:
                    return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within 60 s:\n{self.log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)]

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def describe(self) -> str:
        return f"gunicorn, {self.workers} gthread workers"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Werkzeug:
    """werkzeug's threaded server in a thread of this process (its CPU counts as ours)."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = int(self.server.server_port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def pids(self) -> list[int]:
        return []

    def worker_pids(self) -> list[int]:
        return []

    def describe(self) -> str:
        return "werkzeug make_server(threaded=True), in the benchmark process"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=30)


@dataclass
class Posted:
    requests: int = 0
    leads: int = 0
    created: int = 0
    updated: int = 0
    reconnects: int = 0
    closed_by_server: int = 0  # answers with "Connection: close": keep-alive refused
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _client_port(connection: http.client.HTTPConnection) -> int:
    assert connection.sock is not None
    return int(connection.sock.getsockname()[1])


def holders(port: int, client_ports: list[int], workers: list[int]) -> dict[int, int]:
    """Which server worker holds each client connection (client port -> worker pid),
    from /proc/net/tcp and the workers' file descriptors."""
    wanted = set(client_ports)
    inodes: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], parts[9]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) in wanted:
            inodes[f"socket:[{inode}]"] = int(remote.split(":")[1], 16)
    found: dict[int, int] = {}
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target in inodes:
                        found[inodes[target]] = pid
    return found


def open_connections(
    port: int, count: int, workers: list[int], tries: int = 40
) -> tuple[list[http.client.HTTPConnection], str]:
    """`count` keep-alive connections, each opened with a `/healthz` round trip. With
    several server workers, they are spread evenly (at most count/workers, rounded up,
    on each): gunicorn lets whichever worker wins the accept keep a connection, and one
    worker holding them all would measure one core of a two-core server. Returns the
    connections and how they were placed."""
    limit = -(-count // len(workers)) if workers else count
    for attempt in range(tries):
        connections = []
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connections.append(connection)
        if not workers:
            return connections, "one server process"
        placed = holders(port, [_client_port(c) for c in connections], workers)
        per_worker = [list(placed.values()).count(pid) for pid in workers]
        if len(placed) == count and max(per_worker) <= limit:
            split = "/".join(str(n) for n in per_worker)
            return connections, f"connections per worker {split} (placed in {attempt + 1} tries)"
        for connection in connections:
            connection.close()
        time.sleep(0.05)
    raise SystemExit(f"could not spread {count} connections over {len(workers)} workers")


def post_batches(
    connections: list[http.client.HTTPConnection],
    key: str,
    bodies: list[tuple[int, bytes]],
    deadline: float,
) -> Posted:
    """Post every body once, from one thread per open keep-alive connection, each taking
    the next body in turn; each answer must be 200 with every lead accounted for. The
    connections are closed at the end."""
    result = Posted()
    lock = threading.Lock()
    taken = iter(range(len(bodies)))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def client(connection: http.client.HTTPConnection) -> None:
        try:
            while True:
                with lock:
                    index = next(taken, None)
                    if index is None or result.errors:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError("time limit reached")
                count, body = bodies[index]
                started = time.monotonic()
                status, answer, reconnected, closed = _post(connection, body, headers)
                took = time.monotonic() - started
                if status != 200 or answer.get("created", 0) + answer.get("updated", 0) != count:
                    raise RuntimeError(f"batch {index}: HTTP {status}: {str(answer)[:300]}")
                with lock:
                    result.requests += 1
                    result.leads += count
                    result.created += int(answer["created"])
                    result.updated += int(answer["updated"])
                    result.reconnects += reconnected
                    result.closed_by_server += closed
                    result.latencies.append(took)
        except Exception as error:  # reported by the caller, which stops the run
            with lock:
                result.errors.append(f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in connections]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - started
    return result


def _post(
    connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any], int, int]:
    """One POST; if the server closed the idle keep-alive connection first, reconnect once
    (rows are upserts by email, so a resent batch could not duplicate anyone)."""
    for attempt in range(2):
        try:
            connection.request("POST", PATH, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            answer = json.loads(payload) if payload else {}
            return response.status, answer, attempt, int(response.will_close)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            connection.close()
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def warm_up(
    port: int, key: str, bodies: list[tuple[int, bytes]], clients: int, workers: list[int]
) -> None:
    """Small batches of leads outside the dataset, over connections spread over every
    worker: database connections opened, code paths run."""
    connections, _ = open_connections(port, clients, workers)
    posted = post_batches(connections, key, bodies, time.monotonic() + 120)
    if posted.errors:
        raise SystemExit(f"warm-up failed: {posted.errors[0]}")
