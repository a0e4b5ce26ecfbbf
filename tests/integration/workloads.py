"""The mixed workload in a background thread, for tests that fault the cluster meanwhile."""

from __future__ import annotations

import threading

from kingbus.devenv import mysql
from kingbus.devenv.workload import WorkloadCounts, mixed_workload


class BackgroundWorkload:
    """Runs `mixed_workload` in a thread; `join` re-raises its error.

    Usable as a context manager: the workload starts on entry and, on exit, is stopped at a
    transaction boundary and joined.
    """

    def __init__(
        self,
        source: mysql.MySQLServer,
        *,
        transactions: int,
        big_row_bytes: int = 0,
        database: str = "kb_workload",
        seed: int = 7,
    ) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.counts: WorkloadCounts | None = None
        self._args = (source, transactions, big_row_bytes, database, seed)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        source, transactions, big_row_bytes, database, seed = self._args
        try:
            with source.connect() as conn:
                self.counts = mixed_workload(
                    conn,
                    transactions=transactions,
                    seed=seed,
                    big_row_bytes=big_row_bytes,
                    stop=self.stop,
                    database=database,
                )
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> BackgroundWorkload:
        self._thread.start()
        return self

    def join(self, timeout: float = 300) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the workload did not finish"
        if self.error is not None:
            raise self.error

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundWorkload:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()
