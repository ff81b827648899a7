"""The rest of the JSON API: cycles, credit, players, activity, errors, OpenAPI."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from battletracker.models import COUNTERS
from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.secret import new_secret_key

from .dataset import DAYS, FIRST_DAY, LAST_DAY, NODES, Dataset


def test_current_cycle_progress(client: TestClient) -> None:
    r = client.get("/api/v1/cycles/current")
    assert r.status_code == 200
    p = r.json()
    assert p["date"] == (LAST_DAY + dt.timedelta(days=1)).isoformat()
    assert p["status"] == "fetching"
    assert (p["chunks_stored"], p["chunks_total"]) == (25, 40)
    assert p["chunks"] == {"pending": 8, "dispatched": 5, "stored": 25, "rejected": 1,
                           "failed": 1}
    assert p["fraction"] == pytest.approx(25 / 40)
    assert p["accounts"] == 9000
    # 10 chunks were stored in the last 15 minutes: 2/3 chunk per minute, 15 to go.
    assert p["chunks_per_minute"] == pytest.approx(10 / 15)
    assert p["eta_seconds"] == pytest.approx(15 / (10 / 15) * 60)
    assert p["nodes_online"] == len(NODES)
    assert 3500 < p["elapsed_seconds"] < 3700
    assert p["accounts_per_second"] == pytest.approx(9000 / p["elapsed_seconds"])


def test_cycle_list(client: TestClient) -> None:
    r = client.get("/api/v1/cycles", params={"limit": 5})
    assert r.status_code == 200
    cycles = r.json()
    assert len(cycles) == 5
    assert [c["date"] for c in cycles] == sorted((c["date"] for c in cycles), reverse=True)
    done = cycles[1]
    assert done["status"] == "done" and done["eta_seconds"] == 0
    assert done["elapsed_seconds"] == pytest.approx(3 * 3600)
    assert len(client.get("/api/v1/cycles", params={"limit": 100}).json()) == DAYS + 1


def test_credit(client: TestClient) -> None:
    rows = client.get("/api/v1/credit").json()
    # Finished nights: 6 stored chunks each, nodes in turn; tonight 25 stored in turn.
    per_night = Counter(NODES[k % 3] for k in range(6))
    expected = Counter({n: c * DAYS for n, c in per_night.items()})
    expected += Counter(NODES[k % 3] for k in range(25))
    assert {r["node"]: r["chunks"] for r in rows} == dict(expected)
    assert [r["chunks"] for r in rows] == sorted((r["chunks"] for r in rows), reverse=True)
    assert all(r["accounts"] == 360 * r["chunks"] for r in rows)
    recent = client.get("/api/v1/credit", params={"days": 1}).json()
    assert sum(r["chunks"] for r in recent) == 25


def test_player_and_history(client: TestClient, data: Dataset) -> None:
    aid = max(data.current, key=lambda a: sum(1 for (x, _) in data.diffs if x == a))
    r = client.get(f"/api/v1/players/{aid}")
    assert r.status_code == 200
    p = r.json()
    assert p["nickname"] == data.nickname[aid] and p["platform"] == data.platform[aid]
    assert p["counters"] == data.current[aid]
    assert p["stats"]  # the stat handlers ran
    assert p["ranks"]["battles"]["account_id"] == aid
    history = client.get(f"/api/v1/players/{aid}/history", params={"days": 90}).json()
    days = sorted(d for (x, d) in data.diffs if x == aid)
    assert [h["date"] for h in history] == [d.isoformat() for d in days]
    for h, d in zip(history, days, strict=True):
        assert h["diffs"] == {c: data.diffs[(aid, d)][c] for c in COUNTERS}
    assert history[-1]["total_battles"] == data.current[aid]["battles"]


def test_activity(client: TestClient, data: Dataset) -> None:
    rows = client.get("/api/v1/activity", params={"days": 90}).json()
    assert len(rows) == 2 * DAYS
    active = Counter((data.platform[a], d.isoformat()) for (a, d) in data.diffs)
    battles: Counter[tuple[str, str]] = Counter()
    for (a, d), diff in data.diffs.items():
        battles[(data.platform[a], d.isoformat())] += diff["battles"]
    for row in rows:
        key = (row["platform"], row["date"])
        assert row["active_accounts"] == active[key]
        assert row["battles"] == battles[key]
        assert row["avg_battles_per_active"] == pytest.approx(battles[key] / active[key])
    xbox = client.get("/api/v1/activity", params={"days": 3, "platform": "xbox"}).json()
    assert [r["date"] for r in xbox] == [
        (LAST_DAY - dt.timedelta(days=i)).isoformat() for i in (2, 1, 0)]
    assert {r["platform"] for r in xbox} == {"xbox"}
    assert FIRST_DAY.isoformat() == rows[0]["date"]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/boards/no_such_board", 404),
    ("/api/v1/boards/no_such_board/rank/5000", 404),
    ("/api/v1/boards/no_such_board/around/5000", 404),
    ("/api/v1/players/1", 404),
    ("/api/v1/players/1/history", 404),
    ("/api/v1/boards/battles?limit=0", 422),
    ("/api/v1/boards/battles?limit=201", 422),
    ("/api/v1/boards/battles?limit=abc", 422),
    ("/api/v1/boards/battles?offset=-1", 422),
    ("/api/v1/boards/battles?window=year", 422),
    ("/api/v1/boards/battles?platform=pc", 422),
    ("/api/v1/boards/battles/rank/0", 422),
    ("/api/v1/boards/battles/rank/-5", 422),
    ("/api/v1/boards/battles/rank/9223372036854775808", 422),
    ("/api/v1/boards/battles/rank/12x", 422),
    ("/api/v1/boards/battles/around/5000?n=51", 422),
    ("/api/v1/boards/bad%00name", 422),
    ("/api/v1/boards/" + "x" * 65, 422),
    ("/api/v1/players/5000/history?days=0", 422),
    ("/api/v1/players/5000/history?days=100000", 422),
    ("/api/v1/activity?platform=wii", 422),
    ("/api/v1/cycles?limit=1000", 422),
    ("/api/v1/credit?days=0", 422),
    ("/api/v1/nothing/here", 404),
])
def test_errors_are_json_with_status(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]


def test_no_cycle_yet_is_404(db_settings: Settings) -> None:
    with TestClient(create_app(db_settings.replace(secret_key=new_secret_key()))) as c:
        r = c.get("/api/v1/cycles/current")
        assert r.status_code == 404 and r.json() == {"detail": "no cycle has run yet"}
        assert c.get("/api/v1/cycles").json() == []
        assert c.get("/api/v1/boards/battles").json()["total"] == 0
        assert c.get("/").status_code == 200  # the empty dashboard renders


def test_openapi_lists_every_operation(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/v1/cycles/current", "/api/v1/cycles", "/api/v1/activity", "/api/v1/boards",
        "/api/v1/boards/{board}", "/api/v1/boards/{board}/rank/{account_id}",
        "/api/v1/boards/{board}/around/{account_id}", "/api/v1/players/{account_id}",
        "/api/v1/players/{account_id}/history", "/api/v1/credit", "/healthz"}
    top = schema["paths"]["/api/v1/boards/{board}"]["get"]
    assert "404" in top["responses"] and "422" in top["responses"]


@pytest.mark.parametrize("path, body", [
    ("/api/v1/nodes/register", {"name": "a", "version": "0.1\x00"}),
    ("/api/v1/nodes/register", {"name": "a", "invite": "code\x00"}),
    ("/api/v1/nodes/register", {"name": "a", "version": "0.1 beta"}),
    ("/api/v1/nodes/register", {"name": "a\x00"}),
])  # fmt: skip
def test_node_text_with_control_characters_is_422_not_stored(
    client: TestClient, path: str, body: dict[str, str]
) -> None:
    """PostgreSQL refuses NUL in text: such input is a client error, never a 500."""
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
