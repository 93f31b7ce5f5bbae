"""geometry.py: the one sampler and the coordinate conventions, checked from first principles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from internet_jax import geometry


def test_coordinate_grid_is_align_corners_xy():
  grid = np.asarray(geometry.coordinate_grid(3, 5))
  assert grid.shape == (3, 5, 2)
  np.testing.assert_allclose(grid[0, :, 0], [-1, -0.5, 0, 0.5, 1])  # x along columns
  np.testing.assert_allclose(grid[:, 0, 1], [-1, 0, 1])  # y along rows


def test_identity_warp_returns_input():
  image = jax.random.uniform(jax.random.key(0), (2, 7, 9, 3))
  grid = jnp.broadcast_to(geometry.coordinate_grid(7, 9), (2, 7, 9, 2))
  np.testing.assert_allclose(geometry.warp(image, grid), image, atol=1e-6)


def test_known_shift_moves_image():
  image = jax.random.uniform(jax.random.key(1), (8, 10, 2))
  shift = geometry.pixel_to_normalized_flow(jnp.array([2.0, -1.0]), 8, 10)
  out = np.asarray(geometry.warp(image, geometry.coordinate_grid(8, 10) + shift))
  # out(y, x) = image(y - 1, x + 2); outside the image reads zero.
  np.testing.assert_allclose(out[1:, :-2], np.asarray(image)[:-1, 2:], atol=1e-6)
  assert np.abs(out[0]).max() < 1e-5 and np.abs(out[:, -2:]).max() < 1e-5


@pytest.mark.parametrize("mode, scipy_mode", [("zeros", "constant"), ("border", "nearest"),
                                              ("reflection", "mirror")])
def test_warp_matches_scipy_map_coordinates(mode, scipy_mode):
  rng = np.random.default_rng(0)
  image = rng.random((11, 13, 1)).astype(np.float32)
  coords = rng.uniform(-1.4, 1.4, (6, 5, 2)).astype(np.float32)
  ours = np.asarray(geometry.warp(jnp.asarray(image), jnp.asarray(coords), mode))[..., 0]
  rows = (coords[..., 1] + 1) * (11 - 1) / 2
  cols = (coords[..., 0] + 1) * (13 - 1) / 2
  if mode == "zeros":
    # scipy's 'constant' mode interpolates towards cval only within one pixel like ours does
    # when the image is zero-padded by one pixel first.
    padded = np.pad(image[..., 0], 1)
    expected = scipy.ndimage.map_coordinates(padded, [rows + 1, cols + 1], order=1, mode="constant")
  else:
    expected = scipy.ndimage.map_coordinates(image[..., 0], [rows, cols], order=1, mode=scipy_mode)
  np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_resize_align_corners_keeps_identity_field():
  field = geometry.coordinate_grid(16, 16)
  np.testing.assert_allclose(geometry.resize_align_corners(field, 64, 32),
                             geometry.coordinate_grid(64, 32), atol=1e-6)


def test_pixel_flow_round_trip():
  flow = np.random.default_rng(0).normal(size=(4, 6, 2)).astype(np.float32)
  back = geometry.normalized_to_pixel_flow(geometry.pixel_to_normalized_flow(flow, 4, 6), 4, 6)
  np.testing.assert_allclose(back, flow, rtol=1e-6)


def test_tps_identity_when_noise_is_zero_and_jacobian_matches_finite_differences():
  params = geometry.random_tps(jax.random.key(0), 0.0, 0.0, 5)
  points = jnp.array([[0.3, -0.2], [-0.9, 0.5]])
  np.testing.assert_allclose(geometry.tps_transform(params, points), points, atol=1e-6)
  params = geometry.random_tps(jax.random.key(3), 0.05, 0.05, 5)
  point = jnp.array([0.21, -0.37])
  eps = 1e-3
  numeric = np.stack([
      (geometry.tps_transform(params, point + eps * e) - geometry.tps_transform(params, point - eps * e)) / (2 * eps)
      for e in jnp.eye(2)], axis=1)
  np.testing.assert_allclose(geometry.tps_jacobian(params, point), numeric, atol=2e-3)


def test_inverse_2x2_matches_numpy_inverse():
  rng = np.random.default_rng(0)
  matrices = rng.normal(size=(3, 4, 2, 2)) + 2.0 * np.eye(2)  # well-conditioned, batched
  np.testing.assert_allclose(np.asarray(geometry.inverse_2x2(jnp.asarray(matrices))),
                             np.linalg.inv(matrices), rtol=1e-5, atol=1e-6)
