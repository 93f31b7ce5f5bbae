"""Tests of internet_jax/metrics/poses.py: the Robust-SSIM / Robust-PSNR test poses (D2G-Net,
"Robust Pose Transfer with Dynamic Details using Neural Video Rendering", Sec. 4.1) against brute
force, missing joints, and reading joints from a source."""

import numpy as np
import pytest

from input_pipeline import sources
from internet_jax.metrics import poses

J = 15


def _brute_force_nearest(train, test, train_valid=None, test_valid=None):
  """Nearest-neighbour distance of every test pose, one pair at a time, from the definition:
  joints valid in both, sum of squared differences scaled by J / shared, square root."""
  train_valid = np.ones(train.shape[:2], bool) if train_valid is None else train_valid
  test_valid = np.ones(test.shape[:2], bool) if test_valid is None else test_valid
  train_valid = train_valid & np.isfinite(train).all(-1)
  test_valid = test_valid & np.isfinite(test).all(-1)
  out = []
  for m in range(len(test)):
    best = np.inf
    for n in range(len(train)):
      shared = [j for j in range(train.shape[1]) if test_valid[m, j] and train_valid[n, j]]
      if not shared:
        continue
      squared = sum((test[m, j, 0] - train[n, j, 0]) ** 2 + (test[m, j, 1] - train[n, j, 1]) ** 2
                    for j in shared)
      best = min(best, np.sqrt(squared * train.shape[1] / len(shared)))
    out.append(best if np.isfinite(best) else np.nan)
  return np.array(out)


def _order(distances, count):
  measured = [m for m in range(len(distances)) if not np.isnan(distances[m])]
  return sorted(measured, key=lambda m: -distances[m])[:count]


def test_farthest_poses_match_brute_force():
  rng = np.random.default_rng(2)
  train = rng.normal(size=(40, J, 2)) * 10
  test = rng.normal(size=(25, J, 2)) * 10
  test[7] += 30  # far from everything
  got = poses.farthest_poses(train, test, count=10)
  # All joints valid: the plain norm of the flattened (J * 2) difference.
  distances = [min(np.sqrt(np.sum((test[m].ravel() - train[n].ravel()) ** 2))
                   for n in range(len(train))) for m in range(len(test))]
  want = sorted(range(len(test)), key=lambda m: -distances[m])[:10]
  assert got.tolist() == want and got[0] == 7 and got.dtype == np.int64
  np.testing.assert_allclose(poses.nearest_distances(train, test), distances, rtol=1e-12)
  assert poses.farthest_poses(train, test[:3], count=10).tolist() == \
      sorted(range(3), key=lambda m: -distances[m])
  assert poses.farthest_poses(train, test, count=0).shape == (0,)
  with pytest.raises(ValueError, match="^farthest_poses: no training pose"):
    poses.farthest_poses(train[:0], test)
  with pytest.raises(ValueError, match="^farthest_poses: count"):
    poses.farthest_poses(train, test, count=-1)
  with pytest.raises(ValueError, match="^farthest_poses: 15 training joints but 14 test"):
    poses.farthest_poses(train, test[:, :14])


def test_missing_joints_compare_shared_joints_scaled_and_empty_poses_are_never_chosen():
  rng = np.random.default_rng(3)
  train = rng.normal(size=(30, J, 2)) * 10
  test = rng.normal(size=(20, J, 2)) * 10
  train_valid = rng.random((30, J)) > 0.2
  test_valid = rng.random((20, J)) > 0.3
  train[rng.random((30, J)) < 0.1] = np.nan  # NaN coordinates are missing too
  test_valid[4] = False  # no valid joint: never chosen, however far
  test[4] += 1000
  test[9] += 40  # far, with some joints missing
  train_valid[5] = False  # ignored
  train[5] = test[9]  # (it would otherwise be test 9's exact neighbour)
  want = _brute_force_nearest(train, test, train_valid, test_valid)
  got = poses.nearest_distances(train, test, train_valid, test_valid)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  assert np.isnan(got[4]) and np.isnan(want[4])
  chosen = poses.farthest_poses(train, test, count=25, train_valid=train_valid,
                                test_valid=test_valid)
  assert chosen.tolist() == _order(want, 25) and 4 not in chosen and len(chosen) == 19
  assert chosen[0] == 9
  # The scaling: a pose missing half its joints is as far as the same offset on every joint.
  base = np.zeros((1, 4, 2))
  moved = base + 3.0
  half = np.array([[True, True, False, False]])
  assert poses.nearest_distances(base, moved, test_valid=half)[0] == pytest.approx(
      poses.nearest_distances(base, moved)[0]) == pytest.approx(np.sqrt(4 * 2 * 9))
  # No training pose with a valid joint: an error, not an empty choice.
  with pytest.raises(ValueError, match="^farthest_poses: no training pose with a valid joint"):
    poses.farthest_poses(train, test, train_valid=np.zeros_like(train_valid))


def test_video_joints_reads_annotations_with_validity():
  frames = np.zeros((3, 4, 4, 3), np.uint8)
  joints = np.arange(3 * J * 2, dtype=np.float32).reshape(3, J, 2)
  valid = np.ones((3, J), bool)
  valid[1, 2] = False
  source = sources.InMemoryVideoSource(
      [frames, frames, frames], ["a", "b", "c"],
      [{"joints": joints, "joints_valid": valid}, {"joints": joints}, {"uv": np.zeros((3, 2))}])
  got = poses.video_joints(source, 0)
  assert got.shape == (3, J, 2) and got.dtype == np.float64
  assert np.isnan(got[1, 2]).all() and np.isfinite(np.delete(got[1], 2, 0)).all()
  np.testing.assert_array_equal(poses.video_joints(source, 1), joints)
  np.testing.assert_array_equal(poses.video_joints(source, 1, [2]), joints[2:])
  assert poses.video_joints(source, 2) is None
