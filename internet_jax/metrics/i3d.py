"""I3D features for FVD and Act-Recog-L1.

The network is Inception-v1 I3D (Carreira & Zisserman, CVPR 2017, "Quo vadis, action
recognition? A new model and the Kinetics dataset", [4] in the INTERnet paper), ported from
piergiaj/pytorch-i3d (`pytorch_i3d.py`, `InceptionI3d`, itself a port of deepmind/kinetics-i3d):
  * Unit3D = Conv3d (no bias) with TF 'SAME' padding computed from the input size
    (pad = max(k - s, 0) if size % s == 0 else max(k - size % s, 0), front = pad // 2) ->
    BatchNorm3d(eps=0.001, running statistics) -> ReLU;
  * MaxPool3dSamePadding: the same zero padding, then a VALID max-pool (inputs are >= 0 after
    ReLU, so the zeros never win over TF's -inf padding);
  * Conv3d_1a_7x7 (7^3, stride 2) - MaxPool3d_2a (1x3x3 /1,2,2) - Conv3d_2b_1x1 - Conv3d_2c_3x3 -
    MaxPool3d_3a (1x3x3 /1,2,2) - Mixed_3b, 3c - MaxPool3d_4a (3^3 /2) - Mixed_4b..4f -
    MaxPool3d_5a (2^3 /2) - Mixed_5b, 5c - AvgPool3d(2x7x7, stride 1, VALID) - dropout (off) -
    logits = 1x1x1 Conv3d with bias, no BN, no ReLU.
  Each Mixed block concatenates b0 (1^3) | b1a (1^3) - b1b (3^3) | b2a (1^3) - b2b (3^3) |
  max-pool 3^3 /1 - b3b (1^3).

Features (`I3D.embed` returns both from one pass):
  * `features(video)` -> (400,) Kinetics-400 logits averaged over time: the embedding of the FVD
    reference (Unterthiner et al. 2018, google-research/frechet_video_distance:
    `RGB/inception_i3d/Mean:0` of tfhub i3d-kinetics-400), with its preprocessing: uint8
    frames resized to 224x224 by TF1 `tf.image.resize_bilinear` (align_corners=False, no
    half-pixel centres), then 2 x / 255 - 1.
  * `pool(video)` -> (1024,) the AvgPool3d output (piergiaj's `extract_features`) averaged over
    time: the action-recognition *feature* that `act_recog_l1` compares (see below).
A video needs >= 9 frames (the 2-frame temporal average pool needs 2 steps after the /8
temporal downsampling); the FVD reference uses 16-frame clips.

`fvd(features_real, features_fake)` is the Fréchet distance between Gaussians fitted to the
(N, 400) logits (fid.frechet_distance, same formula as the reference's tfgan call).

`act_recog_l1(features_real, features_fake)` is INTERnet's Act-Recog-L1 ("Intrinsic Temporal Regularization for High-resolution Human Video Synthesis", Sec. 4.1:
"the feature distance between generated and real videos via a pretrained action recognition
model [4]"). The paper does not say which layer; we use the 1024-d pool features (`pool`), the
network's video *feature* before the Kinetics classifier (the one pytorch-i3d's
`extract_features` exports), and the L1 *norm* of their difference (sum over the 1024
dimensions) averaged over the real/generated video pairs: per-dimension means would be O(0.1),
while the paper reports 72-139, which fits a sum over a ~1000-d post-ReLU feature.

Weights: `create(path)` reads piergiaj's state dict (`models/rgb_imagenet.pt`, Kinetics-400
RGB) from .safetensors/.npz (or the .pt itself with torch installed). Convert it once (one line):

  python -c "import torch, safetensors.torch as s; s.save_file({k: v.contiguous() for k, v in
  torch.load('rgb_imagenet.pt', weights_only=True).items()}, 'rgb_imagenet.safetensors')"

Keys: for every Unit3D NAME in `UNITS` (Conv3d_1a_7x7, Conv3d_2b_1x1, Conv3d_2c_3x3 and
Mixed_XY.{b0, b1a, b1b, b2a, b2b, b3b}): `NAME.conv3d.weight` (out, in, kt, kh, kw) and
`NAME.bn.{weight, bias, running_mean, running_var}` (out,); plus `logits.conv3d.weight`
(400, 1024, 1, 1, 1) and `logits.conv3d.bias` (400,). A `module.` prefix is stripped and
`*.num_batches_tracked` is ignored.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax.metrics.fid import (PRECISION, WeightReader, as_reader, check_frames,
                                      convert_command, frechet_distance, read_batch_norm,
                                      resize_bilinear, run_batched)

BN_EPS = 0.001  # pytorch-i3d Unit3D: BatchNorm3d(eps=0.001)
SIZE = 224  # FVD reference target resolution
NUM_CLASSES = 400  # Kinetics-400
MIN_FRAMES = 9

# The Mixed blocks: (name, in, (b0, b1a, b1b, b2a, b2b, b3b) output channels).
MIXED = (("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
         ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
         ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
         ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
         ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
         ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
         ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
         ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
         ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)))


def _mixed_units(name: str, cin: int, out: Sequence[int]) -> list:
  o0, o1a, o1b, o2a, o2b, o3 = out
  return [(f"{name}.b0", cin, o0, 1, 1), (f"{name}.b1a", cin, o1a, 1, 1),
          (f"{name}.b1b", o1a, o1b, 3, 1), (f"{name}.b2a", cin, o2a, 1, 1),
          (f"{name}.b2b", o2a, o2b, 3, 1), (f"{name}.b3b", cin, o3, 1, 1)]


# Every Unit3D with batch norm: (name, in, out, cubic kernel size, stride in t, h, w).
UNITS: tuple[tuple[str, int, int, int, int], ...] = tuple(
    [("Conv3d_1a_7x7", 3, 64, 7, 2), ("Conv3d_2b_1x1", 64, 64, 1, 1),
     ("Conv3d_2c_3x3", 64, 192, 3, 1)]
    + [unit for name, cin, out in MIXED for unit in _mixed_units(name, cin, out)])
_UNITS = {unit[0]: unit for unit in UNITS}
POOL_CHANNELS = 1024  # 384 + 384 + 128 + 128 out of Mixed_5c

I3D_HINT = ("pass --i3d_weights=FILE, piergiaj/pytorch-i3d models/rgb_imagenet.pt as "
            ".safetensors: " + convert_command("rgb_imagenet.pt"))


def open_weights(weights_path: Any) -> WeightReader:
  return WeightReader(weights_path, "I3D", I3D_HINT)


def load_i3d_params(weights_path: Any) -> dict:
  """{unit: {"kernel": (kt, kh, kw, in, out), "gamma", "beta", "mean", "var"}, "logits":
  {"kernel": (1024, 400), "bias": (400,)}} from a pytorch-i3d state dict."""
  reader = as_reader(weights_path, open_weights)
  params = {}
  for name, cin, cout, k, _ in UNITS:
    weight = reader.take(f"{name}.conv3d.weight", (cout, cin, k, k, k))
    entry = {"kernel": jnp.asarray(weight.transpose(2, 3, 4, 1, 0))}  # OIDHW -> DHWIO
    entry.update(read_batch_norm(reader, f"{name}.bn", cout))
    params[name] = entry
  weight = reader.take("logits.conv3d.weight", (NUM_CLASSES, POOL_CHANNELS, 1, 1, 1))
  params["logits"] = {"kernel": jnp.asarray(weight.reshape(NUM_CLASSES, POOL_CHANNELS).T),
                      "bias": jnp.asarray(reader.take("logits.conv3d.bias", (NUM_CLASSES,)))}
  return params


def same_pads(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
              ) -> list[tuple[int, int]]:
  """pytorch-i3d's compute_pad per dimension: TF 'SAME' (front = total // 2)."""
  pads = []
  for size, k, s in zip(sizes, kernel, stride):
    total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
    pads.append((total // 2, total - total // 2))
  return pads


def unit3d(params: dict, name: str, x: jax.Array) -> jax.Array:
  """Unit3D on NDHWC: SAME-padded Conv3d (no bias) -> BatchNorm3d(eps=1e-3) -> ReLU."""
  _, _, _, k, s = _UNITS[name]
  p = params[name]
  y = jax.lax.conv_general_dilated(
      x, p["kernel"], window_strides=(s, s, s), padding=same_pads(x.shape[1:4], (k, k, k),
                                                                  (s, s, s)),
      dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), precision=PRECISION)
  y = (y - p["mean"]) / jnp.sqrt(p["var"] + BN_EPS) * p["gamma"] + p["beta"]
  return jax.nn.relu(y)


def max_pool3d_same(x: jax.Array, kernel: Sequence[int], stride: Sequence[int]) -> jax.Array:
  """MaxPool3dSamePadding: zero padding (F.pad) to TF 'SAME', then a VALID max-pool."""
  pads = same_pads(x.shape[1:4], kernel, stride)
  x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)])
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *kernel, 1), (1, *stride, 1),
                               "VALID")


def inception_module(params: dict, name: str, x: jax.Array) -> jax.Array:
  """pytorch-i3d InceptionModule: b0 | b1a-b1b | b2a-b2b | maxpool 3^3/1 - b3b."""
  u = lambda branch, h: unit3d(params, f"{name}.{branch}", h)  # noqa: E731
  return jnp.concatenate([u("b0", x), u("b1b", u("b1a", x)), u("b2b", u("b2a", x)),
                          u("b3b", max_pool3d_same(x, (3, 3, 3), (1, 1, 1)))], axis=-1)


def i3d_trunk(params: dict, x: jax.Array) -> jax.Array:
  """(N, T, H, W, 3) in [-1, 1] -> (N, T', H', W', 1024) Mixed_5c output."""
  x = unit3d(params, "Conv3d_1a_7x7", x)
  x = max_pool3d_same(x, (1, 3, 3), (1, 2, 2))
  x = unit3d(params, "Conv3d_2c_3x3", unit3d(params, "Conv3d_2b_1x1", x))
  x = max_pool3d_same(x, (1, 3, 3), (1, 2, 2))
  for name, _, _ in MIXED:
    if name == "Mixed_4b":
      x = max_pool3d_same(x, (3, 3, 3), (2, 2, 2))  # MaxPool3d_4a_3x3
    if name == "Mixed_5b":
      x = max_pool3d_same(x, (2, 2, 2), (2, 2, 2))  # MaxPool3d_5a_2x2
    x = inception_module(params, name, x)
  return x


def i3d_heads(params: dict, trunk: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(logits (N, 400), pool (N, 1024)) from the Mixed_5c output, both averaged over time."""
  # AvgPool3d([2, 7, 7], stride 1), VALID (no padding, floor mode).
  pooled = jax.lax.reduce_window(trunk, 0.0, jax.lax.add, (1, 2, 7, 7, 1), (1, 1, 1, 1, 1),
                                 "VALID") / 98.0
  logits = jnp.einsum("nthwc,ck->nthwk", pooled, params["logits"]["kernel"],
                      precision=PRECISION) + params["logits"]["bias"]
  # piergiaj squeezes the 1x1 space; the FVD reference averages the logits over time.
  return jnp.mean(logits, axis=(1, 2, 3)), jnp.mean(pooled, axis=(1, 2, 3))


def _embed(params: dict, videos: jax.Array) -> tuple[jax.Array, jax.Array]:
  """uint8 (N, T, H, W, 3) -> (logits (N, 400), pool (N, 1024)), the FVD preprocessing first."""
  x = resize_bilinear(videos.astype(jnp.float32), (SIZE, SIZE), half_pixel=False)
  x = 2.0 * x / 255.0 - 1.0
  return i3d_heads(params, i3d_trunk(params, x))


def min_frames_ok(num_frames: int) -> bool:
  """Whether the temporal axis survives the /8 downsampling with >= 2 steps for the pool."""
  t = num_frames
  for _ in range(3):  # Conv3d_1a, MaxPool3d_4a, MaxPool3d_5a: SAME, stride 2
    t = math.ceil(t / 2)
  return t >= 2


class I3D:
  """`.features(video) -> (400,)` time-averaged Kinetics logits (FVD), `.pool(video) -> (1024,)`
  time-averaged pool features (Act-Recog-L1), `.embed(video)` -> both in one pass. A video is
  uint8 (T, H, W, 3); (N, T, H, W, 3) gives (N, 400) / (N, 1024)."""

  def __init__(self, params: dict, batch_size: int = 2):
    self.params, self.batch_size = params, batch_size
    self._embed = jax.jit(_embed)

  def embed(self, video: Any) -> tuple[np.ndarray, np.ndarray]:
    video = np.asarray(video)
    single = video.ndim == 4
    videos = check_frames(video[None] if single else video, "I3D videos", ndim=5)
    if not min_frames_ok(videos.shape[1]):
      raise ValueError(f"I3D: a video needs at least {MIN_FRAMES} frames, got {videos.shape[1]}")
    both = run_batched(
        lambda chunk: jnp.concatenate(self._embed(self.params, chunk), axis=-1), videos,
        self.batch_size)
    logits, pool = both[:, :NUM_CLASSES], both[:, NUM_CLASSES:]
    return (logits[0], pool[0]) if single else (logits, pool)

  def features(self, video: Any) -> np.ndarray:
    return self.embed(video)[0]

  def pool(self, video: Any) -> np.ndarray:
    return self.embed(video)[1]


def create(weights_path: Any, batch_size: int = 2) -> I3D:
  """I3D from a piergiaj/pytorch-i3d state dict (see the module docstring)."""
  return I3D(load_i3d_params(weights_path), batch_size)


def fvd(features_real: Any, features_fake: Any) -> float:
  """Fréchet Video Distance (Unterthiner et al. 2018) between (N, 400) I3D logits."""
  return frechet_distance(features_real, features_fake)


def act_recog_l1(features_real: Any, features_fake: Any) -> float:
  """INTERnet's Act-Recog-L1: mean over paired videos of ||f_real - f_fake||_1 (sum over the
  feature dimensions). Pass `I3D.pool` features of real and generated videos in the same order;
  (D,) vectors are one pair."""
  real = np.atleast_2d(np.asarray(features_real, np.float64))
  fake = np.atleast_2d(np.asarray(features_fake, np.float64))
  if real.shape != fake.shape or real.ndim != 2:
    raise ValueError(f"Act-Recog-L1: expected paired (N, D) features, got {real.shape} and "
                     f"{fake.shape}")
  return float(np.mean(np.sum(np.abs(real - fake), axis=1)))
