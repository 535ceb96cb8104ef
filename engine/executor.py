"""Running due jobs: timers, service tasks with retries and backoff, asynchronous continuations, timer starts."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from . import elements, jobs, runtime, store
from .errors import Conflict, InvalidState, NotFound
from .info import JobStatus
from .models import now

log = logging.getLogger(__name__)

PURGE_EVERY = timedelta(minutes=1)  # how often a worker forgets messages whose time to live is over


class _Again(Exception):
    """A job's step failed and will be tried again: nothing of it is written."""

    def __init__(self, failure: runtime.Failure, delay: timedelta) -> None:
        super().__init__(failure.message)
        self.failure, self.delay = failure, delay


class Executor:
    """The job half of the Engine facade (mixed into `Engine`); `baton worker` and `baton serve` call it in a loop."""

    def run_due_jobs(self, *, limit: int = 10) -> int:
        """Lease up to `limit` due jobs and run each as its own step; returns how many ran.

        Many workers may call this at once on PostgreSQL: each job runs once, a crashed worker's jobs are taken
        over when their lease ends, and two jobs of one instance never run at the same time.
        """
        ran = 0
        for job in jobs.acquire(self.db.engine, self.worker_id, limit, self.settings.job_lease):
            if job.lock_expires_at <= now():
                continue  # its lease ran out while earlier jobs of the batch ran: another worker may hold it
            with jobs.exclusive(self.db.engine, job.instance_id) as mine:
                if not mine:
                    jobs.release(self.db.engine, job.id, self.worker_id)
                    continue
                ran += self._run_job(job)
        self.send_outbox()
        if self.purged_at is None or now() - self.purged_at >= PURGE_EVERY:  # a write: not on every poll
            jobs.purge_messages(self.db.engine)
            self.purged_at = now()
        return ran

    def job_status(self) -> JobStatus:
        """Jobs due now, running, retrying and failed, and how late the oldest due job is."""
        return jobs.status(self.db.engine)

    def _run_job(self, job: Any) -> int:
        try:
            if job.kind == "start":
                self._start_job(job)
            elif job.kind == "service":
                self._service_job(job)
            elif job.kind == "async":
                self._async_job(job)
            else:
                self._change(job.instance_id, lambda loaded, step: runtime.fire_timers(loaded.workflow, step),
                             allowed=("active",), within=self._held(job))
        except (Conflict, InvalidState, NotFound) as exc:
            log.info("job %s (%s %s) not run now: %s", job.id, job.kind, job.element_id, exc)
            jobs.release(self.db.engine, job.id, self.worker_id)
            return 0
        except Exception as exc:  # a bug or a broken diagram: counted and tried later, never in a tight loop
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.element_id)
            delays = jobs.DEFAULT_RETRIES
            jobs.release(self.db.engine, job.id, self.worker_id, attempts=job.attempts + 1, last_error=str(exc),
                         due_at=now() + delays[min(job.attempts, len(delays) - 1)])
            return 0
        jobs.release(self.db.engine, job.id, self.worker_id)  # a job that is still there waits for its next turn
        return 1

    def _held(self, job: Any) -> Any:
        """Within the job's write: make sure this worker's lease still holds (else Conflict, nothing written)."""
        def check(conn: Any, _instance: Any) -> None:
            if not jobs.still_held(conn, job.id, self.worker_id, lock_owner=self.worker_id):
                raise Conflict(f"job {job.id} was taken over by another worker")
        return check

    def _service_job(self, job: Any) -> None:
        """Call the connector outside any transaction; on failure retry with backoff, then raise an incident."""
        def fetch(conn: Any) -> Any:
            row = store.instance_row(conn, job.instance_id)
            if row is None:
                raise NotFound(f"instance {job.instance_id} is gone")
            return row

        _, loaded = self._read(fetch)
        task = runtime.service_task(loaded.workflow, job.task_id)
        spec = task.task_spec
        try:
            connector = self.connectors.get(spec.connector or "")
            if connector is None:
                raise LookupError(f"no connector named '{spec.connector}' is registered")
            with self._stepping(runtime.Step()):
                result = connector(runtime.service_input(loaded.workflow, task))
        except Exception as exc:  # a connector is host code: whatever it raises is retried, then an incident
            self._remember(loaded.id, loaded.version, loaded.workflow, loaded.status)
            self._service_failed(job, getattr(spec, "retry_cycle", None), exc)
            return
        self._remember(loaded.id, loaded.version, loaded.workflow, loaded.status)
        self._change(job.instance_id, lambda loaded, step: runtime.complete_service(
            loaded.workflow, runtime.service_task(loaded.workflow, job.task_id), result, step),
            allowed=("active",), within=self._held(job))

    def _async_job(self, job: Any) -> None:
        """Go on from an asynchronous boundary; when that fails, nothing is written and the job is tried again
        on its retry schedule (`camunda:failedJobRetryTimeCycle`), until the last failure becomes an incident."""
        def act(loaded: Any, step: runtime.Step) -> None:
            task = runtime.boundary(loaded.workflow, job.task_id)
            delays = jobs.retry_delays(elements.retry_cycle(task))
            runtime.resume(loaded.workflow, task, step)
            if step.failure is not None and job.attempts < len(delays):
                raise _Again(step.failure, delays[job.attempts])

        try:
            self._change(job.instance_id, act, allowed=("active",), within=self._held(job))
        except _Again as again:
            log.info("job %s at %s failed (attempt %d), tried again in %s: %s", job.id, job.element_id,
                     job.attempts + 1, again.delay, again.failure.message)
            jobs.release(self.db.engine, job.id, self.worker_id, attempts=job.attempts + 1,
                         last_error=f"{again.failure.error_type}: {again.failure.message}",
                         due_at=now() + again.delay)

    def _service_failed(self, job: Any, cycle: str | None, exc: Exception) -> None:
        delays = jobs.retry_delays(cycle)
        if job.attempts < len(delays):
            log.info("service task %s failed (attempt %d), retried in %s: %s", job.element_id, job.attempts + 1,
                     delays[job.attempts], exc)
            jobs.release(self.db.engine, job.id, self.worker_id, attempts=job.attempts + 1,
                         last_error=f"{type(exc).__name__}: {exc}", due_at=now() + delays[job.attempts])
            return
        self._change(job.instance_id, lambda loaded, step: runtime.fail_service(
            loaded.workflow, runtime.service_task(loaded.workflow, job.task_id), exc, step),
            allowed=("active",), within=self._held(job))

    def _start_job(self, job: Any) -> None:
        """A timer start event fired: a new instance, and the schedule moved on, in one transaction."""
        schedule = json.loads(job.schedule)
        following = jobs.next_start(job.due_at, schedule)

        def advance(conn: Any, _instance: Any) -> None:
            moved = {"due_at": following, "schedule": json.dumps(schedule), "lock_owner": None,
                     "lock_expires_at": None, "attempts": 0, "last_error": None}
            if following is None:
                done = conn.execute(jobs.JOB.delete().where(jobs.JOB.c.id == job.id,
                                                            jobs.JOB.c.lock_owner == self.worker_id)).rowcount == 1
            else:
                done = jobs.still_held(conn, job.id, self.worker_id, **moved)
            if not done:
                raise Conflict(f"timer start {job.id} was taken over by another worker")

        definition = self._definition_row(job.definition_id)
        self._create(definition, definition.process_id, {}, trigger=job.element_id,
                     then=runtime.fire_start_timer, within=advance)
