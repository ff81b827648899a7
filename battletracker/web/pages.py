"""The public dashboard pages: progress and activity, leaderboards, players, volunteers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..stats import queries
from ..stats.interfaces import UnknownPlayer
from . import chartdata, progress
from .api.params import MAX_ACCOUNT_ID, AccountId, BoardName, PlatformParam, Window
from .deps import AsyncDb, DbSession, get_identity, identity_of
from .search import MAX_PREFIX, search_players
from .templating import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)  # the guest gate is app-wide (deps.gate)

PAGE_SIZE = 50
WINDOWS = ("day", "week", "month", "all")
PLATFORMS = ("all", "xbox", "ps")
PageDays = Annotated[int, Query(ge=7, le=3660)]


@router.get("/")
def dashboard(request: Request, session: DbSession, days: PageDays = 90) -> Response:
    cycle = progress.current_cycle(session)
    prog = progress.progress_of(session, cycle) if cycle is not None else None
    rows = queries.activity(session, days=days)
    return render(request, "dashboard.html", {
        "progress": prog,
        "days": days,
        "charts": chartdata.activity_charts(rows),
        "latest_report": rows[-1].date if rows else None,
    })


@router.get("/boards")
def boards(request: Request) -> Response:
    return render(request, "boards.html", {"boards": queries.list_boards()})


@router.get("/boards/{board}")
async def board(
    request: Request,
    db: AsyncDb,
    board: BoardName,
    window: Window = "all",
    platform: PlatformParam = "all",
    page: Annotated[int, Query(ge=1, le=200_000)] = 1,
    account_id: Annotated[str, Query(max_length=20, pattern=r"^\s*\d*\s*$")] = "",
) -> Response:
    """A board page with window/platform selectors, pagination and "find a player".

    ``account_id`` is text because the form sends it empty when no one is looked up.
    """
    wanted = int(account_id) if account_id.strip() else None
    if wanted is not None and not 1 <= wanted <= MAX_ACCOUNT_ID:
        wanted = None
    info = queries.board_info(board)
    result = await db.top(board, window, platform, offset=(page - 1) * PAGE_SIZE,
                          limit=PAGE_SIZE)
    pages = max((result.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    me = await identity_of(request)
    focus = wanted if wanted is not None else me.account_id
    around: list[Any] = []
    not_ranked = False
    if focus is not None:
        try:
            around = await db.around(board, window, platform, focus, n=5)
        except UnknownPlayer:
            not_ranked = wanted is not None
    return render(request, "board.html", {
        "board": info, "window": window, "platform": platform, "page": page,
        "pages": pages, "result": result, "windows": WINDOWS, "platforms": PLATFORMS,
        "around": around, "focus": focus, "not_ranked": not_ranked,
        "score_chart": chartdata.page_scores_chart(info, result.entries),
    })


def _player_context(session: DbSession, account_id: int, days: int) -> dict[str, Any]:
    stats = queries.player_stats(session, account_id)
    history = queries.player_history(session, account_id, days=days)
    found = queries.player_ranks(session, account_id)
    ranks = [(info, found.get(info.name)) for info in queries.list_boards()]
    return {"stats": stats, "history": history, "ranks": ranks, "days": days,
            "charts": chartdata.player_charts(history)}


@router.get("/players")
def player_search(
    request: Request,
    session: DbSession,
    q: Annotated[str, Query(max_length=MAX_PREFIX)] = "",
    platform: PlatformParam = "all",
) -> Response:
    """Find players by the start of their nickname; one exact match goes straight there."""
    prefix = "".join(ch for ch in q.strip() if ch.isprintable())
    matches = search_players(session, prefix, platform=platform, limit=PAGE_SIZE) if prefix \
        else []
    exact = [m for m in matches if m.nickname.lower() == prefix.lower()]
    if len(exact) == 1 and len(matches) == 1:
        return RedirectResponse(f"/players/{exact[0].account_id}", status_code=303)
    return render(request, "search.html", {"q": prefix, "platform": platform,
                                           "platforms": PLATFORMS, "matches": matches,
                                           "limit": PAGE_SIZE})


@router.get("/players/{account_id}")
def player(request: Request, session: DbSession, account_id: AccountId,
           days: PageDays = 90) -> Response:
    return render(request, "player.html", _player_context(session, account_id, days))


@router.get("/me")
def me(request: Request, session: DbSession, days: PageDays = 90) -> Response:
    """The signed-in player's own page (Wargaming sign-in)."""
    identity = get_identity(request)
    if identity.account_id is None:
        return RedirectResponse("/login?next=/me", status_code=303)
    try:
        context = _player_context(session, identity.account_id, days)
    except UnknownPlayer:
        return render(request, "me_unknown.html", {"identity": identity})
    return render(request, "player.html", {**context, "mine": True})


@router.get("/volunteers")
def volunteers(request: Request, session: DbSession) -> Response:
    from .api.nodes import trust_by_name  # issue 12: trust of enrolled nodes

    rows = progress.credit(session)
    return render(request, "volunteers.html", {
        "rows": rows, "credit_chart": chartdata.credit_chart(rows),
        "trust": trust_by_name(session)})
