"""D2G-Net's networks ("Robust Pose Transfer with Dynamic Details using Neural Video Rendering",
Sec. 3), as the official PyTorch code builds them: SunYangtian/Neural-Human-Video-Rendering,
models/networks.py (`MultiHeadGeneraotr`, `ResnetBlock`, `FgFeature2RGB`,
`MultiscaleDiscriminator`, `NLayerDiscriminator`, `weights_init`), models/pix2pixHD_Avatar.py and
util/util.py (`texture2image`).

Per frame (images NHWC in [-1, 1]; P foreground parts, class 0 = background):
  TransG      pose label -> UV (B, H, W, P, 2) in [-1, 1] and part logits (B, H, W, P + 1)
  sampling    I_fg^ht = sum_{i=1..P} P_i * phi(T_i, C_i)                                (Eq. 1)
  static      I~_fg = RGB channels of I_fg^ht, * 2 - 1
  translation I_fg = D2G(I_fg^ht [, I_pose])                                           (Eq. 2)
  composite   I_syn = I_fg (1 - P_0) + BG P_0, I~_syn = I~_fg (1 - P_0) + BG P_0      (Eqs. 3-4)

Convolutions follow PyTorch: explicit zero or reflection padding, a bias, weights N(0, 0.02) where
the code applies `weights_init` (TransG, the discriminator) and PyTorch's default
U(+-1/sqrt(fan_in)) where it does not (FgFeature2RGB, every bias). Instance norm has no affine
parameters (pix2pixHD's norm='instance'). Kernels are stored as (kh, kw, in, out), which is a
torch Conv2d weight transposed (2, 3, 1, 0) and a torch ConvTranspose2d weight transposed
(2, 3, 0, 1).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from internet_jax import geometry

Dtype = Any
LEAKY_SLOPE = 0.2  # NLayerDiscriminator's LeakyReLU


def weights_init(key, shape, dtype=jnp.float32):
  """pix2pixHD `weights_init` for conv weights: N(0, 0.02)."""
  return 0.02 * jax.random.normal(key, shape, dtype)


def _torch_uniform(fan_in: int):
  """PyTorch's default conv init for weight and bias alike: U(+-1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def instance_norm(dtype: Dtype, name: str | None = None) -> nn.Module:
  """torch InstanceNorm2d(affine=False): per example and channel, biased variance, eps 1e-5."""
  return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype,
                         param_dtype=jnp.float32, name=name)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  """torch ReflectionPad2d(pad) on NHWC (mirror without repeating the edge)."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class Conv2d(nn.Module):
  """torch Conv2d: k x k, `stride`, `padding` zeros on each side, bias.

  `pix2pix_init` draws the weight from N(0, 0.02) (`weights_init`); otherwise both weight and
  bias take PyTorch's default. The bias always keeps PyTorch's default (`weights_init` leaves it).
  """
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  pix2pix_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    fan_in = in_features * self.kernel ** 2
    shape = (self.kernel, self.kernel, in_features, self.features)
    kernel = self.param("kernel", weights_init if self.pix2pix_init else _torch_uniform(fan_in),
                        shape)
    bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), (self.stride, self.stride),
        [(self.padding, self.padding)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class ConvTranspose2d(nn.Module):
  """torch ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1): exactly doubles H and W.

  By definition each input pixel (i, j) adds x[i, j] @ kernel[a, b] at output (2i + a - 1,
  2j + b - 1), and the output keeps rows and columns 0 .. 2H - 1. As a correlation this is the
  input dilated by 2, padded (k - 1 - p, k - 1 - p + output_padding) = (1, 2), with the kernel
  flipped in both spatial axes. PyTorch's default init takes fan_in from the weight's second axis
  (the output channels) for a transposed conv.
  """
  features: int
  kernel: int = 3
  pix2pix_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    stride, padding, output_padding = 2, 1, 1
    fan_in = self.features * self.kernel ** 2
    shape = (self.kernel, self.kernel, x.shape[-1], self.features)
    kernel = self.param("kernel", weights_init if self.pix2pix_init else _torch_uniform(fan_in),
                        shape)
    bias = self.param("bias", _torch_uniform(fan_in), (self.features,))
    low = self.kernel - 1 - padding
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel[::-1, ::-1].astype(self.dtype), (1, 1),
        [(low, low + output_padding)] * 2, lhs_dilation=(stride, stride),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias.astype(self.dtype)


class ResnetBlock(nn.Module):
  """pix2pixHD ResnetBlock (padding_type='reflect'): x + IN(conv3(pad(ReLU(IN(conv3(pad(x)))))))."""
  pix2pix_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    features = x.shape[-1]
    conv = dict(pix2pix_init=self.pix2pix_init, dtype=self.dtype)
    y = Conv2d(features, 3, name="conv1", **conv)(reflect_pad(x, 1))
    y = nn.relu(instance_norm(self.dtype, "norm1")(y))
    y = Conv2d(features, 3, name="conv2", **conv)(reflect_pad(y, 1))
    return x + instance_norm(self.dtype, "norm2")(y)


class Trunk(nn.Module):
  """The pix2pixHD GlobalGenerator body shared by TransG and FgFeature2RGB, without its output
  layer: ReflectionPad3 + conv7 + IN + ReLU; `num_downsamples` x (conv3 stride 2 padding 1 + IN +
  ReLU) doubling the width up to `max_features`; `num_blocks` ResnetBlocks; `num_downsamples` x
  (ConvTranspose2d + IN + ReLU) back through the same widths. Output (B, H, W, base_features).
  H and W must be divisible by 2^num_downsamples.
  """
  base_features: int
  max_features: int
  num_downsamples: int
  num_blocks: int
  pix2pix_init: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    height, width = x.shape[1:3]
    factor = 2 ** self.num_downsamples
    if height % factor or width % factor:
      raise ValueError(f"{type(self).__name__}: input {height}x{width} is not divisible by "
                       f"2^num_downsamples={factor}")
    conv = dict(pix2pix_init=self.pix2pix_init, dtype=self.dtype)
    width_at = lambda level: min(self.base_features * 2 ** level, self.max_features)  # noqa: E731
    x = Conv2d(width_at(0), 7, name="stem", **conv)(reflect_pad(x.astype(self.dtype), 3))
    x = nn.relu(instance_norm(self.dtype, "stem_norm")(x))
    for level in range(1, self.num_downsamples + 1):
      x = Conv2d(width_at(level), 3, stride=2, padding=1, name=f"down{level}", **conv)(x)
      x = nn.relu(instance_norm(self.dtype, f"down{level}_norm")(x))
    for i in range(self.num_blocks):
      x = ResnetBlock(name=f"block{i}", **conv)(x)
    for level in reversed(range(self.num_downsamples)):
      x = ConvTranspose2d(width_at(level), name=f"up{level}", **conv)(x)
      x = nn.relu(instance_norm(self.dtype, f"up{level}_norm")(x))
    return x


class TransG(nn.Module):
  """The UV generator (`MultiHeadGeneraotr` built by `define_G(..., 'multihead')`): the pix2pixHD
  trunk, then two ReflectionPad3 + conv7 heads: UV (2P channels, tanh) and part logits (P + 1,
  class 0 = background, no activation).

  Returns uv (B, H, W, P, 2) with the last axis (U, V) in [-1, 1], and logits (B, H, W, P + 1),
  both float32. The code's defaults: 4 downsamplings (64 -> 1024 channels) and 9 blocks.
  """
  num_parts: int
  base_features: int = 64
  max_features: int = 1024
  num_downsamples: int = 4
  num_blocks: int = 9
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, pose_label: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = Trunk(self.base_features, self.max_features, self.num_downsamples, self.num_blocks,
              dtype=self.dtype, name="trunk")(pose_label)
    x = reflect_pad(x, 3)
    uv = jnp.tanh(Conv2d(2 * self.num_parts, 7, dtype=self.dtype, name="uv_head")(x))
    logits = Conv2d(self.num_parts + 1, 7, dtype=self.dtype, name="part_head")(x)
    # Channel 2p + c is part p's coordinate c, as the code slices UV[:, 2p:2p + 2].
    uv = uv.reshape(uv.shape[:3] + (self.num_parts, 2))
    return uv.astype(jnp.float32), logits.astype(jnp.float32)


class TranslationNet(nn.Module):
  """D2G-Net's translation network (`FgFeature2RGB`): the pix2pixHD trunk (defaults: widths
  64 -> 128 -> 256 -> 512 -> 512 and back, 2 ResnetBlocks), then ReflectionPad3 + conv7 -> 3 +
  tanh. Takes any channel count: the hybrid-texture image, with the pose label concatenated by
  the caller for the pose-conditioned variant (Eq. 2). PyTorch's default init, since the code
  builds it without `define_G`. Output (B, H, W, 3) float32 in [-1, 1].
  """
  base_features: int = 64
  max_features: int = 512
  num_downsamples: int = 4
  num_blocks: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = Trunk(self.base_features, self.max_features, self.num_downsamples, self.num_blocks,
              pix2pix_init=False, dtype=self.dtype, name="trunk")(x)
    x = Conv2d(3, 7, pix2pix_init=False, dtype=self.dtype, name="to_rgb")(reflect_pad(x, 3))
    return jnp.tanh(x).astype(jnp.float32)


def _sample_part(tile: jax.Array, uv: jax.Array, prob: jax.Array) -> jax.Array:
  """One part's term of Eq. 1: prob (B, H, W) * bilinear(tile (S, S, C), uv (B, H, W, 2))."""
  return prob[..., None] * geometry.warp(tile, uv, padding_mode="zeros")


def sample_texture(texture: jax.Array, uv: jax.Array, part_probs: jax.Array) -> jax.Array:
  """The hybrid-texture image I_fg^ht = sum_p P_p * phi(T_p, C_p) (Eq. 1; util/util.py
  `texture2image`).

  Args:
    texture: (P, S, S, C), one square tile per foreground part.
    uv: (B, H, W, P, 2) in [-1, 1]; U (x) indexes the tile's columns, V (y) its rows, with
      torch-1.1 `grid_sample` semantics: align corners (pixel (g + 1) / 2 * (S - 1)), zeros
      outside the tile.
    part_probs: (B, H, W, P), the foreground classes' softmax probabilities (softmax[..., 1:]);
      the background class contributes nothing.
  Returns:
    (B, H, W, C) in the texture's dtype.

  Every part is sampled at every pixel, so the parts are a `lax.scan` accumulating the sum, and
  each part's sampling is rematerialised: the backward pass keeps only the scan's inputs, not P
  sampled (B, H, W, C) images.
  """
  num_parts = texture.shape[0]
  if uv.shape[-2:] != (num_parts, 2) or part_probs.shape != uv.shape[:-1]:
    raise ValueError(f"sample_texture: texture {texture.shape}, uv {uv.shape} and part_probs "
                     f"{part_probs.shape} disagree (expected uv (B, H, W, {num_parts}, 2) and "
                     f"part_probs (B, H, W, {num_parts}))")
  part = jax.checkpoint(_sample_part)
  dtype = texture.dtype

  def step(total, inputs):
    return total + part(*inputs), None

  initial = jnp.zeros(uv.shape[:3] + texture.shape[-1:], dtype)
  total, _ = jax.lax.scan(step, initial, (texture, jnp.moveaxis(uv.astype(dtype), 3, 0),
                                         jnp.moveaxis(part_probs.astype(dtype), 3, 0)))
  return total


def composite(foreground: jax.Array, background: jax.Array,
              background_prob: jax.Array) -> jax.Array:
  """Eqs. 3-4: foreground * (1 - P_0) + background * P_0.

  foreground (B, H, W, C); background (H, W, C) or (B, H, W, C); background_prob P_0 (B, H, W)
  or (B, H, W, 1).
  """
  if background_prob.ndim == foreground.ndim - 1:
    background_prob = background_prob[..., None]
  return foreground * (1.0 - background_prob) + background * background_prob


class D2GGenerator(nn.Module):
  """Everything that renders a frame from its pose label: TransG (`uv_generator`), the hybrid
  texture (`texture`), the translation net (`translation`) and the background (`background`),
  the parameters the code's G optimiser groups (models/pix2pixHD_Avatar.py).

  `texture` is (P, S, S, 3 + F): per part the RGB channels in [0, 1] (initialised 0.5 here; a
  data-dependent initialisation from the unfolded frames replaces it, as `catTextureTensor` does)
  followed by F feature channels initialised 0. `background` is (R, R, 3) in [-1, 1].
  `use_translation` False drops the translation net (the paper's "w/o translation" ablation: the
  output is the static image); `feature_channels` 0 is the "3 channels" ablation;
  `pose_condition` True concatenates the pose label to the texture image at the translation
  net's input (Eq. 2, as the Jittor code does; the paper's Fig. 3 draws it joining at an
  intermediate level), False is PyTorch's FgFeature2RGB (no pose).

  `dtype` is the networks' compute dtype; parameters and every output stay float32, and the
  texture sampling and compositing run in float32 (Eq. 1 sums P bilinear samples).
  """
  num_parts: int
  resolution: int
  texture_size: int
  feature_channels: int = 15
  use_translation: bool = True
  pose_condition: bool = False
  uv_base_features: int = 64
  uv_max_features: int = 1024
  uv_num_downsamples: int = 4
  uv_num_blocks: int = 9
  translation_base_features: int = 64
  translation_max_features: int = 512
  translation_num_downsamples: int = 4
  translation_num_blocks: int = 2
  dtype: Dtype = jnp.float32

  def setup(self):
    self.uv_generator = TransG(self.num_parts, self.uv_base_features, self.uv_max_features,
                               self.uv_num_downsamples, self.uv_num_blocks, self.dtype)
    channels = 3 + self.feature_channels
    size = self.texture_size

    def texture_init(key, shape, dtype=jnp.float32):
      del key
      return jnp.zeros(shape, dtype).at[..., :3].set(0.5)

    self.texture = self.param("texture", texture_init, (self.num_parts, size, size, channels))
    if self.use_translation:
      self.translation = TranslationNet(
          self.translation_base_features, self.translation_max_features,
          self.translation_num_downsamples, self.translation_num_blocks, self.dtype)
    self.background = self.param("background", nn.initializers.zeros,
                                 (self.resolution, self.resolution, 3))

  def __call__(self, pose_label: jax.Array, uv_only: bool = False) -> dict[str, jax.Array]:
    """pose_label (B, R, R, C_pose) -> the dict of module docstring's quantities.

    `uv_only` runs TransG alone (the UV pretraining stage) and returns uv, logits and probs;
    initialise with uv_only False so that every parameter exists.
    """
    if pose_label.shape[1:3] != (self.resolution, self.resolution):
      raise ValueError(f"D2GGenerator: pose label {pose_label.shape} is not "
                       f"(B, {self.resolution}, {self.resolution}, C)")
    uv, logits = self.uv_generator(pose_label)
    probs = jax.nn.softmax(logits, axis=-1)
    out = {"uv": uv, "logits": logits, "probs": probs}
    if uv_only:
      return out
    texture_image = sample_texture(self.texture, uv, probs[..., 1:])
    static_foreground = texture_image[..., :3] * 2.0 - 1.0
    if self.use_translation:
      inputs = texture_image
      if self.pose_condition:
        inputs = jnp.concatenate([texture_image, pose_label.astype(texture_image.dtype)], -1)
      foreground = self.translation(inputs)
    else:
      foreground = static_foreground
    background_prob = probs[..., 0]
    out.update(
        texture_image=texture_image,
        static_foreground=static_foreground,
        foreground=foreground,
        background=self.background,
        output=composite(foreground, self.background, background_prob),
        static_output=composite(static_foreground, self.background, background_prob))
    return out


class NLayerDiscriminator(nn.Module):
  """pix2pixHD NLayerDiscriminator (norm='instance', no sigmoid): conv4 s2 + LReLU 0.2;
  (num_layers - 1) x (conv4 s2 + IN + LReLU), doubling the width up to `max_features`; conv4 s1
  + IN + LReLU (doubled, capped); conv4 s1 -> 1 logit. Every conv pads 2 zeros
  (padw = ceil((4 - 1) / 2)), so each stride-2 conv maps H to H // 2 + 1 and each stride-1 conv
  adds 1.
  """
  num_layers: int = 3
  base_features: int = 64
  max_features: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = dict(padding=2, dtype=self.dtype)
    features = self.base_features
    x = nn.leaky_relu(Conv2d(features, 4, stride=2, name="conv0", **conv)(x), LEAKY_SLOPE)
    for i in range(1, self.num_layers + 1):
      features = min(features * 2, self.max_features)
      stride = 2 if i < self.num_layers else 1
      x = Conv2d(features, 4, stride=stride, name=f"conv{i}", **conv)(x)
      x = nn.leaky_relu(instance_norm(self.dtype, f"norm{i}")(x), LEAKY_SLOPE)
    return Conv2d(1, 4, name="logits", **conv)(x)


def downsample_avg(x: jax.Array) -> jax.Array:
  """torch AvgPool2d(3, stride=2, padding=1, count_include_pad=False): each window's mean over
  its in-bounds elements; H -> (H - 1) // 2 + 1."""
  return nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


class MultiscaleDiscriminator(nn.Module):
  """pix2pixHD MultiscaleDiscriminator: `num_scales` NLayerDiscriminators on concat(pose label,
  image), the input average-pooled (`downsample_avg`) between scales. Returns one float32 logit
  map per scale, full resolution first (`scale0`).
  """
  num_scales: int = 2
  num_layers: int = 3
  base_features: int = 64
  max_features: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, pose_label: jax.Array, image: jax.Array) -> list[jax.Array]:
    x = jnp.concatenate([pose_label.astype(self.dtype), image.astype(self.dtype)], axis=-1)
    logits = []
    for scale in range(self.num_scales):
      if scale:
        x = downsample_avg(x)
      logits.append(NLayerDiscriminator(self.num_layers, self.base_features, self.max_features,
                                        self.dtype, name=f"scale{scale}")(x).astype(jnp.float32))
    return logits
