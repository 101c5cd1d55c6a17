"""The stage gate sweep: decides the gates of running rollouts that no report decided (a soak
that ended, a stage timeout that came, a report whose own decision was lost), and carries on
stage releases that stopped before every row was released (a worker killed mid-release, a lost
enqueue)."""

from __future__ import annotations

from datetime import datetime

from dispatcher.config import Settings
from dispatcher.maintenance.sweep import Sweep
from dispatcher.outcome import Outcome
from dispatcher.policies import gates, stages

# Rollouts decided per run; the next run takes the rest.
BATCH_SIZE = 500
# A release with no committed chunk for this long is enqueued again.
RELEASE_STALLED_AFTER_S = 30


def decide_stage_gates(now: datetime, settings: Settings) -> Outcome:
    """Decide the gate of every running rollout's released stage, and send again the stage
    releases that stalled."""
    outcome = Outcome()
    for job_id in gates.gates_due(BATCH_SIZE):
        outcome.merge(gates.evaluate_gate(job_id, now))
    outcome.stage_releases |= set(stages.stalled_releases(now, RELEASE_STALLED_AFTER_S,
                                                          BATCH_SIZE))
    return outcome


SWEEP = Sweep("maintenance.decide_stage_gates", "stage_gate_sweep_interval_s", BATCH_SIZE,
              decide_stage_gates)
