"""The JSON API, mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from . import boards, cycles, players

__all__ = ["router"]

router = APIRouter()
router.include_router(cycles.router)
router.include_router(boards.router)
router.include_router(players.router)
