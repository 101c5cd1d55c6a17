"""What the demo asks of the API: the operator's client (``client.DeviceJobsClient``), which
the ``dispatcher`` command hands it, since the server's packages do not import the client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

JSON = dict[str, Any]


class ApiClient(Protocol):
    url: str

    def create_template(self, template: Mapping[str, Any]) -> JSON: ...

    def create_device(self, device: Mapping[str, Any]) -> JSON: ...

    def execute(self, body: Mapping[str, Any]) -> JSON: ...

    def get_execution(self, job_id: str) -> JSON: ...

    def iter_execution_devices(self, job_id: str,
                               status: str | None = None) -> Iterator[JSON]: ...


class ApiClientFactory(Protocol):
    """Makes the client of the API at ``url`` (e.g. ``http://127.0.0.1:8000``) for ``token``."""

    def __call__(self, url: str, token: str | None) -> ApiClient: ...
