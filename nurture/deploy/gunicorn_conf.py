"""Gunicorn settings for serving the web app in production:

    gunicorn -c python:nurture.deploy.gunicorn_conf wsgi:app

Gunicorn reads this module's names once, in its master process, before any worker
starts. Every value can be overridden without editing it: `GUNICORN_CMD_ARGS` (and
the command line) win over this file, as gunicorn documents.

- `bind`: `NURTURE_HOST:NURTURE_PORT`, the same variables as `nurture run`
  (default 127.0.0.1:5000: a reverse proxy on the same machine in front).
- `workers`: `WEB_CONCURRENCY` if set, else 2 × cores + 1, at most `MAX_WORKERS`:
  each worker holds its own database connections, spool file and writer thread.
- `worker_class`: `sync`, which measured as fast as `gthread` on the tracking routes
  with a lower p99 (docs/performance.md); put a buffering proxy in front.
- `timeout`: a worker silent for this long is killed and replaced (60 s leaves room
  for the heaviest requests, such as a batch of 1,000 leads); `graceful_timeout`: what
  a worker gets, after SIGTERM, to answer the requests it holds and write its spooled
  hits.

Hooks: `on_starting`, in the master: its log lines, and every worker's after it (the
access log's too), go through `nurture.redaction`: no secret, no email address
(`GET /api/v1/leads/<email>`). Each worker's app installs the same on its own.

In each worker process:

- `post_worker_init`: behind a trusted proxy (gunicorn's `forwarded_allow_ips`,
  `FORWARDED_ALLOW_IPS`, default 127.0.0.1 and ::1), the client's address is the last
  `X-Forwarded-For` entry and the scheme `X-Forwarded-Proto`: tracking labels hits by
  address, and the form rate limit counts per address.
- `worker_exit`: closes the app's runtime, so the tracking hits still in the worker's
  spool file are written to the database and the file removed before the process
  ends. Gunicorn calls it once the worker loop is left, whatever stopped it: SIGTERM
  (graceful), SIGINT or SIGQUIT (quick: `worker_int`, then exit), SIGABRT (timeout:
  `worker_abort`, then exit), and `max_requests`; so `worker_int` and `worker_abort`
  need nothing of their own. The spool's atexit handler would also write the hits on
  a normal interpreter exit; the hook does it first and does not depend on it. Only
  SIGKILL skips both; the file is then recovered by the next `nurture worker` run on
  the machine (docs/tracking.md).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_WORKERS = 12
DEFAULT_HOST = "127.0.0.1"  # as nurture.config.Settings
DEFAULT_PORT = 5000


def cores() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_for(environ: Mapping[str, str], cpus: int) -> int:
    """`WEB_CONCURRENCY`, else 2 × cores + 1 (requests wait on the database part of
    their time), at most `MAX_WORKERS` (each worker is a set of PostgreSQL connections)."""
    configured = environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        number = int(configured)
        if number <= 0:
            raise ValueError(f"WEB_CONCURRENCY={configured!r}: expected a positive integer")
        return number
    return min(2 * cpus + 1, MAX_WORKERS)


def bind_for(environ: Mapping[str, str]) -> list[str]:
    """`NURTURE_HOST:NURTURE_PORT`, with the defaults of `nurture run`."""
    host = environ.get("NURTURE_HOST", "").strip() or DEFAULT_HOST
    port = environ.get("NURTURE_PORT", "").strip() or str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"NURTURE_PORT={port!r}: expected a port number")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return [f"{host}:{port}"]


bind = bind_for(os.environ)
workers = workers_for(os.environ, cores())
worker_class = "sync"
timeout = 60
graceful_timeout = 20
keepalive = 5
# The workers' heartbeat files: a memory-backed folder where there is one (a
# container's /tmp may be a slow overlay, and a late heartbeat reads as a hung worker).
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - Linux's tmpfs


def runtime_of(worker: Any) -> Any:
    """The nurture Runtime behind a worker's WSGI app (through the proxy wrapper), or
    None: in the master (which never loads the app) or before the app was loaded."""
    app = getattr(worker, "wsgi", None)
    while app is not None:
        extensions = getattr(app, "extensions", None)
        if isinstance(extensions, dict) and "nurture" in extensions:
            return extensions["nurture"]
        app = getattr(app, "app", None)
    return None


class TrustedProxy:
    """Werkzeug's ProxyFix (one proxy: the last `X-Forwarded-For` entry, and
    `X-Forwarded-Proto`), applied only to requests whose peer is a trusted proxy:
    anyone else could write those headers themselves. A Unix-socket peer is trusted."""

    def __init__(self, app: Callable[..., Any], trusted: Iterable[str]) -> None:
        from werkzeug.middleware.proxy_fix import ProxyFix

        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1)
        names = [name.strip() for name in trusted if name.strip()]
        self.anyone = "*" in names
        self.networks = [ipaddress.ip_network(n, strict=False) for n in names if n != "*"]

    def trusts(self, peer: str) -> bool:
        if self.anyone:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return peer == "" or "/" in peer  # a Unix socket: only local processes
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.trusts(environ.get("REMOTE_ADDR", "")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def on_starting(server: Any) -> None:
    from nurture import redaction

    redaction.install_logging()


def post_worker_init(worker: Any) -> None:
    worker.wsgi = TrustedProxy(worker.wsgi, worker.cfg.forwarded_allow_ips)


def worker_exit(server: Any, worker: Any) -> None:
    runtime = runtime_of(worker)
    if runtime is not None:
        runtime.close()  # the spool's last hits into the database, then its file removed
