"""Small numpy helpers to look at frames, part labels, flows and masks (contact sheets, previews).

Pure numpy + OpenCV, no jax: used by the synthetic renderer's `--preview`, the input-pipeline
benchmark and notebooks. Images come out as uint8 RGB (H, W, 3).

* `flow_to_rgb`: the Middlebury colour coding of Baker et al. (hue = direction, saturation =
  magnitude); flows follow the project's (x, y) order on the last axis, in any unit.
* `labels_to_rgb`: a fixed, distinct colour per integer label (0 is dark grey).
* `tile_images`: rows of images into one padded sheet.
* `save_png`: writes uint8 RGB (or grayscale) with OpenCV, raising OSError on failure.
"""

from __future__ import annotations

import colorsys
import os

import cv2
import numpy as np

# Segment lengths of the Middlebury colour wheel: red->yellow, yellow->green, green->cyan,
# cyan->blue, blue->magenta, magenta->red (Baker et al., "A Database and Evaluation Methodology
# for Optical Flow"); more entries where the eye separates hues less well.
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)
_WHEEL_KEYS = ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255))


def _color_wheel() -> np.ndarray:
  """(55, 3) float32 wheel colours in [0, 255], linear ramps between the six key hues."""
  entries = []
  for index, length in enumerate(_WHEEL_SEGMENTS):
    start = np.array(_WHEEL_KEYS[index], np.float32)
    end = np.array(_WHEEL_KEYS[(index + 1) % len(_WHEEL_KEYS)], np.float32)
    steps = np.arange(length, dtype=np.float32)[:, None] / length
    entries.append(np.floor(start + (end - start) * steps))
  return np.concatenate(entries, axis=0)


_WHEEL = _color_wheel()


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
  """bool (0/255), float in [0, 1] (clipped) or uint8; (H, W), (H, W, 1), (H, W, 3) -> uint8 RGB."""
  image = np.asarray(image)
  if image.dtype == np.bool_:
    image = image.astype(np.uint8) * 255
  elif np.issubdtype(image.dtype, np.floating):
    image = np.round(np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0).astype(np.uint8)
  elif image.dtype != np.uint8:
    raise ValueError(f"to_uint8_rgb: unsupported dtype {image.dtype}")
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"to_uint8_rgb: expected (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return np.ascontiguousarray(image)


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """Middlebury colour coding of a (H, W, 2) flow (dx, dy) -> uint8 (H, W, 3).

  White is no motion; hue gives the direction, saturation the magnitude relative to
  `max_magnitude` (default: the largest finite magnitude in `flow`). Magnitudes beyond it are
  drawn darkened (x 0.75), non-finite vectors black. Units do not matter as long as
  `max_magnitude` uses the same.
  """
  flow = np.asarray(flow, np.float32)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f"flow_to_rgb: expected (H, W, 2), got {flow.shape}")
  finite = np.all(np.isfinite(flow), axis=-1)
  dx = np.where(finite, flow[..., 0], 0.0)
  dy = np.where(finite, flow[..., 1], 0.0)
  magnitude = np.sqrt(dx * dx + dy * dy)
  if max_magnitude is None:
    max_magnitude = float(magnitude.max()) if magnitude.size else 0.0
  radius = magnitude / max(float(max_magnitude), 1e-8)

  count = _WHEEL.shape[0]
  # Angle in (-1, 1]; the (-dy, -dx) argument puts +x (rightwards) at red as in the reference code.
  angle = np.arctan2(-dy, -dx) / np.pi
  position = (angle + 1.0) / 2.0 * (count - 1)
  k0 = np.floor(position).astype(np.int32)
  k1 = (k0 + 1) % count
  frac = (position - k0)[..., None]
  colour = ((1.0 - frac) * _WHEEL[k0] + frac * _WHEEL[k1]) / 255.0
  inside = (radius <= 1.0)[..., None]
  colour = np.where(inside, 1.0 - radius[..., None] * (1.0 - colour), colour * 0.75)
  colour = np.where(finite[..., None], colour, 0.0)
  return np.floor(255.0 * np.clip(colour, 0.0, 1.0)).astype(np.uint8)


def label_palette(num_labels: int) -> np.ndarray:
  """(num_labels + 1, 3) uint8: entry 0 dark grey, then distinct hues (golden-ratio spacing)."""
  palette = np.zeros((num_labels + 1, 3), np.uint8)
  palette[0] = (40, 40, 40)
  for label in range(1, num_labels + 1):
    hue = (0.61803398875 * label) % 1.0
    # Alternate brightness so that neighbouring labels differ even where hues come close.
    value = 0.95 if label % 2 else 0.7
    rgb = colorsys.hsv_to_rgb(hue, 0.75, value)
    palette[label] = np.round(np.array(rgb) * 255.0).astype(np.uint8)
  return palette


def labels_to_rgb(labels: np.ndarray, num_labels: int) -> np.ndarray:
  """Integer labels (H, W) in [0, num_labels] -> uint8 (H, W, 3); out-of-range labels are white."""
  labels = np.asarray(labels)
  if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels_to_rgb: expected integer (H, W), got {labels.dtype} {labels.shape}")
  palette = np.concatenate([label_palette(num_labels), np.full((1, 3), 255, np.uint8)])
  index = np.where((labels >= 0) & (labels <= num_labels), labels, num_labels + 1)
  return palette[index]


def tile_images(rows: list[list[np.ndarray]], pad: int = 2, pad_value: int = 255) -> np.ndarray:
  """Lays out rows of images into one uint8 RGB sheet, `pad` pixels between and around them.

  Images may be bool, float in [0, 1] or uint8, grayscale or RGB, and of different sizes: each
  row is as tall as its tallest image, images are top-left aligned in their cell, and the sheet is
  as wide as the widest row.
  """
  if pad < 0:
    raise ValueError(f"tile_images: pad must be >= 0, got {pad}")
  rows = [[to_uint8_rgb(image) for image in row] for row in rows]
  row_heights = [max((im.shape[0] for im in row), default=0) for row in rows]
  row_widths = [sum(im.shape[1] for im in row) + pad * (len(row) + 1) for row in rows]
  height = sum(row_heights) + pad * (len(rows) + 1)
  width = max(row_widths, default=pad)
  sheet = np.full((max(height, 1), max(width, 1), 3), pad_value, np.uint8)
  top = pad
  for row, row_height in zip(rows, row_heights):
    left = pad
    for image in row:
      sheet[top:top + image.shape[0], left:left + image.shape[1]] = image
      left += image.shape[1] + pad
    top += row_height + pad
  return sheet


def animation_contact_sheet(panels: list[np.ndarray], num_columns: int = 6) -> np.ndarray:
  """One row per panel video ((T, H, W, 3) each, e.g. source | driving | output | target), one
  column per frame at `num_columns` evenly spaced times (all frames if fewer)."""
  count = len(panels[0])
  times = np.unique(np.linspace(0, count - 1, min(count, num_columns)).round().astype(int))
  return tile_images([[panel[t] for t in times] for panel in panels])


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes an image (see `to_uint8_rgb` for what it accepts) as PNG; OSError if it cannot."""
  image = to_uint8_rgb(image)
  ok = cv2.imwrite(os.fspath(path), np.ascontiguousarray(image[..., ::-1]))  # OpenCV wants BGR
  if not ok:
    raise OSError(f"{path}: could not write PNG")


def _upsample_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
  return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST)


def draw_anchors(image: np.ndarray, anchors: np.ndarray, radius: int | None = None) -> np.ndarray:
  """Draws anchors (K, 2), normalised (x, y) in [-1, 1], as dots in the label palette colours."""
  image = to_uint8_rgb(image).copy()
  height, width = image.shape[:2]
  radius = radius or max(1, round(min(height, width) / 64))
  palette = label_palette(len(anchors))
  for index, (x, y) in enumerate(np.asarray(anchors, np.float32)):
    centre = (int(round((x + 1) * (width - 1) / 2)), int(round((y + 1) * (height - 1) / 2)))
    cv2.circle(image, centre, radius, tuple(int(c) for c in palette[index + 1]), thickness=-1,
               lineType=cv2.LINE_AA)
  return image


def motion_by_anchor(composition: np.ndarray, height: int, width: int) -> np.ndarray:
  """The motion field coloured by anchor (paper Fig. 8): each pixel takes the colour of the motion
  with the largest composition weight, channel 0 (the still background) is black, and brightness
  follows that weight. composition: (h, w, K + 1)."""
  composition = np.asarray(composition, np.float32)
  winner = np.argmax(composition, axis=-1)
  palette = label_palette(composition.shape[-1] - 1).astype(np.float32)
  palette[0] = 0.0
  colour = palette[winner] * np.max(composition, axis=-1, keepdims=True)
  return _upsample_nearest(np.clip(colour, 0, 255).astype(np.uint8), height, width)


def confidence_to_rgb(confidence: np.ndarray, height: int, width: int) -> np.ndarray:
  """A confidence map (h, w, 1) in [0, 1] as grey levels, upsampled to (height, width)."""
  grey = to_uint8_rgb(np.asarray(confidence, np.float32)[..., 0])
  return _upsample_nearest(grey, height, width)


def training_summary(batch: dict, outputs: dict) -> np.ndarray:
  """One row per example: source | driving | output | anchors (source, driving) | motion field
  coloured by anchor | confidence map. `batch` holds uint8 frames, `outputs` the generator's dict."""
  rows = []
  for index in range(len(batch["source"])):
    source, driving = batch["source"][index], batch["driving"][index]
    height, width = driving.shape[:2]
    rows.append([
        source,
        driving,
        np.asarray(outputs["prediction"][index], np.float32),
        draw_anchors(source, outputs["source_anchors"]["value"][index]),
        draw_anchors(driving, outputs["driving_anchors"]["value"][index]),
        motion_by_anchor(outputs["composition"][index], height, width),
        confidence_to_rgb(outputs["confidence"][index], height, width),
    ])
  return tile_images(rows)
