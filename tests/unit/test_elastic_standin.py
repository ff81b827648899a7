"""The stand-in answers like Elasticsearch, so export tests prove something about the real one."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch, NotFoundError, helpers

from battletracker.supported import ELASTICSEARCH_MAJOR, elasticsearch_major_of_compose
from battletracker.testing.elastic_standin import StandIn, start_standin

#: The stand-in speaks the major of compose's server (8 today), whatever client is installed.
MAJOR = elasticsearch_major_of_compose()
NDJSON = f"application/vnd.elasticsearch+x-ndjson; compatible-with={MAJOR}"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with start_standin() as s:
        yield s


@pytest.fixture
def es(standin: StandIn) -> Iterator[Elasticsearch]:
    client = Elasticsearch(standin.url)
    yield client
    client.close()


def raw(
    standin: StandIn, method: str, path: str, body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, Any]:
    host, port = standin.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, json.loads(data) if data else None
    finally:
        conn.close()


def bulk(standin: StandIn, body: bytes) -> tuple[int, Any]:
    status, _, payload = raw(standin, "POST", "/_bulk", body, {"Content-Type": NDJSON})
    return status, payload


def test_cluster_info_carries_product_header_and_compat_media_type(standin: StandIn) -> None:
    status, headers, body = raw(standin, "GET", "/", headers={
        "Accept": f"application/vnd.elasticsearch+json; compatible-with={MAJOR}"})
    assert status == 200
    assert headers["X-Elastic-Product"] == "Elasticsearch"
    assert headers["Content-Type"] == (
        f"application/vnd.elasticsearch+json; compatible-with={MAJOR}")
    assert body["version"]["number"].startswith(f"{MAJOR}.")
    _, plain, _ = raw(standin, "GET", "/")
    assert plain["Content-Type"] == "application/json"


def test_the_major_is_compose_s_server_and_the_client_agrees(standin: StandIn) -> None:
    """The issue's failure: a 9.x client against compose's 8.x server. Both must agree."""
    from elasticsearch import __versionstr__

    assert MAJOR == ELASTICSEARCH_MAJOR == standin.major
    assert int(__versionstr__.split(".")[0]) == MAJOR, "the constraints pin the client's major"


@pytest.mark.parametrize("offset", [1, -2])
def test_a_compat_version_of_another_major_is_refused_as_the_real_server_does(
    standin: StandIn, offset: int
) -> None:
    wrong = MAJOR + offset
    status, _, body = raw(standin, "GET", "/", headers={
        "Accept": f"application/vnd.elasticsearch+json; compatible-with={wrong}"})
    assert status == 400
    assert body["error"]["type"] == "media_type_header_exception"
    assert body["error"]["caused_by"]["reason"].startswith(
        f"Accept version must be either version {MAJOR} or {MAJOR - 1}, but found {wrong}.")


def test_a_client_of_the_next_major_fails_like_against_the_real_server() -> None:
    """What a 9.x client sends (compatible-with=9 on both headers) an 8.x server refuses."""
    with start_standin(major=8) as s:
        status, _, body = raw(s, "POST", "/_bulk", b'{"delete":{"_index":"a","_id":"1"}}\n', {
            "Accept": "application/vnd.elasticsearch+json; compatible-with=9",
            "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=9"})
    assert status == 400
    assert body["error"]["type"] == "media_type_header_exception"


def test_compat_on_one_header_of_a_request_with_a_body_is_refused(standin: StandIn) -> None:
    status, _, body = raw(standin, "POST", "/_bulk", b'{"delete":{"_index":"a","_id":"1"}}\n', {
        "Accept": f"application/vnd.elasticsearch+json; compatible-with={MAJOR}",
        "Content-Type": "application/x-ndjson"})
    assert status == 400
    assert "required on both" in body["error"]["caused_by"]["reason"]


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (b'{"index":{"_index":"a","_id":"1"}}\n{"n": 1\n', "x_content_parse_exception"),
        (b'{"index":{"_index":"a","_id":"1"}}\n{"n":1}', "illegal_argument_exception"),
        (b'{"upsert":{"_index":"a","_id":"1"}}\n{"n":1}\n', "illegal_argument_exception"),
        (b'{"index":{"_index":"a","_type":"_doc"}}\n{"n":1}\n', "illegal_argument_exception"),
        (b'{"index":{"_index":"a","_id":"1"}}\n', "illegal_argument_exception"),
        (b'{"index":{"_id":"1"}}\n{"n":1}\n', "action_request_validation_exception"),
        (b'[1, 2]\n', "x_content_parse_exception"),
        (b"", "action_request_validation_exception"),
    ],
    ids=["bad-json", "no-final-newline", "unknown-action", "unknown-meta", "missing-source",
         "no-index", "not-an-object", "empty"],
)
def test_malformed_bulk_is_a_400_and_stores_nothing(
    standin: StandIn, body: bytes, error_type: str
) -> None:
    good = b'{"index":{"_index":"a","_id":"0"}}\n{"n":0}\n'
    status, payload = bulk(standin, good + body if body else body)
    assert status == 400, payload
    assert payload["status"] == 400
    assert payload["error"]["type"] == error_type
    assert standin.indices == {}


def test_bulk_needs_a_json_media_type(standin: StandIn) -> None:
    status, _, body = raw(standin, "POST", "/_bulk", b'{"delete":{"_index":"a","_id":"1"}}\n',
                          {"Content-Type": "text/plain"})
    assert status == 406
    assert "not supported" in body["error"]["reason"]


def test_bulk_items_report_created_updated_conflicts_and_missing(standin: StandIn) -> None:
    status, payload = bulk(standin, (
        b'{"index":{"_index":"a","_id":"1"}}\n{"n":1}\n'
        b'{"index":{"_index":"a","_id":"1"}}\n{"n":2}\n'
        b'{"create":{"_index":"a","_id":"1"}}\n{"n":3}\n'
        b'{"delete":{"_index":"a","_id":"9"}}\n'
    ))
    assert status == 200
    results = [(op, item["status"], item.get("result")) for i in payload["items"]
               for op, item in i.items()]
    assert results == [("index", 201, "created"), ("index", 200, "updated"),
                       ("create", 409, None), ("delete", 404, "not_found")]
    assert payload["errors"] is True
    assert standin.indices == {"a": {"1": {"n": 2}}}


def test_invalid_index_name_fails_the_item_only(standin: StandIn) -> None:
    _, payload = bulk(standin, b'{"index":{"_index":"Upper","_id":"1"}}\n{"n":1}\n'
                               b'{"index":{"_index":"lower","_id":"1"}}\n{"n":1}\n')
    first, second = (next(iter(i.values())) for i in payload["items"])
    assert first["status"] == 400
    assert first["error"]["type"] == "invalid_index_name_exception"
    assert second["status"] == 201


def test_template_mappings_apply_to_new_indices_and_are_strict(
    standin: StandIn, es: Elasticsearch
) -> None:
    es.indices.put_index_template(name="t", index_patterns=["d-*"], priority=10, version=3,
                                  template={"mappings": {"dynamic": "strict", "properties": {
                                      "n": {"type": "long"},
                                      "day": {"type": "date", "format": "strict_date"}}}})
    got = es.indices.get_index_template(name="t")["index_templates"][0]["index_template"]
    assert got["version"] == 3
    results = list(helpers.streaming_bulk(es, [
        {"_index": "d-1", "_id": "ok", "_source": {"n": 1, "day": "2026-01-15"}},
        {"_index": "d-1", "_id": "extra", "_source": {"n": 1, "other": 2}},
        {"_index": "d-1", "_id": "text", "_source": {"n": "many"}},
        {"_index": "d-1", "_id": "day", "_source": {"day": "15.01.2026"}},
    ], raise_on_error=False))
    assert [ok for ok, _ in results] == [True, False, False, False]
    types = [r["index"].get("error", {}).get("type") for _, r in results]
    assert types[1:] == ["strict_dynamic_mapping_exception", "document_parsing_exception",
                         "document_parsing_exception"]
    assert es.indices.get_mapping(index="d-1")["d-1"]["mappings"]["dynamic"] == "strict"


def test_a_template_with_an_unknown_field_type_is_refused(es: Elasticsearch) -> None:
    with pytest.raises(Exception, match="mapper_parsing_exception"):
        es.indices.put_index_template(name="t", index_patterns=["x-*"], template={
            "mappings": {"properties": {"n": {"type": "lng"}}}})


def test_real_client_round_trip(standin: StandIn, es: Elasticsearch) -> None:
    assert es.info()["tagline"] == "You Know, for Search"
    docs = ({"_index": "r-1", "_id": str(i), "_source": {"i": i}} for i in range(25))
    assert all(ok for ok, _ in helpers.streaming_bulk(es, docs, chunk_size=10))
    es.indices.refresh(index="r-1")
    assert es.count(index="r-*")["count"] == 25
    assert es.count(index="r-1", query={"term": {"i": 7}})["count"] == 1
    assert es.get(index="r-1", id="7")["_source"] == {"i": 7}
    with pytest.raises(NotFoundError):
        es.get(index="r-1", id="99")
    with pytest.raises(NotFoundError):
        es.indices.get_index_template(name="missing")
    rows: Any = es.cat.indices(format="json").body
    assert [(r["index"], r["docs.count"]) for r in rows] == [("r-1", "25")]
    assert sum(1 for _, path in standin.requests if path == "/_bulk") == 3


def test_injected_failures(standin: StandIn, es: Elasticsearch) -> None:
    standin.fail_items(1, status=429)
    results = list(helpers.streaming_bulk(
        es, [{"_index": "f", "_id": str(i), "_source": {}} for i in range(3)],
        raise_on_error=False))
    assert [r["index"]["status"] for _, r in results] == [429, 201, 201]
    assert results[0][1]["index"]["error"]["type"] == "es_rejected_execution_exception"
    standin.fail_requests(1, status=503)
    status, _ = bulk(standin, b'{"delete":{"_index":"f","_id":"1"}}\n')
    assert status == 503
    assert set(standin.indices["f"]) == {"1", "2"}


def test_unknown_route_is_an_error(standin: StandIn) -> None:
    status, _, body = raw(standin, "GET", "/_nope")
    assert status == 400
    assert "no handler found" in body["error"]["reason"]


def test_lifecycle_policies_are_validated_like_elasticsearch(es: Elasticsearch) -> None:
    es.ilm.put_lifecycle(name="p", policy={"phases": {
        "hot": {"actions": {"set_priority": {"priority": 100}}},
        "delete": {"min_age": "30d", "actions": {"delete": {}}}}})
    got = es.ilm.get_lifecycle(name="p")["p"]
    assert got["version"] == 1
    assert got["policy"]["phases"]["delete"]["min_age"] == "30d"
    for bad, reason in [
        ({"phases": {"lukewarm": {"actions": {}}}}, "does not support phase [lukewarm]"),
        ({"phases": {"delete": {"min_age": "30", "actions": {"delete": {}}}}}, "min_age"),
        ({"phases": {"hot": {"actions": {"delete": {}}}}}, "invalid action [delete]"),
    ]:
        with pytest.raises(Exception, match="illegal_argument_exception") as info:
            es.ilm.put_lifecycle(name="q", policy=bad)
        assert reason in str(info.value)
    with pytest.raises(NotFoundError):
        es.ilm.get_lifecycle(name="q")


def test_template_settings_and_aliases_apply_to_new_indices(
    standin: StandIn, es: Elasticsearch
) -> None:
    es.indices.put_index_template(name="t", index_patterns=["d-*"], template={
        "settings": {"number_of_replicas": 0, "index": {"lifecycle": {"name": "p"}}},
        "aliases": {"d": {}}})
    helpers.bulk(es, [{"_index": "d-1", "_id": "1", "_source": {"n": 1}},
                      {"_index": "d-2", "_id": "1", "_source": {"n": 2}},
                      {"_index": "other", "_id": "1", "_source": {"n": 3}}])

    assert standin.aliases == {"d": {"d-1", "d-2"}}
    assert es.count(index="d")["count"] == 2
    settings = es.indices.get_settings(index="d-1")["d-1"]["settings"]["index"]
    assert settings["number_of_replicas"] == "0" and settings["lifecycle"]["name"] == "p"
    health = {r["index"]: r["health"] for r in es.cat.indices(format="json").body}
    assert health == {"d-1": "green", "d-2": "green", "other": "yellow"}

    es.indices.update_aliases(actions=[{"remove": {"index": "d-1", "alias": "d"}},
                                       {"add": {"index": "other", "alias": "x"}}])
    assert set(es.indices.get_alias(name="d").body) == {"d-2"}
    assert es.get(index="x", id="1")["_source"] == {"n": 3}  # an alias of one index
    with pytest.raises(NotFoundError):
        es.indices.update_aliases(actions=[{"add": {"index": "missing", "alias": "y"}}])
    assert "y" not in standin.aliases  # nothing of a refused request was applied
