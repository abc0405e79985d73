"""The benchmark chart: plain SVG from the JSON document, horizontal bars grouped by metric, medians with
min-max whiskers, value labels and a legend (no plotting library)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

from .report import fmt, rate_goal, rate_title

WIDTH, LABEL_W, VALUE_W = 820, 150, 170
BAR_W = WIDTH - LABEL_W - VALUE_W - 20
ROW_H, BAR_H, TITLE_H, GAP = 22, 14, 26, 12
COLORS = {"ours": "#2f6fb3", "official": "#e08a1e", "bare": "#8c8c8c"}
LEGEND = {
    "ours": "ours (this template's SDK)",
    "official": "official SDK 1.0b20",
    "bare": "bare protocol loop",
}
FONT = 'font-family="Helvetica, Arial, sans-serif"'


@dataclass(frozen=True)
class Bar:
    """One bar: its label, whose colour, and median/min/max."""

    label: str
    worker: str
    stats: dict[str, float]


@dataclass(frozen=True)
class Group:
    """Bars of one metric on one scale; `goal` draws a dashed target line."""

    title: str
    bars: list[Bar]
    goal: float | None = None
    goal_label: str = ""
    whole: bool = False  # counts: no decimals


def _stats(value: Any) -> dict[str, float]:
    if isinstance(value, dict):
        return {k: float(value[k]) for k in ("median", "min", "max")}
    return {"median": float(value), "min": float(value), "max": float(value)}


def groups(doc: dict[str, Any]) -> list[Group]:
    """The chart's groups: tasks/s and pickup p99 against each orchestrator, then the rate-limit row."""
    out: list[Group] = []
    for kind, name in (("mock", "mock orchestrator"), ("real", "real orchestrator, rate limiting off")):
        found = [w for w in doc["workers"] if w["orchestrator"] == kind]
        if not found:
            continue
        for metric, title in (
            ("tasks_per_s", "tasks/s, higher is better"),
            ("pickup_p99_ms", "pickup p99 ms, lower is better"),
        ):
            bars = [
                Bar(f"{w['worker']}, concurrency {w['concurrency']}", w["worker"], w[metric]) for w in found
            ]
            out.append(Group(f"{title} - {name}", bars))
    rate = doc.get("ratelimit")
    if rate:
        window = f"{rate['window_s'] / 60:g} min" if rate["window_s"] >= 60 else f"{rate['window_s']:g} s"
        where = f"real orchestrator, {rate_title(rate)}, {rate['runs']} run(s)"
        goal = rate_goal(rate)
        label = f"target {goal:.0f} (95 % of the {rate['allowed_per_min']:g} allowed)"
        for key, title in (
            ("tasks_per_min", f"tasks/min over {window}"),
            ("steady_tasks_per_min", "steady tasks/min"),
        ):
            bars = [Bar(f"{w['worker']}, concurrency 1", w["worker"], w[key]) for w in rate["workers"]]
            out.append(Group(f"{title} - {where}", bars, goal, label))
        bars = [Bar(f"{w['worker']}, concurrency 1", w["worker"], w["http_429"]) for w in rate["workers"]]
        out.append(Group(f"HTTP 429 replies, lower is better - {where}", bars, whole=True))
    return out


def _text(x: float, y: float, body: str, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{" " + extra if extra else ""}>{escape(body)}</text>'


def _value(stats: dict[str, float], whole: bool) -> str:
    if math.isnan(stats["median"]):
        return "n/a"
    show = (lambda v: f"{v:,.0f}") if whole else fmt
    if stats["min"] == stats["max"]:
        return show(stats["median"])
    return f"{show(stats['median'])} ({show(stats['min'])}-{show(stats['max'])})"


def _bar(bar: Bar, y: float, scale: float, whole: bool) -> list[str]:
    s = {k: 0.0 if math.isnan(v) else v for k, v in bar.stats.items()}
    x0, colour = LABEL_W, COLORS.get(bar.worker, "#555555")
    width = s["median"] * scale
    parts = [
        _text(x0 - 6, y + BAR_H - 3, bar.label, 'text-anchor="end"'),
        f'<rect x="{x0}" y="{y:.1f}" width="{max(width, 1):.1f}" height="{BAR_H}" fill="{colour}"/>',
    ]
    if s["max"] > s["min"]:
        lo, hi, mid = x0 + s["min"] * scale, x0 + s["max"] * scale, y + BAR_H / 2
        parts += [
            (
                f'<path d="M{lo:.1f} {mid:.1f}H{hi:.1f}M{lo:.1f} {y + 3:.1f}V{y + BAR_H - 3:.1f}'
                f'M{hi:.1f} {y + 3:.1f}V{y + BAR_H - 3:.1f}" stroke="#222" stroke-width="1.2"/>'
            )
        ]
    end = x0 + max(width, s["max"] * scale) + 6
    parts.append(_text(end, y + BAR_H - 3, _value(bar.stats, whole), 'fill="#222"'))
    return parts


def _group(group: Group, y: float) -> tuple[list[str], float]:
    top = max([max(_stats(b.stats).values()) for b in group.bars] + [group.goal or 0.0])
    scale = BAR_W / top if top > 0 and not math.isnan(top) else 0.0
    parts = [_text(8, y + 16, group.title, 'font-weight="bold"')]
    y += TITLE_H
    first = y
    for bar in group.bars:
        parts += _bar(Bar(bar.label, bar.worker, _stats(bar.stats)), y, scale, group.whole)
        y += ROW_H
    parts.append(f'<path d="M{LABEL_W} {first - 3}V{y - ROW_H + BAR_H + 3}" stroke="#444"/>')
    if group.goal is not None:
        x = LABEL_W + group.goal * scale
        parts += [
            f'<path d="M{x:.1f} {first - 4}V{y - 4}" stroke="#c0392b" stroke-dasharray="4 3"/>',
            _text(x, y + 8, group.goal_label, 'fill="#c0392b" text-anchor="middle" font-size="11"'),
        ]
        y += 12
    return parts, y + GAP


def _legend(workers: list[str], y: float) -> list[str]:
    parts, x = [], 8.0
    for worker in workers:
        parts += [
            f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{COLORS[worker]}"/>',
            _text(x + 17, y + 10, LEGEND[worker]),
        ]
        x += 40 + 6.5 * len(LEGEND[worker])
    parts.append(_text(x, y + 10, "whiskers: min-max over runs", 'fill="#555"'))
    return parts


def svg(doc: dict[str, Any]) -> str:
    """The whole chart as SVG text (GitHub renders it as an image at the page's width)."""
    env = doc["environment"]
    found = groups(doc)
    workers = [w for w in COLORS if any(b.worker == w for g in found for b in g.bars)]
    title = f"Avtomatika worker benchmarks ({env['mode']} mode, medians of {env['runs']} run(s) per row)"
    body = [_text(8, 20, title, 'font-weight="bold" font-size="15"'), *_legend(workers, 32)]
    y = 56.0
    for group in found:
        parts, y = _group(group, y)
        body += parts
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y:.0f}" '
        f'viewBox="0 0 {WIDTH} {y:.0f}" {FONT} font-size="12">'
    )
    return (
        "\n".join([head, f'<rect width="{WIDTH}" height="{y:.0f}" fill="#ffffff"/>', *body, "</svg>"]) + "\n"
    )
