"""Mosquitto restarted and down, the API and a worker SIGKILLed, PostgreSQL restarted mid-fan-out,
beat stopped and doubled, under load: jobs still arrive, results are counted once, fan-outs
happen once."""

from __future__ import annotations

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


def test_beat_stopped_then_two_beats_at_once(chaos_stack):
    """Jobs executed while the broker is down wait for the stalled fan-out sweep: none fans out
    while beat is stopped; with two beats running each fans out once."""
    stack = chaos_stack()
    stack.bulk_register(200)
    stack.start_worker()
    beat = stack.start_beat()
    stack.start_api()
    beat.stop()
    stack.redis.stop()
    jobs = [stack.execute({"job_document": quick_job(), "target_type": "all"})
            for _ in range(5)]
    stack.redis.start()
    time.sleep(3 * stack.settings.fanout_sweep_interval_s + stack.settings.fanout_stalled_after_s)
    assert [stack.fanout(j)["rows"] for j in jobs] == [0] * 5
    stack.start_beat()
    stack.start_beat()
    started_at = time.monotonic()
    for job_id in jobs:
        state = stack.wait_fanned_out(job_id)
        assert state["rows"] == state["devices"] == state["total_devices"] == 200
    caught_up_s = time.monotonic() - started_at
    time.sleep(3 * stack.settings.fanout_sweep_interval_s)  # more slots of both beats
    finished = stack.sql("SELECT job_id, count(*) AS n FROM job_events"
                         " WHERE action = 'job.fanned_out' GROUP BY job_id")
    assert sorted(r["n"] for r in finished) == [1] * 5, finished
    report("beat-stopped-then-two-beats",
           fault="beat stopped while 5 jobs were executed with the broker down; then two beats",
           fanned_out_while_beat_stopped="0 of 5",
           all_fanned_out_after_beats_started_s=f"{caught_up_s:.1f}",
           fan_outs_finished_per_job="1 each (job.fanned_out recorded once)")
