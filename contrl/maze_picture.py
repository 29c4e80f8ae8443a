"""A maze evaluation as one picture: the maze from above (walls in grey), each episode's x-y
path, its start (circle) and goal (star), successful episodes in green and failed ones in red.
"""
from __future__ import annotations

import io
import textwrap
from typing import NamedTuple

import numpy as np

from contrl.evaluate import MazeTrace

SUCCESS_COLOUR = "tab:green"
FAILURE_COLOUR = "tab:red"


class Picture(NamedTuple):
    png: bytes
    rgb: np.ndarray  # H x W x 3 uint8, for TensorBoard


def draw_trace(trace: MazeTrace, title: str = "") -> Picture:
    """Draw a maze evaluation's ``trace`` (matplotlib's Agg backend, no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    geo = trace.geometry
    rows, cols = geo.shape
    width = max(4.0, 0.7 * cols)
    fig, ax = plt.subplots(figsize=(width, 0.7 * rows + 1.0))
    for r, c in zip(*np.nonzero(geo.walls)):
        x, y = geo.cell_to_xy(r, c) - geo.scaling / 2
        ax.add_patch(Rectangle((x, y), geo.scaling, geo.scaling, color="0.55", lw=0))
    alpha = min(0.7, max(0.15, 10 / max(1, len(trace.paths))))  # 100 paths stay readable
    for path, goal, ok in zip(trace.paths, trace.goals, trace.successes):
        colour = SUCCESS_COLOUR if ok else FAILURE_COLOUR
        ax.plot(path[:, 0], path[:, 1], color=colour, lw=0.8, alpha=alpha)
        ax.plot(*path[0], "o", color=colour, ms=4, mec="k", mew=0.4)
        ax.plot(*goal, "*", color=colour, ms=9, mec="k", mew=0.4)
    turned = [] if trace.turned_over_at is None else np.flatnonzero(trace.turned_over_at >= 0)
    for i in turned:
        ax.plot(*trace.paths[i][trace.turned_over_at[i]], "x", color="k", ms=6, mew=1.2)
    x0, x1, y0, y1 = geo.extent()
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    n_ok = int(np.sum(trace.successes))
    subtitle = f"{n_ok}/{len(trace.paths)} reached the goal"
    if trace.turned_over_at is not None:
        subtitle += f", {len(turned)} turned over"
    title = "\n".join(textwrap.wrap(title, int(width * 11)))  # a long run name fits the width
    ax.set_title(f"{title}\n{subtitle}".strip(), fontsize=9)
    handles = [Line2D([], [], color=SUCCESS_COLOUR, label="success"),
               Line2D([], [], color=FAILURE_COLOUR, label="failure"),
               Line2D([], [], ls="", marker="o", color="k", label="start"),
               Line2D([], [], ls="", marker="*", color="k", label="goal")]
    if trace.turned_over_at is not None:
        handles.append(Line2D([], [], ls="", marker="x", color="k", label="turned over"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              ncol=len(handles), frameon=False)
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    return Picture(buf.getvalue(), rgb)
