"""A rig per test: database, vhost, simulator, the node API, worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import Population, Simulator, serve
from tests.common.rig import IDS, Rig
from tests.common.services import rabbit_vhost


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    sim = Simulator(Population(seed=5, xbox_ids=IDS, ps_ids=IDS, new_per_day=0),
                    keys={"k": 40.0}, day=1)  # fmt: skip
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        r = Rig(db, broker, sim, api.url, tmp_path)
        try:
            yield r
        finally:
            r.stop()
