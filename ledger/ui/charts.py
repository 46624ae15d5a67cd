"""Charts as SVG drawn on the server by pygal (PyPI), readable in black and white: each
series is filled with its own hatch pattern and outlined in black, every bar carries its
value, and the axes are labelled. The page shows the same figures in a table below."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

import pygal
from pygal.style import Style

# Hatch patterns (SVG <pattern>): distinguishable without colour, on screen and on paper.
PATTERNS = (
    ("hatch-solid", '<rect width="8" height="8" fill="#1f3b57"/>'),
    (
        "hatch-diagonal",
        '<rect width="8" height="8" fill="#ffffff"/>'
        '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#000" '
        'stroke-width="1.6"/>',
    ),
    (
        "hatch-dots",
        '<rect width="8" height="8" fill="#d9d9d9"/><circle cx="4" cy="4" r="1.8" fill="#000"/>',
    ),
)
DEFS = [
    f'<pattern id="{name}" patternUnits="userSpaceOnUse" width="8" height="8">{body}</pattern>'
    for name, body in PATTERNS
]
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#000000",
    foreground_strong="#000000",
    foreground_subtle="#595959",
    colors=tuple(f"url(#{name})" for name, _ in PATTERNS),
    font_family="system-ui, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=12,
    legend_font_size=13,
    title_font_size=15,
    value_colors=("#000000",) * len(PATTERNS),
    opacity="1",
    opacity_hover="1",
)
CSS = [
    "inline:.rect.reactive {stroke: #000; stroke-width: 1px}",
    "inline:.text-overlay text.value {fill: #000; stroke: #fff; stroke-width: 3px; "
    "paint-order: stroke}",
]
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


def bar_chart(
    title: str, labels: tuple[str, ...], series: tuple[tuple[str, tuple[str, ...]], ...]
) -> str:
    """An SVG bar chart: `series` = ((name, amounts as decimal strings per label), ...).
    Amounts are shown as written (never rounded through float on the labels)."""
    return _bar_chart(title, labels, series)


@lru_cache(maxsize=256)  # the same figures draw the same chart: pages redraw none twice
def _bar_chart(
    title: str, labels: tuple[str, ...], series: tuple[tuple[str, tuple[str, ...]], ...]
) -> str:
    chart = pygal.Bar(
        style=STYLE,
        title=title,
        width=720,
        height=320,
        print_values=True,
        print_values_position="top",
        show_legend=len(series) > 1,
        legend_at_bottom=True,
        disable_xml_declaration=True,
        js=[],  # no script: the chart is a picture, the table below holds the figures
        css=[*pygal.Config().css, *CSS],
        defs=DEFS,
        x_labels=list(labels),
        explicit_size=False,
    )
    for name, amounts in series:
        # Bar heights need a number; each bar's label is the exact decimal string.
        chart.add(
            name,
            [{"value": float(Decimal(a)), "formatter": (lambda _v, a=a: a)} for a in amounts],
        )
    # pygal writes its config as an inline script even without js: a picture needs none.
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))
