"""The BDMM generator ("Bidirectionally Deformable Motion Modulation for Video-based Human Pose
Transfer", Sec. 3 and its supplement), as the official code builds it: rocketappslab/BDMM,
model/networks/generator.py (`DanceGenerator`), base_function.py, ModulatedDCN.py.

Per frame t of a chunk (images in [-1, 1], NHWC):
  style   s = GAP(style encoder(reference))                       (one vector per video)
  warp    w_t = warp encoder(reference warped to frame t)         (features at R/2 and R/4)
  forward f_t = ResBlock(cat(w_t, f_{t-1})), backward b_t = ResBlock(cat(w_t, b_{t+1}))
          (Eqs. 6-7, "⊙" being concatenation in the code), at R/4 and R/2
  structure u_t = structural encoder(cat(skeleton_t, previous output))   (R/8)
          x = ResBlock(ResBlock(cat(u_{t-1}', u_t))), u_t' = x          (recurrent structural flow)
  decoder StyledConv up to R/4; + DMM_f(f_t) + DMM_b(b_t) (Eqs. 2-4); the same at R/2; StyledConv
          up to R; ToRGB; tanh.

Widths follow `base_features` (the code's ngf 64) and `max_features` (img_f 512): the encoders
have base * min(2^i, max / base) channels at block i, the decoder 4, 2, 1, 1 x base, the style
max(...) of the deepest style-encoder block. At 256^2 with the defaults this is the official
network; the synthetic configs shrink the widths.

Differences from the paper, following the code: LeakyReLU 0.1 in the encoders and ResBlocks (the
paper says 0.2; the StyleGAN layers use 0.2 with the sqrt(2) gain), instance norm with affine
parameters, and every conv / linear weight re-initialised orthogonally with gain 0.02 when
`orthogonal_init` (the code's `init_weights('orthogonal', 0.02)`; the deformable-conv weight keeps
its N(0, 1), and style biases start at 0, not 1, for the same reason). The frame-level scans live
in `propagation.py`; this module holds one step of each recurrence as a method, so that the scans
apply it with `Module.apply(..., method=...)`.

Ablation switches (the paper's Table 2): `use_dmm` False replaces each DMM by a StyledConv of the
propagated state (no deformable sampling); the propagation switches live in `propagation.py`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax.models import deformable, stylegan

Dtype = Any
LEAKY_SLOPE = 0.1  # base_function.get_nonlinearity_layer('LeakyReLU')


def kernel_init(orthogonal: bool):
  return nn.initializers.orthogonal(scale=0.02) if orthogonal else nn.initializers.lecun_normal()


class Conv(nn.Module):
  """A PyTorch-style convolution: `padding` zeros on each side, bias, optional orthogonal init.
  Sizes are an int (2-D, square) or one int per spatial axis (a 3-D (T, H, W) conv)."""
  features: int
  kernel_size: int | tuple[int, ...]
  stride: int | tuple[int, ...] = 1
  padding: int | tuple[int, ...] = 0
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    axes = 2 if isinstance(self.kernel_size, int) else len(self.kernel_size)
    per_axis = lambda value: (value,) * axes if isinstance(value, int) else tuple(value)  # noqa: E731
    return nn.Conv(self.features, per_axis(self.kernel_size), strides=per_axis(self.stride),
                   padding=[(p, p) for p in per_axis(self.padding)], dtype=self.dtype,
                   param_dtype=jnp.float32, kernel_init=kernel_init(self.orthogonal_init),
                   name="conv")(x)


def _norm(dtype, name=None):
  return nn.InstanceNorm(epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, name=name)


def leaky_relu(x):
  return nn.leaky_relu(x, LEAKY_SLOPE)


class EncoderBlock(nn.Module):
  """base_function.EncoderBlock: IN, LReLU, conv 4x4 stride 2, IN, LReLU, conv 3x3 (halves H, W)."""
  features: int
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    x = Conv(self.features, 4, stride=2, padding=1, name="conv1", **conv)(
        leaky_relu(_norm(self.dtype, "norm1")(x)))
    return Conv(self.features, 3, padding=1, name="conv2", **conv)(
        leaky_relu(_norm(self.dtype, "norm2")(x)))


class Encoder(nn.Module):
  """generator.PoseSourceNet: `num_blocks` EncoderBlocks; features of every block, deepest first."""
  num_blocks: int
  base_features: int
  max_features: int
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x) -> list[jax.Array]:
    outputs = []
    for i in range(self.num_blocks):
      features = self.base_features * min(2 ** i, self.max_features // self.base_features)
      x = EncoderBlock(features, self.orthogonal_init, self.dtype, name=f"block{i}")(x)
      outputs.append(x)
    return outputs[::-1]


class ResBlock(nn.Module):
  """base_function.ResBlock: IN, LReLU, conv3x3 (in -> in), IN, LReLU, conv3x3 (in -> out), plus
  the input, or a 1x1 conv of it when in != out or `learnable_shortcut`."""
  features: int
  learnable_shortcut: bool = False
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    hidden = x.shape[-1]  # the code's hidden_nc defaults to input_nc
    y = Conv(hidden, 3, padding=1, name="conv1", **conv)(leaky_relu(_norm(self.dtype, "norm1")(x)))
    y = Conv(self.features, 3, padding=1, name="conv2", **conv)(
        leaky_relu(_norm(self.dtype, "norm2")(y)))
    if self.learnable_shortcut or x.shape[-1] != self.features:
      x = Conv(self.features, 1, name="shortcut", **conv)(x)
    return y + x


class DMM(nn.Module):
  """Deformable motion modulation (Eqs. 2-4; ModulatedDCN.py `ModulatedDCN2dBLKv2`).

  offsets and mask come from the decoder feature and the propagated state: h = ReLU(conv3x3(
  cat(x, state))), offsets = conv3x3(h) (2 * 9, torchvision's (dy, dx) per tap, pixels),
  mask = 2 sigmoid(conv3x3(h)) in (0, 2); the *state* is sampled by a modulated, demodulated
  deformable 3x3 convolution with the reference style; + bias; FusedLeakyReLU. The code
  zero-initialises the offset and mask convs and then re-initialises them orthogonally (0.02)
  with everything else, so with `orthogonal_init` they start small but not zero.
  """
  features: int
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, state, style, decoder_feature):
    conv = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    hidden = nn.relu(Conv(self.features, 3, padding=1, name="flow_conv", **conv)(
        jnp.concatenate([decoder_feature, state], axis=-1)))
    offsets = Conv(2 * 9, 3, padding=1, name="offset_conv", **conv)(hidden)
    mask = 2.0 * jax.nn.sigmoid(Conv(9, 3, padding=1, name="mask_conv", **conv)(hidden))
    in_channels = state.shape[-1]
    weight = self.param("weight", nn.initializers.normal(1.0),
                        (3, 3, in_channels, self.features), jnp.float32)
    weight = weight / jnp.sqrt(in_channels * 9.0)
    s = stylegan.EqualLinear(in_channels, bias_init=1.0, name="modulation")(
        style.astype(jnp.float32))
    y = deformable.modulated_deform_conv(
        state.astype(jnp.float32), offsets.astype(jnp.float32), mask.astype(jnp.float32),
        weight, s, demodulate=True, padding=1).astype(self.dtype)
    y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return stylegan.FusedLeakyReLU(dtype=self.dtype, name="activate")(y)


class Generator(nn.Module):
  """The networks of `DanceGenerator`; one step of each recurrence per method (see the module
  docstring). `__call__` runs every part once (for init)."""
  base_features: int = 64
  max_features: int = 512
  style_blocks: int = 6  # layers + 3 in the code
  encoder_blocks: int = 3  # layers
  use_dmm: bool = True
  orthogonal_init: bool = True
  dtype: Dtype = jnp.float32

  def setup(self):
    base, top = self.base_features, self.max_features
    common = dict(orthogonal_init=self.orthogonal_init, dtype=self.dtype)
    self.style_encoder = Encoder(self.style_blocks, base, top, **common)
    self.warp_encoder = Encoder(self.encoder_blocks, base, top, **common)
    self.structure_encoder = Encoder(self.encoder_blocks, base, top, **common)
    deep = base * min(2 ** (self.encoder_blocks - 1), top // base)  # 256 in the code
    self.structure_merge = ResBlock(deep, **common)
    self.structure_refine = ResBlock(deep, learnable_shortcut=True, **common)
    coarse, fine = 2 * base, base  # the R/4 and R/2 widths (128 and 64 in the code)
    self.forward_coarse = ResBlock(coarse, **common)
    self.forward_fine = ResBlock(fine, **common)
    self.backward_coarse = ResBlock(coarse, **common)
    self.backward_fine = ResBlock(fine, **common)
    styled = dict(dtype=self.dtype)
    self.up1 = stylegan.StyledConv(coarse, 3, upsample=True, **styled)
    self.direct1 = stylegan.StyledConv(coarse, 3, demodulate=False, **styled)
    self.up2 = stylegan.StyledConv(fine, 3, upsample=True, **styled)
    self.direct2 = stylegan.StyledConv(fine, 3, demodulate=False, **styled)
    self.up3 = stylegan.StyledConv(fine, 3, upsample=True, **styled)
    self.direct3 = stylegan.StyledConv(fine, 3, demodulate=False, **styled)
    self.to_rgb = stylegan.ToRGB(3, dtype=self.dtype)
    if self.use_dmm:
      self.forward_dmm1, self.backward_dmm1 = DMM(coarse, **common), DMM(coarse, **common)
      self.forward_dmm2, self.backward_dmm2 = DMM(fine, **common), DMM(fine, **common)
    else:  # "w/o DMM": a plain modulated conv of the propagated state
      self.forward_dmm1 = stylegan.StyledConv(coarse, 3, **styled)
      self.backward_dmm1 = stylegan.StyledConv(coarse, 3, **styled)
      self.forward_dmm2 = stylegan.StyledConv(fine, 3, **styled)
      self.backward_dmm2 = stylegan.StyledConv(fine, 3, **styled)

  def style(self, reference):
    """(B, H, W, 3) -> (B, style_dim): global average of the deepest style-encoder features."""
    return jnp.mean(self.style_encoder(reference)[0].astype(jnp.float32), axis=(1, 2))

  def warp_features(self, warped_reference):
    """The warped reference's features the propagation reads: (R/4 coarse, R/2 fine)."""
    features = self.warp_encoder(warped_reference)
    return features[-2], features[-1]

  def propagate_forward(self, features, state):
    """One forward step (Eq. 6): {coarse, fine} states from the frame's warp features."""
    return (self.forward_coarse(jnp.concatenate([features[0], state[0]], -1)),
            self.forward_fine(jnp.concatenate([features[1], state[1]], -1)))

  def propagate_backward(self, features, state):
    """One backward step (Eq. 7)."""
    return (self.backward_coarse(jnp.concatenate([features[0], state[0]], -1)),
            self.backward_fine(jnp.concatenate([features[1], state[1]], -1)))

  def structure(self, skeleton, previous_frame):
    """The structural encoder's deepest features of cat(skeleton, previous output) (R/8)."""
    return self.structure_encoder(jnp.concatenate(
        [skeleton.astype(self.dtype), previous_frame.astype(self.dtype)], -1))[0]

  def structural_flow(self, previous_state, structure):
    """The recurrent structural flow: ResBlock(ResBlock(cat(previous state, u_t)))."""
    return self.structure_refine(self.structure_merge(
        jnp.concatenate([previous_state, structure], -1)))

  def decode(self, x, style, forward_state, backward_state):
    """The decoder of one frame: (B, R/8, R/8, C) and the states -> image (B, R, R, 3) in
    [-1, 1]."""
    x = self.up1(x, style)
    x = (self.direct1(x, style) + self._modulate(self.forward_dmm1, forward_state[0], style, x)
         + self._modulate(self.backward_dmm1, backward_state[0], style, x))
    x = self.up2(x, style)
    x = (self.direct2(x, style) + self._modulate(self.forward_dmm2, forward_state[1], style, x)
         + self._modulate(self.backward_dmm2, backward_state[1], style, x))
    x = self.direct3(self.up3(x, style), style)
    return jnp.tanh(self.to_rgb(x, style).astype(jnp.float32))

  def _modulate(self, layer, state, style, decoder_feature):
    # The DMM sees the decoder feature it corrects; the ablation's StyledConv only the state.
    return layer(state, style, decoder_feature) if self.use_dmm else layer(state, style)

  def __call__(self, reference, skeleton, warped_reference):
    """Every part once (init): one frame with the reference as the previous output."""
    style = self.style(reference)
    features = self.warp_features(warped_reference)
    forward = self.propagate_forward(features, features)
    backward = self.propagate_backward(features, features)
    structure = self.structure(skeleton, reference)
    x = self.structural_flow(structure, structure)
    return self.decode(x, style, forward, backward)
