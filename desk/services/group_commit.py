"""Group commit: webhook deliveries that arrive together share one transaction.

Each delivery's request hands its work to ``GroupCommit.ingest`` and waits. The first to
find no batch running leads: it lets every request that is ready run up to its own hand-off
(one yield), takes up to ``DESK_INGEST_BATCH`` waiting deliveries, applies them one after
the other in one transaction (``desk.services.ingest.apply_in``: the same statements as a
delivery alone) and commits once, so PostgreSQL's commit flush, SQLite's write lock, the
live change number and the boards' render are paid once per batch instead of once per
delivery. Then every request of the batch answers, and the oldest delivery still waiting
leads the next batch. Under light load a batch is one delivery and nothing waits.

What holds for every delivery, as without batching:

* **2xx only after the commit** that holds it; the boards hear of it only after that commit.
* **A failing delivery fails alone.** When a statement of the batch fails (two processes
  creating the same call, SQLite busy, a bug in one provider's fold), the transaction is
  rolled back and each delivery of the batch is ingested again on its own, with the usual
  retries: the others are stored, the failing one gets its own error.
* **A failed commit stores none and answers every request 503** (``NotStored``, with
  ``Retry-After``): the providers send again, and the dedupe keys make that safe.

Deliveries ingested outside a request (the Teleforge listener, the CLI) keep calling
``desk.services.ingest.ingest`` directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import ServiceUnavailable

from desk.db import Database
from desk.domain.events import Parsed
from desk.services import ingest as ingest_service
from desk.services.ingest import Fold, IngestResult

log = logging.getLogger(__name__)


class NotStored(ServiceUnavailable):
    """The commit holding a delivery failed: nothing of it is stored; send it again."""

    description = ("The delivery was not stored: the database did not commit it. "
                   "Send it again; a delivery sent twice is applied once.")

    def __init__(self) -> None:
        super().__init__(retry_after=1)


@dataclass(eq=False)
class _Job:
    provider: str
    parsed: Parsed
    payload: str
    content_type: str | None
    fold: Fold | None
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """One process's batching of deliveries into shared transactions (see the module)."""

    def __init__(self, database: Database, batch: int) -> None:
        self.database = database
        self.batch = max(1, batch)
        self._lock = threading.Lock()
        self._waiting: deque[_Job] = deque()
        self._running = False

    def ingest(
        self, provider: str, parsed: Parsed, payload: str, content_type: str | None,
        fold: Fold | None = None,
    ) -> IngestResult:
        """Apply the delivery in the next batch; returns once that batch has committed."""
        job = _Job(provider, parsed, payload, content_type, fold)
        with self._lock:
            self._waiting.append(job)
            job.lead = not self._running
            self._running = True
        while not job.lead and job.result is None and job.error is None:
            job.wake.wait()
            job.wake.clear()
        if job.lead and job.result is None and job.error is None:
            self._lead()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _lead(self) -> None:
        time.sleep(0)  # let every request that is ready reach its hand-off: one batch
        with self._lock:
            count = min(self.batch, len(self._waiting))
            batch = [self._waiting.popleft() for _ in range(count)]
        try:
            self._run(batch)
        except BaseException as exc:  # never leave a request of the batch waiting
            for job in batch:
                if job.result is None and job.error is None:
                    job.error = exc
            raise
        finally:
            for job in batch:
                job.wake.set()
            with self._lock:
                if self._waiting:
                    following = self._waiting[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._running = False

    def _run(self, batch: list[_Job]) -> None:
        if len(batch) == 1:
            self._alone(batch[0])
            return
        with self.database.new_session() as session:
            session.begin()
            try:
                ingest_service.lock_calls(session.connection(), [job.parsed for job in batch])
                results = [
                    ingest_service.apply_in(session, job.provider, job.parsed, job.payload,
                                            job.content_type, job.fold)
                    for job in batch
                ]
            except Exception:
                session.rollback()
                log.info("a batch of %d deliveries failed; ingesting each alone", len(batch),
                         exc_info=True)
                for job in batch:
                    self._alone(job)
                return
            try:
                session.commit()
            except Exception as exc:
                session.rollback()
                log.error("the commit of %d deliveries failed; none is stored, all are "
                          "answered 503 (%s)", len(batch), exc)
                for job in batch:
                    job.error = NotStored()
                return
        for job, result in zip(batch, results, strict=True):
            job.result = result

    def _alone(self, job: _Job) -> None:
        with self.database.new_session() as session:
            try:
                job.result = ingest_service.ingest(session, job.provider, job.parsed,
                                                   job.payload, job.content_type, fold=job.fold)
            except DBAPIError as exc:  # the database is down or refused after the retries
                log.error("a delivery could not be stored; answered 503 (%s)", exc)
                job.error = NotStored()
                return
            except Exception as exc:
                job.error = exc
