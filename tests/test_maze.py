"""Maze geometry: walls from the map, cell <-> x-y as gymnasium-robotics lays mazes out."""
import numpy as np
import pytest

from contrl.envs import make_env
from contrl.envs.maze import MazeGeometry, agent_xy, goal_xy, is_maze

U_MAZE = [[1, 1, 1, 1, 1],
          [1, 0, 0, 0, 1],
          [1, 1, 1, 0, 1],
          [1, 0, 0, 0, 1],
          [1, 1, 1, 1, 1]]


def test_cells_and_positions_by_hand():
    geo = MazeGeometry.from_map(U_MAZE, 4)
    # 5 x 5 cells of 4 m centred on the origin: row 0 is the top (y = +8), column 0 the left
    np.testing.assert_allclose(geo.cell_to_xy(1, 1), [-4.0, 4.0])
    np.testing.assert_allclose(geo.cell_to_xy(3, 3), [4.0, -4.0])
    assert geo.xy_to_cell((-4.0, 4.0)) == (1, 1) and geo.xy_to_cell((5.9, -2.1)) == (3, 3)
    assert geo.is_free(1, 1) and not geo.is_free(2, 1) and not geo.is_free(-1, 1)
    assert geo.extent() == (-10.0, 10.0, -10.0, 10.0)
    # goal/reset/combined markers are free cells
    assert MazeGeometry.from_map([[1, "g"], ["r", "c"]], 1).walls.tolist() == [[True, False],
                                                                               [False, False]]


@pytest.mark.parametrize("env_id", ["AntMaze_Medium-v5", "PointMaze_UMaze-v3"])
def test_geometry_matches_the_envs_own_conversions(env_id):
    env = make_env(env_id)
    env.reset(seed=0)
    maze = env.unwrapped.maze
    geo = MazeGeometry.of_env(env)
    assert geo.shape == (len(maze.maze_map), len(maze.maze_map[0]))
    for r in range(geo.shape[0]):
        for c in range(geo.shape[1]):
            xy = maze.cell_rowcol_to_xy(np.array([r, c]))
            np.testing.assert_allclose(geo.cell_to_xy(r, c), xy)
            assert geo.xy_to_cell(xy + 0.3 * geo.scaling) == tuple(maze.cell_xy_to_rowcol(xy + 0.3 * geo.scaling))
    assert is_maze(env_id) and not is_maze("Ant-v5")
    assert geo.is_free(*geo.xy_to_cell(agent_xy(env))) and geo.is_free(*geo.xy_to_cell(goal_xy(env)))
