"""The device-jobs server's domain. The server needs Python 3.11+; the agent alone runs on 3.9."""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 (the agent alone supports older ones)
    raise ImportError("the device-jobs server needs Python 3.11 or newer "
                      "(the agent, `pip install 'device-jobs[agent]'`, runs on 3.9 and newer)")
