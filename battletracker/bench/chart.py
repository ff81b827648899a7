"""An SVG line chart of ids/s over a capacity run, drawn by hand (no library, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["ids_per_second_svg"]


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    step = 10 ** (len(str(int(top))) - 1)
    return float(((int(top) // step) + 1) * step)


def ids_per_second_svg(
    series: Sequence[Sequence[float]],
    *,
    title: str,
    target: float | None = None,
    width: int = 720,
    height: int = 320,
    smooth: int = 5,
) -> str:
    """``series`` of (seconds, ids/s) as an SVG document; ``target`` as a dashed line."""
    left, right, top, bottom = 70, 20, 40, 45
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [float(p[0]) for p in series] or [0.0, 1.0]
    ys = [float(p[1]) for p in series] or [0.0]
    x_max = max(xs[-1], 1.0)
    y_max = _nice(max(max(ys), target or 0.0) * 1.05)

    def px(x: float) -> float:
        return left + plot_w * x / x_max

    def py(y: float) -> float:
        return top + plot_h * (1 - y / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for i in range(6):  # horizontal grid and y labels
        y = y_max * i / 5
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" '
            f'y2="{py(y):.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
    for i in range(6):  # x labels
        x = x_max * i / 5
        out.append(
            f'<text x="{px(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{x:.0f}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
        "seconds since the night was published</text>"
    )
    out.append(
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + plot_h / 2})">ids/s stored</text>'
    )
    if target is not None:
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(target):.1f}" '
            f'y2="{py(target):.1f}" stroke="#c33" stroke-dasharray="6 4"/>'
        )
        out.append(
            f'<text x="{left + plot_w - 4}" y="{py(target) - 6:.1f}" '
            f'text-anchor="end" fill="#c33">target {target:,.0f} ids/s</text>'
        )
    raw = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=False))
    out.append(f'<polyline points="{raw}" fill="none" stroke="#b8c7dc" stroke-width="1"/>')
    # chunks land in steps of a chunk's ids: the mean over ``smooth`` points reads better
    half = smooth // 2
    windows = [ys[max(0, i - half) : i + half + 1] for i in range(len(ys))]
    mean = [sum(w) / len(w) for w in windows]
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, mean, strict=False))
    out.append(f'<polyline points="{points}" fill="none" stroke="#1f5fa8" stroke-width="2"/>')
    out.append(
        f'<text x="{left + 6}" y="{top + 14}" fill="#1f5fa8">blue: mean over {smooth} '
        "steps; grey: each step</text>"
    )
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
