"""Environment creation, action rescaling and exact state capture."""
from contrl.envs.make import EnvPool, known_env_ids, make_env, resolve_env_id
from contrl.envs.state import get_env_state, set_env_state

__all__ = ["EnvPool", "known_env_ids", "make_env", "resolve_env_id", "get_env_state", "set_env_state"]
