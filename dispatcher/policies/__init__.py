"""Execution policies: the policy columns of an execution, and the periodic sweeps that apply
them (schedules and recurring runs, rollout waves, timeouts, end times, maintenance windows,
abort criteria, automatic retries, continuous jobs).

Beat runs each sweep every few seconds (``workers.periodic``); PostgreSQL decides. Every sweep
locks what it moves with ``SKIP LOCKED`` (a second beat or worker running the same sweep skips
it) and every decision is a conditional statement, so running a sweep twice, or twice at once,
leaves the same rows as running it once. Each sweep takes its clock as ``now`` so tests can
drive time, and returns an ``Outcome`` (``dispatcher.jobs.outcome``) that its caller carries
out after the commit.
"""

POLICY_ACTOR = "system:policies"
# Jobs (or rows) a sweep takes on per run; the next run takes the rest.
BATCH_SIZE = 1_000
