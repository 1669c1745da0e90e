"""The one background writer: typed jobs queued from the request path, written in batches on a thread.

Nothing on the request path waits for a database write. A job is a small frozen dataclass, one
class per kind (a usage row, a thought signature, a detailed-log file); the module that owns a
kind registers, once, how a batch of it is written:

    writer.register(UsageRow, write_usage_rows)   # write_usage_rows(rows: list[UsageRow]) -> None
    writer.submit(UsageRow(...))

This module imports none of those owners: they hand it jobs. The thread (with its own DB
connection, so it never queues on Django's thread-sensitive worker) wakes at a first job, lets more
pile up for USAGE_FLUSH_SECONDS or until USAGE_BATCH_SIZE are waiting (later jobs do not wake it,
so a submit costs the request path no thread switch), then calls each kind's writer with that kind's jobs,
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
_FLUSH_NOW = object()  # queued by flush(): wakes a thread that waits for a first job


class Writer:
    def __init__(self) -> None:
        self._kinds: dict[type, Callable[[list], None]] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._flush_now = threading.Event()
        self._batch_size = 1 << 30  # settings.USAGE_BATCH_SIZE, read on the writer thread

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
        if self._queue.qsize() >= self._batch_size:
            self._flush_now.set()  # a full batch is waiting: write it now

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is written (or dropped after retries)."""
        deadline = time.monotonic() + timeout
        self._queue.put(_FLUSH_NOW)  # wakes the thread when it waits for a first job
        self._flush_now.set()  # ends its batching wait when it has one
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
        """Wait for a first job, then let more pile up for one flush interval (or until a flush call)
        and take them all. Jobs that arrive meanwhile do not wake this thread: the request path's
        `put` then costs no thread switch."""
        first = self._queue.get()
        if first is _FLUSH_NOW:
            return []
        self._batch_size = settings.USAGE_BATCH_SIZE
        if self._queue.qsize() < self._batch_size - 1:
            self._flush_now.wait(settings.USAGE_FLUSH_SECONDS)
        self._flush_now.clear()
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _FLUSH_NOW:
                batch.append(job)
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
