"""A client of the device-jobs API, and the operator commands of ``dispatcher`` built on it.

Needs only the standard library and ``schemas.vocabulary``: ``pip install
'device-jobs[client]'`` on any machine with a URL and a token.
"""

from client.api import DeviceJobsClient, Target, execute_body
from client.errors import ApiError, ClientError, NotConfigured, ServerUnreachable

__all__ = ["ApiError", "ClientError", "DeviceJobsClient", "NotConfigured", "ServerUnreachable",
           "Target", "execute_body"]
