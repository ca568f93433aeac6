"""Gunicorn settings for the tracking benchmark: count the answers each worker gave.

`gunicorn -c bench/tracking_gunicorn.py ...` adds two server hooks. Every answered
request is counted by path prefix and status (`/o/ 200`, `/c/ 302`); a worker leaving
writes the hits still in its spool to the database (as production configurations
should: `worker_exit` below; the engine's atexit handler would do it too) and its
counts to `$TRACKING_BENCH_COUNTS/counts-<pid>.json`. The benchmark adds
them up and compares them with the rows in the database: each pixel or redirect the
server answered must have left exactly one tracking hit, including answers that the
load generator stopped waiting for when its time was up.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_counts: Counter[str] = Counter()
_lock = threading.Lock()  # gthread workers answer from several threads


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    status = getattr(resp, "status_code", None)  # unset until the app has answered
    if status is None:
        return
    key = f"{req.path[:3]} {status}"
    with _lock:
        _counts[key] += 1


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("nurture")
    if runtime is not None:
        runtime.close()  # the spool's last hits into the database
    # Also called in the master when it reaps a worker: it has counted nothing.
    folder = os.environ.get("TRACKING_BENCH_COUNTS")
    if not folder or not _counts:
        return
    with _lock:
        counts = dict(_counts)
    Path(folder, f"counts-{os.getpid()}.json").write_text(json.dumps(counts))
