"""BatchWorker backs off after a failed export: a down backend costs no encoding per batch."""

from __future__ import annotations

import time

from spyglass.export.batch import BatchWorker


def test_failed_export_backs_off_and_flush_still_tries() -> None:
    calls: list[int] = []
    healthy = False

    def send(batch: list[int]) -> bool:
        calls.append(len(batch))
        if not healthy:
            raise ConnectionRefusedError("refused")
        return True

    worker: BatchWorker[int] = BatchWorker("test", send, max_queue=100, max_batch=4,
                                           interval=0.05)
    for i in range(4):
        worker.put(i)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [4]
    # Within the 1 s back-off, full batches are dropped without calling send.
    for i in range(8):
        worker.put(i)
    time.sleep(0.3)
    assert calls == [4]
    # A flush (exit, SIGTERM) tries the backend anyway.
    healthy = True
    for i in range(2):
        worker.put(i)
    assert worker.flush(2.0)
    assert calls[-1] == 2 and len(calls) == 2
    worker.shutdown(1.0)
