"""Driving poses for D2G-Net inference (SunYangtian/Neural-Human-Video-Rendering, B.3 of its test
branch): another person's poses are normalised to the model's person (data/data_prep/
graph_posenorm.py, after "Everybody Dance Now") and smoothed over time (smoothPoseList).

Joints are pixel (x, y), (T, J, 2), with a validity mask (T, J) (the annotation "joints_valid";
the code's keypoint confidence <= 0.05 is our invalid). Both skeletons the model knows put the
head at index 0 and the ankles at 11 and 14 (`inputs.HEAD`, `inputs.ANKLES`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from internet_jax.methods.d2g import inputs


def _statistics(joints: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
  """(feet point (2,), body height) of a pose sequence: the medians over frames with the head and
  both ankles valid of the ankles' midpoint and of the head-to-lower-ankle height."""
  needed = valid[:, [inputs.HEAD, *inputs.ANKLES]].all(axis=1)
  if not needed.any():
    raise ValueError("pose normalisation needs frames with the head and both ankles annotated "
                     "(joints_valid); none has them")
  joints = joints[needed]
  ankles = joints[:, list(inputs.ANKLES)]
  feet = np.median(ankles.mean(axis=1), axis=0)
  height = float(np.median(ankles[..., 1].max(axis=1) - joints[:, inputs.HEAD, 1]))
  if height <= 0:
    raise ValueError(f"pose normalisation: the median body height is {height:.3g} px (the ankles "
                     "are not below the head)")
  return feet, height


def normalize_poses(driving: np.ndarray, driving_valid: np.ndarray, target: np.ndarray,
                    target_valid: np.ndarray) -> np.ndarray:
  """The driving poses scaled and moved onto the target person: every joint p becomes
  (p - feet_d) * height_t / height_d + feet_t, with the feet point and body height of
  `_statistics` over each sequence (the target: the model's person, e.g. its source photo).

  graph_posenorm.py also interpolates the scale between the person's closest and farthest ankle
  positions (depth); one scale and translation per video is that rule for a person who stays at
  one distance, which is all a single target frame can tell."""
  feet_d, height_d = _statistics(driving, driving_valid)
  feet_t, height_t = _statistics(target, target_valid)
  return ((driving - feet_d) * (height_t / height_d) + feet_t).astype(np.float32)


def smooth_poses(joints: np.ndarray, valid: np.ndarray, sigma: float) -> tuple[np.ndarray,
                                                                               np.ndarray]:
  """smoothPoseList: each joint's invalid frames interpolated linearly from its valid ones (held
  at the ends), then a Gaussian over time of `sigma` frames (the code: 2). A joint never valid
  stays invalid. Returns (joints, valid)."""
  joints = np.array(joints, np.float64)
  valid = np.asarray(valid, bool)
  frames = np.arange(len(joints))
  filled = valid.copy()
  for j in range(joints.shape[1]):
    known = valid[:, j]
    if not known.any():
      continue
    for axis in range(2):
      joints[:, j, axis] = np.interp(frames, frames[known], joints[known, j, axis])
    filled[:, j] = True
  if sigma > 0:
    joints = ndimage.gaussian_filter1d(joints, sigma, axis=0, mode="nearest")
  return joints.astype(np.float32), filled
