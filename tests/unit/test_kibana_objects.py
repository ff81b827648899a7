"""Kibana's saved objects load through the import endpoint and every reference resolves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from battletracker.elastic.kibana import KIBANA_OBJECTS, KibanaError, import_objects, load_objects
from battletracker.elastic.templates import DAILY_ALIASES, PLAYERS_INDEX, index_templates
from battletracker.settings import Settings
from battletracker.testing.elastic_standin import StandIn, start_standin


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with start_standin() as s:
        yield s


def test_the_objects_import_and_every_reference_resolves(standin: StandIn) -> None:
    answer = import_objects(standin.url)

    assert answer["success"] is True
    objects = load_objects()
    assert answer["successCount"] == len(objects)
    kinds = {(o["type"], o["id"]) for o in objects}
    assert set(standin.saved_objects) == kinds
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert len(dashboards) == 1
    titles = {standin.saved_objects[("visualization", r["id"])]["attributes"]["title"]
              for r in dashboards[0]["references"]}
    assert titles == {"Daily active accounts", "Battles per day", "New accounts per day"}


def test_loading_twice_overwrites_instead_of_duplicating(standin: StandIn) -> None:
    import_objects(standin.url)
    answer = import_objects(standin.url)
    assert answer["successCount"] == len(load_objects())
    assert len(standin.saved_objects) == len(load_objects())


def test_data_views_name_what_the_export_writes() -> None:
    """Each data view's title is an alias or index the templates create, its time field a
    date field of that index's mapping: a view of nothing would open Kibana blank."""
    templates = index_templates(Settings())
    fields = {alias: t["template"]["mappings"]["properties"]
              for t in templates.values() for alias in t["template"].get("aliases", {})}
    fields[PLAYERS_INDEX] = templates["battletracker-players"]["template"]["mappings"][
        "properties"]
    views = [o for o in load_objects() if o["type"] == "index-pattern"]
    assert {v["attributes"]["title"] for v in views} == {*DAILY_ALIASES, PLAYERS_INDEX}
    for view in views:
        props = fields[view["attributes"]["title"]]
        assert props[view["attributes"]["timeFieldName"]]["type"] == "date"
    for vis in (o for o in load_objects() if o["type"] == "visualization"):
        state = json.loads(vis["attributes"]["visState"])
        (ref,) = vis["references"]
        view = next(v for v in views if v["id"] == ref["id"])
        props = fields[view["attributes"]["title"]]
        used = {a["params"]["field"] for a in state["aggs"] if "field" in a["params"]}
        assert used <= set(props), (vis["id"], used - set(props))


def test_a_missing_reference_is_refused(standin: StandIn, tmp_path: Path) -> None:
    broken = tmp_path / "broken.ndjson"
    kept = [o for o in load_objects() if o["id"] != "battletracker-battles"]
    broken.write_text("".join(json.dumps(o) + "\n" for o in kept))

    with pytest.raises(KibanaError, match="dashboard/battletracker-night: missing_references"):
        import_objects(standin.url, path=broken)
    assert ("dashboard", "battletracker-night") not in standin.saved_objects


def test_the_import_needs_kibana_s_xsrf_header(standin: StandIn) -> None:
    response = httpx.post(f"{standin.url}/api/saved_objects/_import",
                          files={"file": ("x.ndjson", KIBANA_OBJECTS.read_bytes())})
    assert response.status_code == 400
    assert "kbn-xsrf" in response.json()["message"]


def test_an_unreachable_kibana_is_a_kibana_error() -> None:
    with pytest.raises(KibanaError, match="unreachable"):
        import_objects("http://127.0.0.1:9", timeout=2)
