"""Kibana's saved objects (data views and the activity dashboard), and loading them.

The objects live in ``kibana/battletracker.ndjson`` beside this module, in the format of
Kibana's own export, so an operator may also load them by hand (Stack Management → Saved
objects → Import). :func:`import_objects` posts them to Kibana's import endpoint with
``overwrite=true``: loading them again replaces them instead of duplicating them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from ..settings import mask_url

__all__ = ["KIBANA_OBJECTS", "KibanaError", "import_objects", "load_objects"]

KIBANA_OBJECTS = Path(__file__).parent / "kibana" / "battletracker.ndjson"


class KibanaError(RuntimeError):
    """Kibana could not be reached or refused some of the objects; the message says which."""


def load_objects(path: Path = KIBANA_OBJECTS) -> list[dict[str, Any]]:
    """The saved objects of the NDJSON file, in order."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def import_objects(kibana_url: str, *, path: Path = KIBANA_OBJECTS,
                   timeout: float = 30.0) -> dict[str, Any]:
    """POST the objects to ``{kibana_url}/api/saved_objects/_import?overwrite=true``.

    Returns Kibana's answer (``successCount``, ``successResults``). Raises
    :class:`KibanaError` when Kibana is unreachable, answers an error, or reports objects
    it did not import (a missing reference, for instance).
    """
    url = kibana_url.rstrip("/") + "/api/saved_objects/_import"
    try:
        response = httpx.post(
            url, params={"overwrite": "true"}, headers={"kbn-xsrf": "battletracker"},
            files={"file": (path.name, path.read_bytes(), "application/ndjson")},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise KibanaError(f"Kibana at {mask_url(kibana_url)} unreachable: {exc}") from exc
    if response.status_code != 200:
        raise KibanaError(f"Kibana refused the import ({response.status_code}): "
                          f"{response.text[:500]}")
    answer: dict[str, Any] = response.json()
    if not answer.get("success", False):
        problems = [f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type')}"
                    for e in answer.get("errors", [])]
        raise KibanaError("Kibana did not import every object: " + "; ".join(problems))
    return answer
