"""The waypoint planner: shortest paths over a maze's free cells, the next door beyond the
lookahead."""
import numpy as np
import pytest

from contrl.envs.maze import MazeGeometry
from contrl.envs.maze_planner import WaypointPlanner, cell_distances
from test_maze import U_MAZE


def test_distances_follow_the_u_not_the_wall():
    dist = cell_distances(MazeGeometry.from_map(U_MAZE, 4), (3, 1))
    # from the goal at the bottom left, around the U to the top left: 6 cells, not 2
    assert dist[1].tolist() == [-1, 6, 5, 4, -1]
    assert dist[2].tolist() == [-1, -1, -1, 3, -1]
    assert dist[3].tolist() == [-1, 0, 1, 2, -1]
    with pytest.raises(ValueError, match="not a free cell"):
        cell_distances(MazeGeometry.from_map(U_MAZE, 4), (2, 1))


def test_path_and_next_waypoint_on_the_u_maze():
    planner = WaypointPlanner(MazeGeometry.from_map(U_MAZE, 4))
    assert planner.lookahead == 1.0  # a quarter of a 4 m cell
    start, goal = np.array([-4.5, 3.2]), np.array([-3.8, -4.3])
    assert planner.path(start, goal) == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    # cell centres: (1, 1) (-4, 4), (1, 2) (0, 4), (2, 3) (4, 0), (3, 3) (4, -4), (3, 2) (0, -4)
    np.testing.assert_allclose(planner.next_waypoint(start, goal), [-2.0, 4.0])  # door (1,1)|(1,2)
    np.testing.assert_allclose(planner.next_waypoint([4.0, 1.0], goal), [4.0, -2.0])  # (2,3)|(3,3)
    # within the lookahead (0.5 m) of that door: the next one, (3,3)|(3,2)
    np.testing.assert_allclose(planner.next_waypoint([4.0, -1.5], goal), [2.0, -4.0])
    # the last door (3,2)|(3,1) at (-2, -4) is 0.5 m away: the goal
    np.testing.assert_allclose(planner.next_waypoint([-1.5, -4.0], goal), goal)
    np.testing.assert_allclose(planner.next_waypoint([-5.0, -3.0], goal), goal)  # goal's cell
    # a few centimetres inside a wall (x = -6.05 is in column 0): back to the nearest free cell
    np.testing.assert_allclose(planner.next_waypoint([-6.05, -4.0], goal), [-4.0, -4.0])


def test_from_inside_a_wall_the_path_starts_on_the_near_side():
    """(-4, -1.95) is 5 cm into wall cell (2, 1), above free cell (3, 1); free cell (1, 1) is
    as many cells away but 4 m off across the wall. The path starts in (3, 1) (ties of cell
    distance were broken in row order: (1, 1), on the wall's far side)."""
    planner = WaypointPlanner(MazeGeometry.from_map(U_MAZE, 4))
    assert planner.path([-4.0, -1.95], [4.0, 4.0])[:2] == [(3, 1), (3, 2)]
    np.testing.assert_allclose(planner.next_waypoint([-4.0, -1.95], [-4.0, 4.0]), [-4.0, -4.0])
