"""The major versions of every service battletracker talks to, written down in one place.

``doctor`` checks a running installation against this table, the compose file pins images
inside it (a test reads the file and compares), and the Elasticsearch stand-in of the
tests speaks the major of compose's server. A leaf module: no imports beyond the standard
library, so node-side code may read it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COMPOSE_FILE",
    "ELASTICSEARCH_MAJOR",
    "SERVICES",
    "Supported",
    "compose_image_version",
    "elasticsearch_major_of_compose",
]


@dataclass(frozen=True)
class Supported:
    """A service and the majors (inclusive range) the code is tested against."""

    name: str
    min_major: int
    max_major: int
    #: Where the figure comes from / what to do when it does not match.
    note: str

    def accepts(self, major: int) -> bool:
        return self.min_major <= major <= self.max_major

    def __str__(self) -> str:
        span = (str(self.min_major) if self.min_major == self.max_major
                else f"{self.min_major}-{self.max_major}")
        return f"{self.name} {span}"


#: The Elasticsearch major of the server in docker-compose.yml and of the pinned client:
#: an 8.x server refuses the ``compatible-with=9`` header of a 9.x client, so they agree.
ELASTICSEARCH_MAJOR = 8

SERVICES: dict[str, Supported] = {
    "python": Supported("Python", 3, 3, "3.11 or newer (setup.cfg python_requires)"),
    "postgresql": Supported("PostgreSQL", 14, 17,
                            "compose runs 16; Debian 12 ships 15 (tests run there)"),
    "rabbitmq": Supported("RabbitMQ", 3, 4, "compose runs 3.13; Debian 12 ships 3.10"),
    "elasticsearch": Supported("Elasticsearch", ELASTICSEARCH_MAJOR, ELASTICSEARCH_MAJOR,
                               "the client is pinned to the same major (constraints/)"),
    "kibana": Supported("Kibana", ELASTICSEARCH_MAJOR, ELASTICSEARCH_MAJOR,
                        "always the same version as Elasticsearch"),
}

#: The compose file of a checkout (the server runs from one: ``pip install -e``).
COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def compose_image_version(image_name: str, compose_file: Path = COMPOSE_FILE) -> str | None:
    """The tag of ``image_name`` (``…/elasticsearch/elasticsearch``) in the compose file.

    A plain text scan, so it needs no YAML library; ``None`` if the file or image is absent.
    """
    try:
        text = compose_file.read_text()
    except OSError:
        return None
    m = re.search(rf"^\s*image:\s*[\"']?\S*{re.escape(image_name)}:([\w.\-]+)", text, re.M)
    return m.group(1) if m else None


def elasticsearch_major_of_compose(compose_file: Path = COMPOSE_FILE) -> int:
    """The major of compose's Elasticsearch server; :data:`ELASTICSEARCH_MAJOR` without it."""
    tag = compose_image_version("elasticsearch/elasticsearch", compose_file)
    if tag is None:
        return ELASTICSEARCH_MAJOR
    return int(tag.split(".")[0])
