"""contextual_loss.py: BDMM's contextual, Gram style and content losses against float64 numpy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from internet_jax import contextual_loss as cxl

H, W, C = 4, 4, 5
SIGMA, B, REL_EPS = 0.5, 1.0, 1e-5


def _np_cx(generated, target, mu=None, min_axis=0):
  """CX(T, I) of BDMM's CXLoss in float64 with explicit loops; mu defaults to T's mean.

  min_axis=1 is a deliberately wrong variant (min and normalisation over I positions).
  """
  t = np.asarray(generated, np.float64).reshape(-1, C)
  i = np.asarray(target, np.float64).reshape(-1, C)
  if mu is None:
    mu = t.mean(axis=0)
  t = t - mu
  i = i - mu
  t = t / np.sqrt((t ** 2).sum(axis=1, keepdims=True))
  i = i / np.sqrt((i ** 2).sum(axis=1, keepdims=True))
  dist = np.empty((t.shape[0], i.shape[0]))
  for p in range(t.shape[0]):
    for q in range(i.shape[0]):
      dist[p, q] = (1.0 - np.dot(t[p], i[q])) / 2.0
  relative = dist / (dist.min(axis=min_axis, keepdims=True) + REL_EPS)
  w = np.exp((B - relative) / SIGMA)
  cx = w / w.sum(axis=min_axis, keepdims=True)
  # Max over I positions for each T position, mean over T positions.
  return -np.log(cx.max(axis=1).mean())


def _features(seed, shape=(H, W, C), offset=0.0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=shape) + offset).astype(np.float32)


@pytest.mark.parametrize("target_shape", [(H, W, C), (3, 5, C)])
def test_matches_float64_reference(target_shape):
  gen = _features(0)
  tgt = _features(1, target_shape)
  want = _np_cx(gen, tgt)
  got = cxl.contextual_loss(jnp.asarray(gen), jnp.asarray(tgt))
  assert got.dtype == jnp.float32 and got.shape == ()
  np.testing.assert_allclose(float(got), want, rtol=1e-4, atol=1e-5)
  # The reference is sensitive to the axis choice: the transposed reading differs.
  assert abs(_np_cx(gen, tgt, min_axis=1) - want) > 1e-2


def test_near_target_matches_reference():
  gen = _features(2)
  tgt = gen + 0.3 * _features(3)
  np.testing.assert_allclose(float(cxl.contextual_loss(gen, tgt)), _np_cx(gen, tgt),
                             rtol=1e-4, atol=1e-5)


def test_identical_and_permuted_features_give_zero():
  # T == I: d_qq ~ 0 is the min of column q, every other dt_pq ~ d_pq / 1e-5 >> 1, so CX_qq = 1,
  # max_q CX_pq = 1 for every p and the loss is -log(1) = 0. Permuting I's positions keeps it 0.
  gen = _features(4)
  perm = np.random.default_rng(5).permutation(H * W)
  shuffled = gen.reshape(-1, C)[perm].reshape(H, W, C)
  other = _features(6)
  same = float(cxl.contextual_loss(gen, gen))
  assert abs(same) < 1e-4
  assert abs(float(cxl.contextual_loss(gen, shuffled))) < 1e-4
  assert float(cxl.contextual_loss(gen, other)) > same + 0.1


def test_frames_centre_per_frame():
  gen = np.stack([_features(7), _features(8, offset=2.0)])
  tgt = np.stack([_features(9), _features(10, offset=-1.0)])
  per_frame = [_np_cx(gen[k], tgt[k]) for k in range(2)]
  got = cxl.frames_contextual_loss(jnp.asarray(gen), jnp.asarray(tgt))
  np.testing.assert_allclose(float(got), np.mean(per_frame), rtol=1e-4, atol=1e-5)
  singles = [float(cxl.contextual_loss(gen[k], tgt[k])) for k in range(2)]
  np.testing.assert_allclose(float(got), np.mean(singles), rtol=1e-5, atol=1e-6)
  none = cxl.frames_contextual_loss(gen, tgt, reduction="none")
  np.testing.assert_allclose(np.asarray(none), per_frame, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(cxl.frames_contextual_loss(gen, tgt, reduction="sum")),
                             np.sum(per_frame), rtol=1e-4, atol=1e-5)
  # Centring both frames by the mean over the two frames would give a different loss.
  mu_all = gen.reshape(-1, C).astype(np.float64).mean(axis=0)
  cross = np.mean([_np_cx(gen[k], tgt[k], mu=mu_all) for k in range(2)])
  assert abs(cross - float(got)) > 1e-2


def test_gradients_finite_nonzero():
  gen = jnp.asarray(_features(11))
  tgt = jnp.asarray(_features(12))
  grad_gen, grad_tgt = jax.grad(cxl.contextual_loss, argnums=(0, 1))(gen, tgt)
  assert np.all(np.isfinite(grad_gen)) and float(jnp.max(jnp.abs(grad_gen))) > 1e-6
  assert float(jnp.max(jnp.abs(grad_tgt))) == 0.0  # the target is a constant
  # Through lax.map + checkpoint: the mean's gradient is each frame's gradient / 2.
  gens = jnp.stack([gen, gen + 1.0])
  tgts = jnp.stack([tgt, tgt])
  grads = jax.grad(cxl.frames_contextual_loss)(gens, tgts)
  for k in range(2):
    want = jax.grad(cxl.contextual_loss)(gens[k], tgts[k]) / 2
    np.testing.assert_allclose(np.asarray(grads[k]), np.asarray(want), rtol=1e-4, atol=1e-6)


def test_constant_map_needs_eps():
  # Every centred T position is 0: eps = 0 gives 0/0 = NaN (as the code); with eps > 0 they
  # are zero vectors, d = 1/2 everywhere, CX = 1/P_T uniformly and the loss is log(P_T).
  gen = jnp.ones((H, W, C), jnp.float32)
  tgt = jnp.asarray(_features(13))
  assert np.isnan(float(cxl.contextual_loss(gen, tgt)))
  value, grad = jax.value_and_grad(cxl.contextual_loss)(gen, tgt, eps=1e-6)
  np.testing.assert_allclose(float(value), np.log(H * W), rtol=1e-5)
  assert np.all(np.isfinite(grad))


def _np_gram(f):
  h, w, c = f.shape
  flat = np.asarray(f, np.float64).reshape(h * w, c)
  return flat.T @ flat / (h * w * c)


def test_gram_style_content_match_numpy():
  gen = {"a": _features(14), "b": _features(15, (2, 3, 7)), "unused": _features(16)}
  tgt = {"a": _features(17), "b": _features(18, (2, 3, 7)), "unused": _features(19)}
  np.testing.assert_allclose(np.asarray(cxl.gram_matrix(gen["b"])), _np_gram(gen["b"]),
                             rtol=1e-5, atol=1e-6)
  layers = ("a", "b")
  want_style = sum(np.abs(_np_gram(gen[n]) - _np_gram(tgt[n])).mean() for n in layers)
  np.testing.assert_allclose(float(cxl.style_loss(gen, tgt, layers)), want_style, rtol=1e-5)
  want_content = sum(np.abs(gen[n].astype(np.float64) - tgt[n]).mean() for n in layers)
  np.testing.assert_allclose(float(cxl.content_loss(gen, tgt, layers)), want_content, rtol=1e-5)
  with pytest.raises(KeyError):
    cxl.style_loss(gen, tgt, ("missing",))
