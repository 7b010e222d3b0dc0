"""The diagnostic log of the real command, with --workers: klog's lines by default, component-base's JSON with
--logging-format=json, from the supervisor and from every worker alike; the access log on stdout is untouched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

import pytest

from tests.support.certs import CertFiles
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.listeners import children, wait_until_listening
from tests.support.process import ProxyProcess, start_process
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

KLOG_LINE: Final = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d{6} +(?P<pid>\d+) [\w.]+:\d+\] (?P<message>.*)$")


Setup = tuple[Path, TestIssuer, RecordingUpstream, CertFiles]


@pytest.fixture
def setup(tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles) -> Setup:
    return tmp_path, issuer, upstream, server_certs


async def _run(setup: Setup, *flags: str) -> tuple[ProxyProcess, list[int]]:
    """Two workers serve, a bad token is refused (an INFO record), then the command stops on SIGTERM."""
    tmp_path, issuer, upstream, certs = setup
    process = start_process(str(tmp_path), issuer, upstream, certs, "--workers=2", *flags)
    try:
        process.wait_ready()
        workers = wait_until_listening(lambda: children(process.proc.pid), process.port, count=2)
        await until(lambda: process.stderr().count("serving on") == 2, "both workers to log where they serve")
        assert (await get(process.port, process.ca_file, "/api/v1/secrets", token="not-a-jwt")).status == 401
        assert process.stop() == 0
    finally:
        process.kill()
    return process, workers


async def test_by_default_every_process_writes_klogs_lines_with_its_own_pid(setup: Setup) -> None:
    process, workers = await _run(setup)
    lines = process.stderr().splitlines()
    matches = [KLOG_LINE.match(line) for line in lines]
    assert lines and all(matches), lines
    serving = {int(m["pid"]) for m in matches if m and m["message"].startswith("serving on")}
    assert serving == set(workers)
    assert any(m and m["message"].startswith("rejected GET /api/v1/secrets") for m in matches)
    assert "AuFail" in process.stdout() and "AuFail" not in process.stderr()  # the access log stays on stdout


async def test_logging_format_json_makes_every_stderr_line_a_component_base_object(setup: Setup) -> None:
    process, _ = await _run(setup, "--logging-format=json", "--log-format=text")
    lines = process.stderr().splitlines()
    objects = [json.loads(line) for line in lines]
    assert objects and all({"ts", "logger", "caller", "msg"} <= set(o) for o in objects), lines
    assert [o["msg"] for o in objects].count("shutting down") >= 2  # each worker's own log, after the fork
    assert sum(o["msg"].startswith("serving on") for o in objects) == 2
    assert any(o["msg"].startswith("rejected GET /api/v1/secrets") and o["v"] == 0 for o in objects)
    assert process.stdout().startswith("[")  # --log-format is the access log's, and still text
