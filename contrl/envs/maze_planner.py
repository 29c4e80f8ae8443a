"""A waypoint planner over a maze's cells, for driving an agent through a maze as D4RL drove its
AntMaze data collection: the shortest path from the agent's cell to the goal's cell over free
cells (4-connected, found by breadth-first search from the goal), and as the next waypoint the
first of the path's *doors* (the midpoint of the edge between two consecutive cells), then the
goal, that is more than ``lookahead`` away (a quarter of a cell: 1 m in AntMaze's 4 m cells).

Why doors rather than the next cell's centre (D4RL's choice, contrl's first one): a cell is a
convex free square, so a straight line from inside a cell to a point on its edge never touches
a wall; aiming at the next cell's centre from where the agent crosses into a cell cuts across
that cell's corner when the path turns there. Driving the AntGoal-v1 reacher (40 episodes each,
2026-12-03), next-cell centres flipped the ant on wall corners and reached the goal in 38% of
the fixed U maze's episodes and 35% of the medium maze's; doors reached 80% and 60%, with
the lookahead at 1 m (0.6 m: 78% and 60%; 2 m: 22% and 28%, cutting corners again).
The lookahead keeps the target from coming closer than the reacher's goals ever were (1-5 m).
"""
from __future__ import annotations

from collections import deque

import numpy as np

from contrl.envs.maze import MazeGeometry

_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def cell_distances(geometry: MazeGeometry, goal_cell: tuple[int, int]) -> np.ndarray:
    """Steps from every cell to ``goal_cell`` over free cells (-1: a wall or unreachable)."""
    dist = np.full(geometry.shape, -1, np.int64)
    if not geometry.is_free(*goal_cell):
        raise ValueError(f"goal cell {goal_cell} is not a free cell of the maze")
    dist[goal_cell] = 0
    queue = deque([goal_cell])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _MOVES:
            n = (r + dr, c + dc)
            if geometry.is_free(*n) and dist[n] < 0:
                dist[n] = dist[r, c] + 1
                queue.append(n)
    return dist


LOOKAHEAD_CELLS = 0.25  # the lookahead in cells; see the module docstring


class WaypointPlanner:
    """Next waypoints towards goals in one maze; distance maps are kept per goal cell."""

    def __init__(self, geometry: MazeGeometry, lookahead: float | None = None):
        self.geometry = geometry
        self.lookahead = LOOKAHEAD_CELLS * geometry.scaling if lookahead is None else lookahead
        self._dist: dict[tuple[int, int], np.ndarray] = {}

    def distances(self, goal_cell: tuple[int, int]) -> np.ndarray:
        if goal_cell not in self._dist:
            self._dist[goal_cell] = cell_distances(self.geometry, goal_cell)
        return self._dist[goal_cell]

    def _nearest_reachable(self, xy, dist: np.ndarray) -> tuple[int, int]:
        """The agent's cell if the goal can be reached from it, else the reachable cell whose
        centre is nearest to ``xy`` (the agent may sit across a wall boundary by a few
        centimetres: the free cell beside it, not one across the wall)."""
        cell = self.geometry.xy_to_cell(xy)
        if self.geometry.is_free(*cell) and dist[cell] >= 0:
            return cell
        rows, cols = np.nonzero(dist >= 0)
        centres = np.stack([self.geometry.cell_to_xy(r, c) for r, c in zip(rows, cols)])
        i = int(np.argmin(((centres - np.asarray(xy, float)[:2]) ** 2).sum(1)))
        return int(rows[i]), int(cols[i])

    def path(self, xy, goal_xy) -> list[tuple[int, int]]:
        """The cells from the agent's cell to the goal's cell, both included."""
        goal_cell = self.geometry.xy_to_cell(goal_xy)
        dist = self.distances(goal_cell)
        cell = self._nearest_reachable(xy, dist)
        cells = [cell]
        while dist[cell] > 0:
            r, c = cell
            cell = min(((r + dr, c + dc) for dr, dc in _MOVES
                        if self.geometry.is_free(r + dr, c + dc) and dist[r + dr, c + dc] >= 0),
                       key=lambda n: dist[n])
            cells.append(cell)
        return cells

    def next_waypoint(self, xy, goal_xy) -> np.ndarray:
        """Where the agent at ``xy`` should head next to reach ``goal_xy``: the first door on
        the shortest path (the midpoint between two consecutive cells' centres), or else the
        goal, that lies more than ``lookahead`` away; the goal when all are nearer. From
        outside the free cells: the nearest free cell's centre."""
        cells = self.path(xy, goal_xy)
        if cells[0] != self.geometry.xy_to_cell(xy):
            return self.geometry.cell_to_xy(*cells[0])
        xy = np.asarray(xy, np.float64)
        for a, b in zip(cells, cells[1:]):
            door = (self.geometry.cell_to_xy(*a) + self.geometry.cell_to_xy(*b)) / 2.0
            if np.linalg.norm(door - xy) > self.lookahead:
                return door
        return np.asarray(goal_xy, np.float64)
