"""The store consumer's guard on message shapes (the broker test runs it for real)."""

from __future__ import annotations

import json
from typing import Any

from kombu.serialization import loads

from battletracker.nodes.guard import STORE_TASK, check_message, max_result_bytes
from tests.common.nodes import EMBED, task_message


class Message:
    """What the guard reads of a kombu message: raw body, headers, decode()."""

    def __init__(self, name: str, args: list[Any], **kw: Any) -> None:
        body, self.headers = task_message(name, args, **kw)
        self.body = body.encode()

    def decode(self) -> Any:
        return loads(self.body, "application/json", "utf-8", accept={"application/json"})


def test_a_plain_store_results_passes() -> None:
    assert check_message(Message(STORE_TASK, [{}]), STORE_TASK, 10_000) is None
    # the store task's own limits, as a worker that knows the task sends them
    own = Message(STORE_TASK, [{}], timelimit=[1500, 1200])
    assert check_message(own, STORE_TASK, 10_000, (1500, 1200)) is None


def test_everything_else_is_refused_with_its_reason() -> None:
    cases = {
        "not_store_task": Message("battletracker.start_cycle", ["2099-01-01"]),
        "oversized": Message(STORE_TASK, [{"rows": ["x" * 20_000]}]),
    }
    for reason, message in cases.items():
        name = message.headers["task"]
        assert check_message(message, name, 10_000)[0] == reason  # type: ignore[index]
    envelopes = [
        {"eta": "2099-01-01T00:00:00"}, {"expires": "2099-01-01T00:00:00"},
        {"timelimit": [1, None]}, {"kwargs": {"x": 1}},
        {"embed": {**EMBED, "callbacks": [{"task": "battletracker.start_cycle"}]}},
        {"embed": {**EMBED, "errbacks": [{"task": "x"}]}},
        {"embed": {**EMBED, "chain": [{"task": "x"}]}},
        {"embed": {**EMBED, "chord": {"task": "x"}}},
    ]
    for kw in envelopes:
        verdict = check_message(Message(STORE_TASK, [{}], **kw), STORE_TASK, 10_000)
        assert verdict is not None and verdict[0] == "bad_envelope", kw
    two_args = Message(STORE_TASK, [{}, {}])
    assert check_message(two_args, STORE_TASK, 10_000)[0] == "bad_envelope"  # type: ignore[index]
    garbage = Message(STORE_TASK, [{}])
    garbage.body = b"\xff not json"
    assert check_message(garbage, STORE_TASK, 10_000)[0] == "bad_envelope"  # type: ignore[index]


def test_the_store_tasks_own_time_limits_pass_and_no_others() -> None:
    # the server's own app (and the demo's in-process worker) stamps the task's limits
    own = (25 * 60, 20 * 60)
    stamped = Message(STORE_TASK, [{}], timelimit=list(own))
    assert check_message(stamped, STORE_TASK, 10_000, own) is None
    for other in ([1, None], [None, 1], [own[0] * 10, own[1] * 10]):
        forged = Message(STORE_TASK, [{}], timelimit=other)
        assert check_message(forged, STORE_TASK, 10_000, own) == ("bad_envelope", "time limits")


def test_the_size_limit_fits_a_real_result_of_a_full_chunk() -> None:
    # a 10,000-id chunk with an account on every id and the widest values: the issue's
    # ~3.5 MB, with room to spare, and a limit far below what would hurt the server
    row = [1_085_000_000, "N" * 24, 1_500_000_000, 1_700_000_000, *[1_234_567_890] * 14]
    size = len(json.dumps([[{"rows": [row] * 10_000}], {}, EMBED]))
    assert size < 3_500_000 * 1.1
    assert 1.5 * 3_500_000 <= max_result_bytes(10_000) <= 10_000_000
