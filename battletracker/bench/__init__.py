"""``battletracker bench``: the performance targets of the pipeline, measured beside references.

One module per benchmark (``keyrate``, ``capacity``, ``store``, ``night``, ``coordinator``,
``web``); :mod:`.report` holds the figures and their JSON, :mod:`.services` the real
RabbitMQ vhosts, databases and worker processes they run on, :mod:`.cli` the command.
"""

from __future__ import annotations

__all__: list[str] = []
