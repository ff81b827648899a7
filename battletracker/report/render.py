"""Draws a :class:`~.data.DayReport` as a PNG with matplotlib (Agg, no display, no pyplot).

One row of three charts (active accounts, battles, new accounts), one line per platform
over the window, the report's day marked and labelled, and under each chart the day's
figures against the mean of the days before: what the community's daily chart posts
showed.
"""

from __future__ import annotations

import datetime as dt
import io
import threading

from .data import MEASURES, PLATFORMS, DayReport

__all__ = ["render_png"]

#: The dashboard's colours (static/charts.js): Xbox first, PlayStation second.
COLOURS = {"xbox": "#2f6fdf", "ps": "#e0662f"}
#: matplotlib keeps module-level state (font cache, rcParams): one drawing at a time.
_LOCK = threading.Lock()


def _fmt(value: float) -> str:
    if value < 100 and value != int(value):
        return f"{value:.1f}"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g} M"
    if value >= 100_000:
        return f"{value / 1_000:.0f} k"
    return f"{value:,.0f}"


def _change(value: int, mean: float | None) -> str:
    if mean is None:
        return "no earlier days"
    if mean == 0:
        return "avg 0"
    pct = (value - mean) / mean * 100
    return f"{pct:+.1f} % vs {_fmt(mean)} avg"


def render_png(report: DayReport, *, dpi: int = 100) -> bytes:
    """The report as PNG bytes (1500 x 640 pixels at the default dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    with _LOCK:
        fig = Figure(figsize=(15, 6.4), dpi=dpi)
        FigureCanvasAgg(fig)
        fig.set_facecolor("white")
        first = min((rows[0].date for rows in report.series.values() if rows),
                    default=report.date)
        fig.suptitle(f"World of Tanks console · {report.date:%A %d %B %Y}",
                     x=0.01, ha="left", fontsize=17, fontweight="bold")
        fig.text(0.01, 0.885,
                 f"{_fmt(report.total('active_accounts'))} active accounts, "
                 f"{_fmt(report.total('battles'))} battles, "
                 f"{_fmt(report.total('new_accounts'))} new accounts · "
                 f"days {first:%d %b} to {report.date:%d %b %Y} · battletracker",
                 fontsize=11, color="#555")
        axes = fig.subplots(1, len(MEASURES))
        for ax, (measure, title) in zip(axes, MEASURES, strict=True):
            lines = []
            for platform, name in PLATFORMS:
                rows = report.series.get(platform) or []
                if not rows:
                    continue
                ax.plot([r.date for r in rows], [getattr(r, measure) for r in rows],
                        color=COLOURS[platform], linewidth=2, marker="o", markersize=3,
                        label=name)
                today = report.day(platform)
                if today is None:
                    continue
                value = getattr(today, measure)
                ax.plot([today.date], [value], marker="o", markersize=9,
                        color=COLOURS[platform], markeredgecolor="black")
                lines.append((name, platform, value,
                              _change(value, report.mean_before(platform, measure))))
            ax.set_title(title, loc="left", fontsize=13, fontweight="bold")
            ax.grid(True, color="#e3e6ec")
            ax.spines[["top", "right"]].set_visible(False)
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10]))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _fmt(v)))
            ax.xaxis.set_major_locator(DayLocator(interval=max(1, (report.date - first).days // 5
                                                               or 1)))
            ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
            start = dt.datetime.combine(first, dt.time()) - dt.timedelta(hours=12)
            ax.set_xlim(start, dt.datetime.combine(report.date, dt.time(20)))
            for i, (name, platform, value, change) in enumerate(lines):
                ax.text(0.0, -0.16 - 0.09 * i, f"{name}: {value:,}  ({change})",
                        transform=ax.transAxes, fontsize=11, color=COLOURS[platform],
                        fontweight="bold")
        handles = [Line2D([], [], color=COLOURS[p], linewidth=2, marker="o", label=name)
                   for p, name in PLATFORMS]
        handles.append(Line2D([], [], color="white", marker="o", markersize=9,
                              markerfacecolor="#999", markeredgecolor="black",
                              label=f"{report.date:%d %b}"))
        fig.legend(handles=handles, loc="upper right", ncols=3, frameon=False, fontsize=11,
                   bbox_to_anchor=(0.985, 0.99))
        fig.subplots_adjust(left=0.05, right=0.975, top=0.8, bottom=0.25, wspace=0.22)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=dpi, facecolor="white")
    return out.getvalue()
