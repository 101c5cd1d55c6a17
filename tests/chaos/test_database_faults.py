"""PostgreSQL down for 30 s, restarted in the middle of a sweep, and cut off from the API by
the network, under load: devices polling, real agents running a job and reporting.

During an outage every answer is 503 with Retry-After, never a 500 nor a hang; ``/readyz``
names the database; the API logs the outage once. Agents keep their results in their outbox
and deliver each exactly once when the database is back; the job's counters are exact.
"""

from __future__ import annotations

import collections
import contextlib
import time

import psycopg
import pytest
from chaos_stack import PollLoad, report
from processes import wait_until

from dispatcher.maintenance import timeouts

pytestmark = pytest.mark.slow

AGENTS = 5
POLLERS = 30
OUTAGE_S = 30.0


def job_document(seconds: int) -> dict:
    return {"version": "1.0", "includeStdOut": True, "steps": [
        {"name": "Work", "type": "runCommand", "input": {"command": f"sleep,{seconds}"}},
        {"name": "Done", "type": "runCommand", "input": {"command": "echo,done"}},
    ]}


def fleet(stack, agents: int, pollers: int) -> tuple[list[dict], list[dict]]:
    with_agents = [stack.register(f"agent-{i}", "chaos-agent") for i in range(agents)]
    for device in with_agents:
        stack.start_agent(device)
    return with_agents, [stack.register(f"poller-{i}", "chaos-poller") for i in range(pollers)]


def readyz(stack) -> tuple[int, dict]:
    status, answer = stack.http.request("GET", "/readyz")
    return status, answer or {}


def test_postgres_down_30_s_under_poll_and_report_load(chaos_stack):
    stack = chaos_stack()
    stack.start_worker()
    stack.start_beat()
    api = stack.start_api()
    agents, pollers = fleet(stack, AGENTS, POLLERS)
    job_id = stack.execute({"job_document": job_document(4), "target_type": "group",
                            "target_filter": {"device_type": "chaos-agent"}})
    wait_until(lambda: len(stack.device_reports(job_id)) == AGENTS, 60, "every agent started")
    with PollLoad(api.url, pollers) as load:
        time.sleep(2)
        stack.postgres.stop()
        down_at = time.monotonic()
        ready_status, ready = wait_until(lambda: (r := readyz(stack))[0] == 503 and r, 20,
                                         "/readyz to answer 503")
        time.sleep(OUTAGE_S)
        starting_at = time.monotonic()
        stack.postgres.start()  # returns a moment after PostgreSQL accepts connections
        up_at = time.monotonic()
        wait_until(lambda: load.first_ok_after(up_at) is not None, 60, "a poll answered 200")
        time.sleep(2)
    during = load.between(down_at + 1, starting_at)
    assert set(during) == {503}, during
    assert all(a.retry_after and a.retry_after.isdigit()
               for a in load.answers if a.status == 503)
    assert set(load.answers_statuses()) <= {200, 204, 503}, collections.Counter(
        load.answers_statuses())
    assert ready["checks"]["postgres"]["ok"] is False and ready["checks"]["redis"]["ok"]

    stack.wait_job(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
    stack.assert_each_result_once(job_id, agents)
    for device in agents:
        assert list((device["home"] / "state" / "outbox").glob("*.json")) == []
    api_log = api.log_text()
    assert api_log.count("database unavailable") == 1, api_log.count("database unavailable")
    assert "Traceback" not in api_log

    report("postgres-down-30s",
           fault=f"PostgreSQL stopped {OUTAGE_S:.0f} s under {POLLERS} polling devices and "
                 f"{AGENTS} agents finishing a job",
           answers_during_outage=dict(during),
           readyz_during_outage=f"{ready_status} {ready['checks']}",
           first_200_after_return_s=f"{load.first_ok_after(up_at):.2f}",
           api_log_lines="database unavailable x1",
           results="each delivered once after the return; job SUCCEEDED, counters exact")


# The API's client-side limits on PostgreSQL (dispatcher.db_limits), short for the test.
NETWORK_LIMITS = {"db_pool_timeout_s": 2, "db_connect_timeout_s": 2, "db_query_timeout_s": 2}
NETWORK_FAULT_S = 10.0
OPERATOR_LIST = "/api/v1/devices?"


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_network_cut_or_stalled_between_api_and_postgres(chaos_stack, fault):
    """A proxy between the API and PostgreSQL closes every connection (cut), or forwards
    nothing (stall: the proxy keeps acknowledging, so only a client-side limit ends the wait),
    for 10 s, under polls and operators' lists. Every request answers 200 or 503 with
    Retry-After, none later than its limits allow (waiting for a pool connection, then for one
    answer), and the pool's connections recover once the network does."""
    stack = chaos_stack(db_proxy=True, **NETWORK_LIMITS)
    stack.start_worker()
    api = stack.start_api()
    pollers = [stack.register(f"poller-{i}", "chaos-poller") for i in range(10)]
    with PollLoad(api.url, pollers, timeout_s=30, operators=4) as load:
        time.sleep(2)
        getattr(stack.proxy, fault)()
        fault_at = time.monotonic()
        time.sleep(NETWORK_FAULT_S)
        stack.proxy.heal()
        healed_at = time.monotonic()
        wait_until(lambda: load.first_ok_after(healed_at, OPERATOR_LIST) is not None, 60,
                   "an operator's list (a query) answered 200")
        time.sleep(2)
    statuses = collections.Counter(load.answers_statuses())
    assert set(statuses) <= {200, 204, 503}, statuses
    assert all(a.retry_after and a.retry_after.isdigit()
               for a in load.answers if a.status == 503)
    during = load.between(fault_at + 1, healed_at)
    assert 503 in during, during  # the operators' queries could not be answered
    # Bounded: a pool connection within DB_POOL_TIMEOUT_S, one answer within
    # DB_QUERY_TIMEOUT_S, and a few seconds for this loaded machine, well under the fault.
    bound_s = NETWORK_LIMITS["db_pool_timeout_s"] + NETWORK_LIMITS["db_query_timeout_s"] + 4
    slowest = max(a.took_s for a in load.answers)
    assert slowest < bound_s < NETWORK_FAULT_S, (slowest, bound_s)
    assert "Traceback" not in api.log_text()
    report(f"postgres-network-{fault}",
           fault=f"network between API and PostgreSQL {fault} for {NETWORK_FAULT_S:.0f} s"
                 f" (limits {NETWORK_LIMITS})",
           answers_during_fault=dict(during),
           slowest_answer_s=f"{slowest:.1f} (bound {bound_s} s)",
           first_query_200_after_heal_s=f"{load.first_ok_after(healed_at, OPERATOR_LIST):.2f}")


def test_postgres_restarted_in_the_middle_of_a_timeout_sweep(chaos_stack):
    """Two jobs of 2,000 devices each are overdue: the timeout sweep commits the first job's
    batch and waits at the second's (a test transaction holds that job's row), and PostgreSQL
    restarts. Afterwards every row timed out exactly once (one audit event each), both jobs end
    FAILED with exact counters and one completion each, and the worker lives on."""
    stack = chaos_stack()
    per_job = timeouts.BATCH_SIZE
    stack.bulk_register(per_job, "chaos-first")
    stack.bulk_register(per_job, "chaos-second")
    worker = stack.start_worker()
    stack.start_api()
    first, second = (stack.execute({"job_document": job_document(0), "target_type": "group",
                                    "target_filter": {"device_type": kind}})
                     for kind in ("chaos-first", "chaos-second"))
    for job_id in (first, second):
        stack.wait_fanned_out(job_id, alive=worker)
    holder = psycopg.connect(stack.database_url)
    try:
        holder.execute("SELECT 1 FROM job_executions WHERE job_id = %s FOR UPDATE", (second,))
        # Overdue, the first job's rows before the second's: the first batch is all of them.
        stack.sql("UPDATE device_job_status SET timeout_at = now() - CASE job_id"
                  " WHEN %s THEN interval '2 minutes' ELSE interval '1 minute' END"
                  " WHERE job_id IN (%s, %s) RETURNING 1", first, first, second)
        stack.start_beat()
        wait_until(lambda: timed_out(stack, first) == per_job, 60, "the first batch")
        wait_until(lambda: stack.sql("SELECT count(*) AS n FROM pg_stat_activity"
                                     " WHERE wait_event_type = 'Lock'")[0]["n"] > 0,
                   30, "the sweep to wait at the second job's batch")
        assert timed_out(stack, second) == 0
        stack.postgres.restart(down_s=2)  # ends the holding transaction too
    finally:
        with contextlib.suppress(psycopg.Error):  # the restart ended it
            holder.close()
    back_at = time.monotonic()
    jobs = [stack.wait_job(job_id, "FAILED", timeout_s=60) for job_id in (first, second)]
    recovered_s = time.monotonic() - back_at
    time.sleep(3 * stack.settings.policy_sweep_interval_s)  # more sweeps: nothing moves again
    for job in (stack.job(first), stack.job(second)):
        assert (job["status"], job["total_devices"], job["succeeded_devices"],
                job["failed_devices"]) == ("FAILED", per_job, 0, per_job), job
    for job_id in (first, second):
        assert timed_out(stack, job_id) == per_job
        events = stack.sql(
            "SELECT count(*) AS n, count(DISTINCT device_uuid) AS devices FROM job_events"
            " WHERE job_id = %s AND action = 'device_job.timed_out'", job_id)[0]
        assert events == {"n": per_job, "devices": per_job}, events
        completed = stack.sql("SELECT count(*) AS n FROM job_events WHERE job_id = %s"
                              " AND action = 'job.completed'", job_id)[0]["n"]
        assert completed == 1, completed
    assert worker.is_running(), worker.log_text()[-3000:]
    report("postgres-restarted-mid-timeout-sweep",
           fault=f"PostgreSQL restarted (2 s down) while the timeout sweep held the second of"
                 f" two {per_job}-row batches, the first committed",
           after_return=f"both jobs FAILED in {recovered_s:.1f} s, each row TIMED_OUT once",
           counters=f"failed_devices {jobs[0]['failed_devices']} and"
                    f" {jobs[1]['failed_devices']}; one job.completed each",
           worker="alive")


def timed_out(stack, job_id: str) -> int:
    return stack.sql("SELECT count(*) AS n FROM device_job_status WHERE job_id = %s"
                     " AND status = 'TIMED_OUT'", job_id)[0]["n"]
