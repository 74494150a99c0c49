"""Learning curves: one mean line with a ±std band per method, the random baseline dotted."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .summary import Point, curve, methods_of, percent_scale

PAPER = ' (paper)'


def plot_curves(points: Sequence[Point], metric: str, baseline: Optional[str] = None,
                reference: Sequence[Point] = (), title: Optional[str] = None,
                xlabel: str = 'labeled samples') -> Figure:
    """Draw the learning curves.

    Args:
        points: The runs' summary points.
        metric: The metric's name (y axis).
        baseline: The method drawn dotted (random).
        reference: Published points (in percent) drawn dashed in the colour of the method with
            the same name, labelled ``<method> (paper)``.
        title: Figure title.

    Returns:
        The figure; its axes hold one line per method labelled with the method's name, plus one
        per reference method.
    """
    scale = percent_scale(points)
    fig = Figure(figsize=(7, 4.5))  # a figure of its own (no pyplot): the user's backend is left alone
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = {}
    for method in methods_of(points, baseline):
        c = sorted(curve(points, method).values(), key=lambda p: p.labeled)
        x = [p.labeled for p in c]
        mean = [p.mean * scale for p in c]
        std = [(p.std if math.isfinite(p.std) else 0.0) * scale for p in c]
        (line, ) = ax.plot(x, mean, linestyle=':' if method == baseline else '-', marker='o', markersize=3,
                           linewidth=1.8, label=method)
        colours[method] = line.get_color()
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    for method in methods_of(reference, baseline):
        c = sorted(curve(reference, method).values(), key=lambda p: p.labeled)
        ax.plot([p.labeled for p in c], [p.mean for p in c], linestyle='--', linewidth=1.0, alpha=0.8,
                color=colours.get(method), label=method + PAPER)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f'{metric} (%)' if scale == 100 or reference else metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    """Release the figure (it is not registered with pyplot, so dropping it is enough)."""
    fig.clear()
