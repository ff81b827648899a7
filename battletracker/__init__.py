"""battletracker: count World of Tanks console players every night.

``celery -A battletracker`` finds the Celery app here as ``app``.
"""

from __future__ import annotations

from .app import app

__all__ = ["__version__", "app"]

__version__ = "0.1.0"
