"""What the offline agents share: reward transforms, dataset statistics, config checks."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.cql import CQLConfig
from contrl.agents.iql import IQLConfig
from contrl.agents.offline import DataStats, reward_transform
from contrl.config import ConfigError
from contrl.data import Batch
from contrl.data.datasets import normalized_score


def test_reward_transforms():
    returns = np.asarray([10.0, 110.0, 60.0])
    assert reward_transform(returns, "returns") == pytest.approx((10.0, 0.0))  # 1000 / 100
    assert reward_transform(returns, "antmaze") == (1.0, -1.0)
    assert reward_transform(returns, "none") == (1.0, 0.0)
    with pytest.raises(ConfigError, match="two complete episodes"):
        reward_transform(np.asarray([5.0]), "returns")
    stats = DataStats(jnp.asarray([1.0]), jnp.asarray([2.0]), jnp.float32(10.0), jnp.float32(-1.0))
    b = stats.batch(Batch(obs=jnp.asarray([[3.0]]), action=jnp.zeros((1, 1)),
                          reward=jnp.asarray([0.5]), discount=jnp.ones(1),
                          next_obs=jnp.asarray([[5.0]])))
    np.testing.assert_allclose(b.obs, [[1.0]])
    np.testing.assert_allclose(b.next_obs, [[2.0]])
    np.testing.assert_allclose(b.reward, [4.0])  # 10 * 0.5 - 1


def test_normalized_score():
    assert normalized_score(-1200.0, -1200.0, -150.0) == pytest.approx(0.0)
    assert normalized_score(-675.0, -1200.0, -150.0) == pytest.approx(50.0)
    assert normalized_score(-150.0, -1200.0, -150.0) == pytest.approx(100.0)


def test_config_errors():
    with pytest.raises(ConfigError, match="reward_normalization"):
        IQLConfig(reward_normalization="scaled").validate()
    with pytest.raises(ConfigError, match="expectile"):
        IQLConfig(expectile=1.5).validate()
    with pytest.raises(ConfigError, match="n_actions"):
        CQLConfig(n_actions=0).validate()
