"""The geometry of gymnasium-robotics' mazes: which cells are walls, where a cell lies in the
x-y plane, where the agent and its goal are.

A maze map is a grid of rows (row 0 at the top, largest y) and columns (column 0 at the left,
smallest x); ``1`` marks a wall, anything else (``0``, ``"g"``, ``"r"``, ``"c"``) a free cell.
Each cell is ``scaling`` metres wide (4 for AntMaze, 1 for PointMaze) and the maze is centred
on the origin, as gymnasium-robotics lays it out (``Maze.cell_rowcol_to_xy``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

MAZE_PREFIXES = ("AntMaze_", "PointMaze_")
MAZE_EVAL_EPISODES = 100
"""Evaluation episodes on a maze by default: a success rate needs many episodes (100 give a
95% interval of about +-0.1 around 0.5)."""


def is_maze(env_id: str) -> bool:
    return env_id.startswith(MAZE_PREFIXES)


class MazeGeometry(NamedTuple):
    """A maze's walls (``walls[row, col]``: True for a wall) and cell size in metres."""

    walls: np.ndarray
    scaling: float

    @classmethod
    def from_map(cls, maze_map, scaling: float) -> "MazeGeometry":
        """From a gymnasium-robotics maze map (rows of ``1`` for walls, anything else free)."""
        walls = np.array([[cell == 1 for cell in row] for row in maze_map], bool)
        return cls(walls, float(scaling))

    @classmethod
    def of_env(cls, env) -> "MazeGeometry":
        """The geometry of a (possibly wrapped) maze env."""
        maze = env.unwrapped.maze
        return cls.from_map(maze.maze_map, maze.maze_size_scaling)

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    def cell_to_xy(self, row: int, col: int) -> np.ndarray:
        """The centre of cell (row, col) in metres."""
        rows, cols = self.shape
        return np.array([(col + 0.5 - cols / 2) * self.scaling,
                         (rows / 2 - row - 0.5) * self.scaling])

    def xy_to_cell(self, xy) -> tuple[int, int]:
        """The (row, col) of the cell holding the point ``xy`` (possibly outside the grid)."""
        rows, cols = self.shape
        return (math.floor(rows / 2 - xy[1] / self.scaling),
                math.floor(xy[0] / self.scaling + cols / 2))

    def is_free(self, row: int, col: int) -> bool:
        rows, cols = self.shape
        return 0 <= row < rows and 0 <= col < cols and not self.walls[row, col]

    def extent(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the whole grid, walls included."""
        rows, cols = self.shape
        return (-cols / 2 * self.scaling, cols / 2 * self.scaling,
                -rows / 2 * self.scaling, rows / 2 * self.scaling)


def agent_xy(env) -> np.ndarray:
    """The x-y position of a maze env's agent (the ant's torso or the point), in metres."""
    return np.array(env.unwrapped.data.qpos[:2], np.float64)


def upright(quat: np.ndarray) -> np.ndarray:
    """Whether the torso's up axis points above the horizon, for unit quaternion(s) (w, x, y,
    z) (last axis): its world z component, 1 - 2 (x^2 + y^2), is positive."""
    _, x, y, _ = np.moveaxis(np.asarray(quat, np.float64), -1, 0)
    return 1.0 - 2.0 * (x * x + y * y) > 0.0


def turned_over(env) -> bool:
    """Whether a maze's ant lies on its back (always False for PointMaze's ball, whose qpos is
    its x-y only)."""
    qpos = env.unwrapped.data.qpos
    return qpos.shape[0] >= 7 and not bool(upright(qpos[3:7]))


def goal_xy(env) -> np.ndarray:
    return np.array(env.unwrapped.goal, np.float64)
