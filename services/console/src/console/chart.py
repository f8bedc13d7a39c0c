"""The trajectory chart: severity by post-operative day, as server-rendered SVG.

Readable without colour: the expected window is hatched and labelled, the 6-month mark is
a labelled dashed line, the baseline a labelled dotted line, reports are circles and the
reports that raised an alert carry a labelled triangle. The page puts the same data in a
table beside it (the text alternative). Pure: data in, markup out.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

WINDOW = (4, 182)  # the expected delayed-recovery window (rules page)
SIX_MONTHS = 183
MAX_SEVERITY = 4

W, H = 720, 280
#: The right margin holds the baseline's label, clear of the points and the 6-month line.
LEFT, RIGHT, TOP, BOTTOM = 44, 76, 34, 40

KIND_LABELS = {
    "red_flag": "red flag",
    "worsening": "worsening",
    "recurrence": "recurrence",
    "six_month_persistence": "6-month persistence",
    "lost_to_follow_up": "lost to follow-up",
}


@dataclass(frozen=True)
class Point:
    event_id: str
    day: int
    severity: int | None
    occurred_at: str
    alerts: tuple[str, ...]  # kinds of the alerts this report is evidence of


def points(reports: list[dict[str, Any]], alerts: list[dict[str, Any]]) -> list[Point]:
    """One point per report, with the alerts whose evidence names it."""
    raised: dict[str, list[str]] = {}
    for a in alerts:
        for e in a.get("evidence") or []:
            kinds = raised.setdefault(str(e), [])
            # The same alert comes from the assessor and from the projection: once each.
            if str(a.get("kind")) not in kinds:
                kinds.append(str(a.get("kind")))
    return [
        Point(
            event_id=str(r["event_id"]),
            day=int(r["day"]),
            severity=r.get("severity"),
            occurred_at=str(r.get("occurred_at", "")),
            alerts=tuple(raised.get(str(r["event_id"]), ())),
        )
        for r in reports
    ]


def svg(pts: list[Point], baseline: int | None, today: int | None) -> str:
    days = [p.day for p in pts] + ([today] if today is not None else [])
    lo = min([0, *days])
    hi = min(max([200, *(d + 10 for d in days)]), 380)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(day: float) -> float:
        return round(LEFT + (day - lo) / (hi - lo) * plot_w, 1)

    def y(severity: float) -> float:
        return round(TOP + (1 - severity / MAX_SEVERITY) * plot_h, 1)

    out = [
        f'<svg class="trajectory" viewBox="0 0 {W} {H}" role="img"'
        ' aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Twitching severity by post-operative day</title>',
        f'<desc id="chart-desc">{len(pts)} reports; the table below lists the same data.</desc>',
        '<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse"'
        ' patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="8" class="hatch"/>'
        "</pattern></defs>",
    ]
    w0, w1 = max(WINDOW[0], lo), min(WINDOW[1], hi)
    if w0 < w1:
        out.append(
            f'<rect class="window" x="{x(w0)}" y="{TOP}" width="{x(w1) - x(w0)}"'
            f' height="{plot_h}" fill="url(#hatch)"/>'
            f'<text class="label" x="{x(w0) + 4}" y="{TOP - 8}">expected delayed-recovery'
            f" window, days {WINDOW[0]}–{WINDOW[1]}</text>"
        )
    if lo <= SIX_MONTHS <= hi:
        out.append(
            f'<line class="six-months" x1="{x(SIX_MONTHS)}" y1="{TOP}" x2="{x(SIX_MONTHS)}"'
            f' y2="{TOP + plot_h}"/><text class="label" x="{x(SIX_MONTHS) - 4}"'
            f' y="{TOP + 14}" text-anchor="end">6 months (day {SIX_MONTHS})</text>'
        )
    # axes, ticks and grid
    out.append(
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{W - RIGHT}" y2="{TOP + plot_h}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>'
    )
    for s in range(MAX_SEVERITY + 1):
        out.append(
            f'<line class="grid" x1="{LEFT}" y1="{y(s)}" x2="{W - RIGHT}" y2="{y(s)}"/>'
            f'<text class="tick" x="{LEFT - 8}" y="{y(s) + 4}" text-anchor="end">{s}</text>'
        )
    start = lo - lo % 30
    for d in range(start, hi + 1, 30):
        if d >= lo:
            out.append(
                f'<text class="tick" x="{x(d)}" y="{TOP + plot_h + 16}"'
                f' text-anchor="middle">{d}</text>'
            )
    out.append(
        f'<text class="label" x="{LEFT + plot_w / 2}" y="{H - 6}" text-anchor="middle">'
        "post-operative day</text>"
        f'<text class="label" x="12" y="{TOP + plot_h / 2}" text-anchor="middle"'
        f' transform="rotate(-90 12 {TOP + plot_h / 2})">severity 0–4</text>'
    )
    if baseline is not None:
        out.append(
            f'<line class="baseline" x1="{LEFT}" y1="{y(baseline)}" x2="{W - RIGHT}"'
            f' y2="{y(baseline)}"/><text class="label" x="{W - RIGHT + 6}"'
            f' y="{y(baseline) + 4}">baseline {baseline}</text>'
        )
    if today is not None and lo <= today <= hi:
        out.append(
            f'<line class="today" x1="{x(today)}" y1="{TOP + plot_h}" x2="{x(today)}"'
            f' y2="{TOP + plot_h - 10}"/><text class="tick" x="{x(today)}"'
            f' y="{TOP + plot_h - 14}" text-anchor="middle">today</text>'
        )
    graded = [p for p in pts if p.severity is not None]
    if len(graded) > 1:
        line = " ".join(f"{x(p.day)},{y(p.severity or 0)}" for p in graded)
        out.append(f'<polyline class="course" points="{line}"/>')
    for p in pts:
        px = x(p.day)
        py = y(p.severity) if p.severity is not None else TOP - 2
        label = f"day {p.day}: " + (
            f"severity {p.severity}" if p.severity is not None else "words only, no grade"
        )
        if p.alerts:
            label += "; raised " + ", ".join(KIND_LABELS.get(k, k) for k in p.alerts)
        shape = (
            f'<circle cx="{px}" cy="{py}" r="5"/>'
            if p.severity is not None
            else f'<rect x="{px - 4}" y="{py - 4}" width="8" height="8"/>'
        )
        marker = ""
        if p.alerts:
            ty = py - 12
            marker = (
                f'<path class="alert-marker" d="M{px},{ty - 7} L{px + 7},{ty + 5}'
                f' L{px - 7},{ty + 5} Z"/><text class="alert-label" x="{px + 9}"'
                f' y="{ty}">{escape(", ".join(KIND_LABELS.get(k, k) for k in p.alerts))}</text>'
            )
        sev = "" if p.severity is None else str(p.severity)
        out.append(
            f'<g class="point{" alerting" if p.alerts else ""}" data-day="{p.day}"'
            f' data-severity="{sev}" data-event-id="{escape(p.event_id, quote=True)}">'
            f"<title>{escape(label)}</title>{shape}{marker}</g>"
        )
    out.append("</svg>")
    return "".join(out)
