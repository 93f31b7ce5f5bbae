"""LPIPS, the Learned Perceptual Image Patch Similarity (Zhang et al., CVPR 2018, "The
unreasonable effectiveness of deep features as a perceptual metric", [41] in the INTERnet paper,
Sec. 4.1; BDMM's evaluation uses the AlexNet variant).

A port of the `lpips` package (richzhang/PerceptualSimilarity, lpips/lpips.py, version '0.1',
lpips=True, spatial=False) for per-frame distances between uint8 frames:
  1. frames -> [-1, 1] (x / 127.5 - 1, lpips.im2tensor), then the ScalingLayer
     (x - shift) / scale with shift = (-.030, -.088, -.188), scale = (.458, .448, .450);
  2. five ReLU feature maps of a torchvision backbone (`lpips/pretrained_networks.py`):
     AlexNet relu1..relu5 (`features` 1, 4, 7, 9, 11; torchvision's AlexNet has no LRN) or
     VGG-16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (`features` 3, 8, 15, 22, 29);
  3. per layer: unit-normalise along channels, f / (sqrt(sum_c f^2) + 1e-10), square the
     difference, apply the learned linear head `lin{k}` (a 1x1 conv, 1 output, no bias, weights
     >= 0), average over space;
  4. sum over the five layers.
The distance of identical frames is exactly 0; with non-negative heads it is never negative.

Weights (none can be downloaded here): `create(path)` reads the backbone and the heads from one
.safetensors/.npz file, or from two joined by a comma ("backbone.safetensors,heads.npz"); `.pth`
needs torch. The variant ('alex' or 'vgg') is inferred from `features.0.weight`. Keys:
  backbone, torchvision layout (`net.sliceK.N.*` of a saved lpips.LPIPS and bare `N.*` are
  accepted too): `features.N.weight` (out, in, k, k) and `features.N.bias` (out,) for
    AlexNet N: 0 (64, 3, 11, 11) stride 4 pad 2, 3 (192, 64, 5, 5) pad 2, 6 (384, 192, 3, 3),
      8 (256, 384, 3, 3), 10 (256, 256, 3, 3) (3x3 convs pad 1; 3x3/2 max-pools before 3 and 6);
    VGG-16 N: 0 (64, 3), 2 (64, 64), 5 (128, 64), 7 (128, 128), 10 (256, 128), 12 and 14
      (256, 256), 17 (512, 256), 19, 21, 24, 26, 28 (512, 512), all 3x3 pad 1 (2x2/2 max-pools
      before 5, 10, 17, 24);
  heads, the lpips package's `weights/v0.1/{alex,vgg}.pth` layout: `lin{k}.model.1.weight`
    (1, C_k, 1, 1) for k = 0..4 with C = (64, 192, 384, 256, 256) for AlexNet and
    (64, 128, 256, 512, 512) for VGG-16 (`lins.{k}.model.1.weight` and the no-dropout
    `lin{k}.model.0.weight` are accepted as well).
Other keys (classifier, scaling_layer buffers) are ignored. Convert once, on a machine with torch,
torchvision and `pip install lpips` (one line; `vgg16`/`vgg.pth` for the VGG variant):

  python -c "import os, torch, torchvision, lpips, safetensors.torch as s; sd = {k: v for k, v in
  torchvision.models.alexnet(weights='IMAGENET1K_V1').state_dict().items() if
  k.startswith('features.')}; sd.update(torch.load(os.path.join(os.path.dirname(lpips.__file__),
  'weights/v0.1/alex.pth'), weights_only=True)); s.save_file({k: v.contiguous() for k, v in
  sd.items()}, 'lpips_alex.safetensors')"
"""

from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax.metrics.fid import (PRECISION, WeightReader, as_reader, check_frames,
                                      conv2d, max_pool2d, run_batched)

# lpips.ScalingLayer: the inputs are shifted/scaled towards ImageNet statistics (v0.1).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10  # lpips.normalize_tensor

# (torchvision `features` index, in, out, kernel, stride, padding) of every convolution.
ALEXNET_CONVS = ((0, 3, 64, 11, 4, 2), (3, 64, 192, 5, 1, 2), (6, 192, 384, 3, 1, 1),
                 (8, 384, 256, 3, 1, 1), (10, 256, 256, 3, 1, 1))
VGG16_CONVS = ((0, 3, 64, 3, 1, 1), (2, 64, 64, 3, 1, 1),
               (5, 64, 128, 3, 1, 1), (7, 128, 128, 3, 1, 1),
               (10, 128, 256, 3, 1, 1), (12, 256, 256, 3, 1, 1), (14, 256, 256, 3, 1, 1),
               (17, 256, 512, 3, 1, 1), (19, 512, 512, 3, 1, 1), (21, 512, 512, 3, 1, 1),
               (24, 512, 512, 3, 1, 1), (26, 512, 512, 3, 1, 1), (28, 512, 512, 3, 1, 1))
CONVS = {"alex": ALEXNET_CONVS, "vgg": VGG16_CONVS}
# Max-pools (size, stride) in front of a convolution (torchvision MaxPool2d, floor mode).
POOLS = {"alex": {3: (3, 2), 6: (3, 2)}, "vgg": {5: (2, 2), 10: (2, 2), 17: (2, 2), 24: (2, 2)}}
# Convolutions whose ReLU output is one of the five LPIPS layers (lpips.pretrained_networks).
TAPS = {"alex": (0, 3, 6, 8, 10), "vgg": (2, 7, 14, 21, 28)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

LPIPS_HINT = (
    "pass --lpips_weights=FILE, torchvision AlexNet (or VGG-16) `features.*` plus the lpips "
    "v0.1 heads `lin0..lin4.model.1.weight` in one .safetensors: python -c \"import os, torch, "
    "torchvision, lpips, safetensors.torch as s; sd = {k: v for k, v in torchvision.models."
    "alexnet(weights='IMAGENET1K_V1').state_dict().items() if k.startswith('features.')}; "
    "sd.update(torch.load(os.path.join(os.path.dirname(lpips.__file__), 'weights/v0.1/alex.pth'),"
    " weights_only=True)); s.save_file({k: v.contiguous() for k, v in sd.items()}, "
    "'lpips_alex.safetensors')\"")

_SLICE = re.compile(r"^(?:net\.)?slice\d+\.(\d+\.(?:weight|bias))$")
_BARE = re.compile(r"^(\d+\.(?:weight|bias))$")


def _canonical(key: str) -> str:
  """`net.sliceK.N.w` (a saved lpips.LPIPS) and bare `N.w` -> torchvision's `features.N.w`."""
  match = _SLICE.match(key) or _BARE.match(key)
  return f"features.{match.group(1)}" if match else key


def open_weights(weights_path: Any) -> WeightReader:
  return WeightReader(weights_path, "LPIPS", LPIPS_HINT, strip=_canonical)


def load_lpips_params(weights_path: Any) -> tuple[dict, str]:
  """(params, net) from user weights: params = {"features.N": {"kernel": HWIO, "bias"},
  "lin0".."lin4": (C,)}, net = 'alex' or 'vgg'; `MetricUnavailable` on any problem."""
  reader = as_reader(weights_path, open_weights)
  first = reader.shape("features.0.weight")
  if first is None:
    raise reader.fail("no 'features.0.weight' (the first backbone convolution: (64, 3, 11, 11) "
                      "for AlexNet or (64, 3, 3, 3) for VGG-16)")
  nets = {(64, 3, 11, 11): "alex", (64, 3, 3, 3): "vgg"}
  if first not in nets:
    raise reader.fail(f"'features.0.weight' has shape {first}, expected (64, 3, 11, 11) "
                      "(AlexNet) or (64, 3, 3, 3) (VGG-16)")
  net = nets[first]
  params = {}
  for index, cin, cout, k, _, _ in CONVS[net]:
    weight = reader.take(f"features.{index}.weight", (cout, cin, k, k))
    params[f"features.{index}"] = {
        "kernel": jnp.asarray(weight.transpose(2, 3, 1, 0)),  # torch OIHW -> HWIO
        "bias": jnp.asarray(reader.take(f"features.{index}.bias", (cout,)))}
  for k, channels in enumerate(CHANNELS[net]):
    names = (f"lin{k}.model.1.weight", f"lins.{k}.model.1.weight", f"lin{k}.model.0.weight",
             f"lins.{k}.model.0.weight")
    name = next((n for n in names if reader.has(n)), None)
    if name is None:
      raise reader.fail(f"no LPIPS head 'lin{k}.model.1.weight' (expected shape "
                        f"(1, {channels}, 1, 1), the lpips v0.1 {net}.pth layout)")
    head = reader.take(name, (1, channels, 1, 1)).reshape(channels)
    if np.any(head < 0):
      # lpips clamps the heads at 0 while training; negative ones are not LPIPS weights.
      raise reader.fail(f"'{name}' has negative weights (min {head.min():.3g}); LPIPS heads "
                        "are non-negative")
    params[f"lin{k}"] = jnp.asarray(head)
  return params, net


def backbone(params: dict, net: str, x: jax.Array) -> list[jax.Array]:
  """The five LPIPS feature maps (NHWC, after ReLU) of scaled inputs x (N, H, W, 3)."""
  taps = []
  for index, _, _, _, stride, pad in CONVS[net]:
    if index in POOLS[net]:
      x = max_pool2d(x, *POOLS[net][index])
    p = params[f"features.{index}"]
    x = jax.nn.relu(conv2d(x, p["kernel"], stride, ((pad, pad), (pad, pad))) + p["bias"])
    if index in TAPS[net]:
      taps.append(x)
  return taps


def normalize_channels(features: jax.Array) -> jax.Array:
  """lpips.normalize_tensor: unit length along channels (eps added to the norm)."""
  norm = jnp.sqrt(jnp.sum(features ** 2, axis=-1, keepdims=True))
  return features / (norm + NORM_EPS)


def scale_inputs(frames: jax.Array) -> jax.Array:
  """uint8 frames -> [-1, 1] -> ScalingLayer."""
  x = frames.astype(jnp.float32) / 127.5 - 1.0
  return (x - jnp.asarray(SHIFT, jnp.float32)) / jnp.asarray(SCALE, jnp.float32)


def lpips_per_layer(params: dict, net: str, frames_a: jax.Array, frames_b: jax.Array
                    ) -> jax.Array:
  """(N, 5) per-layer LPIPS terms of uint8 frame pairs (N, H, W, 3); their sum is LPIPS."""
  features_a = backbone(params, net, scale_inputs(frames_a))  # two passes, as lpips.forward
  features_b = backbone(params, net, scale_inputs(frames_b))
  terms = []
  for k, (fa, fb) in enumerate(zip(features_a, features_b)):
    diff = (normalize_channels(fa) - normalize_channels(fb)) ** 2
    # lin{k}: a 1x1 convolution C -> 1 without bias, then lpips.spatial_average.
    terms.append(jnp.mean(jnp.einsum("nhwc,c->nhw", diff, params[f"lin{k}"],
                                     precision=PRECISION), axis=(1, 2)))
  terms = jnp.stack(terms, axis=-1)
  # d(x, x) = 0 exactly: XLA may vectorise the channel norms of the two inputs differently
  # (1-ulp differences, ~1e-16 in the distance), so identical frames are zeroed explicitly.
  same = jnp.all(frames_a == frames_b, axis=(1, 2, 3))
  return jnp.where(same[:, None], 0.0, terms)


class LPIPS:
  """`metric(frames_a, frames_b) -> (T,)` per-frame LPIPS of uint8 (T, H, W, 3) frames."""

  def __init__(self, params: dict, net: str, batch_size: int = 8):
    self.params, self.net, self.batch_size = params, net, batch_size
    self._per_layer = jax.jit(lpips_per_layer, static_argnums=1)

  def per_layer(self, frames_a: Any, frames_b: Any) -> np.ndarray:
    """(T, 5) float32 per-layer terms (lpips retPerLayer)."""
    a = check_frames(frames_a, "LPIPS frames_a")
    b = check_frames(frames_b, "LPIPS frames_b")
    if a.shape != b.shape:
      raise ValueError(f"LPIPS: frames_a {a.shape} and frames_b {b.shape} differ in shape")
    pairs = np.stack([a, b], axis=1)  # batch pairs together
    return run_batched(
        lambda chunk: self._per_layer(self.params, self.net, chunk[:, 0], chunk[:, 1]),
        pairs, self.batch_size)

  def __call__(self, frames_a: Any, frames_b: Any) -> np.ndarray:
    return self.per_layer(frames_a, frames_b).sum(axis=-1)


def create(weights_path: Any, batch_size: int = 8) -> LPIPS:
  """LPIPS from user-supplied weights (layout in the module docstring); `MetricUnavailable`
  names the file and what is wrong when they are missing or do not fit."""
  params, net = load_lpips_params(weights_path)
  return LPIPS(params, net, batch_size)
