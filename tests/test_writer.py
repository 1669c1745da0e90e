"""The background writer: typed jobs, one writer function per kind, retries that keep the jobs."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from proxy_app.core import writer as writer_module
from proxy_app.core.writer import Writer


@dataclass(frozen=True)
class Row:
    n: int


@dataclass(frozen=True)
class File:
    name: str


def test_each_kind_goes_to_its_own_writer_in_batches():
    writer, rows, files = Writer(), [], []
    writer.register(Row, lambda jobs: rows.append([j.n for j in jobs]))
    writer.register(File, lambda jobs: files.extend(j.name for j in jobs))
    for n in range(5):
        writer.submit(Row(n))
    writer.submit(File("a.json"))
    assert writer.flush(timeout=5)
    assert sum(rows, []) == [0, 1, 2, 3, 4] and files == ["a.json"]
    assert len(rows) <= 2  # batched, not one call per row


def test_an_unregistered_kind_is_refused_at_submit():
    with pytest.raises(TypeError, match="no writer registered for Row"):
        Writer().submit(Row(1))


def test_a_failing_write_is_retried_with_its_jobs_and_does_not_hold_back_the_others(monkeypatch):
    monkeypatch.setattr(writer_module.time, "sleep", lambda seconds: None)  # retries without the back-off wait
    writer, attempts, files = Writer(), [], []

    def flaky(jobs):
        attempts.append([j.n for j in jobs])
        if len(attempts) < 3:
            raise RuntimeError("database is locked")

    writer.register(Row, flaky)
    writer.register(File, lambda jobs: files.extend(j.name for j in jobs))
    writer.submit(Row(7))
    writer.submit(File("b.json"))
    assert writer.flush(timeout=5)
    assert attempts == [[7], [7], [7]] and files == ["b.json"]


def test_a_full_batch_is_written_without_waiting_for_the_flush_interval(settings):
    """Jobs do not wake the writer one by one, but a full batch does: it is written at once, in
    batches of at most USAGE_BATCH_SIZE, and jobs beyond it go in the next batch."""
    settings.USAGE_FLUSH_SECONDS, settings.USAGE_BATCH_SIZE = 30.0, 3
    writer, batches = Writer(), []
    done = threading.Event()

    def write(jobs):
        batches.append([j.n for j in jobs])
        if sum(map(len, batches)) >= 3:
            done.set()

    writer.register(Row, write)
    writer.submit(Row(0))  # wakes the thread, which then waits up to 30 s for more
    time.sleep(0.1)
    for n in (1, 2, 3):
        writer.submit(Row(n))
    assert done.wait(5), "a full batch waited for the 30 s flush interval"
    assert batches[0] == [0, 1, 2]
    assert writer.flush(timeout=5) and sum(batches, []) == [0, 1, 2, 3]
