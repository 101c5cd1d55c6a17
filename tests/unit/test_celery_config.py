"""The Celery configuration by broker: what RabbitMQ and Redis each get."""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.sender import QUEUES, celery_config

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def queues(settings: Settings) -> dict:
    return {q.name: q for q in celery_config(settings)["task_queues"]}


def test_on_redis_queues_stay_durable_classic_ones_even_with_quorum_queues_asked():
    settings = Settings(celery_key_prefix="site1:", celery_quorum_queues=True)
    options = celery_config(settings)["broker_transport_options"]
    assert options["global_keyprefix"] == "site1:"
    assert options["socket_timeout"] > 0 and options["socket_connect_timeout"] > 0
    for name, queue in queues(settings).items():
        assert queue.durable and queue.exchange.type == "direct" and queue.routing_key == name
        assert not queue.queue_arguments


def test_rabbitmq_confirms_publishes_and_quorum_queues_sit_on_topic_exchanges():
    classic = Settings(celery_broker_url=RABBITMQ)
    assert celery_config(classic)["broker_transport_options"] == {"confirm_publish": True}
    assert all(q.durable and not q.queue_arguments for q in queues(classic).values())
    quorum = queues(Settings(celery_broker_url=RABBITMQ, celery_quorum_queues=True))
    assert set(quorum) == set(QUEUES)
    for name, queue in quorum.items():
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (
            name, "topic", name)


def test_a_task_is_acknowledged_after_it_ran_and_the_broker_is_retried_for_ever():
    config = celery_config(Settings(celery_broker_url=RABBITMQ))
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["broker_connection_retry"] and config["broker_connection_max_retries"] is None
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False


def test_quorum_queues_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("CELERY_QUORUM_QUEUES", "1")
    assert Settings.from_env().celery_quorum_queues
