"""What every agent shares (contrl.agents.base): an agent is built from its config's
non-loop fields only, so configs differing in what the loop alone reads share one builder
(and the compiled update)."""
import jax
import numpy as np
import pytest

from contrl.registry import REGISTRY


class LoopFieldsHidden:
    """A config whose loop-only fields cannot be read."""

    def __init__(self, cfg):
        self._cfg = cfg

    def __getattr__(self, name):
        if name in type(self._cfg).LOOP_FIELDS:
            raise AssertionError(f"the agent's builder reads the loop field '{name}'")
        return getattr(self._cfg, name)


@pytest.mark.parametrize("name", [n for n, (c, _, _) in REGISTRY.items() if c.LOOP_FIELDS])
def test_agents_are_built_without_the_loop_fields(name):
    cfg_cls, agent_cls, _ = REGISTRY[name]
    cfg = cfg_cls(hidden=(8,))
    jax.eval_shape(lambda s: agent_cls._build(LoopFieldsHidden(cfg), 3, 2, s), np.uint32(0))
    changed = cfg_cls(hidden=(8,), batch_size=cfg.batch_size * 2)
    assert changed.build_key() == cfg.build_key() and changed != cfg
    assert cfg_cls(hidden=(16,)).build_key() != cfg.build_key()
