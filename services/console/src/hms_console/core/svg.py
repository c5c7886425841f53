"""SVG drawn on the server: the latency graph, the error-rate gauge and the SLO badge.

Text is escaped; colours meet WCAG AA contrast against their backgrounds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from .plain import Colour

#: badge backgrounds with white text at >= 4.5:1
BADGE_COLOURS: dict[Colour, str] = {
    "green": "#1a7f37",
    "yellow": "#8a5a00",
    "red": "#b42318",
    "grey": "#555555",
}


def _text_width(text: str) -> int:
    return 7 * len(text) + 12


def badge(label: str, message: str, colour: Colour) -> str:
    """A shields-style badge: ``label`` on grey, ``message`` on the colour."""
    lw, mw = _text_width(label), _text_width(message)
    width = lw + mw
    title = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        f'<rect width="{lw}" height="20" fill="#333333"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{BADGE_COLOURS[colour]}"/>'
        '<g fill="#ffffff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{escape(label)}</text>'
        f'<text x="{lw + 6}" y="14">{escape(message)}</text></g></svg>'
    )


def latency_graph(
    title: str,
    unit: str,
    rows: list[tuple[float, float, float]],
    start: float,
    end: float,
    *,
    threshold: float | None = None,
    width: int = 640,
    height: int = 220,
) -> str:
    """p50 and p99 lines over time (rows: bucket start, p50, p99); a dashed threshold line."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 24, 28
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([r[2] for r in rows] + ([threshold] if threshold is not None else []) + [1.0])
    top = _nice(top * 1.1)
    span = max(end - start, 1.0)

    def x(t: float) -> float:
        return pad_l + (t - start) / span * plot_w

    def y(v: float) -> float:
        return pad_t + plot_h - (v / top) * plot_h

    def line(index: int) -> str:
        return " ".join(
            f"{x(r[0]):.1f},{y(r[index]):.1f}" for r in rows if not math.isnan(r[index])
        )

    label = escape(title)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="g-title" class="graph" '
        f'data-points="{len(rows)}"><title id="g-title">{label}: p50 and p99 over time</title>',
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
        'stroke="#767676"/>',
    ]
    for i in range(5):
        v = top * i / 4
        parts.append(
            f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#333333">{v:g}</text>'
        )
    for t, anchor in ((start, "start"), (end, "end")):
        stamp = datetime.fromtimestamp(t, UTC).strftime("%H:%M UTC")
        parts.append(
            f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="{anchor}" font-size="11" '
            f'fill="#333333">{stamp}</text>'
        )
    if threshold is not None:
        parts.append(
            f'<line x1="{pad_l}" x2="{pad_l + plot_w}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}" stroke="#b42318" stroke-dasharray="6 4"/>'
        )
    if rows:
        parts.append(
            f'<polyline class="p99" fill="none" stroke="#b42318" stroke-width="2" '
            f'points="{line(2)}"/>'
        )
        parts.append(
            f'<polyline class="p50" fill="none" stroke="#0b5cad" stroke-width="2" '
            f'points="{line(1)}"/>'
        )
    else:
        parts.append(
            f'<text x="{pad_l + plot_w / 2}" y="{pad_t + plot_h / 2}" text-anchor="middle" '
            'fill="#333333">No samples yet</text>'
        )
    parts.append(
        f'<text x="{pad_l}" y="16" font-size="12" fill="#0b5cad">— p50</text>'
        f'<text x="{pad_l + 60}" y="16" font-size="12" fill="#b42318">— p99</text>'
        f'<text x="{width - pad_r}" y="16" font-size="12" text-anchor="end" '
        f'fill="#333333">{escape(unit)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def gauge(ratio: float | None, label: str, *, warn: float = 0.01, bad: float = 0.05) -> str:
    """A half-circle gauge of an error rate (0..1); its colour from the thresholds."""
    value = 0.0 if ratio is None else min(max(ratio, 0.0), 1.0)
    angle = math.pi * (1 - min(value / max(bad * 2, 1e-9), 1.0))
    cx, cy, r = 100, 100, 80
    ex, ey = cx + r * math.cos(angle), cy - r * math.sin(angle)
    colour = "#1a7f37" if value < warn else ("#8a5a00" if value < bad else "#b42318")
    text = "no data" if ratio is None else f"{value * 100:.2f} %"
    title = escape(f"{label}: {text}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 120" width="200" '
        f'role="img" aria-label="{title}" class="gauge"><title>{title}</title>'
        f'<path d="M20,100 A80,80 0 0 1 180,100" fill="none" stroke="#dddddd" '
        'stroke-width="16"/>'
        f'<path d="M20,100 A80,80 0 0 1 {ex:.1f},{ey:.1f}" fill="none" stroke="{colour}" '
        'stroke-width="16"/>'
        f'<text x="100" y="95" text-anchor="middle" font-size="20" fill="#1f1f1f">'
        f"{escape(text)}</text></svg>"
    )


def _nice(value: float) -> float:
    """A round number at or above ``value`` for an axis top."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)
