"""Gunicorn settings for the intake benchmark: each worker loads its content at start.

`gunicorn -c bench/intake_gunicorn.py wsgi:app`: after a worker has loaded the app, it
parses the sequences, templates and scoring rules (which the app otherwise does on its
first request) and leaves a mark in `$INTAKE_BENCH_READY`, so the benchmark starts its
clock only when every worker is ready and no request pays for that start. With
`$INTAKE_BENCH_PROTOTYPE` set, the worker first applies those prototypes
(bench/intake_prototype.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    prototypes = os.environ.get("INTAKE_BENCH_PROTOTYPE")
    if prototypes:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import intake_prototype

        intake_prototype.apply(intake_prototype.parse(prototypes))
    worker.wsgi.extensions["nurture"].content  # noqa: B018 - a cached property: loads it
    folder = os.environ.get("INTAKE_BENCH_READY")
    if folder:
        Path(folder, f"ready-{os.getpid()}").touch()
