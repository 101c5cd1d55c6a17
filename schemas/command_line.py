"""What the ``dispatcher`` command reads the same way in its server and operator commands:
``KEY=VALUE``, a device attribute (``device register --attr``, ``devices list --attr``,
``jobs execute --group``).

The standard library alone, so the operator commands (``client``) can read it too.
"""

from __future__ import annotations

import argparse


def key_value(text: str) -> tuple[str, str]:
    """An argparse type: ``"site=lab"`` is ``("site", "lab")``; a value may hold "="."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value
