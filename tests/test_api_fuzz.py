"""Schemathesis fuzzes the OpenAPI schema against a live server (uvicorn on loopback, real store):
whatever the inputs, the API answers with our error shape, never a server error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from api.http import create_app
from shuyu.platform import Platform
from tests.identities import enrol

FUZZER: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_schema(granted: Platform) -> Iterator[object]:
    FUZZER.update(enrol(granted, "fuzzer", "analyst"))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(granted.settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.05)
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    server.should_exit = True
    thread.join(timeout=10)


def test_no_server_errors_and_one_error_shape(live_schema) -> None:
    """Every operation, many generated requests each (schemathesis' strategies driven by hypothesis)."""
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case) -> None:
            response = case.call(headers=FUZZER)
            assert response.status_code < 500, f"{case.operation.label}: {response.text}"
            if (
                response.status_code >= 400 and response.status_code != 422
            ):  # 422: FastAPI's validation
                assert set(response.json()) == {"error", "message", "file", "field", "fix"}

        fuzz()
