"""Convolutional building blocks shared by the INTERnet networks (Flax Linen, NHWC).

Normalisation is per example (instance norm) everywhere: FOMM's synchronised BatchNorm would make
results depend on how the batch is split over devices, and results must be identical on 1 and 8
devices (tests/test_train.py). Every module takes `dtype`, the compute dtype; parameters stay
`param_dtype` (float32) so that bfloat16 training keeps full-precision weights.

Rematerialisation (`config.model.remat`): the heavy blocks (hourglass levels, generator down/res/up
blocks) can be wrapped in `nn.remat` through `maybe_remat`. The backward pass then recomputes each
block's internals from the block input instead of keeping them, trading about one extra forward
pass for activation memory; parameters, outputs and gradients are unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def instance_norm(dtype: Dtype, name: str | None = None) -> nn.Module:
  """Per-example, per-channel normalisation with a learned affine (PyTorch's epsilon 1e-5)."""
  return nn.InstanceNorm(epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, name=name)


def conv(features: int, kernel: int, dtype: Dtype, *, stride: int = 1, name: str | None = None,
         **kwargs) -> nn.Conv:
  """A k x k convolution with SAME padding, so spatial sizes only change through strides."""
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                 dtype=dtype, param_dtype=jnp.float32, name=name, **kwargs)


@functools.cache
def _remat_class(module_class: type) -> type:
  """nn.remat(module_class), built once per class so every wrapped block shares one class."""
  return nn.remat(module_class)


def maybe_remat(module_class: type, remat: bool) -> type:
  """`module_class` itself, or its rematerialised version when `remat` is true.

  nn.remat is a lifted transform that adds no scope, so both give the same parameter tree (a
  checkpoint trained with one setting loads with the other).
  """
  return _remat_class(module_class) if remat else module_class


def upsample_nearest(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2 upsampling of (B, H, W, C) (FOMM's UpBlock2d interpolation)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class SameBlock(nn.Module):
  """conv k x k + instance norm + ReLU at constant resolution (FOMM SameBlock2d)."""
  features: int
  kernel: int = 3
  dtype: Dtype = jnp.float32
  normalize: bool = True  # False: conv + ReLU (keeps the input's absolute level)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = conv(self.features, self.kernel, self.dtype)(x)
    return nn.relu(instance_norm(self.dtype)(x) if self.normalize else x)


class DownBlock(nn.Module):
  """conv 3x3 + instance norm + ReLU + 2x2 average pooling: halves H and W (FOMM DownBlock2d)."""
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = SameBlock(self.features, 3, self.dtype)(x)
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class UpBlock(nn.Module):
  """Nearest x2 upsampling + conv 3x3 + instance norm + ReLU: doubles H and W (FOMM UpBlock2d)."""
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return SameBlock(self.features, 3, self.dtype)(upsample_nearest(x))


class ResBlock(nn.Module):
  """Pre-activation residual block, x + conv(relu(norm(conv(relu(norm(x)))))) (FOMM ResBlock2d).

  Keeps the channel count of its input, so it can sit in the generator bottleneck.
  """
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    y = conv(features, 3, self.dtype)(nn.relu(instance_norm(self.dtype)(x)))
    y = conv(features, 3, self.dtype)(nn.relu(instance_norm(self.dtype)(y)))
    return x + y


def hourglass_channels(block_expansion: int, max_features: int, level: int) -> int:
  """Width of the hourglass encoder output at depth `level` (1-based): be * 2^level, capped."""
  return min(max_features, block_expansion * (2 ** level))


class Hourglass(nn.Module):
  """U-Net: `num_blocks` down blocks, then as many up blocks each concatenated with the encoder
  feature of the same resolution (FOMM Hourglass).

  The input spatial size must be divisible by 2^num_blocks. The output has the input's resolution
  and block_expansion + C_in channels (the last skip is the input itself); it is the "last feature
  map" to which the prediction heads are attached. With `remat` every down and up block is
  rematerialised (`maybe_remat`).
  """
  block_expansion: int
  num_blocks: int = 3
  max_features: int = 256
  dtype: Dtype = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    height, width = x.shape[1:3]
    factor = 2 ** self.num_blocks
    if height % factor or width % factor:
      raise ValueError(f"Hourglass: input {height}x{width} is not divisible by 2^num_blocks="
                       f"{factor}")
    down_block = maybe_remat(DownBlock, self.remat)
    up_block = maybe_remat(UpBlock, self.remat)
    skips = [x]
    for level in range(1, self.num_blocks + 1):
      skips.append(down_block(hourglass_channels(self.block_expansion, self.max_features, level),
                              self.dtype, name=f"down_{level}")(skips[-1]))
    out = skips.pop()
    for level in reversed(range(self.num_blocks)):
      # Decoder level `level` returns to the resolution of skips[level] with its nominal width.
      features = hourglass_channels(self.block_expansion, self.max_features, level)
      out = up_block(features, self.dtype, name=f"up_{level}")(out)
      out = jnp.concatenate([out, skips.pop().astype(out.dtype)], axis=-1)
    return out
