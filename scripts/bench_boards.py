#!/usr/bin/env python
"""Benchmark leaderboard materialisation and lookups at scale.

    python scripts/bench_boards.py --players 1000000
    python scripts/bench_boards.py --players 5000000 --lookups 3000

Creates a throwaway database on $BATTLETRACKER_TEST_ADMIN_URL (default: local
PostgreSQL), generates synthetic players and 30 days of diffs with ``generate_series``,
materialises every board x window and prints materialisation time and the p50/p99 of
top pages, rank lookups and around-player lookups. Same as ``battletracker stats bench``.
"""

from __future__ import annotations

import logging

from battletracker.stats.cli import bench_cmd

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    bench_cmd()
