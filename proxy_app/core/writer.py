"""The one background writer: typed jobs queued from the request path, written in batches on a thread.

Nothing on the request path waits for a database write. A job is a small frozen dataclass, one
class per kind (a usage row, a thought signature, a detailed-log file); the module that owns a
kind registers, once, how a batch of it is written:

    writer.register(UsageRow, write_usage_rows)   # write_usage_rows(rows: list[UsageRow]) -> None
    writer.submit(UsageRow(...))

This module imports none of those owners: they hand it jobs. The thread (with its own DB
connection, so it never queues on Django's thread-sensitive worker) gathers jobs for up to
USAGE_FLUSH_SECONDS or USAGE_BATCH_SIZE jobs, then calls each kind's writer with that kind's jobs,
in registration order. A failed write keeps its jobs and is retried (the database may be locked
or restarting); `flush()` blocks until everything submitted so far is written, and runs at
interpreter exit and in the ASGI lifespan shutdown.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)
MAX_WRITE_ATTEMPTS = 20
_FLUSH_NOW = object()  # queued by flush(): ends the batching wait at once


class Writer:
    def __init__(self) -> None:
        self._kinds: dict[type, Callable[[list], None]] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def register(self, kind: type, write: Callable[[list], None]) -> None:
        """`write(jobs)` stores a batch of `kind` jobs; it runs on the writer thread."""
        self._kinds[kind] = write

    def submit(self, job: object) -> None:
        if type(job) not in self._kinds:
            raise TypeError(f"no writer registered for {type(job).__name__}")
        self._ensure_started()
        with self._cond:
            self._submitted += 1
        self._queue.put(job)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (or dropped after retries)."""
        deadline = time.monotonic() + timeout
        self._queue.put(_FLUSH_NOW)
        with self._cond:
            target = self._submitted
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch:
                self._write(batch)

    def _collect(self) -> list:
        """Wait for a first job, then gather more for up to one flush interval (or a flush call)."""
        batch: list = []
        deadline = None
        while len(batch) < settings.USAGE_BATCH_SIZE:
            timeout = settings.USAGE_FLUSH_SECONDS if deadline is None else deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=max(timeout, 0))
            except queue.Empty:
                break
            if job is _FLUSH_NOW:
                break
            batch.append(job)
            deadline = deadline or time.monotonic() + settings.USAGE_FLUSH_SECONDS
        return batch

    def _write(self, batch: list) -> None:
        for kind, write in self._kinds.items():
            jobs = [job for job in batch if type(job) is kind]
            if jobs:
                self._write_with_retry(kind, write, jobs)
        connections.close_all()  # this thread's connection goes back to the pool between batches
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()

    def _write_with_retry(self, kind: type, write: Callable[[list], None], jobs: list) -> None:
        for attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                write(jobs)
                return
            except Exception:  # the DB may be locked or restarting: keep the jobs and retry
                log.exception("%s write failed (attempt %d, %d jobs)", kind.__name__, attempt + 1, len(jobs))
                connections.close_all()
                time.sleep(min(0.1 * 2**attempt, 5.0))
        log.error("%d %s jobs lost after %d attempts", len(jobs), kind.__name__, MAX_WRITE_ATTEMPTS)


writer = Writer()
atexit.register(writer.flush)
