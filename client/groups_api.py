"""The REST calls for named groups and device search, on a ``DeviceJobsClient``."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from client.api import JSON, PAGE_SIZE, DeviceJobsClient


def search_devices(client: DeviceJobsClient, target_filter: Mapping[str, Any],
                   limit: int = 50, offset: int = 0) -> JSON:
    """``{total, devices}``: a page of the devices the filter matches."""
    return client.request("POST", "/devices/search", {
        "filter": dict(target_filter), "limit": limit, "offset": offset})


def iter_search(client: DeviceJobsClient, target_filter: Mapping[str, Any]) -> Iterator[JSON]:
    offset = 0
    while True:
        page = search_devices(client, target_filter, PAGE_SIZE, offset)
        yield from page["devices"]
        offset += len(page["devices"])
        if not page["devices"] or offset >= page["total"]:
            return


def list_groups(client: DeviceJobsClient, limit: int = 50, offset: int = 0) -> JSON:
    return client.request("GET", "/groups", query={"limit": limit, "offset": offset})


def get_group(client: DeviceJobsClient, name: str) -> JSON:
    return client.request("GET", f"/groups/{_segment(name)}")


def create_group(client: DeviceJobsClient, group: Mapping[str, Any]) -> JSON:
    return client.request("POST", "/groups", dict(group))


def update_group(client: DeviceJobsClient, name: str, changes: Mapping[str, Any]) -> JSON:
    return client.request("PATCH", f"/groups/{_segment(name)}", dict(changes))


def delete_group(client: DeviceJobsClient, name: str) -> None:
    client.request("DELETE", f"/groups/{_segment(name)}")


def _segment(text: str) -> str:
    return urllib.parse.quote(text, safe="")
