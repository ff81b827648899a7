#!/usr/bin/env python
"""Benchmark leaderboard materialisation and lookups at scale.

    python scripts/bench_boards.py --players 1000000
    python scripts/bench_boards.py --players 5000000 --lookups 3000

Creates a throwaway database on $BATTLETRACKER_TEST_ADMIN_URL (default: local
PostgreSQL), generates synthetic players and 30 days of diffs with ``generate_series``,
materialises every board x window and prints materialisation time and the p50/p99 of
top pages, rank lookups and around-player lookups. Same as ``battletracker stats bench``.

Measured (2 vCPU, PostgreSQL 15 with default settings, 30 days of diffs, 8 % active a
day, 5 boards x 4 windows, lookups over random boards/windows/platforms/offsets):

    players  diff rows  ranked rows  size    materialise  top p50/p99   rank p50/p99  around p50/p99
    1 M      2.4 M      9.0 M        1.4 GB  81 s         1.2 / 6.3 ms  0.5 / 4.8 ms  0.7 / 5.5 ms
    5 M      12.0 M     45.0 M       6.9 GB  537 s        2.0 / 8.9 ms  0.7 / 2.6 ms  1.0 / 2.7 ms
"""

from __future__ import annotations

import logging

from battletracker.stats.cli import bench_cmd

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    bench_cmd()
