"""StyleGAN2 layers (internet_jax/models/stylegan.py) against float64 numpy references.

The references build what the module avoids building: the per-sample modulated/demodulated
weights, convolved sample by sample, the transposed convolution as an explicit scatter and the FIR
filter as zero insertion + padding + a true convolution. Shapes are tiny; everything runs eagerly.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from internet_jax.models import stylegan

N, H, W, C_IN, C_OUT, STYLE_DIM = 2, 5, 4, 3, 4, 6
SQRT2 = math.sqrt(2.0)


def close(got, want, tol=1e-5):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (got.shape, want.shape)
  np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(np.abs(want).max(), 1e-6))


def f64(tree):
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def np_conv(x, w, pad=0, stride=1):
  """Cross-correlation of NHWC x with HWIO w (PyTorch conv2d), one tap at a time."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  kh, kw = w.shape[:2]
  ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
  for a in range(kh):
    for b in range(kw):
      out += x[:, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride] @ w[a, b]
  return out


def np_conv_transpose(x, w):
  """PyTorch conv_transpose2d(stride=2, padding=0): each input pixel scatters x * w[a, b]."""
  n, h, wd, _ = x.shape
  kh, kw = w.shape[:2]
  out = np.zeros((n, 2 * (h - 1) + kh, 2 * (wd - 1) + kw, w.shape[3]))
  for i in range(h):
    for j in range(wd):
      out[:, 2 * i:2 * i + kh, 2 * j:2 * j + kw] += np.einsum("nc,abco->nabo", x[:, i, j], w)
  return out


def np_upfirdn(x, kernel, up=1, down=1, pad=(0, 0)):
  """Zero insertion, padding, true 2-D convolution (sum_a u[p - a] k[a]) per channel, decimation."""
  n, h, wd, c = x.shape
  u = np.zeros((n, h * up, wd * up, c))
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), pad, pad, (0, 0)))
  kh, kw = kernel.shape
  ho, wo = u.shape[1] - kh + 1, u.shape[2] - kw + 1
  out = np.zeros((n, ho, wo, c))
  for a in range(kh):
    for b in range(kw):
      out += kernel[a, b] * u[:, kh - 1 - a:kh - 1 - a + ho, kw - 1 - b:kw - 1 - b + wo]
  return out[:, ::down, ::down]


def np_style(params, style):
  """s = style @ W / sqrt(style_dim) + b: the EqualLinear modulation (lr_mul 1)."""
  mod = params["modulation"]
  return style @ mod["weight"] / math.sqrt(style.shape[-1]) + mod["bias"]


def np_modconv(params, x, style, demodulate, upsample):
  """StyleGAN2 Eqs. 1-3 with explicit per-sample weights w''[n] (k, k, in, out)."""
  w = params["weight"]
  k, _, c_in, _ = w.shape
  s = np_style(params, style)
  outs = []
  for n in range(x.shape[0]):
    wn = w / math.sqrt(c_in * k * k) * s[n][None, None, :, None]
    if demodulate:
      wn = wn / np.sqrt(np.sum(wn ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
    xn = x[n:n + 1]
    if upsample:
      kernel = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0 * 4
      outs.append(np_upfirdn(np_conv_transpose(xn, wn), kernel, pad=(1, 1)))
    else:
      outs.append(np_conv(xn, wn, pad=k // 2))
  return np.concatenate(outs)


def random_inputs(seed, h=H, w=W, c=C_IN):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((N, h, w, c)).astype(np.float32),
          rng.standard_normal((N, STYLE_DIM)).astype(np.float32))


def randomize(params, seed):
  """Every parameter replaced by a random value (biases included, so each one is exercised)."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(rng.standard_normal(a.shape), jnp.float32) for a in leaves])


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_weights(demodulate, upsample):
  x, style = random_inputs(0)
  module = stylegan.ModulatedConv2d(C_OUT, 3, demodulate=demodulate, upsample=upsample)
  params = module.init(jax.random.key(1), x, style)["params"]
  assert params["weight"].shape == (3, 3, C_IN, C_OUT)
  assert params["modulation"]["weight"].shape == (STYLE_DIM, C_IN)
  np.testing.assert_array_equal(params["modulation"]["bias"], np.ones(C_IN))  # bias_init=1
  got = module.apply({"params": params}, x, style)
  want = np_modconv(f64(params), x.astype(np.float64), style.astype(np.float64), demodulate,
                    upsample)
  close(got, want)
  if upsample:  # the blur pads land exactly on twice the resolution
    assert got.shape == (N, 2 * H, 2 * W, C_OUT)


def test_conv_transpose_is_pytorch_scatter():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((N, 3, 4, C_IN)).astype(np.float32)
  for k in (1, 2, 3):
    w = rng.standard_normal((k, k, C_IN, C_OUT)).astype(np.float32)
    got = stylegan.conv_transpose_stride2(jnp.asarray(x), jnp.asarray(w))
    close(got, np_conv_transpose(x.astype(np.float64), w.astype(np.float64)))


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (2, 0))])
def test_upfirdn2d_matches_numpy(up, down, pad):
  rng = np.random.default_rng(3)
  x = rng.standard_normal((N, 5, 4, 2))
  kernel = rng.standard_normal((4, 3))  # asymmetric: checks the flip of a true convolution
  got = stylegan.upfirdn2d(jnp.asarray(x, jnp.float32), kernel, up=up, down=down, pad=pad)
  close(got, np_upfirdn(x, kernel, up, down, pad))


def test_upsample_shape_and_constant():
  x = jnp.ones((N, 3, 4, 2))
  y = stylegan.upsample(x)
  assert y.shape == (N, 6, 8, 2)
  # The x4 gain makes zero insertion + blur preserve a constant away from the borders.
  close(y[:, 2:-2, 2:-2], np.ones((N, 2, 4, 2)))


def test_demodulation_gives_unit_variance():
  rng = np.random.default_rng(4)
  x = rng.standard_normal((4, 24, 24, 16)).astype(np.float32)
  style = 3.0 * rng.standard_normal((4, STYLE_DIM)).astype(np.float32)  # far from identity
  module = stylegan.ModulatedConv2d(6, 3)
  variables = module.init(jax.random.key(5), x, style)
  y = np.asarray(module.apply(variables, x, style))[:, 1:-1, 1:-1]  # interior: no zero padding
  variance = y.var(axis=(1, 2))  # (N, out): per sample, per output channel
  assert np.all((variance > 0.7) & (variance < 1.3)), variance
  y_raw = np.asarray(stylegan.ModulatedConv2d(6, 3, demodulate=False).apply(variables, x, style))
  assert np.abs(y_raw[:, 1:-1, 1:-1].var(axis=(1, 2)) - 1).max() > 0.5  # it is the demodulation


def test_fused_leaky_relu_values():
  x = jnp.asarray([[-2.0, -0.5, 0.0, 0.5, 3.0]])
  module = stylegan.FusedLeakyReLU()
  params = module.init(jax.random.key(0), x)["params"]
  np.testing.assert_array_equal(params["bias"], np.zeros(5))
  want = np.where(np.asarray(x) < 0, 0.2 * SQRT2, SQRT2) * np.asarray(x)
  close(module.apply({"params": params}, x), want)
  bias = jnp.asarray([1.0, 1.0, -1.0, -1.0, 0.0])  # the bias goes in before the activation
  shifted = np.asarray(x) + np.asarray(bias)
  close(module.apply({"params": {"bias": bias}}, x),
        np.where(shifted < 0, 0.2 * SQRT2, SQRT2) * shifted)


@pytest.mark.parametrize("lr_mul", [1.0, 0.01])
def test_equal_linear(lr_mul):
  in_dim, out_dim = 64, 48
  module = stylegan.EqualLinear(out_dim, bias_init=1.0, lr_mul=lr_mul)
  params = module.init(jax.random.key(0), jnp.zeros((1, in_dim)))["params"]
  assert params["weight"].shape == (in_dim, out_dim)
  # Stored N(0, 1 / lr_mul^2): the effective weight starts N(0, 1 / in) for any lr_mul.
  assert abs(np.std(params["weight"]) * lr_mul - 1) < 0.1
  close(module.apply({"params": params}, jnp.zeros((2, in_dim))), np.full((2, out_dim), lr_mul))
  params = randomize(params, 1)
  x = np.random.default_rng(2).standard_normal((3, in_dim))
  p = f64(params)
  want = x @ (p["weight"] * lr_mul / math.sqrt(in_dim)) + p["bias"] * lr_mul
  close(module.apply({"params": params}, jnp.asarray(x, jnp.float32)), want)
  activated = stylegan.EqualLinear(out_dim, lr_mul=lr_mul, activation=True)
  close(activated.apply({"params": params}, jnp.asarray(x, jnp.float32)),
        np.where(want < 0, 0.2 * SQRT2, SQRT2) * want)


def test_equal_conv2d():
  x, _ = random_inputs(6, h=6, w=5)
  module = stylegan.EqualConv2d(C_OUT, 3, stride=2, padding=1)
  params = randomize(module.init(jax.random.key(0), x)["params"], 7)
  assert params["weight"].shape == (3, 3, C_IN, C_OUT) and params["bias"].shape == (C_OUT,)
  p = f64(params)
  want = np_conv(x.astype(np.float64), p["weight"] / math.sqrt(C_IN * 9), pad=1, stride=2)
  close(module.apply({"params": params}, x), want + p["bias"])


@pytest.mark.parametrize("upsample", [False, True])
def test_styled_conv(upsample):
  x, style = random_inputs(8)
  module = stylegan.StyledConv(C_OUT, 3, upsample=upsample)
  params = module.init(jax.random.key(0), x, style)["params"]
  assert set(params) == {"conv", "bias", "activate"}
  assert params["bias"].shape == params["activate"]["bias"].shape == (C_OUT,)
  params = randomize(params, 9)  # distinct non-zero biases: both must be added
  p = f64(params)
  pre = np_modconv(p["conv"], x.astype(np.float64), style.astype(np.float64), True, upsample)
  pre = pre + p["bias"] + p["activate"]["bias"]
  close(module.apply({"params": params}, x, style), np.where(pre < 0, 0.2 * SQRT2, SQRT2) * pre)


def test_to_rgb():
  x, style = random_inputs(10)
  module = stylegan.ToRGB()
  params = randomize(module.init(jax.random.key(0), x, style)["params"], 11)
  assert params["conv"]["weight"].shape == (1, 1, C_IN, 3) and params["bias"].shape == (3,)
  p = f64(params)
  s = np_style(p["conv"], style.astype(np.float64))  # (N, in); no demodulation
  want = np.einsum("nhwc,nc,co->nhwo", x.astype(np.float64), s,
                   p["conv"]["weight"][0, 0] / math.sqrt(C_IN)) + p["bias"]
  got = module.apply({"params": params}, x, style)
  assert got.shape == (N, H, W, 3)
  close(got, want)


def test_bfloat16_compute_keeps_float32_params():
  x, style = random_inputs(12)
  module = stylegan.StyledConv(C_OUT, 3, upsample=True, dtype=jnp.bfloat16)
  variables = module.init(jax.random.key(0), x, style)
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(variables))
  got = module.apply(variables, x, style)
  assert got.dtype == jnp.bfloat16
  want = stylegan.StyledConv(C_OUT, 3, upsample=True).apply(variables, x, style)
  close(got, want, tol=5e-2)
