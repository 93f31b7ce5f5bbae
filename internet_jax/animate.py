"""Animation: drive one source image with the motion of a driving video (inference).

Command line (one of --workdir / --checkpoint):

  python -m internet_jax.animate --workdir=DIR --source=IMG --driving=VIDEO --output=OUT.mp4 \
      [--relative] [--adapt_scale] [--batch_size=8] [--visualize] [--use_ema] [--verbose]
  python -m internet_jax.animate --checkpoint=DIR/checkpoints/STEP --pairs=pairs.csv \
      --output_dir=OUT [same options]

Library (e.g. in a notebook):

  generator, params, config = load_generator("workdirs/synthetic")   # or a checkpoint step dir
  frames = animate(generator, params, source, driving, relative=True)  # uint8 arrays

Rules:
* Inputs of any size and format (PNG/JPEG/... images, mp4/mov/gif/webm/PNG-frame-folder videos;
  grayscale, RGBA and 16-bit are converted by `video_io.to_rgb_uint8`) are brought to the model
  resolution R by `video_io.resize_and_pad`, the dataset builder's rule: the long side is scaled
  to R, the frame is centred and padded to an R x R square with white. Outputs are R x R.
* The source is encoded once (anchors, base-resolution image, encoder features at every scale)
  and the encoding is reused for every driving frame; driving frames go through the generator in
  fixed-size batches (the last one padded), so it compiles once per batch size.
* `relative` is FOMM's relative motion (demo.py / `normalize_kp`): the driving anchors become
  kp_s + (kp_d - kp_d0) * scale and the Jacobians (J_d J_d0^-1) J_s, where d0 is the first driving
  frame; `adapt_scale` sets scale = sqrt(hull area of kp_s) / sqrt(hull area of kp_d0).
  Relative motion assumes the source and the first driving frame show the same pose.
* The output video has the driving video's frame rate (30 fps when it states none).
* Bad input stops with one line `error: <path>: <problem>` and exit status 1 (a traceback only
  with --verbose); the output is written to a temporary file beside the target and renamed at the
  end, so a failed run leaves no output file behind.
"""

from __future__ import annotations

import csv
import functools
import itertools
import os
from pathlib import Path
import time
from typing import Any, Iterable, Iterator

from absl import app, flags, logging
import av
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from scipy.spatial import ConvexHull, QhullError
import tqdm

from input_pipeline import video_io
from internet_jax import checkpointing, errors, visualize

DEFAULT_FPS = 30.0
OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv")  # what video_io.write_video can write
# The --visualize panels, left to right (paper Figs. 7-8), and the padding tile_images puts
# between and around them.
PANELS = ("source", "driving", "output", "anchors", "motion", "confidence")
PANEL_PAD = 2
# Generator outputs the visualisation needs on the host (the rest stays on the device).
_VISUAL_KEYS = ("composition", "confidence")


# ---------------------------------------------------------------------------------------------
# Relative motion (FOMM normalize_kp)


def adapt_scale_factor(source_values: Any, initial_values: Any) -> float:
  """sqrt(area of the convex hull of the source anchors) / sqrt(area of the first driving
  frame's): how much larger the source person is than the driving one.

  values: (K, 2) or (B, K, 2) anchor coordinates; of a batch only the first example counts, as in
  FOMM. Raises ValueError when either hull has no area (collinear or coincident anchors).
  """
  areas = []
  for name, values in (("source", source_values), ("first driving frame", initial_values)):
    points = np.asarray(values, np.float64)
    points = points.reshape((-1,) + points.shape[-2:])[0]
    try:
      area = ConvexHull(points).volume  # for 2-D points .volume is the area (.area the perimeter)
    except (QhullError, ValueError):
      area = 0.0
    if not area > 0.0:
      raise ValueError(f"adapt_scale: the {name} anchors span no area (degenerate convex hull); "
                       "animate without adapt_scale")
    areas.append(area)
  return float(np.sqrt(areas[0]) / np.sqrt(areas[1]))


def relative_anchors(source: dict, driving: dict, driving_initial: dict, scale: Any = 1.0) -> dict:
  """FOMM's relative motion with a given scale; jnp only, so it also runs inside jit.

  value: kp_s + (kp_d - kp_d0) * scale; jacobian: (J_d J_d0^-1) J_s. Leading batch axes broadcast
  (a batch-1 source and first frame against a batch of driving frames). Other keys of `driving`
  (the heatmaps) are kept.
  """
  normalized = dict(driving)
  normalized["value"] = source["value"] + (driving["value"] - driving_initial["value"]) * scale
  if all("jacobian" in anchors for anchors in (source, driving, driving_initial)):
    change = jnp.matmul(driving["jacobian"], jnp.linalg.inv(driving_initial["jacobian"]))
    normalized["jacobian"] = jnp.matmul(change, source["jacobian"])
  return normalized


def normalize_anchors(source: dict, driving: dict, driving_initial: dict, *, relative: bool,
                      adapt_scale: bool) -> dict:
  """The driving anchors the generator is given (FOMM `normalize_kp` with relative Jacobians).

  Anchor dicts hold value (..., K, 2) and jacobian (..., K, 2, 2). Without `relative` the driving
  anchors are used as they are (absolute motion). `adapt_scale` scales relative motion only, so
  it needs `relative` (ValueError otherwise).
  """
  if not relative:
    if adapt_scale:
      raise ValueError("adapt_scale scales relative motion; it needs relative=True")
    return dict(driving)
  scale = adapt_scale_factor(source["value"], driving_initial["value"]) if adapt_scale else 1.0
  return relative_anchors(source, driving, driving_initial, scale)


# ---------------------------------------------------------------------------------------------
# The animator: encode once, generate in fixed-size batches


def _as_float(images: Any) -> jax.Array:
  return jnp.asarray(images, jnp.float32) / 255.0


# Module-level jits with the (hashable) generator as a static argument: every Animator of the same
# model shares one compilation, e.g. the ones train.py creates at each evaluation.
@functools.partial(jax.jit, static_argnums=0)
def _encode_source(generator, params, source):
  return generator.apply(params, source, method="encode_source")


@functools.partial(jax.jit, static_argnums=0)
def _detect_anchors(generator, params, images):
  return generator.apply(params, images, method="detect_anchors")


@functools.partial(jax.jit, static_argnums=0)
def _generate(generator, params, encoding, driving, reference):
  anchors = generator.apply(params, driving, method="detect_anchors")
  if reference is not None:
    anchors = relative_anchors(encoding["anchors"], anchors, reference["initial"],
                               reference["scale"])
  # The source encoding has batch 1; every driving frame of the chunk shares it.
  tiled = jax.tree.map(lambda x: jnp.broadcast_to(x, (driving.shape[0],) + x.shape[1:]), encoding)
  return generator.apply(params, tiled, anchors, method="generate")


def _chunks(frames: np.ndarray | Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
  """Consecutive chunks of at most `size` frames, from an array or any iterable of frames."""
  if isinstance(frames, np.ndarray):
    for start in range(0, len(frames), size):
      yield frames[start:start + size]
    return
  chunk = []
  for frame in frames:
    chunk.append(frame)
    if len(chunk) == size:
      yield np.stack(chunk)
      chunk = []
  if chunk:
    yield np.stack(chunk)


class Animator:
  """Jitted `encode_source` + batched `generate` for one generator and its parameters.

  Frames are uint8 (H, W, 3) at the model resolution. Typical use:

    encoding = animator.encode(source)
    reference = animator.motion_reference(encoding, driving[0], relative=True, adapt_scale=False)
    for valid, outputs in animator.generate_chunks(encoding, driving, reference): ...
  """

  def __init__(self, generator, params: Any, batch_size: int = 8):
    if batch_size < 1:
      raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    self.generator = generator
    # On the device once: host (numpy) parameters would be copied again at every call.
    self.params = jax.device_put(params)
    self.batch_size = batch_size
    self._encode = functools.partial(_encode_source, generator)
    self._detect = functools.partial(_detect_anchors, generator)
    self._generate = functools.partial(_generate, generator)

  def encode(self, source: np.ndarray) -> Any:
    """source: uint8 (H, W, 3) at the model resolution -> the source encoding (batch 1)."""
    return self._encode(self.params, _as_float(source)[None])

  def motion_reference(self, encoding: Any, first_frame: np.ndarray, *, relative: bool,
                       adapt_scale: bool = False) -> dict | None:
    """What `generate_chunks` needs for relative motion: the anchors of the first driving frame
    and the adapt-scale factor (computed once on the host: scipy's hull). None for absolute."""
    if not relative:
      if adapt_scale:
        raise ValueError("adapt_scale scales relative motion; it needs relative=True")
      return None
    initial = self._detect(self.params, _as_float(first_frame)[None])
    initial = {key: initial[key] for key in ("value", "jacobian")}
    scale = (adapt_scale_factor(np.asarray(encoding["anchors"]["value"]),
                                np.asarray(initial["value"])) if adapt_scale else 1.0)
    return {"initial": initial, "scale": jnp.float32(scale)}

  def generate_chunk(self, encoding: Any, chunk: np.ndarray,
                     reference: dict | None = None) -> tuple[int, dict]:
    """(number of valid frames, outputs) for at most `batch_size` driving frames. Returns as
    soon as the work is dispatched; the outputs are device arrays."""
    valid = len(chunk)
    if not 0 < valid <= self.batch_size:
      raise ValueError(f"a chunk holds 1 to {self.batch_size} frames, got {valid}")
    if valid < self.batch_size:  # pad the last chunk: one compiled shape for the whole video
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - valid, axis=0)])
    return valid, self._generate(self.params, encoding, _as_float(chunk), reference)

  def generate_chunks(self, encoding: Any, driving: np.ndarray | Iterable[np.ndarray],
                      reference: dict | None = None) -> Iterator[tuple[int, dict]]:
    """Yields (number of valid frames, outputs) per chunk of `batch_size` driving frames."""
    for chunk in _chunks(driving, self.batch_size):
      yield self.generate_chunk(encoding, chunk, reference)

  def animate(self, source: np.ndarray, driving: np.ndarray, *, relative: bool = False,
              adapt_scale: bool = False) -> np.ndarray:
    """uint8 (H, W, 3) source and (T, H, W, 3) driving frames -> uint8 (T, H, W, 3) output."""
    frames = [result["prediction"] for result in animate_stream(
        self, source, driving, relative=relative, adapt_scale=adapt_scale)]
    return np.concatenate(frames)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float images in [0, 1] -> uint8 (rounded, clipped)."""
  return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def animate_stream(animator: Animator, source: np.ndarray,
                   driving: np.ndarray | Iterable[np.ndarray], *, relative: bool = False,
                   adapt_scale: bool = False, keys: tuple[str, ...] = ()) -> Iterator[dict]:
  """Animates chunk by chunk, so that a long video is never held in memory.

  source: uint8 (R, R, 3); driving: uint8 frames (R, R, 3), an array or any iterable. Yields per
  chunk a dict of host arrays: driving (n, R, R, 3) uint8, prediction (n, R, R, 3) uint8,
  driving_anchors (value, jacobian) and the generator outputs named in `keys`. The source is
  encoded once; the next chunk is dispatched before the previous one is fetched, so host work
  (decoding, encoding video) overlaps with the device.
  """
  chunks = _chunks(driving, animator.batch_size)
  first = next(chunks, None)
  if first is None:
    raise ValueError("no driving frames")
  encoding = animator.encode(source)
  reference = animator.motion_reference(encoding, first[0], relative=relative,
                                        adapt_scale=adapt_scale)

  def fetch(chunk, valid, outputs):
    wanted = {key: outputs[key] for key in keys}
    wanted["prediction"] = outputs["prediction"]
    wanted["driving_anchors"] = {k: outputs["driving_anchors"][k] for k in ("value", "jacobian")}
    host = jax.device_get(jax.tree.map(lambda x: x[:valid], wanted))
    host["prediction"] = to_uint8(host["prediction"])
    host["driving"] = chunk
    return host

  pending = None
  for chunk in itertools.chain([first], chunks):
    dispatched = (chunk,) + animator.generate_chunk(encoding, chunk, reference)
    if pending is not None:
      yield fetch(*pending)
    pending = dispatched
  yield fetch(*pending)


def visualization_frames(source: np.ndarray, result: dict) -> list[np.ndarray]:
  """Side-by-side frames source | driving | output | anchors | motion field coloured by anchor |
  confidence map (paper Figs. 7-8) for one `animate_stream` chunk (with `_VISUAL_KEYS`).

  The anchors panel draws the anchors the generator was given (after relative normalisation) on
  the output; the motion panel colours each pixel by the anchor motion with the largest
  composition weight (black: still background); confidence is grey, white = 1.
  """
  frames = []
  height, width = source.shape[:2]
  for index, (driving, output) in enumerate(zip(result["driving"], result["prediction"])):
    frames.append(visualize.tile_images([[
        source, driving, output,
        visualize.draw_anchors(output, result["driving_anchors"]["value"][index]),
        visualize.motion_by_anchor(result["composition"][index], height, width),
        visualize.confidence_to_rgb(result["confidence"][index], height, width),
    ]], pad=PANEL_PAD))
  return frames


# ---------------------------------------------------------------------------------------------
# Python API on arrays


def _prepare_frame(frame: np.ndarray, resolution: int, name: str) -> np.ndarray:
  frame = video_io.to_rgb_uint8(frame, name)
  if frame.shape[:2] != (resolution, resolution):
    frame = video_io.resize_and_pad(frame, resolution)
  return frame


def animate(generator, params: Any, source: np.ndarray, driving: np.ndarray | Iterable[np.ndarray],
            *, relative: bool = False, adapt_scale: bool = False, batch_size: int = 8,
            return_outputs: bool = False):
  """Animates `source` with the motion of `driving`; returns uint8 (T, R, R, 3).

  source: an image (H, W, 3) (or grayscale/RGBA, uint8/uint16/float in [0, 1]); driving: frames
  (T, H, W, 3) of the same kinds. Both are brought to the model resolution R with
  `video_io.resize_and_pad` (long side to R, centred, white padding). `relative`/`adapt_scale`:
  FOMM's relative motion (see `normalize_anchors`).

  With return_outputs=True returns (frames, extras): extras holds `visualization` (T, R + 4,
  6R + 14, 3) uint8 side-by-side frames (`PANELS`), `source_anchors` and `driving_anchors`
  (value (T, K, 2), jacobian (T, K, 2, 2), as given to the generator), `composition`
  (T, h, w, K + 1) and `confidence` (T, h, w, 1) at the base resolution.
  """
  resolution = generator.resolution
  if isinstance(driving, np.ndarray) and driving.ndim != 4:
    raise ValueError(f"driving: expected frames (T, H, W, C), got shape {driving.shape}")
  source = _prepare_frame(source, resolution, "source")
  driving = (_prepare_frame(frame, resolution, f"driving frame {index}")
             for index, frame in enumerate(driving))
  animator = Animator(generator, params, batch_size)
  keys = _VISUAL_KEYS + ("source_anchors",) if return_outputs else ()
  results = list(animate_stream(animator, source, driving, relative=relative,
                                adapt_scale=adapt_scale, keys=keys))
  frames = np.concatenate([result["prediction"] for result in results])
  if not return_outputs:
    return frames
  extras = {
      "visualization": np.stack([frame for result in results
                                 for frame in visualization_frames(source, result)]),
      # The generator tiles the one source encoding over the batch: any row is the source's.
      "source_anchors": {key: results[0]["source_anchors"][key][0]
                         for key in ("value", "jacobian")},
      "driving_anchors": {key: np.concatenate([r["driving_anchors"][key] for r in results])
                          for key in ("value", "jacobian")},
  }
  for key in _VISUAL_KEYS:
    extras[key] = np.concatenate([result[key] for result in results])
  return frames, extras


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _is_step_dir(path: Path) -> bool:
  return path.name.isdigit() and (path / "state").is_dir()


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, int | None]:
  """(checkpoints directory, step or None for the newest) of a workdir, its `checkpoints/`
  folder, or one step directory `<...>/<step>/` holding `state/` (which may have been copied
  anywhere)."""
  path = Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such workdir or checkpoint")
  if _is_step_dir(path):
    return path.parent.absolute(), int(path.name)
  if (path / "checkpoints").is_dir():
    return (path / "checkpoints").absolute(), None
  if path.is_dir() and any(_is_step_dir(child) for child in path.iterdir()):
    return path.absolute(), None
  raise FileNotFoundError(f"{path}: not a workdir (no checkpoints/ inside) nor a checkpoint step "
                          "directory (no state/ inside)")


def load_generator(workdir_or_checkpoint: str | os.PathLike, use_ema: bool = False):
  """(generator, params, config) from a workdir (its newest checkpoint) or a step directory.

  The config saved with the checkpoint builds the model; only the generator parameters
  (`g_params`, or `ema_g_params` with use_ema) are read from the `state` item, into an abstract
  target from `jax.eval_shape` of the generator's init (the same call `create_train_state` makes),
  so the discriminator and optimizer states are never loaded. One-line errors name the path.
  """
  # Imported here: the command line's bad-input checks run before these slower imports.
  import orbax.checkpoint as ocp
  from internet_jax import models

  directory, step = resolve_checkpoint(workdir_or_checkpoint)
  with checkpointing.quiet_logs(), ocp.CheckpointManager(
      directory, item_names=("state", "data", "config"),
      item_handlers={"state": ocp.PyTreeCheckpointHandler()},  # reads the StandardSave layout
      options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{directory}: no complete checkpoint inside")
    step_dir = directory / str(step)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
      config = ml_collections.ConfigDict(restored["config"])
    except Exception as error:
      raise ValueError(f"{step_dir}: cannot read the saved config ({_first_line(error)})") from None
    try:
      generator, _ = models.create_models(config)
    except (ValueError, KeyError, AttributeError) as error:
      raise ValueError(f"{step_dir}: saved config does not build a model "
                       f"({_first_line(error)})") from None

    name = "g_params"
    if use_ema:
      if config.get("optimizer", {}).get("ema_decay", 0.0) <= 0:
        raise ValueError(f"{step_dir}: no EMA parameters (trained with "
                         "config.optimizer.ema_decay = 0); run without --use_ema")
      name = "ema_g_params"
    resolution = config.data.resolution
    image = jax.ShapeDtypeStruct((1, resolution, resolution, 3), jnp.float32)
    abstract = jax.eval_shape(generator.init, jax.random.key(0), image, image)
    # Shapes are compared from the metadata before anything is read: a failing Orbax restore
    # leaves reads in flight that print tracebacks at exit.
    try:
      stored = manager.item_metadata(step)["state"]
      stored = getattr(stored, "tree", stored)[name]
    except Exception as error:
      raise ValueError(f"{step_dir}: no {name} in the saved state ({_first_line(error)})") \
          from None
    mismatch = _first_mismatch(abstract, stored)
    if mismatch:
      raise ValueError(f"{step_dir}: the parameters do not match the saved config: {name}"
                       f"{mismatch}")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = {name: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)}
    restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), target)
    try:
      restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=target, restore_args=restore_args, partial_restore=True)))
    except Exception as error:
      raise ValueError(f"{step_dir}: cannot read {name} ({_first_line(error)})") from None
  return generator, restored["state"][name], config


def _first_mismatch(abstract: Any, stored: Any) -> str | None:
  """'<path>: ...' for the first parameter whose shape differs between the model the config
  builds and the checkpoint (or that only one of them has); None when all agree."""
  def shapes(tree):
    return {jax.tree_util.keystr(path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want, have = shapes(abstract), shapes(stored)
  for key in sorted(want.keys() | have.keys()):
    if want.get(key) != have.get(key):
      return (f"{key}: the checkpoint has {have.get(key, 'nothing')}, the model needs "
              f"{want.get(key, 'nothing')}")
  return None


def _first_line(error: BaseException) -> str:
  text = " ".join(str(error).strip().splitlines()[:1])
  return text or type(error).__name__


# ---------------------------------------------------------------------------------------------
# Files


def read_image(path: str | os.PathLike) -> np.ndarray:
  """An image file (anything Pillow reads; EXIF orientation applied) or the first frame of a
  video, as uint8 RGB (H, W, 3) at its own size. VideoReadError names the path."""
  path = Path(path)
  if not path.exists():
    raise video_io.VideoReadError(f"{path}: no such file or directory")
  if video_io.is_video(path):
    return next(video_io.read_video_frames(path))
  if not path.is_file():
    raise video_io.VideoReadError(f"{path}: not an image file")
  try:
    image = iio.imread(path, plugin="pillow", index=0, rotate=True)
  except Exception:
    # Decoders raise many types for bad bytes; any of them means the same to the user.
    raise video_io.VideoReadError(f"{path}: not a readable image") from None
  return video_io.to_rgb_uint8(image, path)


def _frame_count(path: Path) -> int | None:
  """Frames a video states it has (for the progress bar), None when unknown."""
  if path.is_dir():
    return sum(1 for p in path.iterdir()
               if p.suffix.lower() in video_io.FRAME_SUFFIXES and not p.name.startswith("."))
  try:
    with av.open(str(path)) as container:
      return container.streams.video[0].frames or None
  except Exception:
    return None  # only a hint; read errors are reported by the reader


def check_output(path: str | os.PathLike) -> Path:
  """Checks, before any work, that a video can be written at `path`: a suffix write_video knows
  and a writable folder (created only when the video is written). Returns the path."""
  path = Path(path)
  if path.suffix.lower() not in OUTPUT_SUFFIXES:
    raise ValueError(f"{path}: the output must be .mp4, .mov or .mkv (h264)")
  if path.is_dir():
    raise ValueError(f"{path}: is a directory")
  _check_writable(path.parent, path)
  return path


def check_output_dir(folder: str | os.PathLike) -> Path:
  """Checks that videos can be written into `folder` (created only when the first one is)."""
  folder = Path(folder)
  _check_writable(folder, folder)
  return folder


def _check_writable(folder: Path, shown: Path) -> None:
  # The nearest existing ancestor decides: nothing is created here, so a run that fails later
  # leaves no empty folders behind.
  existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
  if not existing.is_dir():
    raise ValueError(f"{shown}: cannot write here ({existing} is not a directory)")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"{shown}: cannot write here ({existing} is not writable)")


def _partial_path(path: Path) -> Path:
  # Same folder (the rename stays on one file system) and suffix (write_video picks the container
  # from it); hidden and per-process so parallel runs do not collide.
  return path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")


def write_atomically(path: Path, frames: Iterable[np.ndarray], fps: float) -> None:
  """write_video into a temporary file beside `path`, renamed to `path` only when complete."""
  partial = _partial_path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    video_io.write_video(partial, frames, fps=fps)
    os.replace(partial, path)
  except OSError as error:
    raise ValueError(f"{path}: cannot write ({error.strerror or error})") from None
  finally:
    partial.unlink(missing_ok=True)


def _driving_frames(path: Path, resolution: int) -> Iterator[np.ndarray]:
  for frame in video_io.read_video_frames(path):
    yield video_io.resize_and_pad(frame, resolution)


def check_video(path: str | os.PathLike) -> float:
  """Reads the first frame of a video (VideoReadError if unreadable or empty) and returns its
  frame rate (DEFAULT_FPS when it states none)."""
  path = Path(path)
  frames = video_io.read_video_frames(path)
  next(frames)
  frames.close()
  return video_io.video_fps(path) or DEFAULT_FPS


def animate_file(animator: Animator, source: str | os.PathLike, driving: str | os.PathLike,
                 output: str | os.PathLike, *, relative: bool = False, adapt_scale: bool = False,
                 visualize_panels: bool = False, progress: bool = True) -> int:
  """Animates an image file with a video file into `output` (see the module docstring); with
  `visualize_panels` the output is the side-by-side video of `visualization_frames`. Returns the
  number of frames written."""
  source, driving, output = Path(source), Path(driving), check_output(output)
  resolution = animator.generator.resolution
  image = video_io.resize_and_pad(read_image(source), resolution)
  fps = check_video(driving)
  keys = _VISUAL_KEYS if visualize_panels else ()
  written = 0
  with tqdm.tqdm(total=_frame_count(driving), unit="frame", desc=driving.name,
                 disable=not progress, leave=False) as bar:

    def frames():
      nonlocal written
      try:
        for result in animate_stream(animator, image, _driving_frames(driving, resolution),
                                     relative=relative, adapt_scale=adapt_scale, keys=keys):
          chunk = (visualization_frames(image, result) if visualize_panels
                   else result["prediction"])
          for frame in chunk:
            yield frame
            written += 1
          bar.update(len(result["prediction"]))
      except ValueError as error:  # adapt_scale on degenerate anchors: name the video
        if str(error).startswith(str(driving)):
          raise
        raise ValueError(f"{driving}: {error}") from None

    write_atomically(output, frames(), fps)
  return written


def read_pairs(csv_path: str | os.PathLike) -> list[tuple[int, Path, Path]]:
  """(line number, source, driving) of a CSV with header `source,driving`; relative paths are
  relative to the CSV's folder. Errors name the CSV line."""
  csv_path = Path(csv_path)
  try:
    text = csv_path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets add a BOM
  except (OSError, UnicodeDecodeError) as error:
    raise ValueError(f"{csv_path}: cannot read ({getattr(error, 'strerror', None) or error})") \
        from None
  rows = list(csv.reader(text.splitlines()))
  if not rows or [cell.strip().lower() for cell in rows[0]] != ["source", "driving"]:
    raise ValueError(f"{csv_path}:1: the header must be 'source,driving'")
  pairs, names = [], {}
  for line, row in enumerate(rows[1:], start=2):
    if not any(cell.strip() for cell in row):
      continue  # blank lines
    if len(row) != 2 or not all(cell.strip() for cell in row):
      raise ValueError(f"{csv_path}:{line}: expected two paths 'source,driving', got {row}")
    paths = []
    for cell in row:
      path = Path(cell.strip()).expanduser()
      path = path if path.is_absolute() else csv_path.parent / path
      if not path.exists():
        raise ValueError(f"{csv_path}:{line}: {path}: no such file or directory")
      paths.append(path)
    name = pair_output_name(*paths)
    if name in names:
      raise ValueError(f"{csv_path}:{line}: output {name} repeats line {names[name]}")
    names[name] = line
    pairs.append((line, paths[0], paths[1]))
  if not pairs:
    raise ValueError(f"{csv_path}: no pairs")
  return pairs


def pair_output_name(source: Path, driving: Path) -> str:
  """`<source stem>__<driving stem>.mp4` (a frame folder's name counts as its stem)."""
  return f"{Path(source).stem}__{video_io.video_name(driving)}.mp4"


def animate_pairs(animator: Animator, csv_path: str | os.PathLike, output_dir: str | os.PathLike,
                  *, relative: bool = False, adapt_scale: bool = False,
                  visualize_panels: bool = False, progress: bool = True) -> list[Path]:
  """Animates every row of a pairs CSV into `output_dir`, one progress bar over the pairs. Stops
  at the first bad pair with an error naming the CSV line; finished videos are kept."""
  pairs = read_pairs(csv_path)
  output_dir = check_output_dir(output_dir)
  written = []
  with tqdm.tqdm(pairs, unit="pair", disable=not progress) as bar:
    for line, source, driving in bar:
      output = output_dir / pair_output_name(source, driving)
      start = time.perf_counter()
      try:
        count = animate_file(animator, source, driving, output, relative=relative,
                             adapt_scale=adapt_scale, visualize_panels=visualize_panels,
                             progress=False)
      except ValueError as error:
        raise ValueError(f"{csv_path}:{line}: {error}") from None
      bar.set_postfix(frames_per_s=f"{count / (time.perf_counter() - start):.1f}")
      written.append(output)
  return written


# ---------------------------------------------------------------------------------------------
# Command line


def _define_flags():
  # Defined only when run as a script: train.py imports this module next to main.py's flags.
  flags.DEFINE_string("workdir", None, "Training workdir; its newest checkpoint is used.")
  flags.DEFINE_string("checkpoint", None, "A checkpoint step directory (<workdir>/checkpoints/N).")
  flags.DEFINE_string("source", None, "Source image (PNG/JPEG/...; a video's first frame).")
  flags.DEFINE_string("driving", None, "Driving video (mp4/mov/gif/... or a PNG-frame folder).")
  flags.DEFINE_string("output", None, "Output video (.mp4/.mov/.mkv).")
  flags.DEFINE_bool("relative", False, "FOMM relative motion (same pose in source and frame 0).")
  flags.DEFINE_bool("adapt_scale", False, "With --relative: scale motion by the anchor hull sizes.")
  flags.DEFINE_integer("batch_size", 8, "Driving frames per generator call.")
  flags.DEFINE_bool("visualize", False,
                    "Write source | driving | output | anchors | motion | confidence instead.")
  flags.DEFINE_string("pairs", None, "CSV with header 'source,driving': animate every row.")
  flags.DEFINE_string("output_dir", None, "With --pairs: where <source>__<driving>.mp4 go.")
  flags.DEFINE_bool("use_ema", False, "Use the EMA generator parameters of the checkpoint.")
  flags.DEFINE_bool("verbose", False, "Show tracebacks and INFO logs.")


def _check_flags(flags_) -> None:
  """One-line usage errors before any work."""
  if bool(flags_.workdir) == bool(flags_.checkpoint):
    raise ValueError("give exactly one of --workdir or --checkpoint")
  if flags_.pairs:
    if not flags_.output_dir or flags_.source or flags_.driving or flags_.output:
      raise ValueError("--pairs takes --output_dir (and not --source/--driving/--output)")
  elif not (flags_.source and flags_.driving and flags_.output) or flags_.output_dir:
    raise ValueError("give --source, --driving and --output (or --pairs and --output_dir)")
  if flags_.batch_size < 1:
    raise ValueError(f"--batch_size must be at least 1, got {flags_.batch_size}")
  if flags_.adapt_scale and not flags_.relative:
    raise ValueError("--adapt_scale scales relative motion; add --relative")


def main(argv) -> None:
  """Validates inputs and the output location first (cheap), then loads the model."""
  flags_ = flags.FLAGS
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # absl logs INFO to stderr under app.run; keep the terminal to the progress bar and errors.
  logging.set_verbosity(logging.INFO if flags_.verbose else logging.WARNING)
  with errors.user_errors(verbose=flags_.verbose):
    _check_flags(flags_)
    options = dict(relative=flags_.relative, adapt_scale=flags_.adapt_scale,
                   visualize_panels=flags_.visualize)
    if not flags_.pairs:
      check_output(flags_.output)
      read_image(flags_.source)
      check_video(flags_.driving)
    else:
      read_pairs(flags_.pairs)
      check_output_dir(flags_.output_dir)
    generator, params, config = load_generator(flags_.workdir or flags_.checkpoint,
                                               use_ema=flags_.use_ema)
    logging.info("model %s at %dpx from %s", config.model_name, config.data.resolution,
                 flags_.workdir or flags_.checkpoint)
    animator = Animator(generator, params, flags_.batch_size)
    start = time.perf_counter()
    if flags_.pairs:
      outputs = animate_pairs(animator, flags_.pairs, flags_.output_dir, **options)
      print(f"wrote {len(outputs)} videos to {flags_.output_dir} "
            f"in {time.perf_counter() - start:.1f} s")
    else:
      count = animate_file(animator, flags_.source, flags_.driving, flags_.output, **options)
      seconds = time.perf_counter() - start
      print(f"wrote {flags_.output}: {count} frames in {seconds:.1f} s "
            f"({count / seconds:.1f} frames/s)")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
