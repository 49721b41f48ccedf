"""Small server-rendered SVG charts: the dashboard needs no JavaScript and no CDN."""

from django.utils.html import escape, format_html, mark_safe

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


def lines(series, width=520, height=140, unit=""):
    """One polyline per named series of numbers (None leaves a gap), with the maximum on the axis."""
    values = [v for points in series.values() for v in points if v is not None]
    top = max(values) if values else 1.0
    top = top or 1.0
    count = max((len(p) for p in series.values()), default=1)
    step = width / max(count - 1, 1)
    parts = [
        f'<svg class="rollout-chart" width="{width + 60}" height="{height + 30}" role="img">',
        f'<line x1="40" y1="{height}" x2="{width + 40}" y2="{height}" stroke="#999"/>',
        f'<text x="0" y="12" font-size="11">{escape(_label(top, unit))}</text>',
        f'<text x="0" y="{height}" font-size="11">0</text>',
    ]
    for (_name, points), color in zip(series.items(), COLORS):
        runs, run = [], []
        for i, value in enumerate(points):
            if value is None:
                runs, run = runs + [run] if run else runs, []
                continue
            run.append(f"{40 + i * step:.1f},{height - value / top * (height - 16):.1f}")
        runs += [run] if run else []
        for r in runs:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(r)}"/>')
            # A point per minute, so a run of one minute is visible too.
            parts.extend(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{color}"/>' for p in r)
    legend_x = 40
    for (name, _), color in zip(series.items(), COLORS):
        parts.append(f'<text x="{legend_x}" y="{height + 22}" font-size="11" fill="{color}">{escape(name)}</text>')
        legend_x += 12 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))


def share(pg, orm, width=200):
    total = pg + orm
    if not total:
        return "no calls"
    orm_width = round(width * orm / total)
    return format_html(
        '<svg class="rollout-share" width="{}" height="14"><rect width="{}" height="14" fill="{}"/>'
        '<rect x="{}" width="{}" height="14" fill="{}"/></svg> pg {} · orm {}',
        width,
        width - orm_width,
        COLORS[0],
        width - orm_width,
        orm_width,
        COLORS[2],
        f"{pg / total:.0%}",
        f"{orm / total:.0%}",
    )


def _label(value, unit):
    return f"{value:.3g}{unit}"
