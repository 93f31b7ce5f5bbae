"""BDMM's two discriminators and their LSGAN losses ("Bidirectionally Deformable Motion Modulation
for Video-based Human Pose Transfer", Sec. 3.3), as the official code builds them:
rocketappslab/BDMM, model/networks/discriminator.py (`ResDiscriminator`, `TemporalDiscriminator`)
and base_function.py (`ResBlockEncoder`, `ResBlock3DEncoder`).

Both are unconditional: real and generated frames are scored on their own (the supplement pairs
them with the target; the code does not), images NHWC in [-1, 1], one logit per patch.

* Spatial D: ResBlockEncoder 3 -> base, then `num_blocks - 1` more, each doubling the width up
  to `max_features` and halving H, W; LeakyReLU; a spectrally normalised 1x1 conv to one logit.
  The code's ndf 32, img_f 128, layers 4 give (B, 16, 16, 1) at 256^2.
* Temporal D on (B, T, H, W, 3): two 3-D blocks (each T -> T - 2, H, W halved), the time axis
  folded into channels as the code's `view(b, c * t, h, w)` does (channel index c * T + t),
  then `num_blocks - 2` 2-D ResBlockEncoders and the same head. Needs T >= 5.

The convolutions have no spectral norm (the code's use_spect flags end up False) except the final
1x1: with one output channel its weight is a single vector, whose largest singular value is its
Euclidean norm, so the head divides by that norm exactly (what torch's power iteration converges
to in one step). Weights are orthogonal with gain 0.02 when `orthogonal_init` (the code's
init_weights), except that head, which keeps PyTorch's default init (its parameter is
`weight_orig`, which init_weights does not match).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax.methods.bdmm.generator import Conv, leaky_relu

Dtype = Any
MIN_TEMPORAL_LENGTH = 5  # two 3-D blocks, each removing 2 frames, leave at least one


class ResBlockEncoder(nn.Module):
  """base_function.ResBlockEncoder (2-D) and ResBlock3DEncoder (`temporal`).

  2-D: LReLU, conv 3x3 (in -> hidden), LReLU, conv 4x4 stride 2 (hidden -> out), plus
  AvgPool 2 -> conv 1x1 of the input. 3-D on (B, T, H, W, C): conv 3x3x3, then conv (3, 4, 4)
  with stride (1, 2, 2) and no temporal padding; the shortcut pools (3, 2, 2) with stride
  (1, 2, 2). `hidden` defaults to the input width, as the code's hidden_nc.
  """
  features: int
  hidden: int | None = None
  temporal: bool = False
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    hidden = x.shape[-1] if self.hidden is None else self.hidden
    if self.temporal:
      first = Conv(hidden, (3, 3, 3), padding=(1, 1, 1), name="conv1", **conv)
      second = Conv(self.features, (3, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1),
                    name="conv2", **conv)
      pool = lambda y: nn.avg_pool(y, (3, 2, 2), strides=(1, 2, 2))  # noqa: E731
      bypass = Conv(self.features, (1, 1, 1), name="bypass", **conv)
    else:
      first = Conv(hidden, 3, padding=1, name="conv1", **conv)
      second = Conv(self.features, 4, stride=2, padding=1, name="conv2", **conv)
      pool = lambda y: nn.avg_pool(y, (2, 2), strides=(2, 2))  # noqa: E731
      bypass = Conv(self.features, 1, name="bypass", **conv)
    return second(leaky_relu(first(leaky_relu(x)))) + bypass(pool(x))


class UnitNormHead(nn.Module):
  """A 1x1 conv to one logit whose weight vector is divided by its norm (spectral norm of a
  one-row matrix, exact). PyTorch's default Conv2d init: U(+-1/sqrt(fan_in)) weight and bias."""
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    bound = 1.0 / channels ** 0.5
    uniform = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)  # noqa: E731
    weight = self.param("weight", uniform, (channels,))
    bias = self.param("bias", uniform, (1,))
    unit = weight / jnp.linalg.norm(weight)
    return (jnp.einsum("...c,c->...", x.astype(self.dtype), unit.astype(self.dtype))[..., None]
            + bias.astype(self.dtype))


def _width(base: int, max_features: int, level: int) -> int:
  """base * min(2^level, max / base): the code's ndf * mult."""
  return base * min(2 ** level, max_features // base)


class SpatialDiscriminator(nn.Module):
  """discriminator.ResDiscriminator(input_nc=3, norm='none'): (B, H, W, 3) -> (B, H/2^n, W/2^n, 1)
  for n = num_blocks."""
  base_features: int = 32
  max_features: int = 128
  num_blocks: int = 4
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, images):
    block = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    x = ResBlockEncoder(self.base_features, hidden=self.base_features, name="block0",
                        **block)(images.astype(self.dtype))
    for i in range(self.num_blocks - 1):
      x = ResBlockEncoder(_width(self.base_features, self.max_features, i + 1),
                          name=f"encoder{i}", **block)(x)
    return UnitNormHead(self.dtype, name="head")(leaky_relu(x)).astype(jnp.float32)


class TemporalDiscriminator(nn.Module):
  """discriminator.TemporalDiscriminator: (B, T, H, W, 3) with T = input_length ->
  (B, H/2^n, W/2^n, 1) for n = num_blocks (two 3-D blocks, then num_blocks - 2 2-D ones)."""
  input_length: int = 6
  base_features: int = 32
  max_features: int = 128
  num_blocks: int = 4
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, clips):
    if self.input_length < MIN_TEMPORAL_LENGTH:
      raise ValueError(f"TemporalDiscriminator: input_length must be >= {MIN_TEMPORAL_LENGTH} "
                       f"(two temporal reductions of 2), got {self.input_length}")
    if clips.ndim != 5 or clips.shape[1] != self.input_length:
      raise ValueError(f"TemporalDiscriminator: expected (B, {self.input_length}, H, W, C) "
                       f"clips, got {clips.shape}")
    block = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    base = self.base_features
    x = ResBlockEncoder(base, hidden=base, temporal=True, name="block0", **block)(
        clips.astype(self.dtype))
    x = ResBlockEncoder(2 * base, hidden=base, temporal=True, name="block1", **block)(x)
    x = fold_time_into_channels(x)
    for i in range(self.num_blocks - 2):
      x = ResBlockEncoder(_width(base, self.max_features, i + 2), name=f"encoder{i}",
                          **block)(x)
    return UnitNormHead(self.dtype, name="head")(leaky_relu(x)).astype(jnp.float32)


def fold_time_into_channels(x: jax.Array) -> jax.Array:
  """(B, T, H, W, C) -> (B, H, W, C * T) with channel c * T + t: torch's
  (B, C, T, H, W).view(B, C * T, H, W), so that a converted 2-D weight lines up."""
  b, t, h, w, c = x.shape
  return jnp.transpose(x, (0, 2, 3, 4, 1)).reshape(b, h, w, c * t)


def lsgan_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """One example's LSGAN generator loss, mean((D(fake) - 1)^2) (the code's MSE to 1)."""
  return jnp.mean(jnp.square(fake_logits - 1.0))


def lsgan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """One example's LSGAN discriminator loss, 0.5 (mean((D(real) - 1)^2) + mean(D(fake)^2))."""
  return 0.5 * (jnp.mean(jnp.square(real_logits - 1.0)) + jnp.mean(jnp.square(fake_logits)))
