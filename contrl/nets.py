"""Neural network building blocks shared by every agent.

Everything is Flax linen, float32. Critic ensembles are a single module
``vmap``-ed over a leading ensemble axis, so twin critics cost one call.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_LOG2 = jnp.log(2.0)
_ACTION_EPS = 1e-6


ACTIVATIONS = {"relu": nn.relu, "tanh": nn.tanh}
# Kernel initializations: Flax's default, and PyTorch's nn.Linear default (uniform with
# variance 1 / (3 fan_in), i.e. sqrt(3) narrower), which e.g. TD3+BC's published results use.
INITS = {"lecun": nn.initializers.lecun_normal(),
         "torch": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")}


def torch_bias_init(fan_in: int):
    """PyTorch's nn.Linear bias initialization: uniform in +-1/sqrt(fan_in) (Flax's is zero)."""
    bound = fan_in ** -0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class MLP(nn.Module):
    """Fully connected network: hidden layers with ``activation``, linear output.

    ``weight_init`` "torch" initializes kernels and biases as PyTorch's nn.Linear does
    (both uniform in +-1/sqrt(fan_in)); "lecun" is Flax's default (zero biases).

    ``out_scale`` switches to orthogonal initialization (hidden layers with gain sqrt(2),
    the output layer with gain ``out_scale``, zero biases), as on-policy methods use.
    """

    hidden: Sequence[int]
    out_dim: int
    layer_norm: bool = False
    activation: str = "relu"
    out_scale: float | None = None
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        if self.out_scale is None:
            hidden_kw = out_kw = {"kernel_init": INITS[self.weight_init]}
        else:
            zeros = nn.initializers.zeros_init()
            hidden_kw = {"kernel_init": nn.initializers.orthogonal(jnp.sqrt(2.0)), "bias_init": zeros}
            out_kw = {"kernel_init": nn.initializers.orthogonal(self.out_scale), "bias_init": zeros}
        torch_biases = self.out_scale is None and self.weight_init == "torch"

        def dense(width: int, kw: dict, x: jax.Array) -> jax.Array:
            bias = {"bias_init": torch_bias_init(x.shape[-1])} if torch_biases else {}
            return nn.Dense(width, **kw, **bias)(x)

        for width in self.hidden:
            x = dense(width, hidden_kw, x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        return dense(self.out_dim, out_kw, x)


class QNetwork(nn.Module):
    """Q(s, a) -> scalar."""

    hidden: Sequence[int]
    layer_norm: bool = False
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return MLP(self.hidden, 1, self.layer_norm, weight_init=self.weight_init)(x).squeeze(-1)


class CriticEnsemble(nn.Module):
    """``n`` independent Q networks evaluated in one vmapped call.

    Returns an array of shape ``(n, batch)``.
    """

    hidden: Sequence[int]
    n: int = 2
    layer_norm: bool = False
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            QNetwork,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n,
        )
        return ensemble(self.hidden, self.layer_norm, self.weight_init)(obs, action)


class TanhGaussianActor(nn.Module):
    """Gaussian policy squashed by tanh; outputs (mean, log_std) of the pre-tanh Gaussian."""

    hidden: Sequence[int]
    action_dim: int
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.action_dim, weight_init=self.weight_init)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class DeterministicActor(nn.Module):
    """Deterministic policy a = tanh(MLP(s))."""

    hidden: Sequence[int]
    action_dim: int
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.action_dim, weight_init=self.weight_init)(obs))


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample a = tanh(mean + std * eps) and its log-probability.

    The change of variables subtracts sum log(1 - tanh(u)^2), computed stably as
    2 * (log 2 - u - softplus(-2u)).
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    gaussian_logp = -0.5 * (eps**2 + jnp.log(2 * jnp.pi)) - log_std
    log_det = 2.0 * (_LOG2 - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(gaussian_logp - log_det, axis=-1)


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(a|s) of a given action a = tanh(u) under the tanh-squashed Gaussian.

    Actions are clipped to +-(1 - 1e-6) before the arctanh, so that saturated dataset actions
    (exactly +-1) give a finite log-probability instead of inf/NaN.
    """
    u = jnp.arctanh(jnp.clip(action, -1.0 + _ACTION_EPS, 1.0 - _ACTION_EPS))
    z = (u - mean) * jnp.exp(-log_std)
    gauss = -0.5 * (z**2 + jnp.log(2 * jnp.pi)) - log_std
    return jnp.sum(gauss - jnp.log(1.0 - jnp.tanh(u) ** 2 + _ACTION_EPS), axis=-1)


def polyak(target, online, tau: float):
    """target <- (1 - tau) * target + tau * online, leaf by leaf."""
    return jax.tree_util.tree_map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


# Acting is jitted on the actor's parameters alone: passing a whole agent (optimizer states,
# critics) through jit on every env step costs several times more than the forward pass.
@partial(jax.jit, static_argnums=0)
def sample_tanh_gaussian_policy(apply_fn: Callable, params, key: jax.Array, obs: jax.Array):
    """Stochastic action of a tanh-Gaussian actor and the advanced key."""
    key, sub = jax.random.split(key)
    mean, log_std = apply_fn(params, obs)
    return tanh_gaussian_sample(mean, log_std, sub)[0], key


@partial(jax.jit, static_argnums=0)
def tanh_gaussian_mode(apply_fn: Callable, params, obs: jax.Array) -> jax.Array:
    """Deterministic action tanh(mean) of a tanh-Gaussian actor."""
    return jnp.tanh(apply_fn(params, obs)[0])


@partial(jax.jit, static_argnums=0)
def noisy_deterministic_policy(apply_fn: Callable, params, key: jax.Array, obs: jax.Array,
                               sigma: float):
    """a = clip(mu(s) + sigma * N(0, I), -1, 1) and the advanced key."""
    key, sub = jax.random.split(key)
    mu = apply_fn(params, obs)
    return jnp.clip(mu + sigma * jax.random.normal(sub, mu.shape), -1.0, 1.0), key


@partial(jax.jit, static_argnums=0)
def ou_deterministic_policy(apply_fn: Callable, params, key: jax.Array, obs: jax.Array,
                            state: jax.Array, sigma: float, theta: float, dt: float = 1e-2):
    """a = clip(mu(s) + x, -1, 1) with Ornstein-Uhlenbeck noise
    x <- x - theta * x * dt + sigma * sqrt(dt) * N(0, I); returns (a, key, x)."""
    key, sub = jax.random.split(key)
    state = state - theta * state * dt + sigma * jnp.sqrt(dt) * jax.random.normal(sub, state.shape)
    return jnp.clip(apply_fn(params, obs) + state, -1.0, 1.0), key, state


@partial(jax.jit, static_argnums=0)
def deterministic_policy(apply_fn: Callable, params, obs: jax.Array) -> jax.Array:
    return apply_fn(params, obs)


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy with a state-independent log std (a learned vector), as PPO
    and A2C use; outputs (mean, log_std). Actions are sampled unbounded and clipped to
    [-1, 1] by the environment side."""

    hidden: Sequence[int]
    action_dim: int
    activation: str = "tanh"
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(self.hidden, self.action_dim, activation=self.activation, out_scale=0.01)(obs)
        log_std = self.param("log_std", nn.initializers.constant(self.init_log_std),
                             (self.action_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueNetwork(nn.Module):
    """State value V(s) -> scalar."""

    hidden: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, activation=self.activation, out_scale=1.0)(obs).squeeze(-1)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """log N(action; mean, exp(log_std)^2), summed over action dimensions."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * (z**2 + jnp.log(2 * jnp.pi)) - log_std, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian, summed over action dimensions."""
    return jnp.sum(log_std + 0.5 * (1.0 + jnp.log(2 * jnp.pi)), axis=-1)


class BoundedGaussianPolicy(nn.Module):
    """Gaussian policy with mean tanh(MLP(s)) in [-1, 1] and a state-independent log std
    (clipped to [log_std_min, 2]); outputs (mean, log_std). IQL's policy: dataset actions are
    scored under the Gaussian itself (no tanh change of variables), the mean acts at evaluation."""

    hidden: Sequence[int]
    action_dim: int
    log_std_min: float = -5.0
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = jnp.tanh(MLP(self.hidden, self.action_dim, weight_init=self.weight_init)(obs))
        log_std = self.param("log_std", nn.initializers.zeros_init(), (self.action_dim,))
        return mean, jnp.broadcast_to(jnp.clip(log_std, self.log_std_min, 2.0), mean.shape)


class StateValue(nn.Module):
    """V(s) -> scalar, ReLU MLP (IQL's value network)."""

    hidden: Sequence[int]
    layer_norm: bool = False
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1, self.layer_norm, weight_init=self.weight_init)(obs).squeeze(-1)


# --------------------------------------------------------------------------- recurrent cores
def _gru_step(h, x_r, x_z, x_n, w_r, w_z, w_n, b_n):
    """One GRU step (cuDNN's form: the n gate's recurrent term, bias included, is gated by r);
    returns the new state and what the backward pass needs."""
    r = jax.nn.sigmoid(x_r + h @ w_r)
    z = jax.nn.sigmoid(x_z + h @ w_z)
    hn = h @ w_n + b_n
    n = jnp.tanh(x_n + r * hn)
    return n + z * (h - n), (r, z, n, hn)


def gru_loop(xs, ws, b_n, h0, stop):
    """``gru_scan`` as a plain loop that JAX differentiates itself (same arguments, same
    results, same gradients; slower backward pass)."""
    def step(h, x):
        x, s = x
        h = jnp.where(s[:, None], jax.lax.stop_gradient(h), h)
        h, _ = _gru_step(h, *x, *ws, b_n)
        return h, h
    h_T, out = jax.lax.scan(step, h0, (xs, stop))
    return out, h_T


@jax.custom_vjp
def gru_scan(xs, ws, b_n, h0, stop):
    """A GRU over time: xs = (x_r, x_z, x_n), each (T, B, H), the input projections of every
    step; ws = (w_r, w_z, w_n), each (H, H); b_n (H,); h0 (B, H); stop (T, B) bool: the state
    entering step t carries no gradient where stop[t]. Returns (h_1..h_T, h_T).

    The backward pass is written by hand: the loop back through time only propagates the
    state's gradient (three (B, H) x (H, H) products a step) and keeps each step's gate
    gradients; the weight gradients are then three products over all T * B rows at once.
    Differentiating the forward loop instead accumulates (H, H) weight gradients step by step
    inside the loop, which cost XLA's CPU code 1.3x the time of the whole core."""
    return gru_loop(xs, ws, b_n, h0, stop)


def _gru_scan_fwd(xs, ws, b_n, h0, stop):
    def step(h, x):
        h_new, gates = _gru_step(h, *x, *ws, b_n)
        return h_new, (h_new, h, gates)
    h_T, (out, h_prev, gates) = jax.lax.scan(step, h0, xs)
    return (out, h_T), (ws, h_prev, gates, stop)


def _gru_scan_bwd(res, grads):
    ws, h_prev, gates, stop = res
    g_out, g_T = grads
    w_t = jnp.concatenate([w.T for w in ws], axis=0)  # (3H, H)

    def step(dh, x):
        g, h, (r, z, n, hn), s = x
        dh = dh + g
        da_n = dh * (1.0 - z) * (1.0 - n * n)
        da_z = dh * (h - n) * z * (1.0 - z)
        da_r = da_n * hn * r * (1.0 - r)
        dhn = da_n * r
        dh_prev = dh * z + jnp.concatenate([da_r, da_z, dhn], -1) @ w_t
        return jnp.where(s[:, None], 0.0, dh_prev), (da_r, da_z, da_n, dhn)

    dh0, (da_r, da_z, da_n, dhn) = jax.lax.scan(step, g_T, (g_out, h_prev, gates, stop),
                                                reverse=True)
    d_w = tuple(jnp.einsum("tbi,tbj->ij", h_prev, d) for d in (da_r, da_z, dhn))
    return (da_r, da_z, da_n), d_w, dhn.sum((0, 1)), dh0, None


gru_scan.defvjp(_gru_scan_fwd, _gru_scan_bwd)


class RecurrentCore(nn.Module):
    """A GRU or LSTM over a time-major sequence, in one ``lax.scan``.

    The input projections of every step are matrix products before the scan; only the
    recurrent products run step by step. Each gate has its own arrays (inputs and recurrent
    weights): slicing one fused gate array inside the loop stops XLA's CPU code from
    vectorizing the step, which made it three times slower. The carry is one array per env:
    the hidden state h (GRU, width ``hidden``) or [c, h] (LSTM, width 2 * ``hidden``).

    ``__call__(x, carry, stop=None)``: x (T, B, d), carry (B, carry_dim); ``stop`` (T, B) marks
    steps whose incoming state is detached from the gradient (the end of a burn-in). Returns
    the outputs h_1..h_T (T, B, hidden) and the final carry.
    """

    kind: str = "gru"
    hidden: int = 128

    @staticmethod
    def carry_dim(kind: str, hidden: int) -> int:
        return 2 * hidden if kind == "lstm" else hidden

    @nn.compact
    def __call__(self, x: jax.Array, carry: jax.Array, stop: jax.Array | None = None):
        names = ("i", "f", "g", "o") if self.kind == "lstm" else ("r", "z", "n")
        H = self.hidden
        xs = tuple(nn.Dense(H, name=f"input_{g}")(x) for g in names)  # all steps at once
        ws = tuple(self.param(f"recurrent_{g}", nn.initializers.orthogonal(), (H, H))
                   for g in names)
        if self.kind == "gru":  # the n gate's recurrent bias sits inside r * (.), as in cuDNN
            b_n = self.param("recurrent_bias_n", nn.initializers.zeros_init(), (H,))
        if stop is None:
            stop = jnp.zeros(x.shape[:2], bool)

        def lstm(ch, inputs):
            (xi, xf, xg, xo), s = inputs
            ch = jnp.where(s[:, None], jax.lax.stop_gradient(ch), ch)
            c, h = ch[:, :H], ch[:, H:]
            w_i, w_f, w_g, w_o = ws
            c = (jax.nn.sigmoid(xf + h @ w_f + 1.0) * c  # forget-gate bias 1
                 + jax.nn.sigmoid(xi + h @ w_i) * jnp.tanh(xg + h @ w_g))
            h = jax.nn.sigmoid(xo + h @ w_o) * jnp.tanh(c)
            return jnp.concatenate([c, h], -1), h

        if self.kind == "gru":
            return gru_scan(xs, ws, b_n, carry, stop)
        final, out = jax.lax.scan(lstm, carry, (xs, stop))
        return out, final


class SequenceHead(nn.Module):
    """An MLP over [recurrent features, current observation (, action)]; with ``n`` > 1 an
    ensemble of ``n`` such MLPs vmapped over a leading axis (the critics)."""

    hidden: Sequence[int]
    out_dim: int
    n: int = 0  # 0: a single head without the ensemble axis
    layer_norm: bool = False
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, *parts: jax.Array) -> jax.Array:
        x = jnp.concatenate(parts, axis=-1)
        if self.n == 0:
            return MLP(self.hidden, self.out_dim, self.layer_norm, weight_init=self.weight_init)(x)
        ensemble = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                           in_axes=None, out_axes=0, axis_size=self.n)
        return ensemble(self.hidden, self.out_dim, self.layer_norm,
                        weight_init=self.weight_init)(x)


# --------------------------------------------------------------------------- dynamics models
class GaussianMLP(nn.Module):
    """A swish MLP whose output is a diagonal Gaussian: (mean, log variance), the log variance kept
    softly inside learned bounds [min_logvar, max_logvar] (PETS/MBPO):

        logvar = max - softplus(max - raw);  logvar = min + softplus(logvar - min).
    """

    hidden: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for width in self.hidden:  # swish hidden units, as in PETS/MBPO/MOPO
            x = nn.swish(nn.Dense(width)(x))
        mean, raw = jnp.split(nn.Dense(2 * self.out_dim)(x), 2, axis=-1)
        max_logvar = self.param("max_logvar", nn.initializers.constant(0.5), (self.out_dim,))
        min_logvar = self.param("min_logvar", nn.initializers.constant(-10.0), (self.out_dim,))
        logvar = max_logvar - nn.softplus(max_logvar - raw)
        return mean, min_logvar + nn.softplus(logvar - min_logvar)


class GaussianEnsemble(nn.Module):
    """``n`` independent ``GaussianMLP``s in one vmapped call, like the critic ensemble.
    Input (B, d) (every model sees the same rows) or (n, B, d) (each its own, ``per_model``);
    returns mean and log variance of shape (n, B, out_dim)."""

    hidden: Sequence[int]
    out_dim: int
    n: int = 7
    per_model: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        ensemble = nn.vmap(GaussianMLP, variable_axes={"params": 0},
                           split_rngs={"params": True}, in_axes=0 if self.per_model else None,
                           out_axes=0, axis_size=self.n)
        return ensemble(self.hidden, self.out_dim)(x)
