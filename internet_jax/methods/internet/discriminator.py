"""Multi-scale PatchGAN discriminator (pix2pixHD style; Eq. 8 of the INTERnet paper with N_D scales).

Each scale is a PatchGAN: `num_blocks` conv 4x4 blocks with widths block_expansion * 2^i (capped
at max_features), instance norm on every block but the first, LeakyReLU 0.2; strides 2 except the
last block, then a final stride-1 conv 4x4 to one logit map: pix2pixHD's layout with
n_layers = num_blocks - 1, in which the last two convolutions keep the resolution. Padding is
SAME (pix2pixHD pads 2, FOMM pads 0); with SAME every stride-2 block exactly halves an even size.
The image is downsampled x2 (anti-aliased, `geometry.downsample`) between scales.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax import geometry
from internet_jax.models import layers

Dtype = Any


class PatchDiscriminator(nn.Module):
  """One scale: returns dict(features=[block outputs], prediction=(B, h', w', 1) float32 logits)."""
  num_blocks: int = 4
  block_expansion: int = 64
  max_features: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image: jax.Array) -> dict[str, Any]:
    x = image
    features = []
    for i in range(self.num_blocks):
      stride = 1 if i == self.num_blocks - 1 else 2
      width = min(self.max_features, self.block_expansion * 2 ** i)
      x = layers.conv(width, 4, self.dtype, stride=stride, name=f"conv_{i}")(x)
      if i > 0:  # pix2pixHD: no normalisation on the first block
        x = layers.instance_norm(self.dtype, name=f"norm_{i}")(x)
      x = nn.leaky_relu(x, 0.2)
      # Feature-matching targets in float32 so that the L1 between real and fake is exact enough.
      features.append(x.astype(jnp.float32))
    prediction = layers.conv(1, 4, self.dtype, name="prediction")(x).astype(jnp.float32)
    return {"features": features, "prediction": prediction}


class MultiScaleDiscriminator(nn.Module):
  """N_D PatchGANs with separate parameters on the image at 1, 1/2, 1/4, ... of its size.

  __call__(image (B, H, W, 3) in [0, 1]) -> list over scales (full resolution first) of
  dict(features=list of num_blocks maps, prediction=logit map).
  """
  num_scales: int = 2
  num_blocks: int = 4
  block_expansion: int = 64
  max_features: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, image: jax.Array) -> list[dict[str, Any]]:
    outputs = []
    x = image.astype(jnp.float32)
    for scale in range(self.num_scales):
      if scale > 0:
        x = geometry.downsample(x, x.shape[1] // 2, x.shape[2] // 2)
      outputs.append(PatchDiscriminator(self.num_blocks, self.block_expansion, self.max_features,
                                        self.dtype, name=f"scale_{scale}")(x))
    return outputs
