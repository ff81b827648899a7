"""A stand-in Elasticsearch over real HTTP, because no Elasticsearch server runs here.

It answers the endpoints the export and the operator commands use with the wire protocol
of the Elasticsearch major that ``docker-compose.yml`` runs (``X-Elastic-Product`` header,
``compatible-with`` media types: an 8.x server refuses ``compatible-with=9``, NDJSON
``_bulk`` with per-item results, index templates with settings and aliases, index
lifecycle policies, aliases), plus Kibana's saved-objects import, so tests run the real
``elasticsearch`` client and its ``streaming_bulk`` helper. It is strict where a real
server is strict (malformed NDJSON, unknown metadata, bad index names, ``dynamic: strict``
mappings, media-type versions, unknown lifecycle policies, saved objects whose references
point nowhere) and lets a test inject item or request failures. It keeps documents in
memory, has no search beyond ``_count`` with ``match_all``/``term``, and is not safe for
anything but tests and demos.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["StandIn", "start_standin"]

Doc = dict[str, Any]

#: Bulk metadata keys Elasticsearch 8/9 accepts; anything else (``_type``...) is a 400.
_BULK_META_KEYS = frozenset({
    "_index", "_id", "routing", "version", "version_type", "if_seq_no", "if_primary_term",
    "pipeline", "require_alias", "require_data_stream", "op_type", "retry_on_conflict",
    "_source", "dynamic_templates", "list_executed_pipelines",
})
_TEMPLATE_KEYS = frozenset({
    "index_patterns", "template", "composed_of", "priority", "version", "_meta",
    "data_stream", "allow_auto_create", "ignore_missing_component_templates", "deprecated",
})
_FIELD_TYPES = frozenset({
    "long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float",
    "scaled_float", "keyword", "constant_keyword", "wildcard", "text", "date", "date_nanos",
    "boolean", "object", "nested", "ip", "geo_point", "flattened",
})
_INTEGER_TYPES = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_INVALID_INDEX_CHARS = frozenset('\\/*?"<>| ,#:')
_COMPAT = re.compile(r"compatible-with\s*=\s*(\d+)")
_INJECTED_TYPES = {
    429: ("es_rejected_execution_exception", "rejected execution (injected by the stand-in)"),
    400: ("mapper_parsing_exception", "failed to parse (injected by the stand-in)"),
    409: ("version_conflict_engine_exception", "version conflict (injected by the stand-in)"),
}


class _EsError(Exception):
    """An error answered in Elasticsearch's shape: ``{"error": {...}, "status": N}``."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def cause(self) -> Doc:
        return {"type": self.type, "reason": self.reason, **self.extra}

    def body(self) -> Doc:
        return {"error": {"root_cause": [self.cause()], **self.cause()}, "status": self.status}


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise _EsError(400, "x_content_parse_exception", f"invalid JSON: {exc}") from None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any = None
    text: str | None = None


class StandIn:
    """A running stand-in: ``url`` for the client, the stored state for assertions.

    ``indices`` maps index name to ``{_id: _source}``; ``templates`` maps template name to
    the body it was PUT with; ``requests`` lists ``(method, path)`` of every request.
    """

    def __init__(self, *, major: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.major = major
        self.version = f"{major}.1.0"
        self.indices: dict[str, dict[str, Doc]] = {}
        self.mappings: dict[str, Doc] = {}
        self.templates: dict[str, Doc] = {}
        #: Index name -> its settings (flat ``index.*`` keys, as the template set them).
        self.settings: dict[str, Doc] = {}
        #: Alias -> index names it points at.
        self.aliases: dict[str, set[str]] = {}
        #: Lifecycle policy name -> its ``policy`` body.
        self.policies: dict[str, Doc] = {}
        #: Kibana saved objects by ``(type, id)``.
        self.saved_objects: dict[tuple[str, str], Doc] = {}
        self.requests: list[tuple[str, str]] = []
        self._versions: dict[str, dict[str, int]] = {}
        self._seq_no = itertools.count()
        self._lock = threading.RLock()
        self._item_failures: deque[tuple[int, str, str]] = deque()
        self._request_failures: deque[tuple[int, str]] = deque()
        table: list[tuple[str, str, Callable[..., _Reply]]] = [
            ("GET", r"/", self._info),
            ("HEAD", r"/", self._ping),
            ("PUT POST", r"/_index_template/(?P<name>[^/]+)", self._put_template),
            ("GET HEAD", r"/_index_template(?:/(?P<name>[^/]+))?", self._get_template),
            ("DELETE", r"/_index_template/(?P<name>[^/]+)", self._delete_template),
            ("PUT", r"/_ilm/policy/(?P<name>[^/]+)", self._put_policy),
            ("GET", r"/_ilm/policy(?:/(?P<name>[^/]+))?", self._get_policy),
            ("DELETE", r"/_ilm/policy/(?P<name>[^/]+)", self._delete_policy),
            ("POST", r"/_aliases", self._update_aliases),
            ("GET HEAD", r"/(?:(?P<index>[^/_][^/]*)/)?_alias(?:/(?P<name>[^/]+))?",
             self._get_alias),
            ("GET", r"/(?P<index>[^/_][^/]*)/_settings", self._get_settings),
            ("POST", r"/api/saved_objects/_import", self._import_saved_objects),
            ("POST PUT", r"/(?:(?P<index>[^/_][^/]*)/)?_bulk", self._bulk),
            ("GET HEAD", r"/(?P<index>[^/_][^/]*)/_doc/(?P<doc_id>[^/]+)", self._get_doc),
            ("GET POST", r"/(?:(?P<index>[^/_][^/]*)/)?_count", self._count),
            ("GET POST", r"/(?:(?P<index>[^/_][^/]*)/)?_refresh", self._refresh),
            ("GET", r"/_cat/indices(?:/(?P<index>[^/]+))?", self._cat_indices),
            ("GET", r"/(?P<index>[^/_][^/]*)/_mapping", self._get_mapping),
            ("HEAD", r"/(?P<index>[^/_][^/]*)", self._index_exists),
            ("DELETE", r"/(?P<index>[^/_][^/]*)", self._delete_index),
        ]
        self._routes = [(frozenset(m.split()), re.compile(p), h) for m, p, h in table]
        self._server = _Server((host, port), _Handler)
        self._server.standin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="elastic-standin",
            daemon=True,
        )
        self._thread.start()
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host!s}:{bound_port}"

    # -- test controls --------------------------------------------------------------------

    def fail_items(self, count: int, *, status: int = 429, error_type: str | None = None) -> None:
        """Make the next ``count`` bulk items fail with ``status`` (nothing is stored)."""
        type_, reason = _INJECTED_TYPES.get(status, ("exception", "injected by the stand-in"))
        with self._lock:
            self._item_failures.extend([(status, error_type or type_, reason)] * count)

    def fail_requests(self, count: int, *, status: int = 503, path_contains: str = "_bulk") -> None:
        """Make the next ``count`` requests whose path contains ``path_contains`` fail whole."""
        with self._lock:
            self._request_failures.extend([(status, path_contains)] * count)

    def shutdown(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, str, bytes]:
        """Answer one HTTP request: ``(status, content type, payload)``."""
        parts = urlsplit(target)
        req = _Request(method, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                       headers, body)
        compat: int | None = None
        with self._lock:
            self.requests.append((method, parts.path))
            try:
                compat = self._negotiate(req)
                reply = self._route(req)
            except _EsError as err:
                reply = _Reply(err.status, err.body())
            except Exception as exc:  # a stand-in bug: answer 500, do not drop the connection
                reply = _Reply(500, _EsError(500, "stand_in_bug", repr(exc)).body())
        if reply.text is not None:
            return reply.status, "text/plain; charset=UTF-8", reply.text.encode()
        ctype = (f"application/vnd.elasticsearch+json; compatible-with={compat}"
                 if compat is not None else "application/json")
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        return reply.status, ctype, payload

    def _negotiate(self, req: _Request) -> int | None:
        """Check media types like Elasticsearch: compat versions major or major - 1 only.

        The messages are the real server's (an 8.x server: "Accept version must be either
        version 8 or 7, but found 9"), so a client of the wrong major fails here as it
        would against the real thing.
        """
        found: dict[str, int] = {}
        for name in ("accept", "content-type"):
            m = _COMPAT.search(req.headers.get(name, ""))
            if m is None:
                continue
            version = int(m.group(1))
            if version not in (self.major, self.major - 1):
                label = "Accept" if name == "accept" else "Content-Type"
                raise _EsError(400, "media_type_header_exception",
                               "Invalid media-type value on headers [Accept, Content-Type]",
                               caused_by={"type": "status_exception", "reason": (
                                   f"{label} version must be either version {self.major} or "
                                   f"{self.major - 1}, but found {version}. "
                                   f"{label}={req.headers[name]}")})
            found[name] = version
        both_sent = "accept" in req.headers and "content-type" in req.headers
        if (req.body and both_sent and len(found) == 1) or len(set(found.values())) > 1:
            raise _EsError(400, "media_type_header_exception",
                           "Invalid media-type value on headers [Accept, Content-Type]",
                           caused_by={"type": "status_exception", "reason": (
                               "A compatible version is required on both Content-Type and "
                               "Accept headers if either one has requested a compatible "
                               "version and the compatible versions must match.")})
        ctype = req.headers.get("content-type", "")
        if req.body and not re.search(r"(json|ndjson|form-data)\b", ctype):
            raise _EsError(406, "content_type_exception",
                           f"Content-Type header [{ctype}] is not supported")
        return next(iter(found.values()), None)

    def _route(self, req: _Request) -> _Reply:
        for i, (status, needle) in enumerate(self._request_failures):
            if needle in req.path:
                del self._request_failures[i]
                raise _EsError(status, "stand_in_injected_failure", f"injected HTTP {status}")
        path_matched = False
        for methods, pattern, handler in self._routes:
            m = pattern.fullmatch(req.path)
            if m is None:
                continue
            path_matched = True
            if req.method in methods:
                args = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
                return handler(req, **args)
        status = 405 if path_matched else 400
        raise _EsError(status, "illegal_argument_exception",
                       f"no handler found for uri [{req.path}] and method [{req.method}]")

    # -- cluster, templates ---------------------------------------------------------------

    def _info(self, req: _Request) -> _Reply:
        return _Reply(200, {
            "name": "standin", "cluster_name": "battletracker-standin",
            "cluster_uuid": "standin0000000000000000",
            "version": {"number": self.version, "build_flavor": "default",
                        "minimum_wire_compatibility_version": f"{self.major - 1}.0.0",
                        "minimum_index_compatibility_version": f"{self.major - 1}.0.0"},
            "tagline": "You Know, for Search",
        })

    def _ping(self, req: _Request) -> _Reply:
        return _Reply(200)

    def _put_template(self, req: _Request, name: str) -> _Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise _EsError(400, "parse_exception", "request body is required")
        unknown = sorted(set(body) - _TEMPLATE_KEYS)
        if unknown:
            raise _EsError(400, "x_content_parse_exception",
                           f"[index_template] unknown field [{unknown[0]}]")
        patterns = body.get("index_patterns")
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise _EsError(400, "action_request_validation_exception",
                           "Validation Failed: 1: index patterns are missing;")
        if req.params.get("create") == "true" and name in self.templates:
            raise _EsError(400, "illegal_argument_exception",
                           f"index template [{name}] already exists")
        _check_mapping(body.get("template", {}).get("mappings", {}), "")
        priority = body.get("priority", 0)
        for other, tpl in self.templates.items():
            if other != name and tpl.get("priority", 0) == priority and _overlap(
                    patterns, _patterns(tpl)):
                raise _EsError(400, "illegal_argument_exception",
                               f"index template [{name}] has index patterns {patterns} matching "
                               f"patterns from existing templates [{other}] with the same "
                               f"priority [{priority}]")
        self.templates[name] = {**body, "index_patterns": patterns}
        return _Reply(200, {"acknowledged": True})

    def _get_template(self, req: _Request, name: str = "*") -> _Reply:
        wanted = name.split(",")
        found = [n for n in sorted(self.templates)
                 if any(fnmatch.fnmatchcase(n, w) for w in wanted)]
        if not found and not any("*" in w for w in wanted):
            raise _EsError(404, "resource_not_found_exception",
                           f"index template matching [{name}] not found")
        if req.method == "HEAD":
            return _Reply(200)
        return _Reply(200, {"index_templates": [
            {"name": n, "index_template": {"composed_of": [], **self.templates[n]}}
            for n in found
        ]})

    def _delete_template(self, req: _Request, name: str) -> _Reply:
        if self.templates.pop(name, None) is None:
            raise _EsError(404, "resource_not_found_exception",
                           f"index template matching [{name}] not found")
        return _Reply(200, {"acknowledged": True})

    # -- lifecycle policies, aliases, settings -------------------------------------------

    def _put_policy(self, req: _Request, name: str) -> _Reply:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("policy"), dict):
            raise _EsError(400, "parse_exception", "request body is required")
        unknown = sorted(set(body) - {"policy"})
        if unknown:
            raise _EsError(400, "x_content_parse_exception",
                           f"[put_lifecycle_request] unknown field [{unknown[0]}]")
        _check_policy(body["policy"])
        old = self.policies.get(name)
        version = 1 if old is None else int(old.get("_version", 1)) + 1
        self.policies[name] = {**body["policy"], "_version": version}
        return _Reply(200, {"acknowledged": True})

    def _get_policy(self, req: _Request, name: str | None = None) -> _Reply:
        names = sorted(self.policies) if name is None else name.split(",")
        missing = [n for n in names if n not in self.policies]
        if missing:
            raise _EsError(404, "resource_not_found_exception",
                           f"Lifecycle policy not found: {missing[0]}")
        out = {}
        for n in names:
            policy = {k: v for k, v in self.policies[n].items() if k != "_version"}
            users = sorted(i for i, st in self.settings.items()
                           if st.get("index.lifecycle.name") == n)
            out[n] = {"version": self.policies[n]["_version"],
                      "modified_date": "2026-01-01T00:00:00.000Z", "policy": policy,
                      "in_use_by": {"indices": users, "data_streams": [],
                                    "composable_templates": sorted(
                                        t for t, body in self.templates.items()
                                        if _flat(body.get("template", {}).get("settings", {}))
                                        .get("index.lifecycle.name") == n)}}
        return _Reply(200, out)

    def _delete_policy(self, req: _Request, name: str) -> _Reply:
        if name not in self.policies:
            raise _EsError(404, "resource_not_found_exception",
                           f"Lifecycle policy not found: {name}")
        del self.policies[name]
        return _Reply(200, {"acknowledged": True})

    def _update_aliases(self, req: _Request) -> _Reply:
        body = req.json()
        actions = body.get("actions") if isinstance(body, dict) else None
        if not isinstance(actions, list) or not actions:
            raise _EsError(400, "action_request_validation_exception",
                           "Validation Failed: 1: no actions specified;")
        plan: list[tuple[str, list[str], str]] = []
        for action in actions:
            if not isinstance(action, dict) or len(action) != 1:
                raise _EsError(400, "parsing_exception", "expected one action per object")
            kind, spec = next(iter(action.items()))
            if kind not in ("add", "remove") or not isinstance(spec, dict):
                raise _EsError(400, "parsing_exception", f"Unknown action [{kind}]")
            alias = spec.get("alias")
            if not isinstance(alias, str) or not alias:
                raise _EsError(400, "action_request_validation_exception",
                               "Validation Failed: 1: [alias] may not be empty string;")
            plan.append((kind, self._resolve(str(spec.get("index", ""))), alias))
        for kind, names, alias in plan:  # all validated first: the request is atomic
            targets = self.aliases.setdefault(alias, set())
            if kind == "add":
                _check_index_name(alias)
                if alias in self.indices:
                    raise _EsError(400, "invalid_alias_name_exception",
                                   f"Invalid alias name [{alias}]: an index or data stream "
                                   f"exists with the same name as the alias")
                targets.update(names)
            else:
                if not targets & set(names):
                    raise _EsError(404, "aliases_not_found_exception",
                                   f"aliases [{alias}] missing", resource_id=alias)
                targets.difference_update(names)
            if not targets:
                del self.aliases[alias]
        return _Reply(200, {"acknowledged": True, "errors": False})

    def _get_alias(self, req: _Request, index: str = "_all", name: str = "*") -> _Reply:
        indices = set(self._resolve(index))
        wanted = name.split(",")
        out: dict[str, Doc] = {}
        for alias, targets in sorted(self.aliases.items()):
            if not any(fnmatch.fnmatchcase(alias, w) for w in wanted):
                continue
            for target in sorted(targets & indices):
                out.setdefault(target, {"aliases": {}})["aliases"][alias] = {}
        if not out and name != "*":
            if req.method == "HEAD":
                return _Reply(404)
            return _Reply(404, {"error": f"alias [{name}] missing", "status": 404})
        return _Reply(200, None if req.method == "HEAD" else out)

    def _get_settings(self, req: _Request, index: str) -> _Reply:
        return _Reply(200, {n: {"settings": _nest(self.settings[n])}
                            for n in self._resolve(index)})

    # -- Kibana ---------------------------------------------------------------------------

    def _import_saved_objects(self, req: _Request) -> _Reply:
        """Kibana's ``POST /api/saved_objects/_import`` (multipart ``file``, NDJSON).

        Like Kibana, it needs a ``kbn-xsrf`` header and reports per object; an object
        whose references point at nothing in the file or already imported fails with
        ``missing_references`` (and so does a ``…RefName`` inside its attributes that no
        reference carries).
        """
        if "kbn-xsrf" not in req.headers:
            return _Reply(400, {"statusCode": 400, "error": "Bad Request",
                                "message": "Request must contain a kbn-xsrf header."})
        overwrite = req.params.get("overwrite") == "true"
        objects = _saved_objects_of(req)
        known = set(self.saved_objects) | {(o["type"], o["id"]) for o in objects}
        results, errors = [], []
        for obj in objects:
            key = (obj["type"], obj["id"])
            title = str(obj.get("attributes", {}).get("title", obj["id"]))
            problem = _reference_problem(obj, known)
            if problem is None and key in self.saved_objects and not overwrite:
                problem = {"type": "conflict"}
            if problem is not None:
                errors.append({"id": obj["id"], "type": obj["type"], "title": title,
                               "meta": {"title": title}, "error": problem})
                continue
            self.saved_objects[key] = obj
            results.append({"type": obj["type"], "id": obj["id"],
                            "meta": {"title": title}, **({"overwrite": True}
                                                          if overwrite else {})})
        return _Reply(200, {"success": not errors, "successCount": len(results),
                            "successResults": results, **({"errors": errors} if errors else {})})

    # -- bulk -----------------------------------------------------------------------------

    def _bulk(self, req: _Request, index: str | None = None) -> _Reply:
        started = time.monotonic()
        ops = _parse_bulk(req.body, index)
        items = [self._execute(op, meta, source) for op, meta, source in ops]
        errors = any("error" in next(iter(item.values())) for item in items)
        took = int((time.monotonic() - started) * 1000)
        return _Reply(200, {"errors": errors, "took": took, "items": items})

    def _execute(self, op: str, meta: Doc, source: Doc | None) -> Doc:
        index = str(meta["_index"])
        doc_id = str(meta["_id"]) if meta.get("_id") is not None else uuid.uuid4().hex[:20]
        head: Doc = {"_index": index, "_id": doc_id}
        try:
            if self._item_failures:
                status, type_, reason = self._item_failures.popleft()
                raise _EsError(status, type_, reason)
            return {op: {**head, **self._apply(op, index, doc_id, source)}}
        except _EsError as err:
            return {op: {**head, "status": err.status, "error": {**err.cause(), "index": index}}}

    def _apply(self, op: str, index: str, doc_id: str, source: Doc | None) -> Doc:
        exists = index in self.indices
        if op in ("delete", "update") and not exists and not (
                op == "update" and source and source.get("doc_as_upsert")):
            raise _EsError(404, "index_not_found_exception", f"no such index [{index}]")
        docs = self._create_index(index) if not exists else self.indices[index]
        found = doc_id in docs
        if op == "delete":
            if not found:
                return self._written(index, doc_id, "not_found", 404)
            del docs[doc_id]
            return self._written(index, doc_id, "deleted", 200)
        if op == "create" and found:
            raise _EsError(409, "version_conflict_engine_exception",
                           f"[{doc_id}]: version conflict, document already exists "
                           f"(current version [{self._versions[index][doc_id]}])")
        assert source is not None
        if op == "update":
            partial = source.get("doc")
            if not isinstance(partial, dict):
                raise _EsError(400, "action_request_validation_exception",
                               "Validation Failed: 1: script or doc is missing;")
            if not found and not source.get("doc_as_upsert"):
                raise _EsError(404, "document_missing_exception", f"[{doc_id}]: document missing")
            source = {**docs.get(doc_id, {}), **partial}
        _check_doc(self.mappings.get(index, {}), source, "", doc_id)
        docs[doc_id] = source
        return self._written(index, doc_id, "updated" if found else "created",
                             200 if found else 201)

    def _written(self, index: str, doc_id: str, result: str, status: int) -> Doc:
        versions = self._versions.setdefault(index, {})
        versions[doc_id] = versions.get(doc_id, 0) + 1
        return {"_version": versions[doc_id], "result": result, "status": status,
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "_seq_no": next(self._seq_no), "_primary_term": 1}

    def _create_index(self, index: str) -> dict[str, Doc]:
        """Auto-create ``index``, with the mappings of the highest-priority matching template."""
        _check_index_name(index)
        matching = [t for t in self.templates.values()
                    if any(fnmatch.fnmatchcase(index, p) for p in _patterns(t))]
        if index in self.aliases:
            raise _EsError(400, "invalid_index_name_exception",
                           f"Invalid index name [{index}], already exists as alias", index=index)
        best = max(matching, key=lambda t: int(t.get("priority", 0))) if matching else {}
        template = best.get("template", {})
        self.mappings[index] = json.loads(json.dumps(template.get("mappings", {})))
        self.settings[index] = {"index.number_of_shards": "1", "index.number_of_replicas": "1",
                                **_flat(template.get("settings", {}))}
        for alias in template.get("aliases", {}):
            self.aliases.setdefault(alias, set()).add(index)
        self._versions[index] = {}
        return self.indices.setdefault(index, {})

    # -- documents and indices ------------------------------------------------------------

    def _get_doc(self, req: _Request, index: str, doc_id: str) -> _Reply:
        if index in self.aliases and len(self.aliases[index]) == 1:
            index = next(iter(self.aliases[index]))  # GET through an alias of one index
        docs = self._resolve_one(index)
        if doc_id not in docs:
            return _Reply(404, None if req.method == "HEAD" else
                          {"_index": index, "_id": doc_id, "found": False})
        if req.method == "HEAD":
            return _Reply(200)
        return _Reply(200, {"_index": index, "_id": doc_id, "_seq_no": 0, "_primary_term": 1,
                            "_version": self._versions[index][doc_id], "found": True,
                            "_source": docs[doc_id]})

    def _count(self, req: _Request, index: str = "_all") -> _Reply:
        body = req.json() or {}
        query = body.get("query", {"match_all": {}}) if isinstance(body, dict) else None
        if not isinstance(query, dict) or len(query) != 1:
            raise _EsError(400, "parsing_exception", "query malformed, expected one query")
        kind, clause = next(iter(query.items()))
        if kind == "match_all":
            def keep(doc: Doc) -> bool:
                return True
        elif kind == "term" and isinstance(clause, dict) and len(clause) == 1:
            field, value = next(iter(clause.items()))
            value = value.get("value") if isinstance(value, dict) else value

            def keep(doc: Doc) -> bool:
                return doc.get(field) == value
        else:
            raise _EsError(400, "parsing_exception",
                           f"unknown query [{kind}] (the stand-in has match_all and term)")
        names = self._resolve(index)
        count = sum(1 for n in names for d in self.indices[n].values() if keep(d))
        return _Reply(200, {"count": count, "_shards": {
            "total": len(names), "successful": len(names), "skipped": 0, "failed": 0}})

    def _refresh(self, req: _Request, index: str = "_all") -> _Reply:
        n = len(self._resolve(index))
        return _Reply(200, {"_shards": {"total": n, "successful": n, "failed": 0}})

    def _cat_indices(self, req: _Request, index: str = "_all") -> _Reply:
        rows = [{"health": "green" if self.settings[n].get("index.number_of_replicas") == "0"
                 else "yellow",  # one node: a replica has nowhere to go
                 "status": "open", "index": n, "uuid": n,
                 "pri": self.settings[n].get("index.number_of_shards", "1"),
                 "rep": self.settings[n].get("index.number_of_replicas", "1"),
                 "docs.count": str(len(self.indices[n])), "docs.deleted": "0",
                 "store.size": "0b", "pri.store.size": "0b", "dataset.size": "0b"}
                for n in sorted(self._resolve(index))]
        if req.params.get("format") == "json":
            return _Reply(200, rows)
        lines = [" ".join(r.values()) for r in rows]
        if req.params.get("v") in ("", "true"):
            lines.insert(0, " ".join(rows[0]) if rows else "health status index")
        return _Reply(200, text="".join(line + "\n" for line in lines))

    def _get_mapping(self, req: _Request, index: str) -> _Reply:
        return _Reply(200, {n: {"mappings": self.mappings[n]} for n in self._resolve(index)})

    def _index_exists(self, req: _Request, index: str) -> _Reply:
        return _Reply(200 if index in self.indices else 404)

    def _delete_index(self, req: _Request, index: str) -> _Reply:
        for name in self._resolve(index):
            del self.indices[name], self.mappings[name], self._versions[name]
            del self.settings[name]
            for alias in list(self.aliases):
                self.aliases[alias].discard(name)
                if not self.aliases[alias]:
                    del self.aliases[alias]
        return _Reply(200, {"acknowledged": True})

    def _resolve_one(self, index: str) -> dict[str, Doc]:
        if index in self.aliases and len(self.aliases[index]) == 1:
            index = next(iter(self.aliases[index]))
        if index not in self.indices:
            raise _EsError(404, "index_not_found_exception", f"no such index [{index}]",
                           index=index)
        return self.indices[index]

    def _resolve(self, expression: str) -> list[str]:
        """Index names of a comma list of names and wildcards, like ``allow_no_indices``."""
        names: list[str] = []
        for part in expression.split(","):
            if part in ("_all", "*", ""):
                names.extend(self.indices)
            elif "*" in part:
                names.extend(n for n in self.indices if fnmatch.fnmatchcase(n, part))
            elif part in self.aliases:
                names.extend(sorted(self.aliases[part]))
            else:
                self._resolve_one(part)
                names.append(part)
        return list(dict.fromkeys(names))


# -- pure helpers -------------------------------------------------------------------------


def _parse_bulk(body: bytes, default_index: str | None) -> list[tuple[str, Doc, Doc | None]]:
    """Parse and validate a whole NDJSON bulk body before anything runs, like Elasticsearch."""
    if not body:
        raise _EsError(400, "action_request_validation_exception",
                       "Validation Failed: 1: no requests added;")
    if not body.endswith(b"\n"):
        raise _EsError(400, "illegal_argument_exception",
                       "The bulk request must be terminated by a newline [\\n]")
    lines = iter(enumerate(body.decode("utf-8").split("\n")[:-1], start=1))
    ops: list[tuple[str, Doc, Doc | None]] = []
    for number, line in lines:
        if not line.strip():
            continue
        action = _json_line(line, number)
        if len(action) != 1:
            raise _EsError(400, "illegal_argument_exception",
                           f"Malformed action/metadata line [{number}], expected one action")
        op, meta = next(iter(action.items()))
        if op not in ("index", "create", "delete", "update"):
            raise _EsError(400, "illegal_argument_exception",
                           f"Malformed action/metadata line [{number}], expected one of "
                           f"[create, delete, index, update] but found [{op}]")
        if not isinstance(meta, dict):
            raise _EsError(400, "illegal_argument_exception",
                           f"Malformed action/metadata line [{number}], expected START_OBJECT")
        unknown = sorted(set(meta) - _BULK_META_KEYS)
        if unknown:
            raise _EsError(400, "illegal_argument_exception",
                           f"Action/metadata line [{number}] contains an unknown parameter "
                           f"[{unknown[0]}]")
        meta = {"_index": default_index, **meta}
        if not meta["_index"]:
            raise _EsError(400, "action_request_validation_exception",
                           "Validation Failed: 1: index is missing;")
        source: Doc | None = None
        if op != "delete":
            number, line = next(lines, (number + 1, ""))
            if not line.strip():
                raise _EsError(400, "illegal_argument_exception",
                               f"Malformed bulk: line [{number}] must hold the source of "
                               f"the [{op}] action")
            source = _json_line(line, number)
        ops.append((op, meta, source))
    if not ops:
        raise _EsError(400, "action_request_validation_exception",
                       "Validation Failed: 1: no requests added;")
    return ops


def _json_line(line: str, number: int) -> Doc:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise _EsError(400, "x_content_parse_exception", f"[{number}:1] {exc}") from None
    if not isinstance(value, dict):
        raise _EsError(400, "x_content_parse_exception",
                       f"[{number}:1] expected START_OBJECT but found [{type(value).__name__}]")
    return value


def _flat(settings: Doc, prefix: str = "") -> dict[str, str]:
    """Index settings as Elasticsearch stores them: flat ``index.*`` keys, string values."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, full + "."))
            continue
        if not full.startswith("index."):
            full = "index." + full
        out[full] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _nest(flat: dict[str, str]) -> Doc:
    out: Doc = {}
    for key, value in flat.items():
        node = out
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


_PHASE_ACTIONS = {
    "hot": {"set_priority", "unfollow", "rollover", "readonly", "downsample", "shrink",
            "forcemerge", "searchable_snapshot"},
    "warm": {"set_priority", "unfollow", "readonly", "downsample", "allocate", "migrate",
             "shrink", "forcemerge"},
    "cold": {"set_priority", "unfollow", "readonly", "downsample", "searchable_snapshot",
             "allocate", "migrate", "freeze"},
    "frozen": {"unfollow", "searchable_snapshot"},
    "delete": {"wait_for_snapshot", "delete"},
}
_TIME = re.compile(r"\d+(d|h|m|s|ms|micros|nanos)")


def _check_policy(policy: Doc) -> None:
    """Reject what Elasticsearch rejects: unknown phases or actions, a bad ``min_age``."""
    unknown = sorted(set(policy) - {"phases", "_meta"})
    if unknown:
        raise _EsError(400, "x_content_parse_exception",
                       f"[policy] unknown field [{unknown[0]}]")
    phases = policy.get("phases")
    if not isinstance(phases, dict) or not phases:
        raise _EsError(400, "x_content_parse_exception", "[policy] phases are required")
    for phase, spec in phases.items():
        if phase not in _PHASE_ACTIONS:
            raise _EsError(400, "illegal_argument_exception",
                           f"Timeseries lifecycle does not support phase [{phase}]")
        min_age = spec.get("min_age", "0ms")
        if not _TIME.fullmatch(str(min_age)):
            raise _EsError(400, "illegal_argument_exception",
                           f"failed to parse setting [min_age] with value [{min_age}] as a "
                           f"time value: unit is missing or unrecognized")
        for action in spec.get("actions", {}):
            if action not in _PHASE_ACTIONS[phase]:
                raise _EsError(400, "illegal_argument_exception",
                               f"invalid action [{action}] defined in phase [{phase}]")


_SAVED_OBJECT_TYPES = frozenset({"index-pattern", "visualization", "dashboard", "lens",
                                 "search", "config", "tag"})
_REF_NAME = re.compile(r'"(?:panelRefName|indexRefName|[A-Za-z]*RefName)"\s*:\s*"([^"]+)"')


def _saved_objects_of(req: _Request) -> list[Doc]:
    """The objects of the NDJSON ``file`` part of a multipart form, validated."""
    import email.parser
    import email.policy

    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise _EsError(415, "unsupported_media_type", "expected multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
    parts = [p for p in message.iter_parts()
             if p.get_param("name", header="content-disposition") == "file"]
    if not parts:
        raise _EsError(400, "bad_request", "[request body.file]: expected value of type [object]")
    raw = parts[0].get_payload(decode=True)
    objects = []
    for number, line in enumerate(bytes(raw).decode().splitlines(), start=1):
        if not line.strip():
            continue
        obj = _json_line(line, number)
        if "exportedCount" in obj:  # the summary line Kibana's export appends
            continue
        if obj.get("type") not in _SAVED_OBJECT_TYPES or not isinstance(obj.get("id"), str):
            raise _EsError(400, "bad_request",
                           f"line {number}: unsupported saved object type {obj.get('type')!r}")
        if not isinstance(obj.get("attributes"), dict):
            raise _EsError(400, "bad_request", f"line {number}: attributes are required")
        objects.append(obj)
    return objects


def _reference_problem(obj: Doc, known: set[tuple[str, str]]) -> Doc | None:
    references = obj.get("references", [])
    missing = [{"type": r.get("type"), "id": r.get("id")} for r in references
               if (r.get("type"), r.get("id")) not in known]
    names = {r.get("name") for r in references}
    text = json.dumps(obj.get("attributes", {}))
    unnamed = sorted({n for n in _REF_NAME.findall(text.replace('\\"', '"'))
                      if n not in names})
    if unnamed:
        missing.extend({"type": "unknown", "id": f"<reference named {n}>"} for n in unnamed)
    if missing:
        return {"type": "missing_references", "references": missing}
    return None


def _check_index_name(index: str) -> None:
    bad = (index != index.lower() or index in (".", "..") or index[0] in "-_+"
           or any(c in _INVALID_INDEX_CHARS for c in index) or len(index.encode()) > 255)
    if bad:
        raise _EsError(400, "invalid_index_name_exception",
                       f"Invalid index name [{index}], must be lowercase and must not contain "
                       f"one of {sorted(_INVALID_INDEX_CHARS)} or start with -, _, +",
                       index=index)


def _patterns(template: Doc) -> list[str]:
    patterns = template.get("index_patterns", [])
    return [patterns] if isinstance(patterns, str) else list(patterns)


def _overlap(a: list[str], b: list[str]) -> bool:
    return any(x == y or fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(y, x)
               for x in a for y in b)


def _check_mapping(mapping: Doc, prefix: str) -> None:
    """Reject field types Elasticsearch would not know (a typo in a template)."""
    for name, spec in mapping.get("properties", {}).items():
        kind = spec.get("type", "object")
        if kind not in _FIELD_TYPES:
            raise _EsError(400, "mapper_parsing_exception",
                           f"No handler for type [{kind}] declared on field [{prefix}{name}]")
        if "properties" in spec:
            _check_mapping(spec, f"{prefix}{name}.")


def _check_doc(mapping: Doc, doc: Doc, prefix: str, doc_id: str) -> None:
    """Validate ``doc`` against explicit mappings; ``dynamic: strict`` rejects unknown fields."""
    properties = mapping.get("properties", {})
    strict = str(mapping.get("dynamic", "true")).lower() == "strict"
    for key, value in doc.items():
        spec = properties.get(key)
        if spec is None:
            if strict:
                raise _EsError(400, "strict_dynamic_mapping_exception",
                               f"[1:1] mapping set to strict, dynamic introduction of [{key}] "
                               f"within [{prefix.rstrip('.') or '_doc'}] is not allowed")
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not _fits(spec, item, f"{prefix}{key}", doc_id):
                raise _EsError(400, "document_parsing_exception",
                               f"[1:1] failed to parse field [{prefix}{key}] of type "
                               f"[{spec.get('type', 'object')}] in document with id "
                               f"'{doc_id}'. Preview of field's value: '{item}'")


def _fits(spec: Doc, value: Any, path: str, doc_id: str) -> bool:
    kind = spec.get("type", "object")
    if kind in ("object", "nested"):
        if not isinstance(value, dict):
            return False
        _check_doc(spec, value, path + ".", doc_id)
        return True
    if kind in _INTEGER_TYPES:
        if isinstance(value, bool):
            return False
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) or (isinstance(value, str) and _is_int(value))
    if kind in ("keyword", "text", "wildcard", "constant_keyword"):
        return not isinstance(value, dict | list)
    if kind in ("date", "date_nanos"):
        return any(_is_date(value, f.strip())
                   for f in str(spec.get("format", "strict_date_optional_time||epoch_millis"))
                   .split("||"))
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false", "")
    return True


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", text.strip()))


def _is_date(value: Any, fmt: str) -> bool:
    if fmt in ("epoch_second", "epoch_millis"):
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and _is_int(value))
    if not isinstance(value, str):
        return False
    if fmt in ("strict_date", "date", "yyyy-MM-dd"):
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and _parses(value)
    if fmt in ("strict_date_optional_time", "date_optional_time", "strict_date_time"):
        shape = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
        return bool(re.fullmatch(shape, value)) and _parses(value)
    return True  # a format the stand-in does not model: accept rather than guess


def _parses(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as urllib3's pooled connections expect."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, ctype, payload = self.server.standin.handle(self.command, self.path, headers, body)
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on ``StandIn.requests`` instead of reading a log."""


def start_standin(*, major: int | None = None, host: str = "127.0.0.1", port: int = 0) -> StandIn:
    """Start a stand-in on a free port.

    ``major`` defaults to that of the Elasticsearch server in ``docker-compose.yml``, the
    server operators run, never to the installed client's: a client of another major must
    fail in the tests as it fails in production.
    """
    if major is None:
        from ..supported import elasticsearch_major_of_compose

        major = elasticsearch_major_of_compose()
    return StandIn(major=major, host=host, port=port)
