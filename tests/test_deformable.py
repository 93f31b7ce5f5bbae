"""Deformable convolution v2 and its style modulation against lax and an explicit numpy loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from internet_jax.models import deformable

HIGHEST = jax.lax.Precision.HIGHEST
_STATIC = ("stride", "padding", "dilation", "dtype", "precision")
# Jitted once per shape: one compiled program is much cheaper than eager op-by-op dispatch.
deform_conv2d = jax.jit(deformable.deform_conv2d, static_argnames=_STATIC)
modulated_deform_conv = jax.jit(deformable.modulated_deform_conv,
                                static_argnames=_STATIC + ("demodulate", "eps"))


def _numpy_deform_conv(x, offsets, mask, weight, bias, stride, padding, dilation):
  """torchvision's deform_conv2d formula written as plain loops, in float64, NHWC."""
  x, offsets, mask, weight = (np.asarray(a, np.float64) for a in (x, offsets, mask, weight))
  n_batch, height, width, _ = x.shape
  kh, kw, _, out_channels = weight.shape
  _, ho, wo, _ = offsets.shape
  out = np.zeros((n_batch, ho, wo, out_channels))

  def pixel(n, row, col):
    # Per-corner rule: a corner outside the image contributes nothing.
    if 0 <= row < height and 0 <= col < width:
      return x[n, row, col]
    return np.zeros(x.shape[-1])

  for n in range(n_batch):
    for y in range(ho):
      for xo in range(wo):
        for i in range(kh):
          for j in range(kw):
            k = i * kw + j
            sy = y * stride - padding + i * dilation + offsets[n, y, xo, 2 * k]
            sx = xo * stride - padding + j * dilation + offsets[n, y, xo, 2 * k + 1]
            if sy <= -1 or sy >= height or sx <= -1 or sx >= width:
              continue  # whole-sample rule
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            ly, lx = sy - y0, sx - x0
            value = ((1 - ly) * (1 - lx) * pixel(n, y0, x0) + (1 - ly) * lx * pixel(n, y0, x0 + 1)
                     + ly * (1 - lx) * pixel(n, y0 + 1, x0) + ly * lx * pixel(n, y0 + 1, x0 + 1))
            out[n, y, xo] += mask[n, y, xo, k] * (value @ weight[i, j])
  if bias is not None:
    out += np.asarray(bias, np.float64)
  return out


def _lax_conv(x, weight, stride, padding, dilation):
  return jax.lax.conv_general_dilated(
      x, weight, (stride, stride), padding, rhs_dilation=(dilation, dilation),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HIGHEST)


def _inputs(rng, shape, kernel, out_channels, out_size, offset_range=3.0, dtype=np.float32):
  n, _, _, c = shape
  taps = kernel[0] * kernel[1]
  x = rng.normal(size=shape).astype(dtype)
  weight = rng.normal(size=(*kernel, c, out_channels)).astype(dtype)
  offsets = rng.uniform(-offset_range, offset_range, (n, *out_size, 2 * taps)).astype(dtype)
  mask = rng.uniform(0.0, 1.0, (n, *out_size, taps)).astype(dtype)
  return x, offsets, mask, weight


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 2, 2)])
def test_zero_offsets_unit_mask_is_a_plain_convolution(stride, padding, dilation):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
  weight = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
  bias = rng.normal(size=(4,)).astype(np.float32)
  expected = _lax_conv(x, weight, stride, ((padding, padding),) * 2, dilation) + bias
  if (stride, padding, dilation) == (1, 1, 1):  # the DMM setting is SAME padding
    np.testing.assert_allclose(_lax_conv(x, weight, 1, "SAME", 1) + bias, expected, atol=1e-5)
  ho, wo = expected.shape[1:3]
  offsets = np.zeros((2, ho, wo, 18), np.float32)
  out = deform_conv2d(x, offsets, np.ones((2, ho, wo, 9), np.float32), weight, bias,
                                 stride=stride, padding=padding, dilation=dilation,
                                 precision=HIGHEST)
  assert out.shape == expected.shape
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  # mask=None is the unmodulated DCNv1: the same as a unit mask.
  out_v1 = deform_conv2d(x, offsets, None, weight, bias, stride=stride,
                                    padding=padding, dilation=dilation, precision=HIGHEST)
  np.testing.assert_allclose(out_v1, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,stride,padding,dilation",
                         [((3, 3), 1, 1, 1), ((3, 2), 2, 2, 2), ((2, 3), 1, 0, 1)])
def test_random_offsets_match_numpy_loops(kernel, stride, padding, dilation):
  # Non-square image and kernels catch row/column (dy/dx, i/j) mix-ups; offsets in [-3, 3] push
  # many samples partly or entirely outside the image.
  rng = np.random.default_rng(1)
  shape = (2, 5, 6, 3)
  out_size = tuple(deformable._output_size(s, k, stride, padding, dilation)
                   for s, k in zip(shape[1:3], kernel))
  x, offsets, mask, weight = _inputs(rng, shape, kernel, 4, out_size)
  bias = rng.normal(size=(4,)).astype(np.float32)
  expected = _numpy_deform_conv(x, offsets, mask, weight, bias, stride, padding, dilation)
  out = deform_conv2d(x, offsets, mask, weight, bias, stride=stride, padding=padding,
                                 dilation=dilation, precision=HIGHEST)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  # The test really exercises the zero rules: some samples land entirely outside.
  tap_rows = np.arange(kernel[0] * kernel[1]) // kernel[1]
  rows = np.arange(out_size[0])[:, None] * stride - padding + tap_rows * dilation
  ys = rows[None, :, None, :] + offsets[..., 0::2]
  assert (ys <= -1).any() and (ys >= shape[1]).any()


def test_bfloat16_input_is_close_to_float32():
  rng = np.random.default_rng(2)
  x, offsets, mask, weight = _inputs(rng, (1, 6, 6, 3), (3, 3), 4, (6, 6))
  reference = deform_conv2d(x, offsets, mask, weight, padding=1, precision=HIGHEST)
  out = deform_conv2d(*(jnp.asarray(a, jnp.bfloat16) for a in (x, offsets, mask,
                                                                          weight)), padding=1)
  assert out.dtype == jnp.bfloat16
  scale = float(np.abs(reference).max())
  np.testing.assert_allclose(np.asarray(out, np.float32), reference, atol=0.05 * scale)


def test_gradients_float64():
  rng = np.random.default_rng(3)
  with jax.enable_x64(True):
    x, _, mask, weight = _inputs(rng, (1, 4, 5, 2), (3, 3), 3, (4, 5), dtype=np.float64)
    # Integer parts in [-2, 2] (some samples leave the image), fractional parts in [0.2, 0.8]:
    # bilinear sampling is not differentiable at integer positions, finite differences would lie.
    offsets = (rng.integers(-2, 3, (1, 4, 5, 18)) + rng.uniform(0.2, 0.8, (1, 4, 5, 18)))

    def f(x, offsets, mask, weight):
      return deform_conv2d(x, offsets, mask, weight, padding=1, precision=HIGHEST)

    args = tuple(jnp.asarray(a) for a in (x, offsets, mask, weight))
    assert all(a.dtype == jnp.float64 for a in args)
    check_grads(f, args, order=1, modes=["rev"], atol=1e-5, rtol=1e-5)
    # The offset gradient is not trivially zero (it would be if coordinates were detached).
    g = jax.grad(lambda o: jnp.sum(f(args[0], o, args[2], args[3]) ** 2))(args[1])
    assert float(jnp.abs(g).max()) > 1e-3


def test_sample_exactly_at_minus_one_has_no_offset_gradient():
  # The whole-sample rule only shows in the gradient: at y = -1 the value is 0 either way, but
  # torchvision also zeroes the coordinate gradient there, while the corner at row 0 alone has one.
  x = jnp.ones((1, 3, 3, 1))
  weight = jnp.zeros((1, 1, 1, 1)).at[0, 0, 0, 0].set(1.0)
  mask = jnp.ones((1, 3, 3, 1))

  def centre_sample(dy):
    offsets = jnp.zeros((1, 3, 3, 2)).at[0, 0, 1, 0].set(dy)  # output (0, 1) samples row dy
    return deform_conv2d(x, offsets, mask, weight)[0, 0, 1, 0]

  assert float(jax.grad(centre_sample)(-1.0)) == 0.0
  assert float(centre_sample(-1.0)) == 0.0
  np.testing.assert_allclose(jax.grad(centre_sample)(-0.75), 1.0, rtol=1e-6)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulation_matches_per_sample_weights(demodulate):
  rng = np.random.default_rng(4)
  x, offsets, mask, weight = _inputs(rng, (2, 5, 5, 3), (3, 3), 4, (5, 5))
  style = rng.uniform(0.5, 2.0, (2, 3)).astype(np.float32)
  out = modulated_deform_conv(x, offsets, mask, weight, style, demodulate=demodulate,
                                         precision=HIGHEST)
  for n in range(2):
    w = style[n][None, None, :, None].astype(np.float64) * weight  # W'[k, c, o] = s[c] W[k, c, o]
    if demodulate:
      w = w / np.sqrt(np.sum(w ** 2, axis=(0, 1, 2)) + 1e-8)
    expected = deform_conv2d(x[n:n + 1], offsets[n:n + 1], mask[n:n + 1],
                                        w.astype(np.float32), padding=1, precision=HIGHEST)
    np.testing.assert_allclose(out[n:n + 1], expected, rtol=1e-4, atol=1e-4)
  if not demodulate:  # tie it to the loop reference too, not only to deform_conv2d itself
    expected = _numpy_deform_conv(x * style[:, None, None, :], offsets, mask, weight, None, 1, 1, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_bad_shapes_name_the_argument():
  rng = np.random.default_rng(5)
  x, offsets, mask, weight = _inputs(rng, (1, 5, 5, 3), (3, 3), 4, (5, 5))
  conv = deformable.deform_conv2d
  with pytest.raises(ValueError, match="offsets"):
    conv(x, offsets[..., :-1], mask, weight, padding=1)
  with pytest.raises(ValueError, match="offsets"):
    conv(x, offsets, mask, weight, padding=0)  # output is 3x3, offsets are 5x5
  with pytest.raises(ValueError, match="mask"):
    conv(x, offsets, mask[..., :-1], weight, padding=1)
  with pytest.raises(ValueError, match="mask"):
    conv(x, offsets, mask[:, :-1], weight, padding=1)
  with pytest.raises(ValueError, match="weight"):
    conv(x, offsets, mask, weight[:, :, :-1], padding=1)
  with pytest.raises(ValueError, match="bias"):
    conv(x, offsets, mask, weight, np.zeros(3, np.float32), padding=1)
  with pytest.raises(ValueError, match="style"):
    deformable.modulated_deform_conv(x, offsets, mask, weight, np.ones((1, 4), np.float32))
