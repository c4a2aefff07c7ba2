"""Post-hoc EMA: exact weights of every averager, and reconstruction of unseen schedules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gvatheory.core import averaging as av
from gvatheory.core import posthoc


def track(avg, thetas):
    s = jax.lax.scan(lambda s, th: (avg.update(s, th), s.average), avg.init(thetas[0]), thetas[1:])
    return np.asarray(s[1]), np.asarray(s[0].average)  # averages after iterates 0..T-1, and after T


@pytest.mark.parametrize(
    "cfg",
    [
        av.ema(0.95).config,
        av.polynomial_ema(0.7, lag=3.0, burn_in=20, every=3).config,
        av.bema(burn_in=10).config,
        av.bema(every=4).config,
    ],
)
def test_weights_reproduce_the_averager(cfg):
    thetas = jnp.asarray(np.random.default_rng(0).standard_normal((301, 2)), jnp.float32)
    _, final = track(av.averager(cfg), thetas)
    w = posthoc.weights(cfg, 300)
    np.testing.assert_allclose(w @ np.asarray(thetas, np.float64), final, rtol=1e-4, atol=1e-4)


def test_a_stored_snapshot_is_reconstructed_exactly():
    cfgs = [av.polynomial_ema(p, lag=1.0).config for p in (0.5, 1.0)]
    W = posthoc.snapshot_weights(cfgs * 3, [100, 100, 200, 200, 300, 300], 300)
    c, res = posthoc.solve(W, W[3])
    assert res < 1e-6
    np.testing.assert_allclose(c, np.eye(6)[3], atol=1e-5)


def test_reconstructs_an_ema_it_never_tracked():
    """Two polynomial EMAs stored every 100 steps reconstruct EMA(0.99) at T (Karras et al.'s recipe)."""
    T, K = 2000, 100
    rng = np.random.default_rng(1)
    thetas = np.cumsum(rng.standard_normal((T + 1, 3)), 0) * 0.1 + rng.standard_normal((T + 1, 3))  # drift + noise
    stored = [av.polynomial_ema(0.5, lag=1.0), av.polynomial_ema(0.9, lag=1.0)]
    times = np.arange(K, T + 1, K)
    cfgs, snaps = [], []
    for a in stored:
        hist, final = track(a, jnp.asarray(thetas, jnp.float32))
        hist = np.concatenate([hist, final[None]])  # average after iterate n is hist[n]
        for t in times:
            cfgs.append(a.config)
            snaps.append(hist[t])
    target = av.ema(0.99)
    c, res = posthoc.solve(posthoc.snapshot_weights(cfgs, times.tolist() * 2, T), posthoc.weights(target.config, T))
    recon = posthoc.combine(np.stack(snaps), c)
    _, tracked = track(target, jnp.asarray(thetas, jnp.float32))
    assert res < 0.1  # the weight profile is matched to 10% in L2
    # the reconstruction error is small next to how far the EMA is from the raw iterate
    assert np.linalg.norm(recon - tracked) < 0.1 * np.linalg.norm(thetas[-1] - tracked)
    tree = posthoc.combine([{"a": jnp.asarray(s)} for s in snaps], c)
    np.testing.assert_allclose(tree["a"], recon, rtol=1e-4, atol=1e-4)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="same length"):
        posthoc.snapshot_weights([av.ema(0.9).config], [1, 2], 5)
    with pytest.raises(ValueError, match="snapshot time"):
        posthoc.snapshot_weights([av.ema(0.9).config], [7], 5)
    with pytest.raises(ValueError, match="target_w"):
        posthoc.solve(np.ones((2, 5)), np.ones(4))


@pytest.mark.parametrize("cfg", [av.AveragingConfig(power=0.5, bias_power=0.2, lag=1.0, burn_in=7, anchor="init"), av.AveragingConfig(exponent=5.0, every=3)])
def test_weights_reproduce_the_init_anchor_and_the_power_function_profile(cfg):
    test_weights_reproduce_the_averager(cfg)
