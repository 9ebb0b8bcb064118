"""Small SVG line charts for the analyst page, drawn on the server: pictures without a JavaScript build or CDN.

Pure: rows in, SVG text out (escaped), so the charts are testable and the page works without scripts.
"""

from __future__ import annotations

from html import escape

from services.http.views import look

WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 520, 220, 48, 36, 16, 12


def _ticks(top: float) -> list[float]:
    return [top * i / 4 for i in range(5)]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2f}"


def line_chart(title: str, rows: list[dict], metric: str, unit: str = "") -> str:
    """One line per channel of ``metric`` over ``day`` (days without a value leave a gap in that line)."""
    days = sorted({r["day"] for r in rows})
    series: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get(metric) is not None:
            series.setdefault(r["channel"], {})[r["day"]] = float(r[metric])
    values = [v for s in series.values() for v in s.values()]
    label = escape(f"{title}{f' ({unit})' if unit else ''}")
    if not values:
        return (f'<figure class="chart"><figcaption>{label}</figcaption>'
                '<p class="empty">no data yet</p></figure>')
    low, high = min(0.0, min(values)), max(values) or 1.0
    span = (high - low) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: str) -> float:
        return LEFT + (plot_w * days.index(day) / max(len(days) - 1, 1) if len(days) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - low) / span)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">']
    for t in _ticks(high) if low == 0 else [low + span * i / 4 for i in range(5)]:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for day in (days if len(days) <= 8 else days[:: max(len(days) // 8, 1)]):
        parts.append(f'<text class="tick" x="{x(day):.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
                     f'{escape(day[5:])}</text>')
    for channel, points in sorted(series.items()):
        colour = look(channel)[1]
        coords = [(x(d), y(points[d])) for d in days if d in points]
        if len(coords) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for px, py in coords:
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(channel)}</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch" style="background:{look(c)[1]}"></span>{escape(c)}</li>'
                     for c in sorted(series))
    return f'<figure class="chart"><figcaption>{label}</figcaption>{"".join(parts)}<ul class="legend">{legend}</ul></figure>'
