"""Pose distances for the Robust-SSIM / Robust-PSNR test frames.

"Robust Pose Transfer with Dynamic Details using Neural Video Rendering" (D2G-Net), Sec. 4.1 and
Table 1, scores SSIM and PSNR on the M = 10 validation poses whose nearest neighbour among the
training poses, by the Euclidean distance of their 2D keypoints, is farthest; neither public
repository implements it. Here the distance between two poses is the Euclidean norm of the
difference of their flattened (J * 2) pixel keypoint vectors, with no normalisation (both sets show
the same person in the same camera): every joint counts, x and y alike.

Missing joints (annotation "joints_valid" False, or a NaN / infinite coordinate): two poses are
compared over the joints valid in both, the sum of squared differences scaled by J / (number of
shared joints) before the square root, so that a pose missing a joint is not nearer merely for
comparing fewer; with every joint valid this is the plain distance. A pair that shares no valid
joint is no neighbour, a training pose with no valid joint is ignored, and a test pose with no
valid joint (or none shared with any training pose) is never chosen.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

VALID_KEY = "joints_valid"  # the optional per-frame annotation beside "joints"


def _with_validity(joints, valid, what: str) -> tuple[np.ndarray, np.ndarray]:
  """(joints with invalid entries zeroed, (N, J) bool validity) of (N, J, 2) joints."""
  joints = np.asarray(joints, np.float64)
  if joints.ndim != 3 or joints.shape[-1] != 2:
    raise ValueError(f"farthest_poses: {what} joints must be (N, J, 2), got {joints.shape}")
  ok = np.isfinite(joints).all(-1)
  if valid is not None:
    valid = np.asarray(valid, bool)
    if valid.shape != joints.shape[:2]:
      raise ValueError(f"farthest_poses: {what} validity is {valid.shape}, its joints "
                       f"{joints.shape}")
    ok &= valid
  return np.where(ok[..., None], joints, 0.0), ok


def nearest_distances(train_joints, test_joints, train_valid=None, test_valid=None) -> np.ndarray:
  """(M,) distance of every test pose to its nearest training pose (the module's rule); NaN for a
  test pose with no valid joint shared with any training pose."""
  train, train_ok = _with_validity(train_joints, train_valid, "training")
  test, test_ok = _with_validity(test_joints, test_valid, "test")
  if train.shape[1] != test.shape[1]:
    raise ValueError(f"farthest_poses: {train.shape[1]} training joints but {test.shape[1]} test "
                     "joints")
  keep = train_ok.any(1)
  train, train_ok = train[keep], train_ok[keep]
  if len(train) == 0:
    raise ValueError("farthest_poses: no training pose with a valid joint")
  num_joints = train.shape[1]
  nearest = np.full(len(test), np.nan)
  chunk = max(1, 2 ** 22 // max(train.size, 1))  # bounds the (chunk, N, J, 2) differences
  for start in range(0, len(test), chunk):
    block, block_ok = test[start:start + chunk], test_ok[start:start + chunk]
    shared = block_ok[:, None, :] & train_ok[None]  # (chunk, N, J)
    squared = (((block[:, None] - train[None]) ** 2).sum(-1) * shared).sum(-1)
    count = shared.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
      distances = np.where(count > 0, np.sqrt(squared * num_joints / count), np.inf)
    best = distances.min(1)
    nearest[start:start + chunk] = np.where(np.isfinite(best), best, np.nan)
  return nearest


def farthest_poses(train_joints, test_joints, count: int = 10, *, train_valid=None,
                   test_valid=None) -> np.ndarray:
  """The `count` test poses farthest from the training poses (D2G-Net's Robust-SSIM/PSNR frames).

  Args:
    train_joints: (N, J, 2) pixel (x, y) of the training poses' joints.
    test_joints: (M, J, 2) the test poses'.
    count: how many to return, at most the test poses that can be measured.
    train_valid, test_valid: optional (N, J) / (M, J) bool "joints_valid" (NaN coordinates are
      invalid either way).
  Returns:
    int64 indices into test_joints by decreasing nearest-neighbour distance (ties: the lower index
    first), poses without a measurable distance left out.
  """
  if isinstance(count, bool) or int(count) != count or int(count) < 0:
    raise ValueError(f"farthest_poses: count must be an integer >= 0, got {count!r}")
  nearest = nearest_distances(train_joints, test_joints, train_valid, test_valid)
  measured = np.flatnonzero(~np.isnan(nearest))
  order = measured[np.argsort(-nearest[measured], kind="stable")]
  return order[:int(count)].astype(np.int64)


def video_joints(source, video: int, frames: Sequence[int] | None = None) -> np.ndarray | None:
  """(T, J, 2) float64 joints of `frames` (default all) of video `video` of a
  `input_pipeline.sources.VideoSource`, NaN where "joints_valid" is False; None when a frame has
  no "joints" annotation (annotations are read, never pixels)."""
  from input_pipeline import sources  # pylint: disable=g-import-not-at-top
  listed = getattr(source, "annotation_keys", None)
  if listed is not None and "joints" not in listed(video):
    return None
  poses = []
  for t in range(source.num_frames(video)) if frames is None else frames:
    annotations = sources.frame_annotations(source, video, t)
    if "joints" not in annotations:
      return None
    joints = np.array(annotations["joints"], np.float64)
    if VALID_KEY in annotations:
      joints[~np.asarray(annotations[VALID_KEY], bool)] = np.nan
    poses.append(joints)
  if poses and len({p.shape for p in poses}) > 1:
    raise ValueError(f"video {source.video_name(video)}: 'joints' of different shapes "
                     f"{sorted({p.shape for p in poses})}")
  return np.stack(poses) if poses else None
