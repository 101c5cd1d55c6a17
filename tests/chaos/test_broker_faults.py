"""The Celery broker (Redis, and RabbitMQ) restarted in the middle of a fan-out, and down when a
job is executed: the worker lives through it and every job fans out once it is back, none twice.

A test transaction holds one device row, so the worker is caught mid-fan-out with its task
delivered and not yet acknowledged (``task_acks_late``) when the broker goes away: the case
that used to end the worker with ``Unrecoverable error: AttributeError("'NoneType' object has
no attribute 'hostname'")``.

What a broker restart does to queued tasks: the chaos Redis keeps an append-only file and
RabbitMQ's queues are durable, so tasks queued before the restart are still there after it;
a task a worker held unacknowledged goes back to its queue (RabbitMQ at once; Redis after its
visibility timeout). Either way the domain does not depend on it: a fan-out that was never sent,
or whose task was lost, is sent again by the stalled fan-out sweep, and every fan-out is
idempotent.
"""

from __future__ import annotations

import threading
import time

import pytest
from chaos_stack import ADMIN, BROKERS, report
from json_http import JsonHttp
from processes import wait_until

pytestmark = pytest.mark.slow

DEVICES = 3_000
CHUNK = 300
DOCUMENT = {"version": "1.0", "steps": [
    {"name": "Check", "type": "runCommand", "input": {"command": "true"}}]}
BROKER_DOWN_S = 4.0


@pytest.mark.parametrize("broker", BROKERS)
def test_broker_restarted_mid_fan_out_and_down_at_execute(chaos_stack, broker):
    stack = chaos_stack(broker=broker, fanout_chunk_size=CHUNK)
    stack.bulk_register(DEVICES)
    worker = stack.start_worker()
    stack.start_api()
    body = {"job_document": DOCUMENT, "target_type": "all"}

    # 1. Restarted mid-fan-out: a device in the fifth chunk is held, the broker restarts. The
    # worker has the fan-out task running, unacknowledged, and waits for its next task on its
    # other process (beat starts later, so that nothing else is in flight).
    with stack.fan_out_held_at(4 * CHUNK + CHUNK // 2):
        first = stack.execute(body)
        wait_until(lambda: stack.fanout(first)["rows"] == 4 * CHUNK, 60, "four chunks")
        time.sleep(1)  # the chunks' nudges done: the worker waits for its next task meanwhile
        stack.broker_service.restart(down_s=BROKER_DOWN_S)
        restarted_at = time.monotonic()
    state = stack.wait_fanned_out(first, alive=worker)
    first_recovered_s = time.monotonic() - restarted_at
    assert state["rows"] == state["devices"] == state["total_devices"] == DEVICES

    # 2. Down at execute: the API answers, the job is durable, and it fans out once the broker
    # is back (sent again by the stalled fan-out sweep).
    stack.start_beat()
    stack.broker_service.stop()
    down_at = time.monotonic()
    answers = []
    second = stack.call("POST", "/jobs/execute", {"job_name": "chaos", **body}, expect=201)
    answers.append(201)
    execute_took_s = time.monotonic() - down_at
    time.sleep(BROKER_DOWN_S)
    assert stack.fanout(second["job"]["job_id"])["rows"] == 0
    stack.broker_service.start()
    back_at = time.monotonic()
    state = stack.wait_fanned_out(second["job"]["job_id"], alive=worker)
    second_recovered_s = time.monotonic() - back_at
    assert state["rows"] == state["devices"] == state["total_devices"] == DEVICES

    # 3. The worker lived through both and goes on consuming.
    third = stack.execute(body)
    state = stack.wait_fanned_out(third, alive=worker)
    assert state["rows"] == state["devices"] == DEVICES
    assert worker.is_running(), worker.log_text()[-3000:]
    assert "Unrecoverable error" not in worker.log_text()
    # No fan-out ran its inserts twice: one row per device per job, and no job has rows for
    # devices it already had (rows == distinct devices above); nothing else was executed.
    assert len(stack.sql("SELECT job_id FROM job_executions")) == 3

    if broker == "rabbitmq":
        queues = stack.rabbitmq.queues()
        for name in ("fanout", "nudges", "maintenance"):
            assert queues[name]["type"] == "classic" and queues[name]["durable"] == "true"
    report(f"broker-{broker}",
           fault=f"{broker} restarted ({BROKER_DOWN_S:.0f} s down) mid-fan-out of {DEVICES}"
                 f" devices; then down while a job was executed",
           execute_answer_while_down=f"{answers} in {execute_took_s:.2f} s",
           mid_fan_out_job_done_after_restart_s=f"{first_recovered_s:.1f}",
           job_executed_while_down_fanned_out_after_return_s=f"{second_recovered_s:.1f}",
           worker="alive, consuming after both faults")


def test_nothing_is_sent_while_the_broker_is_down_and_nothing_blocks(chaos_stack):
    """Executes during a Redis outage answer 201 promptly from several clients at once."""
    stack = chaos_stack(broker="redis")
    stack.bulk_register(50)
    stack.start_worker()
    stack.start_beat()
    stack.start_api()
    stack.redis.stop()
    timings: list[float] = []
    job_ids: list[str] = []

    def execute() -> None:
        started = time.monotonic()
        status, answer = JsonHttp(stack.api.url).request(
            "POST", "/api/v1/jobs/execute",
            {"job_name": "chaos", "job_document": DOCUMENT, "target_type": "all"}, ADMIN)
        assert status == 201, answer
        timings.append(time.monotonic() - started)
        job_ids.append(answer["job"]["job_id"])

    threads = [threading.Thread(target=execute) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(job_ids) == 4
    stack.redis.start()
    for job_id in job_ids:
        state = stack.wait_fanned_out(job_id)
        assert state["rows"] == state["devices"] == 50
    report("broker-redis-down-concurrent-executes",
           execute_answers="4 x 201", slowest_execute_s=f"{max(timings):.2f}")


def test_rabbitmq_quorum_queues_run_jobs_on_agents_through_a_broker_restart(chaos_stack):
    """CELERY_QUORUM_QUEUES: the queues are durable quorum queues; a job runs on real agents,
    RabbitMQ restarts, and the next job does too."""
    stack = chaos_stack(broker="rabbitmq", celery_quorum_queues=True)
    worker = stack.start_worker()
    stack.start_beat()
    stack.start_api()
    devices = [stack.register(f"agent-{i}", "chaos-agent") for i in range(3)]
    for device in devices:
        stack.start_agent(device, mqtt=True, poll_interval_s=5)
    body = {"job_document": DOCUMENT, "target_type": "group",
            "target_filter": {"device_type": "chaos-agent"}}
    first = stack.execute(body)
    stack.wait_job(first, "SUCCEEDED")
    stack.assert_each_result_once(first, devices)
    queues = stack.rabbitmq.queues()
    for name in ("fanout", "nudges", "maintenance"):
        assert queues[name]["type"] == "quorum" and queues[name]["durable"] == "true", queues
    stack.rabbitmq.restart(down_s=BROKER_DOWN_S)
    restarted_at = time.monotonic()
    second = stack.execute(body)
    stack.wait_job(second, "SUCCEEDED")
    assert worker.is_running()
    stack.assert_each_result_once(second, devices)
    report("rabbitmq-quorum-restart",
           fault=f"RabbitMQ (quorum queues) restarted, {BROKER_DOWN_S:.0f} s down",
           job_after_restart_succeeded_s=f"{time.monotonic() - restarted_at:.1f}",
           queues={name: queues[name]["type"] for name in ("fanout", "nudges", "maintenance")})
