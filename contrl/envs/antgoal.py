"""``AntGoal-v2`` (and ``-v1``): an ant on an open floor that must reach a goal a few metres
away, the goal given relative to its body; the skill D4RL's AntMaze data were collected with,
and the glue that lets such a policy drive the ant through a maze towards waypoints.

Observation (29 numbers): the ant's 27 (torso height, orientation quaternion, 8 joint angles,
14 velocities: Gymnasium's Ant-v5 without x-y and without contact forces, exactly the
``observation`` key of contrl's AntMaze envs), then the goal's offset from the torso in the
ant's heading frame (forward, left; metres), so the policy does not depend on where on the
floor it stands or which way it faces.

Reward per step (dt = 0.05 s): ``10 * progress + healthy - ctrl``, where progress is the speed
towards the goal, (d_before - d_after) / dt, healthy is 1 while the torso's height is in
[0.2, 1.0] (else the episode terminates, as in Ant-v5) and ctrl = 0.5 |a|^2 (Ant-v5's control
cost). Progress rewards reaching the goal without a bonus to tune; the healthy term keeps the
ant upright. The factor 10 on progress (``PROGRESS_SCALE``; Minari's goal-reaching ant for its
AntMaze data scaled its goal-ward velocity the same way) is what v1 changed: with progress
unscaled (v0), standing still and collecting the healthy reward beat walking, and a 200k-step
SAC run learned only to stand (benchmarks/results/antmaze/reacher.md). v2 also ends the
episode when the ant turns over (its torso's up axis below the horizon): Ant-v5's height test
alone lets an ant on its back (torso at about 0.27 m) go on, so v1's reacher never learned
that turning over costs anything, and driven through a maze with action noise it lay on its
back in 40% of the steps of the datasets it made (benchmarks/results/antmaze/README.md).
A goal is reached within ``SUCCESS_DISTANCE`` of the torso's x-y (as in the mazes); the
step's info then says ``success`` and a new goal is drawn from where the ant stands, so one
500-step episode can reach several (``goals_reached`` in the info) and the ant learns to move
on rather than to stop. Goals lie ``GOAL_DISTANCE`` metres away in a
uniformly random direction.

``AntGoal-v3`` is v2 with D4RL's ant (``ANT_MODELS``): Gymnasium's Ant-v5 model drives each
joint with up to 150 N m (gear 150) and steps the physics at 0.01 s; D4RL's AntMaze ant is the
same body with at most 30 N m per joint (its motors' ctrlrange is +-30 with gear 1, reached
through D4RL's action normalization) and a 0.02 s physics step, so one env step (5 physics
steps) lasts 0.1 s instead of 0.05 s. Driven by uniformly random actions for 1000 steps,
Gymnasium's ant ends on its back in 20 of 20 episodes, D4RL's in 0 of 20
(benchmarks/results/antmaze/README.md, session 15); the mazes with D4RL's ant are the
``_D4RL-v5`` ids (contrl.envs.make).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.spaces import Box

from contrl.envs.maze import upright
from contrl.envs.maze_planner import WaypointPlanner
from contrl.errors import ContrlError

ENV_ID = "AntGoal-v3"  # the reacher to train; v1, v2 kept so that reachers trained on them load
ENV_IDS = ("AntGoal-v1", "AntGoal-v2", "AntGoal-v3")
# (joint motor gear, physics time step) of the ant models; ctrl range [-1, 1] in both
ANT_MODELS = {"gymnasium": (150.0, 0.01), "d4rl": (30.0, 0.02)}
REACHER_ANT = {"AntGoal-v1": "gymnasium", "AntGoal-v2": "gymnasium", "AntGoal-v3": "d4rl"}
EPISODE_STEPS = 500
SUCCESS_DISTANCE = 0.45
GOAL_DISTANCE = (1.0, 5.0)
ANT_OBS_DIM = 27
PROGRESS_SCALE = 10.0


@lru_cache(maxsize=None)
def ant_xml(model: str) -> str:
    """The path of an MJCF file of the ant ``model`` (a key of ``ANT_MODELS``): Gymnasium's
    Ant-v5 file itself, or a copy of it with the model's gear and time step (written once to
    the temporary directory)."""
    source = Path(gym.__file__).parent / "envs" / "mujoco" / "assets" / "ant.xml"
    if model == "gymnasium":
        return str(source)
    gear, timestep = ANT_MODELS[model]
    root = ET.parse(source).getroot()
    root.find("option").set("timestep", f"{timestep:g}")
    for motor in root.iter("motor"):
        motor.set("gear", f"{gear:g}")
    text = ET.tostring(root, encoding="unicode")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"contrl-ant-{model}-{digest}.xml"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def register() -> None:
    """Make ``AntGoal-v1``, ``-v2`` and ``-v3`` Gymnasium ids (500-step episodes); v2 and v3
    also end an episode when the ant turns over; v3 has D4RL's ant."""
    for env_id in ENV_IDS:
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{__name__}:AntGoalEnv",
                         max_episode_steps=EPISODE_STEPS,
                         kwargs={"end_when_turned_over": env_id != "AntGoal-v1",
                                 "ant": REACHER_ANT[env_id]})


def heading(quat: np.ndarray) -> np.ndarray:
    """Yaw angle(s) of unit quaternion(s) (w, x, y, z) (last axis), about the vertical axis."""
    w, x, y, z = np.moveaxis(np.asarray(quat, np.float64), -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def relative_goal(ant_obs: np.ndarray, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The goal's offset from the ant in its heading frame (forward, left), for rows of the
    ant's 27-number observation (its quaternion is at indices 1-4), x-y and goal."""
    yaw = heading(np.asarray(ant_obs)[..., 1:5])
    d = np.asarray(goal, np.float64) - np.asarray(xy, np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def reacher_inputs(ant_obs: np.ndarray, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """What the goal-reaching policy sees: the ant's 27 numbers and the relative goal."""
    return np.concatenate([np.asarray(ant_obs, np.float32),
                           relative_goal(ant_obs, xy, goal).astype(np.float32)], -1)


class AntGoalEnv(AntEnv):
    """Gymnasium's Ant (v5 model and physics) with goals; see the module docstring."""

    def __init__(self, end_when_turned_over: bool = True, ant: str = "gymnasium", **kwargs):
        self.goal = np.zeros(2)
        self.goals_reached = 0
        self.end_when_turned_over = end_when_turned_over
        if ant not in ANT_MODELS:
            raise ContrlError(f"unknown ant model '{ant}'; one of {', '.join(ANT_MODELS)}")
        kwargs.setdefault("xml_file", ant_xml(ant))
        super().__init__(include_cfrc_ext_in_observation=False, **kwargs)
        self.observation_space = Box(-np.inf, np.inf, (ANT_OBS_DIM + 2,), np.float64)

    @property
    def is_healthy(self) -> bool:
        """Ant-v5's test (torso height within [0.2, 1.0] m), and in v2 upright: an ant on
        its back has its torso at about 0.27 m, healthy by height alone."""
        healthy = super().is_healthy
        if self.end_when_turned_over:
            healthy = healthy and bool(upright(self.data.qpos[3:7]))
        return healthy

    def _new_goal(self) -> None:
        r = self.np_random.uniform(*GOAL_DISTANCE)
        angle = self.np_random.uniform(-np.pi, np.pi)
        self.goal = self.data.qpos[:2] + r * np.array([np.cos(angle), np.sin(angle)])

    def _distance(self) -> float:
        return float(np.linalg.norm(self.goal - self.data.qpos[:2]))

    def _get_obs(self):
        ant = super()._get_obs()  # qpos[2:], qvel
        return np.concatenate([ant, relative_goal(ant, self.data.qpos[:2], self.goal)])

    def reset_model(self):
        super().reset_model()
        self.goals_reached = 0
        self._new_goal()
        return self._get_obs()

    def step(self, action):
        before = self._distance()
        self.do_simulation(action, self.frame_skip)
        after = self._distance()
        progress = (before - after) / self.dt
        ctrl = self.control_cost(action)
        reward = PROGRESS_SCALE * progress + self.healthy_reward - ctrl
        terminated = (not self.is_healthy) and self._terminate_when_unhealthy
        success = after <= SUCCESS_DISTANCE
        if success:
            self.goals_reached += 1
            self._new_goal()
        info = {"success": success, "goals_reached": self.goals_reached, "distance": after,
                "reward_progress": progress, "reward_ctrl": -ctrl}
        return self._get_obs(), reward, terminated, False, info


MAZE_OBS_KEYS = ("observation", "achieved_goal", "desired_goal")


def split_maze_obs(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ant's 27 numbers, x-y, goal) of rows of an AntMaze observation flattened in the order
    ``MAZE_OBS_KEYS`` (contrl's default for AntMaze)."""
    obs = np.asarray(obs)
    if obs.shape[-1] != ANT_OBS_DIM + 4:
        raise ContrlError(f"an AntMaze observation in the order {', '.join(MAZE_OBS_KEYS)} has "
                          f"{ANT_OBS_DIM + 4} numbers; got {obs.shape[-1]}")
    return obs[..., :ANT_OBS_DIM], obs[..., ANT_OBS_DIM:ANT_OBS_DIM + 2], obs[..., -2:]


class MazeDriver:
    """A goal-reaching policy (trained on ``AntGoal-v2``) driving an AntMaze ant: at every step
    the planner's next waypoint towards the maze's goal becomes the policy's goal. A policy
    (``contrl.policy.Policy``) on the maze's flat observations; the reacher's carry passes
    through."""

    def __init__(self, reacher, planner: WaypointPlanner):
        self.reacher = reacher
        self.planner = planner

    def initial_carry(self, num_envs: int):
        return self.reacher.initial_carry(num_envs)

    def waypoints(self, obs: np.ndarray) -> np.ndarray:
        _, xy, goal = split_maze_obs(obs)
        return np.stack([self.planner.next_waypoint(p, g) for p, g in zip(xy, goal)])

    def eval_actions(self, obs, carry):
        ant, xy, _ = split_maze_obs(obs)
        return self.reacher.eval_actions(reacher_inputs(ant, xy, self.waypoints(obs)), carry)
