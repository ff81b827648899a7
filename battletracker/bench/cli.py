"""``battletracker bench``: run the performance benchmarks, print them, write JSON.

Small defaults finish in minutes on a laptop; ``--full`` runs the sizes the issue names
(1 M ids for capacity and store, 5 M players for the night and the web); each size can
also be set on its own. Exits 1 when any figure misses its target.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from .chart import ids_per_second_svg
from .report import Figure, Outcome, machine, markdown, render, write_json

__all__ = ["BENCHMARKS", "bench_command"]

#: Every benchmark, in the order they run.
BENCHMARKS = ("keyrate", "keyrate2", "store", "coordinator", "capacity", "night", "web")


def _plan(only: tuple[str, ...], skip: tuple[str, ...]) -> list[str]:
    chosen = [b for b in BENCHMARKS if (not only or b in only) and b not in skip]
    if not chosen:
        raise click.UsageError("nothing to run")
    return chosen


@click.command("bench")
@click.option(
    "--only", multiple=True, type=click.Choice(BENCHMARKS), help="Run only these (repeatable)."
)
@click.option(
    "--skip", multiple=True, type=click.Choice(BENCHMARKS), help="Leave these out (repeatable)."
)
@click.option("--full", is_flag=True, help="The issue's sizes (takes hours on 2 cores).")
@click.option("--tiny", is_flag=True, help="A smoke-test size: checks it works, not speed.")
@click.option("--keyrate-ids", type=click.IntRange(1000), help="Ids of the key-rate night.")
@click.option("--capacity-ids", type=click.IntRange(1000), help="Ids of the capacity night.")
@click.option("--store-ids", type=click.IntRange(1000), help="Ids of the store night.")
@click.option(
    "--night-players",
    type=click.IntRange(1000),
    multiple=True,
    help="Population sizes of the whole-night benchmark (repeatable).",
)
@click.option("--web-players", type=click.IntRange(1000), help="Players behind the web app.")
@click.option("--web-workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="battletracker web --workers of the web benchmark.")
@click.option("--web-database", help="Reuse this database for the web benchmark (seeded "
              "on first use, kept afterwards): large sizes are seeded once.")
@click.option("--chunk-size", type=click.IntRange(100, 100_000), help="Ids per chunk.")
@click.option("--store-concurrency", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Processes of the capacity benchmark's store worker.")
@click.option("--prefetch", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Celery's --prefetch-multiplier of the capacity benchmark's workers "
              "(the project's is 1).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench-results.json"),
    show_default=True,
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write an SVG of ids/s over the capacity run here.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the results table (Markdown) here.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where worker logs go (default: a temporary directory).",
)
def bench_command(
    only: tuple[str, ...],
    skip: tuple[str, ...],
    full: bool,
    tiny: bool,
    keyrate_ids: int | None,
    capacity_ids: int | None,
    store_ids: int | None,
    night_players: tuple[int, ...],
    web_players: int | None,
    web_workers: int,
    web_database: str | None,
    chunk_size: int | None,
    store_concurrency: int,
    prefetch: int,
    json_path: Path,
    chart: Path | None,
    markdown_path: Path | None,
    workdir: Path | None,
) -> None:
    """Measure key utilisation, capacity, store, a whole night, coordinator and web."""
    from . import capacity, coordinator, keyrate, night, store, web

    size = "full" if full else "tiny" if tiny else "small"
    pick = {"tiny": 0, "small": 1, "full": 2}[size]

    def sized(given: int | None, *choices: int) -> int:
        return given if given is not None else choices[pick]

    kr_ids = sized(keyrate_ids, 12_000, 60_000, 120_000)
    kr_chunk = chunk_size or (1_000 if tiny else 5_000 if not full else 10_000)
    runs: dict[str, Callable[[], Outcome]] = {
        "keyrate": lambda: keyrate.run(
            ids=kr_ids, chunk_size=kr_chunk, workdir=_dir(workdir, "keyrate")
        ),
        "keyrate2": lambda: keyrate.run(
            ids=kr_ids, chunk_size=kr_chunk, nodes=2, workdir=_dir(workdir, "keyrate2")
        ),
        "store": lambda: store.run(
            ids=sized(store_ids, 20_000, 200_000, 1_000_000), chunk_size=chunk_size or 10_000
        ),
        "coordinator": lambda: coordinator.run(
            chunk_size=chunk_size or (100_000 if tiny else 10_000)
        ),
        "capacity": lambda: capacity.run(
            ids=sized(capacity_ids, 20_000, 200_000, 1_000_000),
            chunk_size=chunk_size or 10_000,
            store_concurrency=store_concurrency,
            prefetch=prefetch,
            workdir=_dir(workdir, "capacity"),
        ),
        "night": lambda: night.run(
            sizes=list(night_players)
            or list([(2_000, 10_000), (20_000, 100_000), (1_000_000, 5_000_000)][pick])
        ),
        "web": lambda: web.run(
            players=sized(web_players, 2_000, 50_000, 5_000_000),
            seconds=(3.0, 20.0, 60.0)[pick],
            workers=web_workers,
            database=web_database,
        ),
    }
    info = machine()
    info["size"] = size
    outcomes: list[Outcome] = []
    for name in _plan(only, skip):
        click.echo(f"-- {name} ({size}) ...", err=True)
        t0 = time.monotonic()
        try:
            outcome = runs[name]()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            outcome = Outcome(name, {"size": size})
            outcome.notes.append(f"FAILED: {type(exc).__name__}: {exc}"[:2000])
            outcome.figures.append(_failed())
        outcome.seconds = outcome.seconds or time.monotonic() - t0
        outcomes.append(outcome)
        click.echo(render(outcome))
        write_json(json_path, outcomes, info)  # after each: a long run keeps what it got
    met = all(o.met for o in outcomes)
    click.echo(f"{'all targets met' if met else 'some targets MISSED'}; JSON in {json_path}")
    if markdown_path is not None:
        markdown_path.write_text(markdown(json.loads(json_path.read_text())))
    series = next((o for o in outcomes if o.bench == "capacity" and o.series), None)
    if chart is not None and series is not None:
        chart.write_text(
            ids_per_second_svg(
                series.series,
                target=20_000,
                title=f"capacity run: {series.params.get('ids', 0):,} ids, {info['date'][:10]}",
            )
        )
    sys.exit(0 if met else 1)


def _failed() -> Figure:
    return Figure("benchmark ran", 0).equals(1)


def _dir(root: Path | None, name: str) -> Path | None:
    return None if root is None else root / name
