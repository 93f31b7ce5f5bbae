"""Helpers for notebooks (colab/*.ipynb): configs by name, inline images and videos, training
curves read back from a workdir's TensorBoard event files.

The notebooks call only the library; what they show that needs code beyond one call lives here so
that it is tested and reusable:

  config = load_config("configs/synthetic.py:tiny")       # the command line's --config syntax
  show_image(array)                                        # inline PNG (nearest-neighbour zoom)
  show_video(frames, fps=30)                               # inline mp4 (h264, base64-embedded)
  scalars = read_scalars(workdir, prefix="train/")         # {tag: (steps, values)}
  show_image(plot_scalars(scalars, ["train/g/total"]))     # line plots drawn with OpenCV

IPython is imported only by the `show_*` functions (it is not a dependency of the library).
"""

from __future__ import annotations

import base64
import glob
import html
import importlib
import importlib.util
import math
import os
from pathlib import Path
import sys
import tempfile
from typing import Iterable, Sequence

import cv2
import ml_collections
import numpy as np

from internet_jax import logs, visualize

# Display size rule: small frames are enlarged by an integer factor (nearest neighbour, so pixels
# stay visible) until about this many pixels wide, by at most MAX_ZOOM.
DISPLAY_WIDTH = 640
MAX_ZOOM = 4


# ---------------------------------------------------------------------------------------------
# Configs and workdirs


def load_config(spec: str) -> ml_collections.ConfigDict:
  """The config of `spec`, in the syntax of `--config`: `configs/synthetic.py`,
  `configs/synthetic.py:tiny`, `configs/ablations.py:ss4x_a`.

  An existing file path is loaded from that file; otherwise `configs/<stem>.py` is imported from
  the installed `configs` package (so the spec works from any working directory). The part after
  ':' is passed to `get_config`.
  """
  path, _, arg = spec.partition(":")
  if os.path.isfile(path):
    name = f"_internet_jax_config_{Path(path).stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  else:
    stem = Path(path).stem
    try:
      module = importlib.import_module(f"configs.{stem}")
    except ModuleNotFoundError:
      raise FileNotFoundError(f"{spec}: no config file {path} and no module configs.{stem}") \
          from None
  return module.get_config(arg) if arg else module.get_config()


def latest_step(workdir: str | os.PathLike) -> int | None:
  """The newest complete checkpoint step of a training workdir, or None when it has none."""
  directory = Path(workdir) / "checkpoints"
  if not directory.is_dir():
    return None
  steps = [int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
  return max(steps, default=None)


def describe_environment() -> str:
  """One line: the Python running this kernel, the JAX version and its devices."""
  import jax  # pylint: disable=g-import-not-at-top
  devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
  return (f"python {sys.executable} ({sys.version.split()[0]}), jax {jax.__version__}, "
          f"{jax.device_count()} device(s): {devices}")


# ---------------------------------------------------------------------------------------------
# Inline images and videos


def _zoom(width: int, scale: int | None) -> int:
  if scale is not None:
    if scale < 1:
      raise ValueError(f"scale must be >= 1, got {scale}")
    return int(scale)
  return max(1, min(MAX_ZOOM, DISPLAY_WIDTH // max(width, 1)))


def image_html(image: np.ndarray, scale: int | None = None) -> str:
  """An <img> tag with the image embedded as PNG (any image `visualize.to_uint8_rgb` accepts),
  shown `scale` times larger (default: see DISPLAY_WIDTH) with nearest-neighbour zoom."""
  image = visualize.to_uint8_rgb(np.asarray(image))
  ok, png = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
  if not ok:
    raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
  zoom = _zoom(image.shape[1], scale)
  data = base64.b64encode(png.tobytes()).decode("ascii")
  return (f'<img src="data:image/png;base64,{data}" width="{image.shape[1] * zoom}" '
          f'height="{image.shape[0] * zoom}" style="image-rendering: pixelated"/>')


def video_html(frames: np.ndarray | Iterable[np.ndarray] | str | os.PathLike, fps: float = 30.0,
               scale: int | None = None) -> str:
  """A looping <video> tag with an h264 mp4 embedded (base64): uint8 frames (T, H, W, 3) are
  encoded with `video_io.write_video`; a path to an .mp4 file is embedded as it is."""
  from input_pipeline import video_io  # pylint: disable=g-import-not-at-top
  if isinstance(frames, (str, os.PathLike)):
    path = Path(frames)
    data = path.read_bytes()
    height, width = video_io.read_video(path)[0].shape[:2]
  else:
    frames = np.asarray(list(frames) if not isinstance(frames, np.ndarray) else frames)
    if frames.ndim != 4 or not len(frames):
      raise ValueError(f"video_html: expected frames (T, H, W, 3), got shape {frames.shape}")
    height, width = frames.shape[1:3]
    with tempfile.TemporaryDirectory() as folder:
      path = video_io.write_video(os.path.join(folder, "video.mp4"), frames, fps=fps)
      data = path.read_bytes()
  zoom = _zoom(width, scale)
  source = base64.b64encode(data).decode("ascii")
  return (f'<video width="{width * zoom}" height="{height * zoom}" controls autoplay loop muted '
          f'playsinline style="image-rendering: pixelated">'
          f'<source src="data:video/mp4;base64,{source}" type="video/mp4"/></video>')


def _html(markup: str, caption: str | None):
  from IPython.display import HTML  # pylint: disable=g-import-not-at-top
  if caption:
    markup = f"<figure style='margin: 0'>{markup}<figcaption>{html.escape(caption)}</figcaption></figure>"
  return HTML(markup)


def show_image(image: np.ndarray, scale: int | None = None, caption: str | None = None):
  """An IPython HTML object showing `image` (the last expression of a cell, or `display(...)`)."""
  return _html(image_html(image, scale), caption)


def show_video(frames, fps: float = 30.0, scale: int | None = None, caption: str | None = None):
  """An IPython HTML object playing `frames` (uint8 (T, H, W, 3)) or an .mp4 file inline."""
  return _html(video_html(frames, fps, scale), caption)


# ---------------------------------------------------------------------------------------------
# Training curves and images from the workdir's TensorBoard event files


def _event_accumulator(workdir: str | os.PathLike):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  if not glob.glob(os.path.join(os.fspath(workdir), "events.out.tfevents.*")):
    raise FileNotFoundError(f"{workdir}: no TensorBoard event files (has training run there?)")
  # 0 keeps every event (the default keeps a sample of 10 tensors per tag).
  accumulator = event_accumulator.EventAccumulator(
      os.fspath(workdir), size_guidance={event_accumulator.TENSORS: 0,
                                         event_accumulator.SCALARS: 0,
                                         event_accumulator.IMAGES: 0})
  accumulator.Reload()
  return accumulator


def _latest_per_step(events) -> list:
  """One event per step: the one written last (a resumed run writes its steps again)."""
  by_step = {}
  for event in sorted(events, key=lambda e: e.wall_time):
    by_step[event.step] = event
  return [by_step[step] for step in sorted(by_step)]


def read_scalars(workdir: str | os.PathLike, prefix: str = "") -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{tag: (steps int64, values float64)} of every scalar whose tag starts with `prefix`, from all
  event files of `workdir` (one per `train_and_evaluate` call), one value per step."""
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top
  accumulator = _event_accumulator(workdir)
  tags = accumulator.Tags()
  scalars = {}
  for tag in tags.get("tensors", []):
    if not tag.startswith(prefix):
      continue
    events = _latest_per_step(accumulator.Tensors(tag))
    values = [tensor_util.make_ndarray(e.tensor_proto) for e in events]
    if not values or any(v.size != 1 or v.dtype.kind not in "fiub" for v in values):
      continue  # images and other non-scalar summaries
    scalars[tag] = (np.array([e.step for e in events], np.int64),
                    np.array([float(v.reshape(())) for v in values], np.float64))
  for tag in tags.get("scalars", []):  # simple values, as tensorboardX writes them
    if tag.startswith(prefix) and tag not in scalars:
      events = _latest_per_step(accumulator.Scalars(tag))
      scalars[tag] = (np.array([e.step for e in events], np.int64),
                      np.array([e.value for e in events], np.float64))
  return scalars


def read_images(workdir: str | os.PathLike, tag: str) -> list[tuple[int, np.ndarray]]:
  """[(step, uint8 RGB image)] of the image summary `tag` (e.g. "train/summary"), oldest first;
  the first image of each step."""
  accumulator = _event_accumulator(workdir)
  tags = accumulator.Tags()
  if tag in tags.get("images", []):  # Summary.Image, as tensorboardX writes them
    encoded = [(event.step, event.encoded_image_string)
               for event in _latest_per_step(accumulator.Images(tag))]
  elif tag in tags.get("tensors", []):  # TF2 image tensors: [width, height, png, png, ...]
    encoded = [(event.step, event.tensor_proto.string_val[2])
               for event in _latest_per_step(accumulator.Tensors(tag))
               if len(event.tensor_proto.string_val) >= 3]
  else:
    raise KeyError(f"{workdir}: no summary {tag!r} in the event files")
  images = []
  for step, png in encoded:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is not None:
      images.append((step, image[..., ::-1].copy()))
  return images


# A model curve's baseline is the scalar of the same tag with one of these suffixes (the trivial
# baselines the evaluation logs beside every score, `reconstruction.evaluate_reconstruction`).
BASELINE_SUFFIXES = ("_copy_source", "_zero_motion")
_CURVE_COLOUR, _BASELINE_COLOUR = (31, 119, 180), (230, 120, 20)


def plot_curve(steps: np.ndarray, values: np.ndarray, title: str, size: tuple[int, int] = (320, 200),
               baseline: tuple[np.ndarray, np.ndarray] | None = None,
               baseline_name: str = "baseline") -> np.ndarray:
  """A line plot of values over steps as a uint8 RGB image (width, height = `size`): the title
  with the last value, the y range on the left, the step range below. Non-finite values are left
  out (and counted in the title). `baseline` (steps, values), e.g. copy-source's score on the
  same frames, is drawn in orange on the same axes and its last value named in the title."""
  width, height = size
  image = np.full((height, width, 3), 255, np.uint8)
  steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  finite = np.isfinite(values)
  font, small = cv2.FONT_HERSHEY_SIMPLEX, 0.35
  label = title if not len(values) else f"{title}: {logs.format_number(values[-1])}"
  if (~finite).any():
    label += f" ({int((~finite).sum())} non-finite)"
  lines = [(steps[finite], values[finite], _CURVE_COLOUR)]
  if baseline is not None:
    base_steps, base_values = (np.asarray(a, np.float64) for a in baseline)
    keep = np.isfinite(base_values)
    if keep.any():
      lines.append((base_steps[keep], base_values[keep], _BASELINE_COLOUR))
      label += f" ({baseline_name} {logs.format_number(base_values[keep][-1])})"
  cv2.putText(image, label, (6, 14), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
  left, right, top, bottom = 52, width - 10, 24, height - 22
  cv2.rectangle(image, (left, top), (right, bottom), (160, 160, 160), 1)
  if not len(lines[0][1]):
    cv2.putText(image, "no values", (left + 8, (top + bottom) // 2), font, small, (90, 90, 90), 1,
                cv2.LINE_AA)
    return image
  every_step = np.concatenate([line[0] for line in lines])
  every_value = np.concatenate([line[1] for line in lines])
  low, high = float(every_value.min()), float(every_value.max())
  if math.isclose(low, high, rel_tol=1e-9, abs_tol=1e-12):
    low, high = low - 0.5 * (abs(low) or 1.0), high + 0.5 * (abs(high) or 1.0)
  first, last = float(every_step.min()), float(every_step.max())
  span = (last - first) or 1.0
  # The model's curve last, so it stays on top where it meets its baseline.
  for line_steps, line_values, colour in reversed(lines):
    xs = left + (line_steps - first) / span * (right - left) if last > first else \
        np.full(len(line_steps), (left + right) / 2)
    ys = bottom - (line_values - low) / (high - low) * (bottom - top)
    points = np.round(np.stack([xs, ys], axis=-1)).astype(np.int32)
    if len(points) > 1:
      cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 1, cv2.LINE_AA)
    for x, y in points if len(points) <= 40 else points[-1:]:
      cv2.circle(image, (int(x), int(y)), 2, colour, -1, cv2.LINE_AA)
  for value, y in ((high, top + 8), (low, bottom)):
    cv2.putText(image, logs.format_number(value), (2, y), font, small, (60, 60, 60), 1, cv2.LINE_AA)
  cv2.putText(image, f"step {int(first)}", (left, height - 6), font, small, (60, 60, 60), 1,
              cv2.LINE_AA)
  text = f"{int(last)}"
  (text_width, _), _ = cv2.getTextSize(text, font, small, 1)
  cv2.putText(image, text, (right - text_width, height - 6), font, small, (60, 60, 60), 1,
              cv2.LINE_AA)
  return image


def plot_scalars(scalars: dict[str, tuple[np.ndarray, np.ndarray]],
                 names: Sequence[str] | None = None, columns: int = 3,
                 size: tuple[int, int] = (320, 200)) -> np.ndarray:
  """One `plot_curve` panel per tag of `read_scalars` output (`names`: which, in this order;
  tags that are absent are skipped), `columns` per row, as one uint8 RGB image. A tag whose
  baseline is logged too (`<tag>_copy_source`, `<tag>_zero_motion`) is drawn beside it."""
  names = list(scalars) if names is None else [name for name in names if name in scalars]
  if not names:
    raise ValueError(f"plot_scalars: none of the requested tags; available: {sorted(scalars)}")
  panels = []
  for name in names:
    suffix = next((s for s in BASELINE_SUFFIXES if name + s in scalars), None)
    baseline = {} if suffix is None else dict(baseline=scalars[name + suffix],
                                              baseline_name=suffix[1:].replace("_", " "))
    panels.append(plot_curve(*scalars[name], title=name, size=size, **baseline))
  rows = [panels[i:i + columns] for i in range(0, len(panels), columns)]
  return visualize.tile_images(rows, pad=4)
