"""Operator password checks off the event loop and off the shared threadpool.

A PBKDF2 check costs ~0.3 s of CPU. Run on the event loop it would freeze every page; run
in the threadpool that serves the sync routes, a burst of logins would take all its
threads. So checks run on a small executor of their own, with a bounded queue: past it a
login is refused at once ("busy") instead of waiting, and pages never notice.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from .auth import check_operator

__all__ = ["PasswordChecker", "PasswordCheckerBusy"]


class PasswordCheckerBusy(Exception):
    """Too many password checks are running or waiting; try again shortly."""


class PasswordChecker:
    """Runs :func:`~.auth.check_operator` on ``workers`` threads, ``queue`` deep at most."""

    def __init__(self, operators: tuple[tuple[str, str], ...], *, workers: int = 1,
                 queue: int = 8) -> None:
        self._operators = operators
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None  # made on first use
        self._limit = workers + queue
        self._pending = 0
        #: How many checks ran, and the most at once (running or queued): tests read them
        #: to see that refused logins cost nothing and that the queue stays bounded.
        self.checked = 0
        self.peak = 0

    async def check(self, user: str, password: str) -> bool:
        """Whether ``user``/``password`` is a configured operator; raises when busy."""
        if self._pending >= self._limit:
            raise PasswordCheckerBusy("too many logins at once")
        self._pending += 1
        self.peak = max(self.peak, self._pending)
        try:
            self.checked += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._workers,
                                                    thread_name_prefix="battletracker-pbkdf2")
            future = self._executor.submit(check_operator, self._operators, user, password)
            return await asyncio.wrap_future(future)
        finally:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Checks running or waiting now."""
        return self._pending

    def close(self) -> None:
        """Stop the threads (the app's shutdown); a later check starts new ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
