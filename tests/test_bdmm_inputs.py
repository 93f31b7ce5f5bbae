"""BDMM's inputs (internet_jax/methods/bdmm/inputs.py): heatmaps, part warps, training clips.

Ground truth is the synthetic renderer's (input_pipeline/synthetic.py): `source_coords` (frame t ->
frame 0) and `flow_forward` (t -> t + 1) are computed by the renderer independently of
`part_warp`, so agreeing with them checks the affine composition and the coordinate conventions.
"""

from __future__ import annotations

import functools
import pickle

import jax
import ml_collections
import numpy as np
import pytest

from input_pipeline import sources, synthetic
from input_pipeline.video_io import DataError
from internet_jax.methods.bdmm import inputs

RESOLUTION = 32
WARP_FRAMES = 20  # ~5 px of motion by the last frame at 32^2
KEYS = ("joints", "part_labels", "part_transforms")


@functools.lru_cache(maxsize=None)
def _video(num_frames: int = 8, seed: int = 3) -> dict:
  return synthetic.render_video(seed, num_frames=num_frames, resolution=RESOLUTION)


def _to_pixels(coords: np.ndarray, size: int = RESOLUTION) -> np.ndarray:
  return (coords.astype(np.float64) + 1.0) * (size - 1) / 2.0


def _config(**bdmm) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.data = ml_collections.ConfigDict(dict(resolution=RESOLUTION))
  config.bdmm = ml_collections.ConfigDict(dict(
      chunk_frames=2, num_chunks=2, reference_frames=3, warp_visibility=False, num_joints=15))
  config.bdmm.update(bdmm)
  return config


def _source(video: dict, keys=KEYS, extra=None, name="clip_video") -> sources.InMemoryVideoSource:
  annotations = {key: video[key] for key in keys}
  annotations.update(extra or {})
  return sources.InMemoryVideoSource([video["frames"]], names=[name], annotations=[annotations])


# --- Heatmaps ------------------------------------------------------------------------------------


def test_heatmap_sigma_scales_with_resolution():
  assert inputs.heatmap_sigma(256) == 6.0
  assert inputs.heatmap_sigma(64) == 1.5
  assert inputs.heatmap_sigma(128, sigma_at_256=4.0) == 2.0


def test_skeleton_heatmaps_values_shape_and_invalid_joints():
  height, width, sigma = 12, 16, 2.0
  joints = np.array([[3.0, 5.0], [10.25, 2.5], [np.nan, np.nan]], np.float32)  # (J=3, 2) (x, y)
  valid = np.array([True, True, False])
  maps = np.asarray(jax.jit(inputs.skeleton_heatmaps, static_argnums=(2, 3, 4))(
      joints, valid, height, width, sigma))
  assert maps.shape == (height, width, 3) and maps.dtype == np.float32
  # x is the column, y the row; 1 at the joint's pixel, exp(-1/2) at distance sigma (obtain_map's
  # exp(-d^2 / (2 sigma^2))).
  assert maps[5, 3, 0] == pytest.approx(1.0)
  assert maps[5, 5, 0] == pytest.approx(np.exp(-0.5), rel=1e-6)
  assert maps[7, 3, 0] == pytest.approx(np.exp(-0.5), rel=1e-6)
  assert np.unravel_index(np.argmax(maps[..., 0]), maps.shape[:2]) == (5, 3)
  # The whole map against the formula written out per pixel.
  ys, xs = np.mgrid[0:height, 0:width]
  for j in range(2):
    expected = np.exp(-((xs - joints[j, 0]) ** 2 + (ys - joints[j, 1]) ** 2) / (2 * sigma ** 2))
    np.testing.assert_allclose(maps[..., j], expected, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(maps[..., 2], 0.0)  # invalid (NaN coordinates) -> zero map


def test_skeleton_heatmaps_broadcast_leading_axes():
  joints = np.array([[[1.0, 2.0]], [[4.0, 0.0]]], np.float32)[:, None]  # (2, 1, J=1, 2)
  valid = np.array([[True], [False], [True]])  # (3, J=1)
  maps = np.asarray(inputs.skeleton_heatmaps(joints, valid, 5, 6, 1.0))
  assert maps.shape == (2, 3, 5, 6, 1)
  assert maps[0, 0, 2, 1, 0] == pytest.approx(1.0) and maps[1, 2, 0, 4, 0] == pytest.approx(1.0)
  np.testing.assert_array_equal(maps[:, 1], 0.0)


# --- Part warps ----------------------------------------------------------------------------------


def test_part_warp_equals_source_coords_on_the_figure():
  video = _video(WARP_FRAMES)
  labels, transforms = video["part_labels"], video["part_transforms"]
  ys, xs = np.mgrid[0:RESOLUTION, 0:RESOLUTION]
  motion = np.abs(video["source_coords"] - np.stack([xs, ys], -1))[labels > 0]
  assert motion.max() > 3.0  # not a near-identity check
  for t in range(len(labels)):
    warp = inputs.part_warp(labels[t], transforms[t], transforms[0])
    assert warp.shape == (RESOLUTION, RESOLUTION, 2) and warp.dtype == np.float32
    figure = labels[t] > 0
    assert figure.sum() > 50
    error = np.abs(_to_pixels(warp) - video["source_coords"][t])[figure]
    assert error.max() < 1e-3, (t, error.max())
    np.testing.assert_array_equal(warp[~figure], inputs.OUTSIDE)  # background: (-2, -2)


def test_part_warp_between_consecutive_frames_equals_forward_flow():
  video = _video(WARP_FRAMES)
  labels, transforms = video["part_labels"], video["part_transforms"]
  ys, xs = np.mgrid[0:RESOLUTION, 0:RESOLUTION]
  grid = np.stack([xs, ys], -1)
  for t in range(len(labels) - 1):
    warp = inputs.part_warp(labels[t], transforms[t], transforms[t + 1])
    figure = labels[t] > 0
    error = np.abs(_to_pixels(warp) - (grid + video["flow_forward"][t]))[figure]
    assert error.max() < 1e-3, (t, error.max())


def test_part_warp_visible_only_drops_hidden_points():
  video = _video(WARP_FRAMES)
  labels, transforms = video["part_labels"], video["part_transforms"]
  dropped = 0
  for t in range(len(labels)):
    full = inputs.part_warp(labels[t], transforms[t], transforms[0])
    visible = inputs.part_warp(labels[t], transforms[t], transforms[0], visible_only=True,
                               labels_r=labels[0])
    kept = visible[..., 0] != inputs.OUTSIDE
    figure = labels[t] > 0
    assert not np.any(kept & ~figure)
    np.testing.assert_array_equal(visible[kept], full[kept])
    np.testing.assert_array_equal(visible[~kept], inputs.OUTSIDE)
    # Every kept pixel lands on a reference pixel its own part owns.
    nearest = np.floor(_to_pixels(visible[kept]) + 0.5).astype(int)
    assert np.all((nearest >= 0) & (nearest < RESOLUTION))
    np.testing.assert_array_equal(labels[0][nearest[:, 1], nearest[:, 0]], labels[t][kept])
    # The renderer's stricter visibility (the whole bilinear footprint owned) implies ours.
    assert not np.any(video["source_visible"][t] & figure & ~kept)
    dropped += int((figure & ~kept).sum())
  assert dropped > 0  # the video has points hidden or off-frame in frame 0
  with pytest.raises(ValueError, match="labels_r"):
    inputs.part_warp(labels[1], transforms[1], transforms[0], visible_only=True)


# --- Training clips ------------------------------------------------------------------------------


def _find_frame(video_frames: np.ndarray, frame: np.ndarray) -> list[int]:
  return [t for t in range(len(video_frames)) if np.array_equal(video_frames[t], frame)]


def _check_clip(example: dict, video: dict, config) -> tuple[int, int]:
  """Checks one clip against the video; returns (start, reference index)."""
  shapes = inputs.clip_batch_shapes(config, 1)
  assert set(example) == set(shapes)
  for key, spec in shapes.items():
    assert example[key].shape == spec.shape[1:], key
    assert example[key].dtype == spec.dtype, key
  frames = video["frames"]
  length = config.bdmm.chunk_frames * config.bdmm.num_chunks
  starts = [s for s in range(len(frames) - length + 1)
            if np.array_equal(example["frames"], frames[s:s + length])]
  assert len(starts) == 1
  start = starts[0]
  (reference,) = _find_frame(frames, example["reference"])
  assert reference < config.bdmm.reference_frames
  labels, transforms = video["part_labels"], video["part_transforms"]

  def warp_of(t):
    return inputs.part_warp(labels[t], transforms[t], transforms[reference],
                            visible_only=config.bdmm.warp_visibility, labels_r=labels[reference])

  for i in range(length):
    np.testing.assert_array_equal(example["warps"][i], warp_of(start + i))
  np.testing.assert_array_equal(example["initial_warp"], warp_of(max(start - 1, 0)))
  np.testing.assert_array_equal(example["joints"], video["joints"][start:start + length])
  np.testing.assert_array_equal(example["reference_joints"], video["joints"][reference])
  return start, reference


def test_clip_example_against_the_video():
  video, config = _video(), _config()
  source = _source(video)
  example_fn = pickle.loads(pickle.dumps(inputs.clip_example_fn(config)))  # grain workers
  seen = set()
  for seed in range(12):
    example = example_fn(source, 0, np.random.default_rng(seed))
    seen.add(_check_clip(example, video, config))
    assert example["joints_valid"].all()
    again = example_fn(source, 0, np.random.default_rng(seed))
    for key in example:
      np.testing.assert_array_equal(again[key], example[key])
  starts = {start for start, _ in seen}
  assert 0 in starts and len(starts) >= 3  # start 0 (initial warp = first frame's) and others


def test_clip_example_visibility_and_optional_joints_valid():
  video = _video()
  config = _config(warp_visibility=True)
  valid = np.ones(video["joints"].shape[:2], bool)
  valid[:, 4] = False
  source = _source(video, extra={"joints_valid": valid})
  example = inputs.clip_example_fn(config)(source, 0, np.random.default_rng(5))
  _check_clip(example, video, config)
  np.testing.assert_array_equal(example["joints_valid"], valid[:4])


def test_coords_warp_normalises_and_sends_unknowns_outside():
  coords = np.zeros((3, 5, 2), np.float32)
  coords[..., 0], coords[..., 1] = 4.0, 1.0  # x = W - 1 (right edge), y = 1 (middle row)
  coords[0, 0] = [0.0, 2.0]  # the bottom-left corner
  coords[2, 4] = [np.nan, 0.0]
  visible = np.ones((3, 5), bool)
  visible[1, 1] = False
  warp = inputs.coords_warp(coords, visible)
  assert warp.dtype == np.float32
  np.testing.assert_allclose(warp[0, 0], [-1.0, 1.0])  # align-corners: px * 2 / (size - 1) - 1
  np.testing.assert_allclose(warp[0, 1], [1.0, 0.0])
  np.testing.assert_array_equal(warp[1, 1], [inputs.OUTSIDE] * 2)
  np.testing.assert_array_equal(warp[2, 4], [inputs.OUTSIDE] * 2)  # NaN: no correspondence


def test_clip_example_with_stored_correspondences_reads_them_into_the_first_frame():
  """bdmm.warp_source = "source_coords": the reference is frame 0 whatever reference_frames
  says, the warps are the stored ones, and on the figure they agree with the part maps'."""
  video = _video()
  config = _config(warp_source=inputs.SOURCE_COORDS)
  source = _source(video, keys=inputs.COORDS_KEYS)  # no part maps at all
  for seed in range(6):
    example = inputs.clip_example_fn(config)(source, 0, np.random.default_rng(seed))
    assert set(example) == set(inputs.clip_batch_shapes(config, 1))
    np.testing.assert_array_equal(example["reference"], video["frames"][0])
    (start,) = [s for s in range(len(video["frames"]) - 3)
                if np.array_equal(example["frames"], video["frames"][s:s + 4])]
    for i in range(4):
      t = start + i
      stored = inputs.coords_warp(video["source_coords"][t], video["source_visible"][t])
      np.testing.assert_array_equal(example["warps"][i], stored)
      figure = (video["part_labels"][t] > 0) & video["source_visible"][t]
      parts = inputs.part_warp(video["part_labels"][t], video["part_transforms"][t],
                               video["part_transforms"][0])
      np.testing.assert_allclose(example["warps"][i][figure], parts[figure], atol=1e-4)
    np.testing.assert_array_equal(
        example["initial_warp"],
        inputs.coords_warp(video["source_coords"][max(start - 1, 0)],
                           video["source_visible"][max(start - 1, 0)]))


def test_clip_batch_shapes():
  config = _config(chunk_frames=6, num_chunks=5)
  config.data.resolution = 64
  shapes = inputs.clip_batch_shapes(config, 3)
  assert {key: (spec.shape, spec.dtype) for key, spec in shapes.items()} == {
      "reference": ((3, 64, 64, 3), np.uint8),
      "frames": ((3, 30, 64, 64, 3), np.uint8),
      "joints": ((3, 30, 15, 2), np.float32),
      "joints_valid": ((3, 30, 15), np.bool_),
      "warps": ((3, 30, 64, 64, 2), np.float32),
      "initial_warp": ((3, 64, 64, 2), np.float32),
      "reference_joints": ((3, 15, 2), np.float32),
  }


def test_clip_example_errors_are_one_line():
  video, config = _video(), _config()
  short = {key: value[:3] for key, value in video.items()
           if key in ("frames",) + KEYS}
  with pytest.raises(ValueError) as error:
    inputs.clip_example_fn(config)(_source(short, name="short_video"), 0,
                                   np.random.default_rng(0))
  message = str(error.value)
  assert "\n" not in message and "short_video" in message
  assert "3 frames" in message and "4" in message

  with pytest.raises(DataError) as error:
    inputs.clip_example_fn(config)(_source(video, keys=KEYS[1:], name="no_joints"), 0,
                                   np.random.default_rng(0))
  message = str(error.value)
  assert "\n" not in message
  assert "no_joints" in message and "frame" in message and "'joints'" in message

  config.data.resolution = 16
  with pytest.raises(DataError, match="data.resolution"):
    inputs.clip_example_fn(config)(_source(video), 0, np.random.default_rng(0))
