"""Periodic work, one module per sweep: each names its Celery task, the setting that says how
often beat runs it and its batch size (``SWEEP``), and runs at a given time, returning what it
leaves to do (an ``Outcome``) for the worker task to carry out.

Beat runs each sweep every few seconds (``workers.periodic``); PostgreSQL decides. Every sweep
locks what it moves with ``SKIP LOCKED`` (a second beat or worker running the same sweep skips
it) and every decision is a conditional statement, so running a sweep twice, or twice at once,
leaves the same rows as running it once. Each takes its clock as ``now`` so tests can drive time.
"""

from __future__ import annotations

from dispatcher.maintenance import (
    abort_criteria,
    continuous_jobs,
    end_times,
    event_partitions,
    fleet_count,
    maintenance_windows,
    recurring_runs,
    retention,
    retries,
    rollout_waves,
    scheduled_starts,
    stage_gates,
    stalled_fanouts,
    timeouts,
)
from dispatcher.maintenance.sweep import Sweep

SWEEPS: tuple[Sweep, ...] = (
    stalled_fanouts.SWEEP,
    scheduled_starts.SWEEP,
    recurring_runs.SWEEP,
    rollout_waves.SWEEP,
    timeouts.SWEEP,
    end_times.SWEEP,
    abort_criteria.SWEEP,
    retries.SWEEP,
    maintenance_windows.SWEEP,
    stage_gates.SWEEP,
    continuous_jobs.SWEEP,
    fleet_count.SWEEP,
    retention.SWEEP,
    event_partitions.SWEEP,
)
