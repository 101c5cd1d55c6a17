"""Constants the suite's modules share. Kept out of ``conftest.py``: the chaos tests have a
conftest of their own, and importing from ``conftest`` finds whichever was loaded last."""

from __future__ import annotations

import os

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Long enough for the server commands, which refuse an ADMIN_TOKEN under 32 characters.
TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef-0123"
