"""The agent's artifact download against answers a server may give: a 4xx other than 408/429 is
final at once, a server that stays down is given up after a bounded number of tries with the
reason, a server that ignores the range still gives the right file, a stalled transfer is cut
and resumed, a step the server did not pin is refused, and nothing appears at the destination
unless size and sha256 hold."""

from __future__ import annotations

import email.message
import hashlib
import io
import threading
import time
import urllib.error

import pytest

from agent.downloads import (
    Downloader,
    DownloadFailed,
    DownloadSettings,
    Target,
    download_step,
    is_agent_download,
)

DATA = bytes(range(256)) * 400
FAST = DownloadSettings(max_tries=3, first_pause_s=0.01, max_pause_s=0.02)


def pin(data: bytes = DATA) -> Target:
    digest = hashlib.sha256(data).hexdigest()
    return Target(digest, "artifact:a1", "artifact a1", digest, len(data))


class Answer(io.BytesIO):
    def __init__(self, body: bytes, status: int = 200, headers: dict | None = None,
                 pause_s: float = 0.0) -> None:
        super().__init__(body)
        self.status = status
        self.headers = email.message.Message()
        for name, value in (headers or {}).items():
            self.headers[name] = value
        self.pause_s = pause_s

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(self.pause_s)
        return super().read(min(size or 1, 1000) if self.pause_s else size)


def refusal(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://server/x", code, "no", email.message.Message(),
                                  io.BytesIO(b""))


def fetch(tmp_path, open_at, settings: DownloadSettings = FAST, data: bytes = DATA):
    destination = tmp_path / "out" / "file.bin"
    destination.parent.mkdir(exist_ok=True)
    message = Downloader(tmp_path / "state", settings).fetch(
        open_at, pin(data), destination, threading.Event())
    return destination, message


def test_a_404_is_final_at_once(tmp_path):
    calls = []

    def open_at(offset, etag):
        calls.append(offset)
        raise refusal(404)

    with pytest.raises(DownloadFailed, match="HTTP 404"):
        fetch(tmp_path, open_at)
    assert calls == [0]
    assert not (tmp_path / "out" / "file.bin").exists()


def test_a_server_that_stays_down_is_given_up_after_the_bounded_tries(tmp_path):
    calls = []

    def open_at(offset, etag):
        calls.append(offset)
        raise refusal(503)

    with pytest.raises(DownloadFailed, match="gave up after 3 tries: HTTP 503"):
        fetch(tmp_path, open_at)
    assert len(calls) == 3


def test_cut_answers_resume_and_a_server_ignoring_the_range_still_gives_the_file(tmp_path):
    asked = []

    def open_at(offset, etag):
        asked.append((offset, etag))
        if len(asked) == 1:
            return Answer(DATA[:30000], headers={"ETag": '"v1"'})  # cut short
        if len(asked) == 2:
            return Answer(DATA[30000:60000], 206, {"ETag": '"v1"', "Content-Range":
                                                   f"bytes 30000-{len(DATA) - 1}/{len(DATA)}"})
        return Answer(DATA, headers={"ETag": '"v1"'})  # the whole file again

    destination, message = fetch(tmp_path, open_at)
    assert destination.read_bytes() == DATA
    assert asked == [(0, None), (30000, '"v1"'), (60000, '"v1"')]
    assert "102400 bytes" in message
    assert list((tmp_path / "state" / "downloads").iterdir()) == []


def test_a_stalled_transfer_is_cut_and_resumed(tmp_path):
    asked = []

    def open_at(offset, etag):
        asked.append(offset)
        if len(asked) == 1:
            return Answer(DATA, pause_s=0.05)  # 1000 bytes every 50 ms: under the minimum
        return Answer(DATA[offset:], 206, {"Content-Range":
                                           f"bytes {offset}-{len(DATA) - 1}/{len(DATA)}"})

    slow = DownloadSettings(max_tries=3, first_pause_s=0.01, min_bytes_per_s=1_000_000,
                            stall_window_s=0.3)
    destination, _ = fetch(tmp_path, open_at, slow)
    assert destination.read_bytes() == DATA
    assert len(asked) == 2 and 0 < asked[1] < len(DATA)


def test_other_bytes_than_pinned_never_reach_the_destination(tmp_path):
    destination = tmp_path / "out" / "file.bin"
    destination.parent.mkdir()
    destination.write_bytes(b"previous")
    with pytest.raises(DownloadFailed, match="sha256 mismatch for artifact a1"):
        fetch(tmp_path, lambda offset, etag: Answer(bytes(len(DATA))))
    assert destination.read_bytes() == b"previous"
    assert list(destination.parent.iterdir()) == [destination]


def test_only_pinned_artifact_steps_are_downloaded(tmp_path):
    step = {"name": "fetch", "type": "runHandler", "input": {
        "handler": "download-file.sh", "args": ["artifact:blob", str(tmp_path / "x")]}}
    assert is_agent_download(step)
    assert is_agent_download({"name": "f", "type": "runHandler", "input": {
        "handler": "download-file", "args": ["https://example.com/x", "/tmp/x"]}})
    assert not is_agent_download({"name": "f", "type": "runHandler", "input": {
        "handler": "download-file", "args": ["ftp://example.com/x", "/tmp/x"]}})
    with pytest.raises(DownloadFailed, match="was not pinned at execute"):
        download_step(Downloader(tmp_path), lambda *_: None, step, threading.Event(),
                        None, None)


def test_a_step_run_as_another_user_writes_only_where_that_user_may(tmp_path):
    from agent.process import RunAs

    stranger = RunAs("stranger", 54321, 54321, (54321,), "/nonexistent")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    with pytest.raises(DownloadFailed, match="runAsUser stranger may not write to"):
        Downloader(tmp_path / "state", FAST).fetch(
            lambda offset, etag: Answer(DATA), pin(), locked / "file.bin", threading.Event(),
            owner=stranger)
    assert list(locked.iterdir()) == []


def test_parts_left_untouched_for_a_week_are_dropped(tmp_path):
    import os

    downloads = tmp_path / "state" / "downloads"
    downloads.mkdir(parents=True)
    stale, fresh = downloads / "old.part", downloads / "recent.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(stale, (week_ago, week_ago))
    fetch(tmp_path, lambda offset, etag: Answer(DATA))
    assert sorted(p.name for p in downloads.iterdir()) == ["recent.part"]
