"""A population that answers at the pipeline's speed: accounts stamped from templates.

:class:`~.population.Population` builds every account from hashes, which costs ~50 us an
account: at 20,000 ids/s the simulator alone would need a core, and a capacity benchmark
would measure the simulator. :class:`TemplatePopulation` has the same ids, the same
"which ids hold an account" rule and real-looking counters (a pool of ``pool`` accounts
of the hashed population, reused round robin), but renders a 100-id answer by string
formatting from a template made once per ``fields`` list: a few microseconds an id.
"""

from __future__ import annotations

import json
from typing import Any

from .fields import FieldSelector
from .population import Population

__all__ = ["TemplatePopulation"]


class TemplatePopulation(Population):
    """The ids of a :class:`Population`, with accounts copied from a small pool."""

    def __init__(self, *args: Any, pool: int = 997, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool: list[dict[str, Any]] = []
        candidate = (
            self.id_range("xbox", 0).start if self.initial["xbox"] else self.id_range("ps", 0).start
        )
        while len(self._pool) < pool:
            account = super().account(candidate, 0)
            if account is not None:
                self._pool.append(account)
            candidate += 1
        self._rendered: dict[tuple[str, ...], list[str]] = {}

    def account(self, account_id: int, day: int) -> dict[str, Any] | None:
        """The account stamped on ``account_id`` (or None where no account exists)."""
        if not self.exists(account_id, day):
            return None
        base = self._pool[account_id % len(self._pool)]
        return {**base, "account_id": account_id, "nickname": self._name(account_id)}

    def render(self, ids: list[int], day: int, selector: FieldSelector) -> tuple[str, int]:
        """The ``data`` object of an answer as JSON text, and how many accounts it holds."""
        key = tuple(selector.entries)
        parts = self._rendered.get(key)
        if parts is None:
            parts = self._rendered[key] = [self._template(a, selector) for a in self._pool]
        out = []
        found = 0
        for account_id in ids:
            if self.exists(account_id, day):
                found += 1
                out.append(
                    parts[account_id % len(parts)]
                    % (account_id, account_id, self._name(account_id))
                )
            else:
                out.append(f'"{account_id}":null')
        return "{" + ",".join(out) + "}", found

    def _template(self, account: dict[str, Any], selector: FieldSelector) -> str:
        picked = selector.apply({**account, "account_id": -1, "nickname": "\x00"})
        body = json.dumps(picked, separators=(",", ":")).replace("%", "%%")
        body = body.replace('"account_id":-1', '"account_id":%d')
        body = body.replace('"nickname":"\\u0000"', '"nickname":"%s"')
        if '"account_id":%d' not in body:  # not asked for: keep the format's arity
            body = body.replace("{", "{%.0s", 1)
        if '"nickname":"%s"' not in body:
            body = body.replace("{", "{%.0s", 1)
        return '"%d":' + body

    def _name(self, account_id: int) -> str:
        return f"T{account_id:x}" + ("-x" if self._platform(account_id) == "xbox" else "")
