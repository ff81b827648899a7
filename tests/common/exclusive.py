"""Tests that restart a shared service run alone, also when pytest-xdist runs many at once.

Every test holds a shared lock on one file for its duration; a test marked
``exclusive`` (it restarts RabbitMQ, which every other running test uses) holds it
exclusively. A second file is a turnstile: an exclusive test closes it while it waits,
so tests starting meanwhile queue behind it instead of keeping the shared lock held
forever (``flock`` alone would let readers starve the writer).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["hold"]


@contextmanager
def hold(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the run's test lock in ``directory``, shared or exclusive, for the block."""
    directory.mkdir(parents=True, exist_ok=True)
    with (
        (directory / "turnstile.lock").open("a") as gate,
        (directory / "run.lock").open("a") as run,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(run, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(gate, fcntl.LOCK_UN)
