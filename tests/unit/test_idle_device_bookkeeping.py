"""The idle devices' bookkeeping: a poll's query learns a device idle only when nothing about
that device was notified after the query started, and never across a reload or a drop."""

from __future__ import annotations

import uuid

from dispatcher.poll.idle import IdleDevices

TOKEN = b"t" * 32


def loaded(*devices: uuid.UUID) -> IdleDevices:
    known = IdleDevices("postgresql://unused")
    known._load({device.bytes: TOKEN for device in devices}, {})
    known._enabled = True
    return known


def test_only_the_right_token_of_a_loaded_device_is_idle():
    pi, other = uuid.uuid4(), uuid.uuid4()
    known = loaded(pi)
    assert known.is_idle(pi, TOKEN)
    assert not known.is_idle(pi, b"x" * 32)
    assert not known.is_idle(other, TOKEN)


def test_a_notification_handled_while_the_query_ran_keeps_the_device_forgotten():
    pi = uuid.uuid4()
    known = loaded()
    position = known.position  # the poll's query starts
    known.forget([pi.bytes])  # a job committed meanwhile
    known.learn_idle(pi, TOKEN, position)  # the query did not see it
    assert not known.is_idle(pi, TOKEN)
    known.learn_idle(pi, TOKEN, known.position)  # a later query found it idle
    assert known.is_idle(pi, TOKEN)


def test_notifications_about_other_devices_do_not_stop_learning():
    pi = uuid.uuid4()
    known = loaded()
    position = known.position
    known.forget([uuid.uuid4().bytes])
    known.learn_idle(pi, TOKEN, position)
    assert known.is_idle(pi, TOKEN)


def test_a_drop_forgets_everything_and_refuses_what_queries_before_it_learn():
    pi, other = uuid.uuid4(), uuid.uuid4()
    known = loaded(pi)
    position = known.position
    known.drop()
    assert not known.enabled and not known.is_idle(pi, TOKEN)
    known._load({}, {})
    known._enabled = True
    known.learn_idle(other, TOKEN, position)  # its query started before the drop
    assert not known.is_idle(other, TOKEN)
    assert not known.is_idle(pi, TOKEN)


def test_a_token_a_statement_verified_is_known_until_its_device_is_notified():
    pi = uuid.uuid4()
    known = loaded()
    known.learn_token(pi, TOKEN, known.position)  # a report's statement found it the device's
    assert known.knows_token(pi, TOKEN) and not known.knows_token(pi, b"x" * 32)
    assert not known.is_idle(pi, TOKEN)  # a token says nothing of what is pending
    known.forget([pi.bytes])  # its token was rotated
    assert not known.knows_token(pi, TOKEN)


def test_a_token_verified_before_a_notification_is_not_learnt():
    pi = uuid.uuid4()
    known = loaded()
    position = known.position  # a report's statement starts
    known.forget([pi.bytes])  # the device's token is rotated meanwhile
    known.learn_token(pi, TOKEN, position)
    assert not known.knows_token(pi, TOKEN)


def test_learning_a_known_token_keeps_the_device_idle():
    pi = uuid.uuid4()
    known = loaded(pi)
    known.learn_token(pi, TOKEN, known.position)
    assert known.is_idle(pi, TOKEN)


def test_a_process_without_a_listener_remembers_tokens_but_knows_no_device_idle():
    pi = uuid.uuid4()
    known = IdleDevices(None)
    known.learn_idle(pi, TOKEN, known.position)
    assert known.knows_token(pi, TOKEN)
    assert not known.is_idle(pi, TOKEN)
