"""Small server-rendered SVG charts: the dashboard needs no JavaScript and no CDN."""

from django.utils.html import escape, format_html, mark_safe

CONTROL_COLOR, CANDIDATE_COLOR = "#1f77b4", "#2ca02c"
COLORS = (CONTROL_COLOR, CANDIDATE_COLOR, "#d62728", "#ff7f0e", "#9467bd", "#8c564b")
LEFT, BOTTOM, TOP = 56, 22, 22  # room for the y labels, the x labels and the legend
DOTS_UP_TO = 60  # with more points than this a dot per point is clutter


def lines(series, x_labels=(), width=600, height=170, unit="", colors=None):
    """One line per named series of numbers (None leaves a gap), on a y axis from 0 to the maximum.

    x_labels: (first, middle, last) texts under the axis. colors: {name: color}, else the palette in order.
    """
    colors = colors or {}
    values = [v for points in series.values() for v in points if v is not None]
    top = max(values, default=0) or 1.0
    count = max((len(p) for p in series.values()), default=1)
    step = (width - LEFT - 8) / max(count - 1, 1)
    bottom = height - BOTTOM

    def y(value):
        return bottom - value / top * (bottom - TOP)

    parts = [f'<svg class="rollout-chart" width="{width}" height="{height}" role="img" font-size="11">']
    for fraction in (0, 0.5, 1):
        level = y(top * fraction)
        parts.append(f'<line x1="{LEFT}" y1="{level:.1f}" x2="{width - 8}" y2="{level:.1f}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{level + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(label(top * fraction, unit))}</text>"
        )
    for text, x, anchor in zip(x_labels, (LEFT, (LEFT + width - 8) / 2, width - 8), ("start", "middle", "end")):
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="{anchor}" fill="#555">{escape(text)}</text>')
    legend_x = LEFT
    for index, (name, points) in enumerate(series.items()):
        color = colors.get(name, COLORS[index % len(COLORS)])
        runs, run = [], []
        for i, value in enumerate(points):
            if value is None:
                runs, run = runs + [run] if run else runs, []
                continue
            run.append((LEFT + i * step, y(value)))
        runs += [run] if run else []
        for r in runs:
            points_text = " ".join(f"{px:.1f},{py:.1f}" for px, py in r)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points_text}"/>')
            if count <= DOTS_UP_TO or len(r) == 1:  # a lone point is invisible without its dot
                parts.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}"/>' for px, py in r)
        parts.append(f'<rect x="{legend_x}" y="5" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="14">{escape(name)}</text>')
        legend_x += 30 + 7 * len(name)
    parts.append("</svg>")
    return mark_safe("".join(parts))


def sparkline(points, width=120, height=26):
    """A bare line of counts (None counts as 0), for a table cell."""
    values = [v or 0 for v in points]
    top = max(values, default=0)
    if not top:
        return mark_safe(
            f'<svg class="rollout-spark" width="{width}" height="{height}" role="img">'
            f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" stroke="#ccc"/></svg>'
        )
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 1 - v / top * (height - 3):.1f}" for i, v in enumerate(values))
    return mark_safe(
        f'<svg class="rollout-spark" width="{width}" height="{height}" role="img">'
        f'<polyline fill="none" stroke="{CONTROL_COLOR}" stroke-width="1.5" points="{coords}"/></svg>'
    )


def share(control_calls, candidate_calls, control_label, candidate_label, width=140):
    """A bar split between the two backends by calls served, with the percentages in words."""
    total = control_calls + candidate_calls
    if not total:
        return mark_safe('<span class="rollout-quiet">no calls</span>')
    candidate_width = round(width * candidate_calls / total)
    return format_html(
        '<svg class="rollout-share" width="{}" height="12" role="img"><rect width="{}" height="12" fill="{}"/>'
        '<rect x="{}" width="{}" height="12" fill="{}"/></svg><br><small>{} {} · {} {}</small>',
        width,
        width - candidate_width,
        CONTROL_COLOR,
        width - candidate_width,
        candidate_width,
        CANDIDATE_COLOR,
        control_label,
        f"{control_calls / total:.0%}",
        candidate_label,
        f"{candidate_calls / total:.0%}",
    )


def label(value, unit=""):
    return f"{value:.3g}{unit}"
