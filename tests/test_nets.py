import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.nets import CriticEnsemble, TanhGaussianActor, polyak, tanh_gaussian_sample


def test_tanh_gaussian_logp_matches_change_of_variables():
    mean = jnp.array([[0.3, -1.2]])
    log_std = jnp.array([[-0.5, 0.2]])
    a, logp = tanh_gaussian_sample(mean, log_std, jax.random.PRNGKey(3))
    # invert the squashing and compute by hand: log N(u) - log(1 - tanh(u)^2)
    u = np.arctanh(np.asarray(a, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    m = np.asarray(mean, np.float64)
    log_n = -0.5 * ((u - m) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(log_n - np.log(1 - np.tanh(u) ** 2), axis=-1)
    np.testing.assert_allclose(np.asarray(logp), expected, rtol=1e-4, atol=1e-4)
    assert np.all(np.abs(np.asarray(a)) < 1)


def test_tanh_logp_stable_for_saturated_actions():
    mean = jnp.array([[30.0, -30.0]])
    _, logp = tanh_gaussian_sample(mean, jnp.full((1, 2), -5.0), jax.random.PRNGKey(0))
    assert np.isfinite(np.asarray(logp)).all()


def test_critic_ensemble_members_are_independent():
    net = CriticEnsemble((8, 8), n=2)
    obs, act = jnp.ones((5, 3)), jnp.ones((5, 2))
    params = net.init(jax.random.PRNGKey(0), obs, act)
    q = net.apply(params, obs, act)
    assert q.shape == (2, 5)
    assert not np.allclose(q[0], q[1])
    kernel = params["params"]["VmapQNetwork_0"]["MLP_0"]["Dense_0"]["kernel"]
    assert kernel.shape == (2, 5, 8)


def test_actor_log_std_is_clipped():
    net = TanhGaussianActor((4,), 2)
    params = net.init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
    params = jax.tree_util.tree_map(lambda x: x * 1e4, params)
    _, log_std = net.apply(params, jnp.ones((1, 3)))
    assert np.all(np.asarray(log_std) <= 2.0) and np.all(np.asarray(log_std) >= -20.0)


def test_polyak_hand_computed():
    out = polyak({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, 6.0])}, 0.25)
    np.testing.assert_allclose(out["w"], [1.5, 3.0])


def test_weight_init_options():
    from contrl.nets import MLP
    x = jnp.ones((1, 256))
    std = {}
    for name in ("lecun", "torch"):
        params = MLP((256,), 4, weight_init=name).init(jax.random.PRNGKey(0), x)
        std[name] = float(jnp.std(params["params"]["Dense_0"]["kernel"]))
    assert std["lecun"] == pytest.approx(1 / 16, rel=0.05)  # 1/sqrt(fan_in)
    assert std["torch"] == pytest.approx(1 / 16 / 3**0.5, rel=0.05)  # PyTorch's nn.Linear
    # biases: zero for Flax's default; PyTorch's uniform in +-1/sqrt(fan_in) of each layer
    lecun = MLP((8,), 2).init(jax.random.PRNGKey(0), jnp.ones((1, 4)))["params"]
    torch = MLP((8,), 2, weight_init="torch").init(jax.random.PRNGKey(0), jnp.ones((1, 4)))["params"]
    assert not np.any(lecun["Dense_0"]["bias"]) and not np.any(lecun["Dense_1"]["bias"])
    for layer, fan_in in (("Dense_0", 4), ("Dense_1", 8)):
        bias = np.asarray(torch[layer]["bias"])
        assert np.all(np.abs(bias) <= fan_in ** -0.5) and np.unique(bias).size == bias.size
    big = MLP((4096,), 1, weight_init="torch").init(jax.random.PRNGKey(1), jnp.ones((1, 16)))
    assert np.abs(big["params"]["Dense_0"]["bias"]).max() == pytest.approx(0.25, rel=0.01)
    from contrl.agents.td3bc import TD3BCConfig
    assert TD3BCConfig().weight_init == "torch"


def test_gru_hand_written_backward_equals_autodiff_of_the_plain_loop():
    """gru_scan's custom VJP against jax.grad of the textbook GRU loop (stop_gradient where
    ``stop`` is set), for every input, on a tiny batch with random cut points."""
    from contrl.nets import gru_scan

    def plain(xs, ws, b_n, h0, stop):
        def step(h, x):
            (x_r, x_z, x_n), s = x
            h = jnp.where(s[:, None], jax.lax.stop_gradient(h), h)
            r = jax.nn.sigmoid(x_r + h @ ws[0])
            z = jax.nn.sigmoid(x_z + h @ ws[1])
            n = jnp.tanh(x_n + r * (h @ ws[2] + b_n))
            h = (1 - z) * n + z * h
            return h, h
        h_T, out = jax.lax.scan(step, h0, (xs, stop))
        return out, h_T

    T, B, H = 7, 3, 4
    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    xs, ws = tuple(normal(T, B, H) for _ in range(3)), tuple(normal(H, H) for _ in range(3))
    b_n, h0 = normal(H), normal(B, H)
    stop = jnp.asarray(rng.random((T, B)) < 0.3)
    g_out, g_T = normal(T, B, H), normal(B, H)

    def loss(fn):
        def f(xs, ws, b_n, h0):
            out, h_T = fn(xs, ws, b_n, h0, stop)
            return jnp.sum(out * g_out) + jnp.sum(h_T * g_T)
        return f

    out_a, out_b = gru_scan(xs, ws, b_n, h0, stop), plain(xs, ws, b_n, h0, stop)
    np.testing.assert_allclose(out_a[0], out_b[0], rtol=1e-5, atol=1e-6)
    grads_a = jax.grad(loss(gru_scan), argnums=(0, 1, 2, 3))(xs, ws, b_n, h0)
    grads_b = jax.grad(loss(plain), argnums=(0, 1, 2, 3))(xs, ws, b_n, h0)
    for a, b in zip(jax.tree_util.tree_leaves(grads_a), jax.tree_util.tree_leaves(grads_b)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
