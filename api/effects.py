"""The API's side of the one way out of the domain: a view hands what a domain function decided
to ``carried``, which carries its outcome out through the sender after the commit and answers
what the function answered."""

from __future__ import annotations

from flask import current_app

from dispatcher.config import Settings
from dispatcher.outcome import Decided, T
from dispatcher.sender import deliver


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def carried(decided: Decided[T]) -> T:
    return deliver(decided, settings())
