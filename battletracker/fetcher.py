"""The Celery app as a volunteer's fetch worker runs it: ``celery -A battletracker.fetcher``.

The same app as :mod:`battletracker.app`, told to load only ``fetch_range``: a node
never imports the server's tasks, so it needs (and installs) no database driver, ORM,
web framework or Elasticsearch client.
"""

from __future__ import annotations

from .app import FETCH_TASKS, app

__all__ = ["app"]

app.conf.include = list(FETCH_TASKS)
