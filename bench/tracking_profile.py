"""The tracking benchmark's profiler: py-spy on one gunicorn worker, and its hot spots.

Samples are taken with idle frames included, so time spent waiting for the database
(a lock, a round trip) counts; only samples inside a request (under Flask's
`wsgi_app`) are kept, so waiting for the next connection does not.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

from tracking_load import BIN, ROOT


def start_profile(
    folder: Path, pid: int, seconds: float, number: int, name: str
) -> subprocess.Popen[bytes]:
    """py-spy on one worker for one round, into `folder/<name>-<round>.txt`."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--idle",
        "--nonblocking",
        "--output",
        str(folder / f"{name}-{number}.txt"),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(raw: str) -> str:
    """'nurture/web/tracking.py:_record' from py-spy's 'name (path:line)'."""
    name, _, where = raw.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}"


# Besides nurture's own functions: where SQLAlchemy spends a request, and the token check.
LIBRARY_SPOTS = (
    "Session.commit",
    "Session.flush",
    "Session.get",
    "Session.close",
    "SessionTransaction._connection_for_bind",
    "ClauseElement._compile_w_cache",
    "Connection._execute_context",
    "DefaultDialect.do_execute",
    "DefaultDialect.do_executemany",
    "DefaultDialect.do_commit",
    "DefaultDialect.do_ping",
    "DefaultDialect.do_rollback",
    "_ConnectionRecord.checkout",
    "_on_begin",
    "URLSafeSerializer.loads",
    "Serializer.loads",
    "Request.user_agent",
    "Flask.full_dispatch_request",
)


def _share(row: tuple[str, float]) -> float:
    return -row[1]


def hot_spots(folder: Path, name: str, top: int = 45) -> list[tuple[str, float]]:
    """Inclusive share of request time per function (nurture's, and a few of SQLAlchemy's),
    then the leaves (where the time is actually spent) by module.

    Only samples inside a request count (stacks through Flask's `wsgi_app`): a worker
    waiting for the next connection is not part of any request.
    """
    inclusive: dict[str, int] = defaultdict(int)
    leaves: dict[str, int] = defaultdict(int)
    requests = 0
    lines = [x for f in sorted(folder.glob(f"{name}-*.txt")) for x in f.read_text().splitlines()]
    for line in lines:
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        if not any(f.endswith("wsgi_app") for f in frames):
            continue
        count = int(number)
        requests += count
        for key in set(frames):
            inclusive[key] += count
        leaves[frames[-1].split(":", 1)[0]] += count
    if not requests:
        return []
    rows = [
        (key, number / requests)
        for key, number in inclusive.items()
        if key.startswith("nurture/") or key.endswith(LIBRARY_SPOTS)
    ]
    rows.sort(key=_share)
    by_leaf = sorted(((f"self in {k}", v / requests) for k, v in leaves.items()), key=_share)
    return rows[:top] + by_leaf[:15] + [("samples in requests", float(requests))]
