"""Several jobs on one target, up to `max_parallel` at a time (a sweep's trials).

`run_many` is `base.run` for a list: each job is followed by the same `RunningJob` (log copied
into its `log_path` with secrets masked, its own `timeout_s`), but a job that fails or times out
is a result, not an exception, so one bad trial does not stop the others. Ctrl-C or any error
cancels every job still running on the target before it propagates; jobs not yet submitted are
never started.

Only targets whose jobs queue and run side by side on their own resources run several at once:
a Ray cluster (each job reserves its `entrypoint_num_cpus`, the cluster queues the rest). Jobs on
local and venv would share this machine's CPUs with Shipyard itself, an ssh host is one machine
with no queue, and spark-submit has its own parallelism inside a job: there `max_parallel` is
taken as 1 and the jobs run one after another, with the same results.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence

from shipyard.compute.base import ComputeTarget, JobResult, RunningJob, StepJob, read_log, tail
from shipyard.errors import StepFailed

PARALLEL_TARGETS = frozenset({"ray"})
_POLL_S = 0.25


def parallel_slots(target: ComputeTarget, max_parallel: int) -> int:
    """How many jobs run at once on `target` when `max_parallel` are allowed."""
    return max(1, max_parallel) if target.name in PARALLEL_TARGETS else 1


def run_many(
    target: ComputeTarget,
    jobs: Sequence[StepJob],
    max_parallel: int = 1,
    *,
    prepare: Callable[[int, StepJob], StepJob] | None = None,
    finished: Callable[[int, JobResult], None] | None = None,
) -> list[JobResult]:
    """Run `jobs` on `target`, at most `parallel_slots(target, max_parallel)` at once; the results
    come back in job order.

    `prepare(i, job)` is called just before job i is submitted and returns the job to submit (the
    sweep creates the trial's run there, so the run starts when its job does); `finished(i,
    result)` right after job i ended, and with a "cancelled" result for each job stopped by
    Ctrl-C or an error. A job past its timeout_s is cancelled and comes back "failed", the timeout
    in its `message`.
    """
    slots = parallel_slots(target, max_parallel)
    results: list[JobResult | None] = [None] * len(jobs)
    waiting = deque(range(len(jobs)))
    running: dict[int, RunningJob] = {}
    try:
        while waiting or running:
            while waiting and len(running) < slots:
                i = waiting.popleft()
                job = prepare(i, jobs[i]) if prepare is not None else jobs[i]
                try:
                    running[i] = RunningJob(target, job)
                except BaseException as exc:  # refused by the target: what was prepared ends too
                    if finished is not None:
                        with contextlib.suppress(Exception):
                            finished(
                                i, JobResult("failed", None, "", 0.0, f"{job.name} not submitted: {exc}")
                            )
                    raise
            for i, job_run in list(running.items()):
                if not job_run.ended():
                    continue
                try:
                    result = job_run.result()
                except StepFailed as exc:  # past its deadline (or lost on its target): stopped
                    job_run.cancel()
                    log = tail(job_run.red.redact(read_log(job_run.job.log_path)))
                    result = JobResult("failed", None, log, time.monotonic() - job_run.started, str(exc))
                del running[i]
                results[i] = result
                if finished is not None:
                    finished(i, result)
            if running:
                time.sleep(_POLL_S)
    except BaseException:
        _cancel_all(running, finished)
        raise
    return [r for r in results if r is not None]


def _cancel_all(running: dict[int, RunningJob], finished: Callable[[int, JobResult], None] | None) -> None:
    """Stop every job still running; a failure to stop one must not hide the error being raised."""
    for i, job_run in running.items():
        try:
            job_run.cancel()
        except Exception:  # noqa: S112 - best effort while another error propagates
            continue
        if finished is not None:
            try:
                finished(i, JobResult("cancelled", None, "", time.monotonic() - job_run.started))
            except Exception:  # noqa: S112
                continue
