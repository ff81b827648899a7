"""The Celery options the pipeline's guarantees rest on, and the beat table."""

from __future__ import annotations

import datetime as dt

from celery.schedules import crontab

from battletracker.app import app, celery_options
from battletracker.settings import Settings


def test_safety_options(settings: Settings) -> None:
    opts = celery_options(settings)
    assert opts["task_serializer"] == "json" and opts["accept_content"] == ["json"]
    assert opts["task_acks_late"] and opts["task_reject_on_worker_lost"]
    assert opts["worker_prefetch_multiplier"] == 1
    assert opts["result_backend"] is None and opts["task_ignore_result"]
    assert [q.name for q in opts["task_queues"]] == ["fetch", "store", "control"]


def test_routes_send_each_task_to_its_queue(settings: Settings) -> None:
    app.conf.update(celery_options(settings))
    router = app.amqp.router
    for task, queue in [
        ("battletracker.fetch_range", "fetch"),
        ("battletracker.store_results", "store"),
        ("battletracker.start_cycle", "control"),
        ("battletracker.compute_diffs", "control"),
        ("battletracker.grow_ranges", "control"),
        ("battletracker.export_to_elastic", "control"),
        ("battletracker.reap_stale", "control"),
        ("battletracker.materialise_boards", "control"),
        ("battletracker.materialise_cycle", "control"),
        ("battletracker.build_board_piece", "control"),
    ]:
        assert router.route({}, task)["queue"].name == queue, task


def test_every_pipeline_task_is_registered_with_late_acks() -> None:
    app.loader.import_default_modules()
    names = [
        "start_cycle", "fetch_range", "store_results", "compute_diffs", "grow_ranges",
        "export_to_elastic", "reap_stale", "materialise_boards", "materialise_cycle",
        "build_board_piece",
    ]  # fmt: skip
    for name in names:
        task = app.tasks[f"battletracker.{name}"]
        assert task.acks_late and task.reject_on_worker_lost, name


def test_beat_starts_the_night_at_the_configured_time_and_reaps_every_minute() -> None:
    beat = celery_options(Settings(cycle_time="03:45"))["beat_schedule"]
    nightly = beat["nightly-cycle"]
    assert nightly["task"] == "battletracker.start_cycle"
    assert nightly["schedule"] == crontab(hour=3, minute=45)
    reaper = beat["reap-stale-chunks"]
    assert reaper["task"] == "battletracker.reap_stale"
    assert reaper["schedule"] == dt.timedelta(minutes=1)
    compact = beat["compact-snapshots"]
    assert compact["task"] == "battletracker.compact_snapshots"
    assert compact["schedule"] == crontab(hour=15, minute=45), "half a day from the night"
