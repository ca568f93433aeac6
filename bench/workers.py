"""Several engine workers, raw senders or tracking-hit processors at once: one process
(and one SMTP connection) each, the way `nurture worker` is run on PostgreSQL
(`--workers K`).

Each child prepares (settings, templates, payloads), says it is ready, and waits for
the start signal, so the clock covers only the work. Times are `time.monotonic()`,
one clock for every process on Linux.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scenario import NOW, bench_settings

from nurture.dispatch import TickReport
from nurture.mail import Mailer, SmtpMailer
from nurture.runtime import Runtime


@dataclass(frozen=True)
class WorkerResult:
    started: float
    finished: float
    cpu: float  # CPU seconds of the whole child process, while working
    sent: int
    detail: str  # an engine worker's tick report
    message_ids: frozenset[str]  # what a raw sender sent, as the sink reports them
    peak_mib: float = 0.0  # the child's peak resident memory (ru_maxrss), at the end


def peak_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux counts ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _wait(event: Any) -> bool:
    """Wait for the parent's signal; False if the parent is gone (then give up quietly)."""
    parent = os.getppid()
    while not event.wait(5):
        if os.getppid() != parent:
            return False
    return True


def mailer_factory(sink_url: str, prototypes: list[str]) -> Callable[[], Mailer]:
    """The engine's SMTP mailer, or the pipelining prototype."""
    if "smtp-pipelining" in prototypes:
        from prototypes import PipeliningSmtpMailer

        return lambda: PipeliningSmtpMailer(sink_url, timeout=30)
    return lambda: SmtpMailer(sink_url, timeout=30)


def engine_worker(
    url: str,
    sink_url: str,
    batch_size: int | None,
    deadline: float,
    prototypes: list[str],
    ready: Any,
    go: Any,
    out: Any,
    release: Any,
) -> None:
    settings = bench_settings(url, sink_url, batch_size)
    runtime = Runtime(settings, mailer_factory(sink_url, prototypes))
    dispatcher = runtime.dispatcher
    runtime.content  # noqa: B018 - sequence files are read and checked before the clock starts
    ready.put(True)
    if not _wait(go):
        return
    cpu, started = time.process_time(), time.monotonic()
    total = TickReport()
    while time.monotonic() < deadline:
        report = dispatcher.tick(NOW, max_batches=20)  # a few batches: the deadline is seen
        total.add(report)
        if report.claimed == 0:
            break
    finished = time.monotonic()
    cpu = time.process_time() - cpu
    result = WorkerResult(started, finished, cpu, total.sent, str(total), frozenset(), peak_mib())
    out.put(result)
    _wait(release)  # database connections stay open until their server CPU is read
    dispatcher.close()
    runtime.close()


def raw_sender(
    first: int,
    count: int,
    host: str,
    port: int,
    pipelining: bool,
    ready: Any,
    go: Any,
    out: Any,
    release: Any,
) -> None:
    from raw import build_payloads, run_raw

    settings = bench_settings("sqlite:///unused", f"smtp://{host}:{port}")
    runtime = Runtime(settings)
    sender = runtime.dispatcher.sender
    payloads = build_payloads(runtime.content.templates, sender, count, NOW, first)
    runtime.close()
    ready.put(True)
    if not _wait(go):
        return
    cpu = time.process_time()
    raw = run_raw(host, port, settings.sender_email, payloads, pipelining)
    cpu = time.process_time() - cpu
    out.put(WorkerResult(raw.started, raw.finished, cpu, raw.sent, "", raw.message_ids, peak_mib()))


def hits_worker(url: str, deadline: float, ready: Any, go: Any, out: Any, release: Any) -> None:
    """`nurture.hits.process` until no hit is left: what the worker's hits job does each
    second. Workers share the waiting hits (`FOR UPDATE SKIP LOCKED`)."""
    from sqlalchemy.exc import OperationalError

    import nurture.hits
    from nurture.hits import Processed, process

    runtime = Runtime(bench_settings(url, "smtp://127.0.0.1:25"))
    runtime.content.scoring  # noqa: B018 - rules parsed before the clock starts
    # `process` loses the count of its committed batches when a later one raises: count
    # each batch as it commits (one call per batch of 500, nothing measurable).
    total = Processed()
    one_batch = nurture.hits.process_batch

    def counted(*args: Any, **kwargs: Any) -> Processed:
        nonlocal total
        done = one_batch(*args, **kwargs)
        total += done
        return done

    nurture.hits.process_batch = counted
    ready.put(True)
    if not _wait(go):
        return
    cpu, started = time.process_time(), time.monotonic()
    rolled_back, first = 0, ""
    while time.monotonic() < deadline:
        try:
            done = process(runtime.sessions, runtime.content, runtime.settings, NOW)
        except OperationalError as error:
            # A batch rolled back (a deadlock with another worker's batch): the job's
            # next run takes its hits again, as here at once.
            rolled_back += 1
            diag = getattr(error.orig, "diag", None)
            first = first or " ".join(
                str(part).splitlines()[0]
                for part in (error.orig, getattr(diag, "context", None))
                if part
            )
            continue
        if done.done + done.failed == 0:
            break
    finished = time.monotonic()
    cpu = time.process_time() - cpu
    detail = f"{total}, {rolled_back} batches rolled back"
    if first:
        detail += f" (the first: {first})"
    out.put(WorkerResult(started, finished, cpu, total.done, detail, frozenset(), peak_mib()))
    _wait(release)  # database connections stay open until their server CPU is read
    runtime.close()


def together(
    target: Any,
    arguments: list[tuple[Any, ...]],
    timeout: float,
    when_ready: Callable[[], None] = lambda: None,
    when_done: Callable[[], None] = lambda: None,
) -> tuple[float, list[WorkerResult]]:
    """One child per argument tuple, started at once; the wall time from the start signal
    to the last child's end, and every child's result. `when_ready` runs once every child
    is prepared, just before the start; `when_done` after the last result, before the
    children let go of their connections."""
    context = multiprocessing.get_context("spawn")
    ready, out = context.Queue(), context.Queue()
    go, release = context.Event(), context.Event()
    children = [
        context.Process(target=target, args=(*args, ready, go, out, release), daemon=True)
        for args in arguments
    ]
    for child in children:
        child.start()
    results: list[WorkerResult] = []
    try:
        waiting, give_up = len(children), time.monotonic() + 300  # payloads take a while
        while waiting:
            try:
                ready.get(timeout=1)
                waiting -= 1
            except queue.Empty:
                if any(child.exitcode is not None for child in children):
                    raise SystemExit("workers: a child died while preparing") from None
                if time.monotonic() > give_up:
                    raise SystemExit("workers: a child did not get ready in 300 s") from None
        when_ready()
        start = time.monotonic()
        go.set()
        for _ in children:
            try:
                results.append(out.get(timeout=max(1.0, start + timeout - time.monotonic())))
            except queue.Empty:
                raise SystemExit(f"workers: not finished within {timeout:g} s") from None
        when_done()
    finally:
        release.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join(5)
    return max(r.finished for r in results) - start, results
