"""``/_sim/`` endpoints, so a test can drive a simulator that runs in another process.

Celery workers under test reach the simulator only over HTTP; these endpoints let the
test move the day forward, script faults and read the counters there too. They sit
outside ``/wotx/`` so no API client can hit them by accident, and are not counted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .replies import Reply, json_reply

if TYPE_CHECKING:
    from .handler import Simulator

__all__ = ["control"]


def _bad(message: str) -> Reply:
    return json_reply({"error": message}, 400)


def control(sim: Simulator, method: str, path: str, body: bytes) -> Reply:
    """``GET /_sim/stats``, ``GET|POST /_sim/day`` ({"day": N}), ``POST /_sim/inject``."""
    if path == "/_sim/stats" and method == "GET":
        return json_reply(sim.stats())
    if path == "/_sim/day" and method == "GET":
        return json_reply({"day": sim.day})
    if method != "POST" or path not in ("/_sim/day", "/_sim/inject"):
        return json_reply({"error": f"no such control endpoint: {method} {path}"}, 404)
    try:
        payload: Any = json.loads(body or b"{}")
    except ValueError:
        return _bad("body must be JSON")
    if not isinstance(payload, dict):
        return _bad("body must be a JSON object")
    if path == "/_sim/day":
        day = payload.get("day")
        if not isinstance(day, int) or isinstance(day, bool) or day < 0:
            return _bad("'day' must be an integer >= 0")
        sim.day = day
        return json_reply({"day": sim.day})
    count = payload.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool):
        return _bad("'count' must be an integer")
    try:
        sim.inject(str(payload.get("fault")), count)
    except ValueError as exc:
        return _bad(str(exc))
    return json_reply({"pending": sim.faults.pending()})
