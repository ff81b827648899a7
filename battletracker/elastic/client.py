"""A client for the configured cluster, and the check that the server's major is ours."""

from __future__ import annotations

from dataclasses import dataclass

from elasticsearch import Elasticsearch
from elasticsearch import __versionstr__ as CLIENT_VERSION

from ..settings import Settings
from ..supported import ELASTICSEARCH_MAJOR

__all__ = ["CLIENT_VERSION", "REQUEST_TIMEOUT", "ElasticCheck", "check_server", "connect"]

#: Per request; a 2,000-document bulk on a busy cluster can take a while.
REQUEST_TIMEOUT = 60.0


def connect(settings: Settings, *, timeout: float = REQUEST_TIMEOUT,
            max_retries: int = 3) -> Elasticsearch:
    """A client for ``settings.elasticsearch_url`` (the caller closes it)."""
    if settings.elasticsearch_url is None:
        raise ValueError("elasticsearch_url is not set")
    return Elasticsearch(settings.elasticsearch_url, request_timeout=timeout,
                         retry_on_timeout=True, max_retries=max_retries)


@dataclass(frozen=True)
class ElasticCheck:
    """What the server said about itself, and whether it is the major the code speaks."""

    server_version: str
    client_version: str

    @property
    def server_major(self) -> int:
        return int(self.server_version.split(".")[0])

    @property
    def client_major(self) -> int:
        return int(self.client_version.split(".")[0])

    @property
    def ok(self) -> bool:
        return self.server_major == self.client_major == ELASTICSEARCH_MAJOR

    def problem(self) -> str | None:
        """The mismatch in plain words, with the fix; None when all three agree."""
        if self.ok:
            return None
        if self.client_major != ELASTICSEARCH_MAJOR:
            return (f"the installed elasticsearch client is {self.client_version}, battletracker "
                    f"speaks Elasticsearch {ELASTICSEARCH_MAJOR}: reinstall with the constraints "
                    f"file (pip install -c constraints/server.txt -e '.[server]')")
        return (f"the Elasticsearch server is {self.server_version}, battletracker speaks "
                f"{ELASTICSEARCH_MAJOR}.x (the client refuses other majors): run the "
                f"server of docker-compose.yml (Elasticsearch {ELASTICSEARCH_MAJOR}.x)")


def check_server(client: Elasticsearch) -> ElasticCheck:
    """Ask the server its version (``GET /`` without compatibility headers, so that a
    server of any major answers) and compare it with the client's and ours."""
    raw = client.perform_request("GET", "/", headers={"accept": "application/json"})
    return ElasticCheck(server_version=str(raw.body["version"]["number"]),
                        client_version=CLIENT_VERSION)
