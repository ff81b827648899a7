"""The daily report image (CLI and web), the Atom feed of reports, and nickname search."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from battletracker.cli import main
from battletracker.db import engine_for
from battletracker.settings import Settings
from battletracker.web import reports

from .dataset import DAYS, FIRST_DAY, LAST_DAY, Dataset

ARTIFACTS = Path(os.environ.get("BATTLETRACKER_TEST_ARTIFACTS", "test-artifacts"))
ATOM = "{http://www.w3.org/2005/Atom}"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _activity(settings: Settings, day: dt.date) -> dict[str, tuple[int, int, int]]:
    with engine_for(settings).connect() as conn:
        rows = conn.execute(text(
            "SELECT platform, active_accounts, battles, new_accounts FROM daily_activity "
            "WHERE date = :d"), {"d": day}).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


# -- the report image -------------------------------------------------------------------


def test_report_command_writes_the_png(web_settings: Settings, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.image import imread

    monkeypatch.setenv("BATTLETRACKER_DATABASE_URL", web_settings.database_url)
    out = tmp_path / "report.png"
    day = LAST_DAY - dt.timedelta(days=1)
    result = CliRunner().invoke(main, ["report", "--date", day.isoformat(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"report of {day}" in result.output
    data = out.read_bytes()
    assert _png_size(data) == (1500, 640)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTIFACTS / f"report-{day}.png")  # looked at by a person, too
    # both platforms' lines are drawn: their colours are in the picture
    pixels = (imread(str(out))[:, :, :3] * 255).round().astype(int)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert (0x2F, 0x6F, 0xDF) in colours and (0xE0, 0x66, 0x2F) in colours
    # without --date: the latest day with activity
    result = CliRunner().invoke(main, ["report", "--out", str(out)])
    assert result.exit_code == 0 and f"report of {LAST_DAY}" in result.output


def test_report_of_a_day_without_data_is_a_clear_error(web_settings: Settings, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATTLETRACKER_DATABASE_URL", web_settings.database_url)
    out = tmp_path / "none.png"
    result = CliRunner().invoke(main, ["report", "--date", "2020-01-01", "--out", str(out)])
    assert result.exit_code == 1 and "no activity for 2020-01-01" in result.output
    assert not out.exists()
    result = CliRunner().invoke(main, ["report", "--date", "yesterday", "--out", str(out)])
    assert result.exit_code == 2 and "not a date" in result.output


def test_report_image_is_served_and_drawn_once(client: TestClient) -> None:
    drawn = reports.IMAGES.drawn
    first = client.get(f"/reports/{LAST_DAY}.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert _png_size(first.content) == (1500, 640)
    again = client.get(f"/reports/{LAST_DAY}.png")
    assert again.content == first.content
    assert reports.IMAGES.drawn == drawn + 1
    assert client.get("/reports/2020-01-01.png").status_code == 404
    assert client.get("/reports/notadate.png").status_code == 422


def test_report_figures_are_the_days(web_settings: Settings) -> None:
    from battletracker.report.data import load_report

    with engine_for(web_settings).connect() as conn:
        from sqlalchemy.orm import Session

        report = load_report(Session(bind=conn), LAST_DAY)
    expected = _activity(web_settings, LAST_DAY)
    for platform, (active, battles, new) in expected.items():
        day = report.day(platform)
        assert day is not None
        assert (day.active_accounts, day.battles, day.new_accounts) == (active, battles, new)
        assert len(report.series[platform]) == min(DAYS, 30)
    assert report.total("battles") == sum(v[1] for v in expected.values())


# -- the Atom feed ----------------------------------------------------------------------


def test_atom_feed_of_daily_reports(client: TestClient, web_settings: Settings) -> None:
    r = client.get("/feed.atom")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.tag == f"{ATOM}feed"
    for tag in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{tag}") is not None, tag
    assert feed.find(f"{ATOM}link[@rel='self']").get("href").endswith("/feed.atom")  # type: ignore[union-attr]
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == DAYS  # one per night with activity, newest first
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == DAYS
    assert ids[0] is not None and ids[0].endswith(f"/reports/{LAST_DAY}.png")
    assert ids[-1] is not None and ids[-1].endswith(f"/reports/{FIRST_DAY}.png")
    newest = entries[0]
    updated = newest.findtext(f"{ATOM}updated")
    assert updated is not None and dt.datetime.fromisoformat(updated.replace("Z", "+00:00"))
    assert feed.findtext(f"{ATOM}updated") == max(
        e.findtext(f"{ATOM}updated") or "" for e in entries)
    active, battles, _ = _activity(web_settings, LAST_DAY)["xbox"]
    summary = newest.findtext(f"{ATOM}summary") or ""
    assert f"Xbox: {active:,} active accounts" in summary and f"{battles:,} battles" in summary
    content = newest.find(f"{ATOM}content")
    assert content is not None and content.get("type") == "html"
    assert f"/reports/{LAST_DAY}.png" in (content.text or "")
    link = newest.find(f"{ATOM}link[@rel='alternate']")
    assert link is not None and link.get("type") == "image/png"
    path = (link.get("href") or "").removeprefix("http://testserver")
    assert client.get(path).status_code == 200


# -- nickname search --------------------------------------------------------------------


def _nicknames(settings: Settings) -> list[tuple[int, str, str]]:
    with engine_for(settings).connect() as conn:
        return [tuple(r) for r in conn.execute(text(  # type: ignore[misc]
            "SELECT account_id, nickname, platform::text FROM players"))]


def test_search_by_nickname_prefix_any_case(client: TestClient, web_settings: Settings,
                                            data: Dataset) -> None:
    players = _nicknames(web_settings)
    sample = players[len(players) // 2][1]
    for prefix in (sample[:1], sample[:3].upper(), sample[:3].lower(), sample):
        want = sorted((n.lower(), a) for a, n, _ in players
                      if n.lower().startswith(prefix.lower()))
        r = client.get("/api/v1/players", params={"nickname": prefix, "limit": 100})
        assert r.status_code == 200, r.text
        got = [(m["nickname"].lower(), m["account_id"]) for m in r.json()]
        assert got == want[:100], prefix
    r = client.get("/api/v1/players", params={"nickname": sample[:1], "limit": 2})
    assert len(r.json()) == min(2, sum(n.lower().startswith(sample[:1].lower())
                                       for _, n, _ in players))
    xbox = client.get("/api/v1/players", params={"nickname": "xB", "platform": "xbox"}).json()
    assert xbox and {m["platform"] for m in xbox} == {"xbox"}
    assert client.get("/api/v1/players", params={"nickname": "xB", "platform": "ps"}).json() == []
    assert client.get("/api/v1/players", params={"nickname": "zzz-nobody"}).json() == []
    for bad in ({"nickname": ""}, {"nickname": "x" * 65}, {"nickname": "a\x00"},
                {}, {"nickname": "a", "limit": 0}):
        assert client.get("/api/v1/players", params=bad).status_code == 422, bad


def test_search_uses_the_index(web_settings: Settings) -> None:
    """The plan is an index range scan in the order shown (no sort of all matches),
    checked with sequential scans off so a small test table cannot hide it."""
    from battletracker.web.search import _QUERY

    with engine_for(web_settings).connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        compiled = str(_QUERY).replace(":prefix", "'ab'").replace(":limit", "20")
        compiled = compiled.replace("CAST(:platform AS text)", "NULL::text").replace(
            "= :platform", "= NULL")
        plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + compiled)))
    assert "ix_players_nickname_lower" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_search_page(client: TestClient, web_settings: Settings) -> None:
    players = _nicknames(web_settings)
    account, nickname, _ = players[7]
    page = client.get("/players", params={"q": nickname[:2]})
    assert page.status_code == 200 and 'id="matches"' in page.text
    assert f"/players/{account}" in page.text or len(
        [n for _, n, _ in players if n.lower().startswith(nickname[:2].lower())]) > 50
    unique = next(n for _, n, _ in players
                  if sum(m.lower().startswith(n.lower()) for _, m, _ in players) == 1)
    r = client.get("/players", params={"q": unique.upper()}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/players/")
    assert 'id="no-match"' in client.get("/players", params={"q": "zzz-nobody"}).text
    assert 'action="/players"' in client.get("/").text  # the search box in the header
