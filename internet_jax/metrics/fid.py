"""Fréchet Inception Distance (Heusel et al., NeurIPS 2017, "GANs trained by a two time-scale
update rule converge to a local Nash equilibrium", [11] in the INTERnet paper, Sec. 4.1).

FID compares the Gaussian statistics of InceptionV3 pool3 features (2048-d, the output of the
final average pooling) of real and generated frames:

    FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}).

The network is a port of pytorch-fid's `InceptionV3` with `use_fid_inception=True`
(mseitzer/pytorch-fid, src/pytorch_fid/inception.py): torchvision's Inception3 with the blocks
patched to match the TF graph `inception-2015-12-05` that the original FID code used:
  * Mixed_5b/5c/5d = FIDInceptionA, Mixed_6b..6e = FIDInceptionC, Mixed_7b = FIDInceptionE_1:
    their pooling branch averages a 3x3 window with count_include_pad=False (TF does not count the
    padded zeros);
  * Mixed_7c = FIDInceptionE_2: its pooling branch is a 3x3 *max* pool (stride 1, pad 1);
  * every BasicConv2d is conv (no bias) -> BatchNorm(eps=0.001, running statistics) -> ReLU.
Input: uint8 frames -> [0, 1] -> bilinear resize to 299x299 (torch F.interpolate,
align_corners=False, no antialiasing) -> 2x - 1, i.e. [-1, 1]; pool3 = spatial mean of Mixed_7c.

Weights (nothing can be downloaded on our machines): `create(path)` reads the state dict of
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (its key names, torch layouts) from a
.safetensors or .npz file (or the .pth itself when torch is installed). Convert it once on a
machine with torch:

    python -c "import torch, safetensors.torch as s; s.save_file({k: v.contiguous() for k, v in
    torch.load('pt_inception-2015-12-05-6726825d.pth', weights_only=True).items()},
    'pt_inception-2015-12-05-6726825d.safetensors')"

(one line; the .pth is at https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/
pt_inception-2015-12-05-6726825d.pth). Expected keys, for every BasicConv2d NAME in `CONVS`:
`NAME.conv.weight` (out, in, kh, kw) and `NAME.bn.{weight,bias,running_mean,running_var}` (out,);
`fc.*` and `*.num_batches_tracked` are ignored. A `module.` prefix is stripped.

This module also holds the weight-file helpers shared with lpips.py, i3d.py and slomo.py
(`WeightReader`, `bilinear_matrix`, `run_batched`), since all of them read user-supplied PyTorch
state dicts.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from internet_jax import errors
from internet_jax.metrics import MetricUnavailable

# ---------------------------------------------------------------------------------------------
# Weight files (shared by lpips.py, fid.py, i3d.py and slomo.py).

# Wrappers that checkpoints put in front of the reference names (DataParallel, torch.compile).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Full precision for convolutions and matmuls: on GPUs the default f32 path may use TF32, which
# moves pretrained-network metrics by ~1e-3 relative.
PRECISION = jax.lax.Precision.HIGHEST


def _strip_wrappers(key: str) -> str:
  stripped = True
  while stripped:
    stripped = False
    for prefix in WRAPPER_PREFIXES:
      if key.startswith(prefix):
        key, stripped = key[len(prefix):], True
  return key


def convert_command(path: str) -> str:
  """The one-line command that turns a PyTorch state dict into .safetensors."""
  stem = os.path.splitext(os.path.basename(path))[0] or "weights"
  return ("python -c \"import torch, safetensors.torch as s; s.save_file({k: v.contiguous() for "
          f"k, v in torch.load('{path}', weights_only=True).items()}}, '{stem}.safetensors')\"")


def _flatten_tensors(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
  """{dotted key: float32 array} of the tensors in nested mappings (a checkpoint holding several
  state dicts, e.g. Super SloMo's state_dictFC/state_dictAT); other entries are dropped."""
  flat = {}
  for name, value in tree.items():
    key = f"{prefix}{name}"
    if isinstance(value, Mapping):
      flat.update(_flatten_tensors(value, f"{key}."))
    elif hasattr(value, "detach"):
      flat[key] = value.detach().float().cpu().numpy()
  return flat


def _read_file(path: str, metric: str, hint: str) -> dict[str, np.ndarray]:
  """{name: array} from .safetensors, .npz (no pickle) or, with torch installed, .pth/.pt/.ckpt
  (nested state dicts flattened to dotted keys)."""
  suffix = os.path.splitext(path)[1].lower()
  try:
    if suffix == ".safetensors":
      import safetensors.numpy  # pylint: disable=g-import-not-at-top
      return dict(safetensors.numpy.load_file(path))
    if suffix == ".npz":
      with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
  except Exception as e:  # pylint: disable=broad-except
    raise MetricUnavailable(f"{metric} weights: cannot read {path}: {errors.one_line(e)}; {hint}"
                            ) from None
  if suffix in (".pth", ".pt", ".bin", ".ckpt"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise MetricUnavailable(f"{metric} weights: {path} is a PyTorch file and torch is not "
                              f"installed; {hint}") from None
    try:
      # weights_only: no arbitrary unpickling. A datetime (Super SloMo's checkpoint stamps one)
      # is plain data, so it is allowed where torch (>= 2.5) can be told so.
      allow = getattr(torch.serialization, "safe_globals", None)
      with allow([datetime.datetime]) if allow else contextlib.nullcontext():
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pylint: disable=broad-except
      raise MetricUnavailable(f"{metric} weights: cannot read {path}: {errors.one_line(e)}; {hint}"
                              ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
      loaded = loaded["state_dict"]  # a training checkpoint wrapping the state dict
    if not isinstance(loaded, Mapping):
      raise MetricUnavailable(f"{metric} weights: {path} holds no state dict (got "
                              f"{type(loaded).__name__}); {hint}")
    return _flatten_tensors(loaded)
  raise MetricUnavailable(f"{metric} weights: {path} has an unsupported extension {suffix!r} "
                          f"(use .safetensors, .npz, or .pth/.ckpt with torch installed); {hint}")


class WeightReader:
  """A user-supplied state dict with checked access: every problem is a one-line
  `MetricUnavailable` naming the file(s), the key, the expected and the found shape, and `hint`
  (how to supply correct weights).

  `weights_path` is one file or several joined by commas (their keys are merged; a key in two
  files is an error). Keys lose the `WRAPPER_PREFIXES` and then `strip` (a callable key -> key).
  `used` collects the keys read with `take`: what a converted file has to keep.
  """

  def __init__(self, weights_path: Any, metric: str, hint: str,
               strip: Callable[[str], str] | None = None):
    self.metric, self.hint = metric, hint
    text = "" if weights_path is None else os.fspath(weights_path)
    paths = [os.path.expanduser(p.strip()) for p in text.split(",") if p.strip()]
    if not paths:
      raise MetricUnavailable(f"{metric}: no weights: {hint}")
    self.source = ", ".join(paths)
    self.state: dict[str, np.ndarray] = {}
    self.used: set[str] = set()
    origin: dict[str, str] = {}
    for path in paths:
      if not os.path.isfile(path):
        raise MetricUnavailable(f"{metric} weights: no file at {path}; {hint}")
      for key, value in _read_file(path, metric, hint).items():
        name = _strip_wrappers(key)
        if strip is not None:
          name = strip(name)
        if name in self.state:
          raise MetricUnavailable(f"{metric} weights: '{name}' is given twice ({origin[name]!r} "
                                  f"and {key!r} in {self.source}); {hint}")
        self.state[name] = value
        origin[name] = f"{key}" if len(paths) == 1 else f"{key} in {path}"

  def fail(self, what: str) -> MetricUnavailable:
    return MetricUnavailable(f"{self.metric} weights: {self.source}: {what}; {self.hint}")

  def has(self, key: str) -> bool:
    return key in self.state

  def shape(self, key: str) -> tuple[int, ...] | None:
    return tuple(np.shape(self.state[key])) if key in self.state else None

  def take(self, key: str, shape: Sequence[int]) -> np.ndarray:
    """The entry `key` as float32, checked to have `shape` and finite values."""
    shape = tuple(shape)
    if key not in self.state:
      raise self.fail(f"no '{key}' (expected shape {shape})")
    value = np.asarray(self.state[key])
    if value.shape != shape:
      raise self.fail(f"'{key}' has shape {value.shape}, expected {shape}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
      raise self.fail(f"'{key}' has dtype {value.dtype}, expected a float array")
    value = value.astype(np.float32)
    if not np.all(np.isfinite(value)):
      raise self.fail(f"'{key}' has non-finite values")
    self.used.add(key)
    return value


def as_reader(weights: Any, open_weights: Callable[[Any], WeightReader]) -> WeightReader:
  """`weights` itself when it is a `WeightReader` (convert_weights passes one, to learn which
  keys a loader reads), else `open_weights(weights)`: a reader of the file(s) it names."""
  return weights if isinstance(weights, WeightReader) else open_weights(weights)


# ---------------------------------------------------------------------------------------------
# Resizing and batching (shared).


def bilinear_matrix(in_size: int, out_size: int, half_pixel: bool = True) -> np.ndarray:
  """(out_size, in_size) matrix of 1-D bilinear interpolation weights.

  half_pixel=True is torch `F.interpolate(mode='bilinear', align_corners=False)` without
  antialiasing (pytorch-fid): src = (dst + 0.5) * in/out - 0.5, clamped at 0, right neighbour
  clamped at the edge. half_pixel=False is TF1 `tf.image.resize_bilinear` (align_corners=False,
  half_pixel_centers=False; the FVD reference): src = dst * in/out.
  """
  scale = in_size / out_size
  dst = np.arange(out_size, dtype=np.float64)
  src = (dst + 0.5) * scale - 0.5 if half_pixel else dst * scale
  src = np.maximum(src, 0.0)
  low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  high = np.minimum(low + 1, in_size - 1)
  frac = src - low
  matrix = np.zeros((out_size, in_size), np.float64)
  np.add.at(matrix, (np.arange(out_size), low), 1.0 - frac)
  np.add.at(matrix, (np.arange(out_size), high), frac)
  return matrix


def resize_bilinear(images: jax.Array, size: tuple[int, int], half_pixel: bool = True
                    ) -> jax.Array:
  """Resizes (..., H, W, C) images to `size` with `bilinear_matrix` (separable, exact)."""
  h, w = images.shape[-3:-1]
  if (h, w) == tuple(size):
    return images  # both conventions are the identity at equal size
  rows = jnp.asarray(bilinear_matrix(h, size[0], half_pixel), images.dtype)
  cols = jnp.asarray(bilinear_matrix(w, size[1], half_pixel), images.dtype)
  out = jnp.einsum("oh,...hwc->...owc", rows, images, precision=PRECISION)
  return jnp.einsum("pw,...owc->...opc", cols, out, precision=PRECISION)


def run_batched(fn: Callable[[np.ndarray], jax.Array], inputs: np.ndarray, batch_size: int
                ) -> np.ndarray:
  """np.concatenate([fn(chunk) ...]) over the first axis; the last chunk is padded (with its
  last row) to the chunk size so a jitted `fn` compiles once per input shape."""
  n = inputs.shape[0]
  chunk = max(1, min(batch_size, n))
  outputs = []
  for start in range(0, n, chunk):
    part = inputs[start:start + chunk]
    valid = part.shape[0]
    if valid < chunk:
      part = np.concatenate([part, np.repeat(part[-1:], chunk - valid, axis=0)], axis=0)
    outputs.append(np.asarray(fn(part))[:valid])
  return np.concatenate(outputs, axis=0)


def check_frames(frames: Any, what: str, ndim: int = 4) -> np.ndarray:
  """uint8 (..., H, W, 3) frames as a numpy array, or a ValueError naming `what`."""
  frames = np.asarray(frames)
  if frames.dtype != np.uint8:
    raise ValueError(f"{what}: expected uint8 frames, got dtype {frames.dtype}")
  if frames.ndim != ndim or frames.shape[-1] != 3:
    raise ValueError(f"{what}: expected shape {'(N, H, W, 3)' if ndim == 4 else '(T, H, W, 3)'}"
                     f", got {frames.shape}")
  if frames.shape[0] == 0:
    raise ValueError(f"{what}: no frames")
  return frames


# ---------------------------------------------------------------------------------------------
# InceptionV3 (pytorch-fid's FID variant).

BN_EPS = 0.001  # torchvision BasicConv2d: BatchNorm2d(eps=0.001)
FID_SIZE = 299


def _a(name: str, cin: int, pool: int) -> list:
  """FIDInceptionA (torchvision InceptionA layers)."""
  return [(f"{name}.branch1x1", cin, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch5x5_1", cin, 48, (1, 1), 1, (0, 0)),
          (f"{name}.branch5x5_2", 48, 64, (5, 5), 1, (2, 2)),
          (f"{name}.branch3x3dbl_1", cin, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch_pool", cin, pool, (1, 1), 1, (0, 0))]


def _b(name: str, cin: int) -> list:
  """InceptionB (Mixed_6a, grid reduction 35 -> 17)."""
  return [(f"{name}.branch3x3", cin, 384, (3, 3), 2, (0, 0)),
          (f"{name}.branch3x3dbl_1", cin, 64, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0))]


def _c(name: str, c7: int) -> list:
  """FIDInceptionC (factorised 7x7: (1,7) and (7,1) convolutions)."""
  return [(f"{name}.branch1x1", 768, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7_1", 768, c7, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7_2", c7, c7, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_1", 768, c7, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)),
          (f"{name}.branch_pool", 768, 192, (1, 1), 1, (0, 0))]


def _d(name: str) -> list:
  """InceptionD (Mixed_7a, grid reduction 17 -> 8)."""
  return [(f"{name}.branch3x3_1", 768, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
          (f"{name}.branch7x7x3_1", 768, 192, (1, 1), 1, (0, 0)),
          (f"{name}.branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
          (f"{name}.branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
          (f"{name}.branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0))]


def _e(name: str, cin: int) -> list:
  """FIDInceptionE_1 / _2 (same layers; they differ in the pooling branch)."""
  return [(f"{name}.branch1x1", cin, 320, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_1", cin, 384, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
          (f"{name}.branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
          (f"{name}.branch3x3dbl_1", cin, 448, (1, 1), 1, (0, 0)),
          (f"{name}.branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
          (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
          (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
          (f"{name}.branch_pool", cin, 192, (1, 1), 1, (0, 0))]


# Every BasicConv2d: (name, in, out, (kh, kw), stride, (pad_h, pad_w)), as in torchvision's
# Inception3 with pytorch-fid's patches. The weight file holds NAME.conv.weight (out, in, kh, kw)
# and NAME.bn.{weight, bias, running_mean, running_var} (out,).
CONVS: tuple[tuple[str, int, int, tuple[int, int], int, tuple[int, int]], ...] = tuple(
    [("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0)),
     ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
     ("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1)),
     ("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0)),
     ("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0))]
    + _a("Mixed_5b", 192, 32) + _a("Mixed_5c", 256, 64) + _a("Mixed_5d", 288, 64)
    + _b("Mixed_6a", 288)
    + _c("Mixed_6b", 128) + _c("Mixed_6c", 160) + _c("Mixed_6d", 160) + _c("Mixed_6e", 192)
    + _d("Mixed_7a") + _e("Mixed_7b", 1280) + _e("Mixed_7c", 2048))
_SPECS = {spec[0]: spec for spec in CONVS}

FID_HINT = ("pass --inception_weights=FILE, pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
            "state dict as .safetensors: "
            + convert_command("pt_inception-2015-12-05-6726825d.pth"))


def read_batch_norm(reader: "WeightReader", prefix: str, channels: int) -> dict:
  """A torch BatchNorm's gamma/beta/running mean/var under `prefix` (shared by the FID and I3D
  ports); negative running variances are refused."""
  entry = {ours: jnp.asarray(reader.take(f"{prefix}.{theirs}", (channels,)))
           for ours, theirs in (("gamma", "weight"), ("beta", "bias"), ("mean", "running_mean"),
                                ("var", "running_var"))}
  if np.any(np.asarray(entry["var"]) < 0):
    raise reader.fail(f"'{prefix}.running_var' has negative values")
  return entry


def open_weights(weights_path: Any) -> WeightReader:
  return WeightReader(weights_path, "FID", FID_HINT)


def load_inception_params(weights_path: Any) -> dict:
  """{conv name: {"kernel": (kh, kw, in, out), "gamma", "beta", "mean", "var": (out,)}} from a
  pytorch-fid FID Inception state dict; `MetricUnavailable` on any problem."""
  reader = as_reader(weights_path, open_weights)
  params = {}
  for name, cin, cout, (kh, kw), _, _ in CONVS:
    weight = reader.take(f"{name}.conv.weight", (cout, cin, kh, kw))
    entry = {"kernel": jnp.asarray(weight.transpose(2, 3, 1, 0))}  # torch OIHW -> HWIO
    entry.update(read_batch_norm(reader, f"{name}.bn", cout))
    params[name] = entry
  return params


def conv2d(x: jax.Array, kernel: jax.Array, stride: int | Sequence[int],
           padding: Sequence[tuple[int, int]]) -> jax.Array:
  """torch Conv2d on NHWC with an HWIO kernel and explicit (symmetric or not) zero padding."""
  strides = (stride, stride) if isinstance(stride, int) else tuple(stride)
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=tuple(padding),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=PRECISION)


def max_pool2d(x: jax.Array, size: int, stride: int, pad: int = 0) -> jax.Array:
  """torch MaxPool2d (floor mode; padding counts as -inf)."""
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, size, size, 1),
                               (1, stride, stride, 1),
                               ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def avg_pool2d_exclude_pad(x: jax.Array, size: int = 3, pad: int = 1) -> jax.Array:
  """torch avg_pool2d(size, stride=1, padding=pad, count_include_pad=False): the mean over the
  window's valid pixels only (TF 'SAME' average pooling)."""
  window, strides = (1, size, size, 1), (1, 1, 1, 1)
  padding = ((0, 0), (pad, pad), (pad, pad), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
  count = jax.lax.reduce_window(jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype), 0.0,
                                jax.lax.add, window, strides, padding)
  return total / count


def basic_conv2d(params: dict, name: str, x: jax.Array) -> jax.Array:
  """torchvision BasicConv2d in eval mode: conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU."""
  _, _, _, _, stride, (ph, pw) = _SPECS[name]
  p = params[name]
  y = conv2d(x, p["kernel"], stride, ((ph, ph), (pw, pw)))
  y = (y - p["mean"]) / jnp.sqrt(p["var"] + BN_EPS) * p["gamma"] + p["beta"]
  return jax.nn.relu(y)


def inception_a(params: dict, name: str, x: jax.Array) -> jax.Array:
  """FIDInceptionA: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(no pad count)-1x1."""
  c = lambda layer, h: basic_conv2d(params, f"{name}.{layer}", h)  # noqa: E731
  b1 = c("branch1x1", x)
  b5 = c("branch5x5_2", c("branch5x5_1", x))
  b3 = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
  bp = c("branch_pool", avg_pool2d_exclude_pad(x))
  return jnp.concatenate([b1, b5, b3, bp], axis=-1)


def inception_b(params: dict, name: str, x: jax.Array) -> jax.Array:
  """InceptionB: 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""
  c = lambda layer, h: basic_conv2d(params, f"{name}.{layer}", h)  # noqa: E731
  b3 = c("branch3x3", x)
  bd = c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x)))
  return jnp.concatenate([b3, bd, max_pool2d(x, 3, 2)], axis=-1)


def inception_c(params: dict, name: str, x: jax.Array) -> jax.Array:
  """FIDInceptionC: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool(no pad count)-1x1."""
  c = lambda layer, h: basic_conv2d(params, f"{name}.{layer}", h)  # noqa: E731
  b1 = c("branch1x1", x)
  b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
  bd = x
  for i in range(1, 6):
    bd = c(f"branch7x7dbl_{i}", bd)
  bp = c("branch_pool", avg_pool2d_exclude_pad(x))
  return jnp.concatenate([b1, b7, bd, bp], axis=-1)


def inception_d(params: dict, name: str, x: jax.Array) -> jax.Array:
  """InceptionD: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""
  c = lambda layer, h: basic_conv2d(params, f"{name}.{layer}", h)  # noqa: E731
  b3 = c("branch3x3_2", c("branch3x3_1", x))
  b7 = x
  for i in range(1, 5):
    b7 = c(f"branch7x7x3_{i}", b7)
  return jnp.concatenate([b3, b7, max_pool2d(x, 3, 2)], axis=-1)


def inception_e(params: dict, name: str, x: jax.Array, pool: str) -> jax.Array:
  """FIDInceptionE_1 (pool='avg', no pad count) or FIDInceptionE_2 (pool='max', 3x3/1 pad 1)."""
  c = lambda layer, h: basic_conv2d(params, f"{name}.{layer}", h)  # noqa: E731
  b1 = c("branch1x1", x)
  b3 = c("branch3x3_1", x)
  b3 = jnp.concatenate([c("branch3x3_2a", b3), c("branch3x3_2b", b3)], axis=-1)
  bd = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
  bd = jnp.concatenate([c("branch3x3dbl_3a", bd), c("branch3x3dbl_3b", bd)], axis=-1)
  pooled = avg_pool2d_exclude_pad(x) if pool == "avg" else max_pool2d(x, 3, 1, 1)
  return jnp.concatenate([b1, b3, bd, c("branch_pool", pooled)], axis=-1)


def inception_blocks(params: dict, x: jax.Array, last_block: int = 3) -> list[jax.Array]:
  """pytorch-fid's four blocks on (N, H, W, 3) inputs in [-1, 1]: [64-ch after maxpool1,
  192-ch after maxpool2, 768-ch after Mixed_6e, 2048-ch after Mixed_7c (before the pool)]."""
  c = lambda name, h: basic_conv2d(params, name, h)  # noqa: E731
  outputs = []
  x = max_pool2d(c("Conv2d_2b_3x3", c("Conv2d_2a_3x3", c("Conv2d_1a_3x3", x))), 3, 2)
  outputs.append(x)
  if last_block >= 1:
    x = max_pool2d(c("Conv2d_4a_3x3", c("Conv2d_3b_1x1", x)), 3, 2)
    outputs.append(x)
  if last_block >= 2:
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
      x = inception_a(params, name, x)
    x = inception_b(params, "Mixed_6a", x)
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
      x = inception_c(params, name, x)
    outputs.append(x)
  if last_block >= 3:
    x = inception_d(params, "Mixed_7a", x)
    x = inception_e(params, "Mixed_7b", x, pool="avg")
    x = inception_e(params, "Mixed_7c", x, pool="max")
    outputs.append(x)
  return outputs


def _pool3(params: dict, frames: jax.Array) -> jax.Array:
  """uint8 (N, H, W, 3) -> (N, 2048) pool3 features, as pytorch-fid's InceptionV3 forward."""
  x = frames.astype(jnp.float32) / 255.0  # ToTensor
  x = resize_bilinear(x, (FID_SIZE, FID_SIZE), half_pixel=True)
  x = 2.0 * x - 1.0
  return jnp.mean(inception_blocks(params, x)[-1], axis=(1, 2))  # AdaptiveAvgPool2d(1)


class FIDInception:
  """The FID feature extractor: `.features(frames uint8 (N, H, W, 3)) -> (N, 2048)` float32."""

  def __init__(self, params: dict, batch_size: int = 16):
    self.params = params
    self.batch_size = batch_size
    self._pool3 = jax.jit(_pool3)

  def features(self, frames: Any) -> np.ndarray:
    frames = check_frames(frames, "FID features")
    return run_batched(lambda chunk: self._pool3(self.params, chunk), frames, self.batch_size)


def create(weights_path: Any, batch_size: int = 16) -> FIDInception:
  """The FID Inception network from a pytorch-fid state dict (see the module docstring)."""
  return FIDInception(load_inception_params(weights_path), batch_size)


# ---------------------------------------------------------------------------------------------
# The Fréchet distance (shared with FVD).


def frechet_distance_from_stats(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                                sigma_b: np.ndarray, eps: float = 1e-6) -> float:
  """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)), as pytorch-fid's
  calculate_frechet_distance: if sqrtm of the (possibly singular) product is not finite, `eps` is
  added to both diagonals; an imaginary part above 1e-3 on the diagonal is an error, a smaller
  one (numerical noise) is dropped."""
  mu_a = np.atleast_1d(np.asarray(mu_a, np.float64))
  mu_b = np.atleast_1d(np.asarray(mu_b, np.float64))
  sigma_a = np.atleast_2d(np.asarray(sigma_a, np.float64))
  sigma_b = np.atleast_2d(np.asarray(sigma_b, np.float64))
  if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
    raise ValueError(f"Fréchet distance: mismatched statistics: means {mu_a.shape} vs "
                     f"{mu_b.shape}, covariances {sigma_a.shape} vs {sigma_b.shape}")
  diff = mu_a - mu_b
  covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b)
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma_a.shape[0]) * eps  # the product is (nearly) singular
    covmean = scipy.linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"Fréchet distance: imaginary component {np.max(np.abs(covmean.imag))}")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))


def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance with N - 1) of (N, D) features in float64, as pytorch-fid."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"Fréchet distance: expected (N >= 2, D) features, got {features.shape}")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(features_a: Any, features_b: Any, eps: float = 1e-6) -> float:
  """The Fréchet distance between Gaussians fitted to (N_a, D) and (N_b, D) features."""
  mu_a, sigma_a = gaussian_stats(features_a)
  mu_b, sigma_b = gaussian_stats(features_b)
  if mu_a.shape != mu_b.shape:
    raise ValueError(f"Fréchet distance: feature sizes differ: {mu_a.shape[0]} vs "
                     f"{mu_b.shape[0]}")
  return frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b, eps)
