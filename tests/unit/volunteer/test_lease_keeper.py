"""The node's lease keeper: keys follow renewals, stop at expiry or a ban, results signed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from battletracker.signing import verify_result_signature
from battletracker.volunteer.api import ServerError
from battletracker.volunteer.identity import Identity
from battletracker.volunteer.lease import LeaseKeeper


class FakeServer:
    """Answers lease calls from a script; records what the keeper asked."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[int | None] = []

    def lease(self, renew: int | None = None) -> dict[str, Any]:
        self.calls.append(renew)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def _lease(rps: float, expires_in: float = 60, lease_id: int = 5) -> dict[str, Any]:
    return {"node_id": 1, "lease_id": lease_id, "broker_url": "amqp://x", "signing_key": "ab" * 32,
            "keys": [{"app_id": "pool", "rps": rps}], "expires_in": expires_in,
            "renew_in": 0.5, "required_version": "0"}  # fmt: skip


def _keeper(tmp_path: Path, server: FakeServer) -> LeaseKeeper:
    return LeaseKeeper(tmp_path, Identity("http://s", 1, "secret"), server)  # type: ignore[arg-type]


def test_keys_follow_renewals_and_results_are_signed(tmp_path: Path) -> None:
    server = FakeServer(_lease(10), _lease(5))
    keeper = _keeper(tmp_path, server).start()
    try:
        assert [k.rps for k in keeper.usable_keys()] == [10]
        deadline = time.monotonic() + 5
        while [k.rps for k in keeper.usable_keys()] != [5]:
            assert time.monotonic() < deadline, "the renewal's share was not taken up"
            time.sleep(0.05)
        assert server.calls[1] == 5, "a renewal names the lease it renews"
        signed = keeper.sign({"chunk_id": 3, "rows": []}, {"attempt": 2, "token": "t"})
        assert signed["auth"]["attempt"] == 2 and signed["auth"]["lease_id"] == 5
        assert verify_result_signature("ab" * 32, signed, signed["auth"]["sig"])
    finally:
        keeper.stop()


def test_an_unrenewed_lease_stops_at_its_expiry(tmp_path: Path) -> None:
    server = FakeServer(_lease(10, expires_in=1.0), ServerError("unreachable", 0))
    keeper = _keeper(tmp_path, server).start()
    try:
        assert keeper.usable_keys()
        time.sleep(1.2)
        assert keeper.usable_keys() == ()
    finally:
        keeper.stop()


def test_a_banned_node_stops_using_its_keys_at_once(tmp_path: Path) -> None:
    server = FakeServer(_lease(10, expires_in=300), ServerError("banned", 403))
    keeper = _keeper(tmp_path, server).start()
    try:
        deadline = time.monotonic() + 5
        while keeper.usable_keys():
            assert time.monotonic() < deadline, "keys still in use after a 403"
            time.sleep(0.05)
    finally:
        keeper.stop()
