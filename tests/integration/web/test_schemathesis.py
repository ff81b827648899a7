"""Property-based run of every operation in ``/openapi.json`` of a live app: no 5xx.

The app is served by uvicorn in a thread on the populated database, and schemathesis
reads the schema over HTTP, then generates valid and invalid requests for every operation
(bounded to ``max_examples`` each so the run stays well under two minutes).

The operations are listed from an app built in-process (the schema does not depend on the
database) so that each one is its own test; the requests go to the live server.
(``schemathesis.pytest.from_fixture`` would do this, but breaks on pytest 9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.secret import new_secret_key
from battletracker.web.server import ServerHandle, serve_in_thread

_PATHS = create_app(Settings(secret_key=new_secret_key())).openapi()["paths"]


def _breakable(op: dict[str, Any]) -> bool:
    """Whether the operation has a parameter a request can break. A bare string path
    parameter accepts every value, so an operation with nothing else has no invalid
    request to make (hypothesis would give up: Unsatisfiable)."""
    return any(param.get("in") != "path" or param.get("schema", {}).get("type") != "string"
               or set(param.get("schema", {})) - {"type", "title", "description"}
               for param in op.get("parameters", ()))


#: (path, method, mode): invalid requests only where there is a parameter to break.
OPERATIONS = [
    pytest.param(path, method, mode, id=f"{method} {path} {mode.value}")
    for path, item in _PATHS.items()
    for method, op in item.items()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or _breakable(op)
]


@pytest.fixture(scope="module")
def live_app(web_settings: Settings) -> Iterator[ServerHandle]:
    handle = serve_in_thread(web_settings)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def api_schema(live_app: ServerHandle) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(live_app.url + "/openapi.json")


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
def test_no_server_errors(api_schema: schemathesis.BaseSchema, path: str, method: str,
                          mode: GenerationMode) -> None:
    """Valid requests and requests that break the schema: none may answer 5xx."""
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    run()


def test_every_operation_is_covered() -> None:
    assert len(_PATHS) >= 11 and len(OPERATIONS) > len(_PATHS)
