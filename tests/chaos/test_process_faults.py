"""Mosquitto restarted and down, the API and a worker SIGKILLed, PostgreSQL restarted mid-fan-out,
beat stopped and doubled, under load: jobs still arrive, results are counted once, fan-outs
happen once."""

from __future__ import annotations

import threading
import time

import pytest
from chaos_stack import PollLoad, report
from processes import wait_until

pytestmark = pytest.mark.slow


def quick_job(seconds: int = 0) -> dict:
    return {"version": "1.0", "steps": [
        {"name": "Work", "type": "runCommand", "input": {"command": f"sleep,{seconds}"}}]}


def on_group(device_type: str, seconds: int = 0) -> dict:
    return {"job_document": quick_job(seconds), "target_type": "group",
            "target_filter": {"device_type": device_type}}


def test_mosquitto_down_then_restarted(chaos_stack):
    """While Mosquitto is down, jobs arrive by poll; once it is back, agents resubscribe by
    themselves and a job reaches agents that poll only every 5 minutes by its nudge."""
    stack = chaos_stack()
    stack.start_worker()
    stack.start_api()
    pollers = [stack.register(f"fast-{i}", "chaos-fast") for i in range(2)]
    sleepers = [stack.register(f"slow-{i}", "chaos-slow") for i in range(2)]
    agents = [stack.start_agent(d, poll_interval_s=3, mqtt=True) for d in pollers]
    agents += [stack.start_agent(d, poll_interval_s=300, mqtt=True) for d in sleepers]

    stack.mosquitto.stop()
    down_at = time.monotonic()
    by_poll = stack.execute(on_group("chaos-fast"))
    stack.wait_job(by_poll, "SUCCEEDED", timeout_s=60)
    by_poll_s = time.monotonic() - down_at
    stack.assert_each_result_once(by_poll, pollers)

    stack.mosquitto.start()
    up_at = time.monotonic()
    wait_until(lambda: all(a.log_text().count("mqtt subscribed") >= 2 for a in agents), 90,
               "every agent to subscribe again")
    resubscribed_s = time.monotonic() - up_at
    executed_at = time.monotonic()
    by_nudge = stack.execute(on_group("chaos-slow"))
    stack.wait_job(by_nudge, "SUCCEEDED", timeout_s=120)
    by_nudge_s = time.monotonic() - executed_at
    stack.assert_each_result_once(by_nudge, sleepers)
    report("mosquitto-down-and-restarted",
           fault="Mosquitto stopped, a job executed, Mosquitto started again",
           job_by_poll_while_down_s=f"{by_poll_s:.1f} (agents polling every 3 s)",
           agents_resubscribed_after_return_s=f"{resubscribed_s:.1f}",
           job_by_nudge_after_return_s=f"{by_nudge_s:.1f} (agents polling every 300 s)")


def test_api_sigkilled_while_agents_report(chaos_stack):
    stack = chaos_stack()
    stack.start_worker()
    api = stack.start_api(workers=2, threads=4)
    devices = [stack.register(f"agent-{i}", "chaos-agent") for i in range(6)]
    agents = [stack.start_agent(d) for d in devices]
    pollers = [stack.register(f"poller-{i}", "chaos-poller") for i in range(10)]
    job_id = stack.execute(on_group("chaos-agent", seconds=3))
    wait_until(lambda: len(stack.device_reports(job_id)) == len(devices), 60,
               "every agent started")
    with PollLoad(api.url, pollers) as load:
        time.sleep(1)
        api.kill()
        killed_at = time.monotonic()
        wait_until(lambda: all("final report not delivered" in a.log_text() for a in agents),
                   60, "every agent to have a result it could not deliver")
        restarting_at = time.monotonic()
        stack.restart_api()  # returns once it answers
        up_at = time.monotonic()
        wait_until(lambda: load.first_ok_after(up_at) is not None, 60, "a poll answered 200")
    stack.wait_job(job_id, "SUCCEEDED", timeout_s=60)
    delivered_s = time.monotonic() - up_at
    stack.assert_each_result_once(job_id, devices)
    time.sleep(2)  # a few more agent rounds: nothing is sent twice
    stack.assert_each_result_once(job_id, devices)
    during = load.between(killed_at + 0.5, restarting_at)
    # No answer at all, never an error answer: refused, or reset for a request in flight.
    assert set(during) <= {"ConnectionRefusedError", "ConnectionResetError",
                           "RemoteDisconnected"}, during
    report("api-sigkilled-while-agents-report",
           fault="the API (gunicorn, 2 workers) SIGKILLed while 6 agents finished a job",
           answers_during_outage=dict(during),
           first_200_after_restart_s=f"{load.first_ok_after(up_at):.2f}",
           all_results_counted_after_restart_s=f"{delivered_s:.1f}",
           results="each counted once")


@pytest.mark.parametrize("fault", ["postgresql restarted", "worker sigkilled"])
def test_a_fault_mid_fan_out_leaves_one_row_per_device(chaos_stack, fault):
    """PostgreSQL restarted (the chunk in hand fails), or the worker SIGKILLed and another
    started, with 3 of 10 chunks committed: the stalled fan-out sweep sends the fan-out again
    and it finishes from its cursor."""
    devices, chunk = 3_000, 300
    stack = chaos_stack(fanout_chunk_size=chunk)
    stack.bulk_register(devices)
    worker = stack.start_worker()
    stack.start_beat()
    stack.start_api()
    with stack.fan_out_held_at(3 * chunk + 10):
        job_id = stack.execute({"job_document": quick_job(), "target_type": "all"})
        wait_until(lambda: stack.fanout(job_id)["rows"] == 3 * chunk, 60, "three chunks")
        if fault == "worker sigkilled":
            worker.kill()
        else:
            stack.postgres.restart(down_s=2)  # ends the holding transaction too
    back_at = time.monotonic()
    if fault == "worker sigkilled":
        worker = stack.start_worker()
    state = stack.wait_fanned_out(job_id, alive=worker)
    assert state["rows"] == state["devices"] == state["total_devices"] == devices
    report(f"{fault.replace(' ', '-')}-mid-fan-out",
           fault=f"{fault} with 3 of 10 chunks of a fan-out to {devices} devices committed",
           fan_out_done_after_the_fault_s=f"{time.monotonic() - back_at:.1f}",
           rows=f"{state['rows']} for {devices} devices")


CRON_EVERY_S = 2
RUNS = 3
MISSED_SLOTS = 4


def test_beat_stopped_then_two_beats_at_once(chaos_stack):
    """Beat stopped for several slots, then two beats at once. Meanwhile jobs are executed with
    the broker down (they wait for the stalled fan-out sweep) and a recurring job every 2 s (3
    runs, on two agents) misses its slots. Nothing fans out nor fires while beat is stopped;
    with two beats each job fans out once, and the recurring job catches up once, for the
    latest slot passed, the missed ones counted as skipped, not replayed (as
    ``dispatcher.policies.schedules`` says); no slot fires twice; each run runs once on each
    agent."""
    stack = chaos_stack()
    stack.bulk_register(200)
    stack.start_worker()
    beat = stack.start_beat()
    stack.start_api()
    devices = [stack.register(f"cron-{i}", "chaos-cron") for i in range(2)]
    for device in devices:
        stack.start_agent(device)
    parent = stack.execute({
        "job_document": {"version": "1.0", "steps": [
            {"name": "Mark", "type": "runCommand",
             "input": {"command": "sh,-c,echo ran >> $DEVICE_HOME/ran"}}]},
        "target_type": "group", "target_filter": {"device_type": "chaos-cron"},
        "execution_type": "recurring",
        "schedule": {"cron": f"* * * * * */{CRON_EVERY_S}", "max_runs": RUNS}})

    def fired() -> list[dict]:
        return [e["details"] for e in stack.sql(
            "SELECT details FROM job_events WHERE job_id = %s AND action = 'job.run_fired'"
            " ORDER BY id", parent)]

    wait_until(fired, 30, "the first run")
    beat.stop()
    time.sleep(1.5)  # a sweep already sent finishes
    before = fired()
    stack.redis.stop()
    jobs = [stack.execute({"job_document": quick_job(), "target_type": "group",
                           "target_filter": {"device_type": "chaos-bulk"}}) for _ in range(5)]
    stack.redis.start()
    time.sleep(max(3 * stack.settings.fanout_sweep_interval_s
                   + stack.settings.fanout_stalled_after_s, MISSED_SLOTS * CRON_EVERY_S))
    assert [stack.fanout(j)["rows"] for j in jobs] == [0] * 5
    assert fired() == before, "a run fired while beat was stopped"
    beats = [threading.Thread(target=stack.start_beat) for _ in range(2)]
    for thread in beats:
        thread.start()
    for thread in beats:
        thread.join(60)
    assert sum(p.name == "celery beat" and p.is_running()
               for p in stack.processes.started) == 2, "two beats"
    started_at = time.monotonic()
    for job_id in jobs:
        state = stack.wait_fanned_out(job_id)
        assert state["rows"] == state["devices"] == state["total_devices"] == 200
    caught_up_s = time.monotonic() - started_at
    wait_until(lambda: len(fired()) > len(before), 30, "the catch-up run")
    run_caught_up_s = time.monotonic() - started_at
    ended = stack.wait_job(parent, "SUCCEEDED", timeout_s=60)
    time.sleep(3 * stack.settings.fanout_sweep_interval_s)  # more slots of both beats
    finished = stack.sql("SELECT job_id, count(*) AS n FROM job_events"
                         " WHERE action = 'job.fanned_out' AND job_id = ANY(%s::uuid[])"
                         " GROUP BY job_id", jobs)
    assert sorted(r["n"] for r in finished) == [1] * 5, finished

    assert ended["run_count"] == RUNS
    runs = stack.sql("SELECT job_id::text AS job_id, scheduled_for FROM job_executions"
                     " WHERE parent_job_id = %s ORDER BY scheduled_for", parent)
    events = fired()
    assert len(runs) == len(events) == RUNS, (runs, events)
    assert len({r["scheduled_for"] for r in runs}) == RUNS
    catch_up = events[len(before)]
    assert catch_up["skipped_slots"] >= MISSED_SLOTS - 1, catch_up
    gap_s = (runs[len(before)]["scheduled_for"]
             - runs[len(before) - 1]["scheduled_for"]).total_seconds()
    assert gap_s >= MISSED_SLOTS * CRON_EVERY_S, gap_s  # the missed slots were not replayed
    for run in runs:
        stack.wait_job(run["job_id"], "SUCCEEDED", timeout_s=60)
        stack.assert_each_result_once(run["job_id"], devices)
    for device in devices:
        assert (device["home"] / "ran").read_text() == "ran\n" * RUNS
    report("beat-stopped-then-two-beats",
           fault="beat stopped while 5 jobs were executed with the broker down and a recurring"
                 f" job every {CRON_EVERY_S} s missed its slots; then two beats at once",
           fanned_out_while_beat_stopped="0 of 5", runs_fired_while_beat_stopped="0",
           all_fanned_out_after_beats_started_s=f"{caught_up_s:.1f}",
           fan_outs_finished_per_job="1 each (job.fanned_out recorded once)",
           recurring_catch_up=f"1 run {run_caught_up_s:.1f} s after the beats started, for the"
                              f" latest slot ({catch_up['skipped_slots']} skipped slots"
                              " counted, not replayed)",
           recurring_runs=f"{RUNS} of {RUNS}, one per slot, each run once on each of 2 agents")
