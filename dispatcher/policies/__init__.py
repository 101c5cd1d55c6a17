"""Execution policies: the policy columns of an execution (``columns``), and what each policy
decides (schedules and recurring runs, rollout waves, abort criteria, automatic retries,
continuous jobs). The periodic sweeps that apply them over time are in ``dispatcher.maintenance``.
"""

POLICY_ACTOR = "system:policies"
