"""The words of the job domain, defined once: statuses, their named groups, execution types,
end behaviors and target types.

The API's schemas validate against these, the dispatcher decides with them, the agent reports
them; the migrations' CHECK constraints spell the same literals. The state table that says who
may move a device's row from which status to which is ``dispatcher.jobs.states``.
"""

from __future__ import annotations

# A device's execution of a job (device_job_status.status).
QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
REJECTED = "REJECTED"
CANCELED = "CANCELED"
REMOVED = "REMOVED"

DEVICE_STATUSES = (QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, TIMED_OUT, REJECTED, CANCELED, REMOVED)
# Not finished: the device still has the job to run or is running it.
PENDING = frozenset({QUEUED, IN_PROGRESS})
TERMINAL = frozenset(DEVICE_STATUSES) - PENDING
# Terminal statuses that make a job FAILED and that a retry queues again.
FAILURES = frozenset({FAILED, TIMED_OUT, REJECTED})
# Terminal statuses of a device that ran the job (canceled and removed rows never did).
EXECUTED = frozenset({SUCCEEDED}) | FAILURES
# What a device itself reports; the other statuses are the server's to set.
DEVICE_REPORTED = (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED)

# A job (job_executions.status).
SCHEDULED = "SCHEDULED"
JOB_STATUSES = (SCHEDULED, QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, CANCELED)
# A job that a device completing can still move to SUCCEEDED or FAILED.
ACTIVE_JOB = frozenset({QUEUED, IN_PROGRESS})
# A job that can still do something: start, fire a run, hand out rows.
LIVE_JOB = ACTIVE_JOB | {SCHEDULED}
# A job that is over: its fan-out adds no rows, its devices get nothing more.
ENDED_JOB = frozenset({SUCCEEDED, FAILED, CANCELED})
# A job whose devices all finished (it cannot be canceled any more).
COMPLETED_JOB = frozenset({SUCCEEDED, FAILED})

# Where a job's fan-out stands (``job_executions.fanout_status``). The SQL spells DONE as a
# literal where a partial index's predicate must match it.
FANOUT_PENDING = "PENDING"
FANOUT_RUNNING = "RUNNING"
FANOUT_DONE = "DONE"

# How a job runs (job_executions.execution_type).
ONE_TIME = "oneTime"
RECURRING = "recurring"
CONTINUOUS = "continuous"
EXECUTION_TYPES = (ONE_TIME, RECURRING, CONTINUOUS)

# What happens at a job's end time (scheduling_config.end_behavior).
STOP_ROLLOUT = "STOP_ROLLOUT"
CANCEL = "CANCEL"
FORCE_CANCEL = "FORCE_CANCEL"
END_BEHAVIORS = (STOP_ROLLOUT, CANCEL, FORCE_CANCEL)

# What an API token may do: admin tokens everything, viewer tokens only read.
TOKEN_ROLES = ("admin", "viewer")

# Which devices a job targets (job_executions.target_type).
TARGET_DEVICE = "device"
TARGET_GROUP = "group"
TARGET_ALL = "all"
TARGET_TYPES = (TARGET_DEVICE, TARGET_GROUP, TARGET_ALL)

# A staged rollout (job_executions.rollout_state) and each of its stages (job_stages.state).
WAITING_FOR_APPROVAL = "WAITING_FOR_APPROVAL"
RUNNING = "RUNNING"
PAUSED = "PAUSED"
FINISHED = "FINISHED"
STOPPED = "STOPPED"
ROLLOUT_STATES = (WAITING_FOR_APPROVAL, RUNNING, PAUSED, FINISHED, STOPPED)
STAGE_PENDING = "PENDING"
STAGE_RELEASED = "RELEASED"
STAGE_PASSED = "PASSED"
STAGE_FAILED = "FAILED"
STAGE_PROMOTED = "PROMOTED"
STAGE_STATES = (STAGE_PENDING, STAGE_RELEASED, STAGE_PASSED, STAGE_FAILED, STAGE_PROMOTED)
# What a gate does after it passed: release the next stage, or pause for a person.
ON_SUCCESS_CONTINUE = "continue"
ON_SUCCESS_PAUSE = "pause"
ON_SUCCESS = (ON_SUCCESS_CONTINUE, ON_SUCCESS_PAUSE)
