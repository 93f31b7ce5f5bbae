"""Metrics against the synthetic dataset's exact ground truth (input_pipeline/synthetic.py): the end-point error of
the predicted motion field and the true temporal error of a generated video.

The ground truth is `<name>.npz` beside each synthetic video (`input_pipeline.synthetic`, whose
module docstring defines every array), in pixels of the *rendered* resolution S; the model works
at its own resolution R. Both grids relate by the half-pixel (pixel-area) rule by which the
frames reached R (`video_io.resize_and_pad` uses cv2.INTER_AREA / INTER_LINEAR, whose pixel
centres follow it) and by which the renderer itself is resolution independent:

  position:      x_R = (x_S + 0.5) * R / S - 0.5      (and likewise y)
  displacement:  d_R = d_S * R / S

A ground-truth field is brought to R by sampling it bilinearly at the S-positions of R's pixel
centres and converting its values with the rules above. A mask is brought to R conservatively: an
R pixel is valid only if every bilinear tap with non-zero weight is valid and all those taps carry
the same part label (interpolating a correspondence across a part edge would be meaningless). With
R = S the taps fall on the pixels and the ground truth is used exactly.

* `motion_epe`: the model's `motion_full` for driving frame t holds, per output pixel z,
  normalised align-corners coordinates F(z) in the source = frame 0 (internet_jax/geometry.py).
  In pixels at R, x = (F_x + 1) (R - 1) / 2. EPE = mean over all frames and all source-visible
  pixels of || F_px(z) - source_coords_R(z) ||_2, in pixels at the model resolution R.
  `source_visible` is True on the figure where the surface point is visible in frame 0 *and* on the
  background wherever background owns the pixel in both frames (its correspondence is the pixel
  itself, the background being static), so `epe` is dominated by static background on small frames;
  `epe_figure` is the same mean over the source-visible figure pixels only (part_labels[t] != 0).
* `motion_scores`: `motion_epe` of the model's field and of zero motion (the identity field,
  F(z) = z: "the driving frame is the source"), so both are averaged over the same pixels.
* `figure_mask`: the figure region of a target frame t for an animation of frame 0: the pixels
  where the part labels of frame t OR of frame 0 are non-zero (so that a copy of the source is
  also scored where its figure lies on the target's background). At R != S an R pixel belongs to
  it if its area, [i S/R, (i + 1) S/R) per axis, overlaps a figure pixel of S (the area rule by
  which INTER_AREA reaches R: such a pixel's colour carries figure colour).
* `true_temporal_error`: with the exact forward flow f (frame t-1 -> t, on t-1's grid), the
  generated O_t warped to t-1, O_t(p + f(p)) (`geometry.warp`), against O_{t-1}(p): the per-pixel
  Euclidean RGB distance on [0, 1] (E_temp's distance), averaged over all pairs and all pixels
  that are valid_forward, not anti-aliased (`mixed`) at p and with no `mixed` bilinear tap around
  p + f(p) (the module docstring's stricter photometric mask). Lower is better; the rendered
  frames themselves score about 0.001-0.002 at 64^2 (texture interpolation).
* `anchor_scores` (INTERnet paper, Fig. 7 and Sec. 4.3): the share of the predicted driving
  anchors that lie on the figure, and their mean distance (px at R) to the motion boundary of
  their frame (`motion_boundary`: neighbouring pixels of different part labels whose motions to
  the source differ by more than 1 px at S where they meet), each beside the value of a uniformly
  placed anchor.
* `confidence_scores` (Fig. 8 and Sec. 4.4): the confidence map M (brought to S) as a predictor
  of `source_visible`: ROC AUC (`roc_auc`) and the IoU of M > 0.5, over all pixels (background
  included) and over the figure pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from internet_jax.metrics import BODY_REGIONS, temporal

EPE_KEYS = ("source_coords", "source_visible", "part_labels")
# Loaded where present: the names of the labels (the body-region EPEs need them).
OPTIONAL_KEYS = ("part_names",)
TEMPORAL_KEYS = ("flow_forward", "valid_forward", "mixed", "part_labels")


def ground_truth_path(video_path: str | os.PathLike) -> Path:
  """`<dir>/<name>.npz` beside a video file or frame folder."""
  from input_pipeline import video_io  # pylint: disable=g-import-not-at-top
  path = Path(video_path)
  return path.parent / f"{video_io.video_name(path)}.npz"


def load_ground_truth(path: str | os.PathLike, keys=EPE_KEYS + TEMPORAL_KEYS) -> dict:
  """The arrays `keys` (and OPTIONAL_KEYS where present) of a ground-truth npz (never
  unpickled); ValueError naming the file."""
  from input_pipeline import annotations  # pylint: disable=g-import-not-at-top
  path = Path(path)
  try:
    with np.load(path, allow_pickle=False) as archive:
      missing = [key for key in keys if key not in archive.files]
      if missing:
        raise ValueError(f"{path}: not a synthetic ground-truth file (missing {', '.join(missing)})")
      optional = [key for key in OPTIONAL_KEYS if key in archive.files]
      return {key: archive[key] for key in dict.fromkeys(tuple(keys) + tuple(optional))}
  except annotations.NPZ_ERRORS as e:
    message = str(e)
    raise ValueError(message if message.startswith(str(path)) else
                     f"{path}: unreadable ground truth ({' '.join(message.split())})") from None


def _taps(size_from: int, size_to: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Bilinear taps along one axis: the S-positions of R's pixel centres (half-pixel rule),
  as (lower index, upper index, upper weight), edge-clamped."""
  position = (np.arange(size_to, dtype=np.float64) + 0.5) * size_from / size_to - 0.5
  position = np.clip(position, 0.0, size_from - 1.0)
  lower = np.floor(position).astype(np.int64)
  weight = position - lower
  upper = np.minimum(lower + 1, size_from - 1)
  return lower, upper, weight


def _resample_plan(shape_from: tuple[int, int], shape_to: tuple[int, int]):
  (y0, y1, wy), (x0, x1, wx) = (_taps(shape_from[0], shape_to[0]), _taps(shape_from[1], shape_to[1]))
  # Four taps: (row index, column index, weight), each broadcast to (R_h, R_w).
  return [(y[:, None], x[None, :], (a[:, None] * b[None, :]))
          for y, a in ((y0, 1.0 - wy), (y1, wy)) for x, b in ((x0, 1.0 - wx), (x1, wx))]


def resample_field(field: np.ndarray, shape_to: tuple[int, int]) -> np.ndarray:
  """Bilinear resampling of (T, S_h, S_w, ...) to (T, R_h, R_w, ...) at R's pixel centres (values
  unchanged: convert coordinates or displacements separately)."""
  plan = _resample_plan(field.shape[1:3], shape_to)
  out = 0.0
  for rows, cols, weight in plan:
    out = out + weight.reshape(weight.shape + (1,) * (field.ndim - 3)) * field[:, rows, cols]
  return np.asarray(out, np.float32)


def resample_mask(mask: np.ndarray, labels: np.ndarray, shape_to: tuple[int, int]) -> np.ndarray:
  """(T, S_h, S_w) bool -> (T, R_h, R_w): valid where every tap with weight > 0 is valid and all
  such taps share one part label (see the module docstring)."""
  plan = _resample_plan(mask.shape[1:3], shape_to)
  rows0, cols0, _ = plan[0]
  reference_label = labels[:, rows0, cols0]
  out = np.ones((mask.shape[0],) + tuple(shape_to), bool)
  for rows, cols, weight in plan:
    used = weight > 0
    ok = mask[:, rows, cols] & (labels[:, rows, cols] == reference_label)
    out &= ok | ~used
  return out


def _rescale_positions(positions: np.ndarray, shape_from, shape_to) -> np.ndarray:
  """Pixel positions (..., 2) (x, y) on a shape_from grid -> on a shape_to grid (half-pixel rule,
  module docstring); either direction (S -> R or R -> S)."""
  scale = np.array([shape_to[1] / shape_from[1], shape_to[0] / shape_from[0]], np.float32)
  return (positions + 0.5) * scale - 0.5


def motion_epe(motion_full: np.ndarray, source_coords: np.ndarray, source_visible: np.ndarray,
               part_labels: np.ndarray, part_names=None) -> dict:
  """End-point error of a predicted backward motion field against the exact source correspondence.

  Args:
    motion_full: (T, R, R, 2) normalised align-corners coordinates in frame 0 (the source) for
      every pixel of driving frame t (the model's `motion_full`).
    source_coords, source_visible, part_labels: the ground truth (T, S, S, ...) of the video.
    part_names: its (P,) part names (label k >= 1 is part_names[k - 1]); with them the result
      also has epe_<region> for each of BODY_REGIONS (the mean over that region's visible figure
      pixels; NaN if there are none).
  Returns:
    dict(epe (px at R, mean over all visible pixels of all frames, background included),
    epe_per_frame (T,) (NaN for a frame without visible pixels), visible_fraction, epe_figure
    (the mean over the visible figure pixels only; NaN if there are none), figure_visible_fraction).
  """
  motion_full = np.asarray(motion_full, np.float32)
  if motion_full.ndim != 4 or motion_full.shape[-1] != 2:
    raise ValueError(f"motion_epe: expected motion (T, H, W, 2), got {motion_full.shape}")
  if len(motion_full) != len(source_coords):
    raise ValueError(f"motion_epe: {len(motion_full)} predicted frames, ground truth has "
                     f"{len(source_coords)}")
  shape_to = motion_full.shape[1:3]
  shape_from = source_coords.shape[1:3]
  height, width = shape_to
  predicted = (motion_full + 1.0) * np.array([(width - 1) / 2.0, (height - 1) / 2.0], np.float32)
  target = _rescale_positions(resample_field(source_coords, shape_to), shape_from, shape_to)
  visible = resample_mask(source_visible.astype(bool), part_labels, shape_to)
  error = np.linalg.norm(predicted - target, axis=-1)

  def mean_over(labels_kept):
    # Every tap of a kept R pixel carries one label, so a kept pixel's taps all lie in the region.
    region = resample_mask(source_visible.astype(bool) & labels_kept, part_labels, shape_to)
    count = region.sum()
    return (float(np.where(region, error, 0.0).sum(dtype=np.float64) / count) if count
            else float("nan")), region

  counts = visible.sum(axis=(1, 2))
  sums = np.where(visible, error, 0.0).sum(axis=(1, 2), dtype=np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_frame = sums / counts
  total = counts.sum()
  epe_figure, figure = mean_over(part_labels != 0)
  result = {"epe": float(sums.sum() / total) if total else float("nan"),
            "epe_per_frame": per_frame,
            "visible_fraction": float(total / visible.size),
            "epe_figure": epe_figure,
            "figure_visible_fraction": float(figure.sum() / figure.size)}
  if part_names is not None:
    names = [str(name) for name in np.asarray(part_names).ravel()]
    for region, parts in BODY_REGIONS:
      labels = [names.index(part) + 1 for part in parts if part in names]
      result[f"epe_{region}"] = mean_over(np.isin(part_labels, labels))[0]
  return result


def identity_motion(num_frames: int, height: int, width: int) -> np.ndarray:
  """(T, H, W, 2) zero motion in `motion_full`'s convention: every pixel's own normalised
  align-corners position (x, y) = (j, i) * 2 / (size - 1) - 1."""
  xs = np.linspace(-1.0, 1.0, width, dtype=np.float32) if width > 1 else np.zeros(1, np.float32)
  ys = np.linspace(-1.0, 1.0, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)
  grid = np.stack(np.meshgrid(xs, ys), axis=-1)
  return np.broadcast_to(grid, (num_frames, height, width, 2))


def _align_corners_upsampling(size_from: int, size_to: int) -> np.ndarray:
  """(size_to, size_from): the 1-D linear interpolation of `geometry.resize_align_corners`."""
  matrix = np.zeros((size_to, size_from))
  for i in range(size_to):
    position = i * (size_from - 1) / max(size_to - 1, 1)
    j = min(int(position), max(size_from - 2, 0))
    weight = position - j
    matrix[i, j] += 1.0 - weight
    if size_from > 1:
      matrix[i, j + 1] += weight
  return matrix


def best_grid_motion(truth: dict, base: int) -> np.ndarray:
  """(T, S, S, 2) the best motion a base x base field can give at the rendered resolution S: per
  frame, the least-squares base field whose align-corners bilinear upsampling (the model's
  `motion_pyramid`) fits the exact correspondence on all source-visible pixels. Its
  `motion_scores` are the floor of a model whose motion lives on that grid: structures thinner
  than a grid cell cannot move on their own."""
  import scipy.linalg  # pylint: disable=g-import-not-at-top
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  coords = np.asarray(truth["source_coords"], np.float64)
  num_frames, height, width = coords.shape[:3]
  # Each pixel mixes at most 4 grid values, so the (S^2, base^2) upsampling is sparse and the
  # normal equations are only base^2 x base^2 (a dense solve of 128^2 frames on a 32^2 grid
  # would hold a 16384 x 1024 matrix per frame). Their minimum-norm solution (complete
  # orthogonal factorisation, gelsy) is the least-squares one; grid values that no visible pixel
  # touches stay 0.
  upsample = sparse.csr_matrix(sparse.kron(_align_corners_upsampling(base, height),
                                           _align_corners_upsampling(base, width)))
  target = coords * 2.0 / (np.array([width, height]) - 1.0) - 1.0  # normalised align-corners
  fields = []
  for t in range(num_frames):
    rows = np.asarray(truth["source_visible"][t], bool).ravel()
    visible = upsample[rows]
    normal = (visible.T @ visible).toarray()
    solution = scipy.linalg.lstsq(normal, visible.T @ target[t].reshape(-1, 2)[rows],
                                  lapack_driver="gelsy")[0]
    fields.append((upsample @ solution).reshape(height, width, 2))
  return np.stack(fields).astype(np.float32)


def _select(array: np.ndarray, frames) -> np.ndarray:
  return array if frames is None else array[np.asarray(frames, np.int64)]


def motion_scores(motion_full: np.ndarray, truth: dict, frames=None) -> dict[str, float]:
  """The model's EPE and the zero-motion EPE, both by `motion_epe` on the same pixels.

  Args:
    motion_full: (T', R, R, 2) the model's field for driving frames `frames` (default: all).
    truth: `load_ground_truth`'s arrays (source_coords, source_visible, part_labels) of the video.
    frames: the ground-truth frame index of each of the T' driving frames.
  Returns:
    dict(epe, epe_zero_motion (all source-visible pixels, background included), epe_figure,
    epe_figure_zero_motion (source-visible figure pixels), and where `truth` has part_names,
    for each of BODY_REGIONS epe_<region> and epe_<region>_zero_motion), px at R.
  """
  coords = _select(truth["source_coords"], frames)
  visible = _select(truth["source_visible"], frames)
  labels = _select(truth["part_labels"], frames)
  names = truth.get("part_names")
  model = motion_epe(motion_full, coords, visible, labels, names)
  zero = motion_epe(identity_motion(*np.shape(motion_full)[:3]), coords, visible, labels, names)
  keys = ["epe", "epe_figure"] + ([f"epe_{region}" for region, _ in BODY_REGIONS]
                                  if names is not None else [])
  return {name: scores[key] for key in keys
          for name, scores in ((key, model), (f"{key}_zero_motion", zero))}


def _area_overlap(size_from: int, size_to: int) -> np.ndarray:
  """(size_to, size_from) float32: 1 where R pixel i's area [i S/R, (i + 1) S/R) overlaps S
  pixel j's [j, j + 1) (integer arithmetic, so R = S is exactly the identity)."""
  i = np.arange(size_to)[:, None]
  j = np.arange(size_from)[None, :]
  return ((j * size_to < (i + 1) * size_from) & ((j + 1) * size_to > i * size_from)).astype(
      np.float32)


def figure_mask(part_labels: np.ndarray, shape_to: tuple[int, int], frames=None) -> np.ndarray:
  """(T', R_h, R_w) bool: the figure region of each target frame (module docstring): part labels
  of frame t or of the source frame 0 non-zero, brought to R by the area-overlap rule.

  Args:
    part_labels: (T, S_h, S_w) the ground truth's labels.
    shape_to: (R_h, R_w), the frames' resolution.
    frames: the ground-truth index of each target frame (default: all T).
  """
  labels = np.asarray(part_labels)
  figure = (_select(labels, frames) != 0) | (labels[0] != 0)[None]
  if tuple(figure.shape[1:]) == tuple(shape_to):
    return figure
  rows = _area_overlap(figure.shape[1], shape_to[0])
  cols = _area_overlap(figure.shape[2], shape_to[1])
  return (rows @ figure.astype(np.float32) @ cols.T) > 0


def _any_tap(mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
  """Whether any bilinear tap (weight > 0) of `positions` (H, W, 2 px) reads True in (H, W) mask."""
  height, width = mask.shape
  x, y = positions[..., 0], positions[..., 1]
  x0 = np.floor(x).astype(np.int64)
  y0 = np.floor(y).astype(np.int64)
  out = np.zeros(mask.shape, bool)
  for dy, wy in ((0, 1.0 - (y - y0)), (1, y - y0)):
    for dx, wx in ((0, 1.0 - (x - x0)), (1, x - x0)):
      rows = np.clip(y0 + dy, 0, height - 1)
      cols = np.clip(x0 + dx, 0, width - 1)
      out |= mask[rows, cols] & (wx * wy > 0)
  return out


def true_temporal_error(generated: np.ndarray, flow_forward: np.ndarray, valid_forward: np.ndarray,
                        mixed: np.ndarray, part_labels: np.ndarray) -> dict:
  """The generated O_t warped to t-1 with the exact flow, against O_{t-1} (module docstring).

  Args:
    generated: uint8 (T, R, R, 3).
    flow_forward, valid_forward, mixed, part_labels: the ground truth (T-1 or T, S, S, ...).
  Returns:
    dict(temporal_error_gt (mean RGB distance on [0, 1] over the masked pixels of all pairs),
    temporal_error_gt_per_pair (T - 1,), masked_fraction).
  """
  generated = np.asarray(generated)
  if len(flow_forward) != len(generated) - 1:
    raise ValueError(f"true_temporal_error: {len(generated)} frames, ground truth has "
                     f"{len(flow_forward) + 1}")
  shape_to = generated.shape[1:3]
  shape_from = flow_forward.shape[1:3]
  scale = np.array([shape_to[1] / shape_from[1], shape_to[0] / shape_from[0]], np.float32)
  flows = resample_field(flow_forward, shape_to) * scale
  # valid_forward[t] lives on frame t's grid: its labels are part_labels[t].
  valid = resample_mask(valid_forward.astype(bool) & ~mixed[:-1].astype(bool), part_labels[:-1],
                        shape_to)
  mixed_to = resample_mask(~mixed.astype(bool), part_labels, shape_to)  # True = clean
  grid = np.stack(np.meshgrid(np.arange(shape_to[1], dtype=np.float32),
                              np.arange(shape_to[0], dtype=np.float32)), axis=-1)
  sums, counts = [], []
  for t in range(1, len(generated)):
    mask = valid[t - 1] & ~_any_tap(~mixed_to[t], grid + flows[t - 1])
    warped = temporal.warp_by_flow(generated[t], flows[t - 1], "border")
    diff = (warped - generated[t - 1].astype(np.float32)) / 255.0
    distance = np.sqrt(np.sum(diff * diff, axis=-1))
    sums.append(float(np.sum(distance[mask], dtype=np.float64)))
    counts.append(int(mask.sum()))
  sums = np.asarray(sums)
  counts = np.asarray(counts)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_pair = sums / counts
  total = counts.sum()
  return {"temporal_error_gt": float(sums.sum() / total) if total else float("nan"),
          "temporal_error_gt_per_pair": per_pair,
          "masked_fraction": float(total / (len(counts) * shape_to[0] * shape_to[1]))}


# ---------------------------------------------------------------------------------------------
# The INTERnet paper's qualitative claims, measured: anchors on the moving body (Fig. 7, Sec.
# 4.3) and a confidence map that fits what the source can show (Fig. 8, Sec. 4.4).

# `motion_boundary`: a jump of more than this many pixels at S between two parts' motions.
MOTION_BOUNDARY_PX = 1.0


def motion_boundary(source_coords: np.ndarray, part_labels: np.ndarray,
                    threshold: float = MOTION_BOUNDARY_PX) -> np.ndarray:
  """(T, S_h, S_w) bool: the motion boundary of each frame t relative to the source (frame 0).

  A pixel z is on it when, for one of its 4-neighbours z' = z + e, the part labels differ
  (figure/background or part/part, e.g. an occlusion edge) and the motion jumps there: the source
  positions of the edge's midpoint m = z + e/2 according to each side's own motion are more than
  `threshold` px (at S) apart. Both pixels of such a pair are marked. A side's position of m is
  extrapolated linearly from its pixel and the next pixel beyond it of the same label,
  c(z) + (c(z) - c(z - e)) / 2 with c = source_coords[t], and c(z) alone where that pixel has
  another label (a 1-px-thin part). Why: the renderer moves each part (and the static
  background) by one affine map (input_pipeline/synthetic.py), so this is exactly the gap
  between the two maps at the edge for parts at least 2 px thick, and it is 0 inside a part and
  across an edge whose two parts move together, however far they turned since frame 0 (the
  plain difference of neighbouring displacements is ||(A - I) e|| there, 2 sin(theta / 2) > 1 px
  for a limb turned by theta > 60 degrees). Frame 0 has no boundary.
  """
  coords = np.asarray(source_coords, np.float64)
  labels = np.asarray(part_labels).astype(np.int64)
  boundary = np.zeros(labels.shape, bool)
  for axis in (1, 2):
    size = labels.shape[axis]
    # Padded by one pixel each side (label -1: no same-label pixel beyond the frame's edge).
    padding = [(0, 0)] * 3
    padding[axis] = (1, 1)
    c = np.pad(coords, padding + [(0, 0)], mode="edge")
    lab = np.pad(labels, padding, constant_values=-1)
    # Pairs (z, z') at padded indices (i + 1, i + 2), i = 0 .. size - 2, outer neighbours i, i + 3.
    here, there = _along(c, axis, 1, size), _along(c, axis, 2, size + 1)
    behind = np.where((_along(lab, axis, 0, size - 1) == _along(lab, axis, 1, size))[..., None],
                      (here - _along(c, axis, 0, size - 1)) / 2.0, 0.0)
    beyond = np.where((_along(lab, axis, 3, size + 2) == _along(lab, axis, 2, size + 1))[..., None],
                      (_along(c, axis, 3, size + 2) - there) / 2.0, 0.0)
    jump = np.linalg.norm((here + behind) - (there - beyond), axis=-1) > threshold
    edge = jump & (_along(lab, axis, 1, size) != _along(lab, axis, 2, size + 1))
    _along(boundary, axis, 0, size - 1)[...] |= edge
    _along(boundary, axis, 1, size)[...] |= edge
  return boundary


def _along(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
  """array[start:stop] along `axis` (a view)."""
  return array[tuple(slice(start, stop) if a == axis else slice(None) for a in range(array.ndim))]


def anchor_scores(anchors: np.ndarray, part_labels: np.ndarray, source_coords: np.ndarray,
                  shape: tuple[int, int] | None = None,
                  threshold: float = MOTION_BOUNDARY_PX) -> dict:
  """Where the predicted anchors sit (INTERnet paper, Fig. 7 and Sec. 4.3: with the intrinsic
  loss "all anchors ... are close to the motion boundary", without it some lie "in the plain
  background with zero motion").

  Args:
    anchors: (T, K, 2) the driving anchors of frames 0..T-1, normalised align-corners (x, y) on
      the model's (R_h, R_w) grid (internet_jax/geometry.py): x_R = (a_x + 1) (R_w - 1) / 2.
    part_labels, source_coords: the ground truth (T, S_h, S_w[, 2]) of the video.
    shape: (R_h, R_w), the model resolution (default: S, the ground truth's).
    threshold: the motion-boundary jump (`motion_boundary`), px at S.
  Returns:
    dict(anchors_on_figure: the fraction of all T K anchors whose nearest S pixel (the position
    brought to S by the half-pixel rule, rounded half up) lies inside the frame and has a non-zero
    part label in that frame (an anchor outside the frame is not on the figure);
    anchors_on_figure_chance: the same for a uniformly placed anchor, the mean over frames of the
    figure's share of the frame's pixels;
    anchor_boundary_distance: the mean over the anchors of the frames that have a motion boundary
    of the Euclidean distance, px at R, from the anchor to the nearest boundary pixel's centre
    (brought to R by the half-pixel rule), NaN without any such frame;
    anchor_boundary_distance_chance: the same for every pixel centre of those frames in place of
    the anchors (an exact Euclidean distance transform at S, scaled to px at R);
    boundary_frames: how many frames have a motion boundary).
  """
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  anchors = np.asarray(anchors, np.float64)
  labels = np.asarray(part_labels)
  if anchors.ndim != 3 or anchors.shape[-1] != 2:
    raise ValueError(f"anchor_scores: expected anchors (T, K, 2), got {anchors.shape}")
  if len(anchors) != len(labels):
    raise ValueError(f"anchor_scores: anchors of {len(anchors)} frames, ground truth has "
                     f"{len(labels)}")
  shape_s = labels.shape[1:3]
  shape_r = tuple(shape) if shape is not None else shape_s
  positions = (anchors + 1.0) * np.array([(shape_r[1] - 1) / 2.0, (shape_r[0] - 1) / 2.0])
  finite = np.isfinite(positions).all(axis=-1)
  # Clipped first: a non-finite or far-away anchor becomes a position outside the frame.
  position_s = np.where(finite[..., None], _rescale_positions(positions, shape_r, shape_s), -1.0)
  nearest = np.floor(np.clip(position_s, -1.0, max(shape_s)) + 0.5).astype(np.int64)
  cols, rows = nearest[..., 0], nearest[..., 1]
  inside = finite & (cols >= 0) & (cols < shape_s[1]) & (rows >= 0) & (rows < shape_s[0])
  frames = np.arange(len(labels))[:, None]
  owner = labels[frames, np.clip(rows, 0, shape_s[0] - 1), np.clip(cols, 0, shape_s[1] - 1)]
  boundary = motion_boundary(source_coords, labels, threshold)
  sampling = (shape_r[0] / shape_s[0], shape_r[1] / shape_s[1])  # px at R per px at S
  distances, chance = [], []
  for t in np.flatnonzero(boundary.any(axis=(1, 2))):
    centres = _rescale_positions(np.argwhere(boundary[t])[:, ::-1].astype(np.float64), shape_s,
                                 shape_r)
    gaps = positions[t][:, None, :] - centres[None]
    distances.append(np.sqrt(np.sum(gaps * gaps, axis=-1)).min(axis=1))
    chance.append(ndimage.distance_transform_edt(~boundary[t], sampling=sampling).mean())
  return {"anchors_on_figure": float(np.mean(inside & (owner != 0))),
          "anchors_on_figure_chance": float(np.mean(labels != 0)),
          "anchor_boundary_distance": (float(np.mean(np.concatenate(distances))) if distances
                                       else float("nan")),
          "anchor_boundary_distance_chance": float(np.mean(chance)) if chance else float("nan"),
          "boundary_frames": len(distances)}


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """The area under the ROC curve of `scores` as a predictor of `positive` (bool, same size): the
  Mann-Whitney U statistic over (positive, negative) pairs, a tie counting half,
  U / (n_pos n_neg), from average ranks. NaN when one class is empty."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  scores = np.asarray(scores, np.float64).ravel()
  positive = np.asarray(positive, bool).ravel()
  num_positive = int(positive.sum())
  num_negative = positive.size - num_positive
  if not num_positive or not num_negative:
    return float("nan")
  ranks = stats.rankdata(scores)  # average ranks: a tie counts half
  u = ranks[positive].sum() - num_positive * (num_positive + 1) / 2.0
  return float(u / (float(num_positive) * float(num_negative)))


def _visibility_scores(confidence: np.ndarray, visible: np.ndarray, threshold: float,
                       suffix: str) -> dict:
  """AUC and IoU (and the IoU of M = 1) of flat confidence values against flat visibility."""
  predicted = confidence > threshold
  union = int((predicted | visible).sum())
  nan = float("nan")
  return {f"confidence_auc{suffix}": roc_auc(confidence, visible),
          f"confidence_iou{suffix}": float((predicted & visible).sum() / union) if union else nan,
          f"confidence_iou{suffix}_all_visible": float(visible.mean()) if visible.size else nan}


def confidence_scores(confidence: np.ndarray, source_visible: np.ndarray,
                      part_labels: np.ndarray | None = None, threshold: float = 0.5) -> dict:
  """How well the confidence map M marks the pixels the source can show (INTERnet paper, Fig. 8
  and Sec. 4.4: the intrinsic M "better fits the human body structure").

  M gates the warped source features (Eq. 6, phi_out = M F(phi_in)), and Sec. 3's Omega_F, the
  pixels hallucinated because the source does not show them, is what it should leave out; so M is
  scored as a predictor of the ground truth's `source_visible`: True where the surface point of
  the target pixel is visible in the source (frame 0). The background counts: it is static and
  visible from the source wherever background owns the pixel in both frames, so copying the
  source there is right and M should be high; the background the figure covered in frame 0 is
  not visible. Since the background dominates small frames, the `_figure` scores repeat both
  measures over the figure pixels of each target frame only (part label non-zero), where the
  invisible pixels are the disoccluded body parts.

  Args:
    confidence: (T, R_h, R_w) or (T, R_h, R_w, 1) M for driving frames 0..T-1 (the model's
      `confidence_full`); brought to the ground truth's S by `resample_field` (bilinear at S's
      pixel centres, half-pixel rule; R = S uses it as it is), so every S pixel keeps its exact
      visibility.
    source_visible: (T, S_h, S_w) bool, the ground truth.
    part_labels: (T, S_h, S_w) the ground truth's labels, for the `_figure` scores (optional).
    threshold: M > threshold is "visible" for the IoU.
  Returns:
    dict(confidence_auc: `roc_auc` of M over all pixels of all frames pooled (NaN when every
    pixel is visible, or none); confidence_iou: |{M > threshold} & V| / |{M > threshold} | V|
    over the same pixels (NaN for an empty union); confidence_iou_all_visible: the IoU of the
    constant M = 1, |V| / (number of pixels), the reference for confidence_iou; with part_labels
    the same three with suffix _figure (confidence_iou_figure_all_visible), over figure pixels.)
  """
  confidence = np.asarray(confidence, np.float32)
  if confidence.ndim == 4 and confidence.shape[-1] == 1:
    confidence = confidence[..., 0]
  visible = np.asarray(source_visible, bool)
  if confidence.ndim != 3:
    raise ValueError(f"confidence_scores: expected a confidence map (T, H, W) or (T, H, W, 1), "
                     f"got {np.shape(confidence)}")
  if len(confidence) != len(visible):
    raise ValueError(f"confidence_scores: confidence of {len(confidence)} frames, ground truth "
                     f"has {len(visible)}")
  if confidence.shape[1:] != visible.shape[1:]:
    confidence = resample_field(confidence, visible.shape[1:3])
  result = _visibility_scores(confidence.ravel(), visible.ravel(), threshold, "")
  if part_labels is not None:
    figure = np.asarray(part_labels) != 0
    result.update(_visibility_scores(confidence[figure], visible[figure], threshold, "_figure"))
  return result
