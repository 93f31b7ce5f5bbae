"""input_pipeline/flow.py: DIS flow direction and accuracy, and the Sundaram et al. mask."""
import cv2
import numpy as np
import pytest

from input_pipeline import flow


def _texture(size, seed=0, blur=1.5, channels=3):
  rng = np.random.default_rng(seed)
  noise = cv2.GaussianBlur(rng.random((size, size, channels), dtype=np.float32), (0, 0), blur)
  noise = noise.reshape(size, size, channels)
  noise = (noise - noise.min()) / (noise.max() - noise.min())
  return np.rint(255 * noise).astype(np.uint8)


def _shift(image, dx, dy):
  """out(x) = image(x - d): content moves by +d (sub-pixel, bicubic)."""
  h, w = image.shape[:2]
  m = np.float32([[1, 0, dx], [0, 1, dy]])
  return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("preset", ["medium", "fast"])
def test_dis_recovers_known_subpixel_shift_in_the_right_direction(preset):
  frame_a = _texture(96)
  d = np.array([1.3, -0.7], np.float32)
  frame_b = _shift(frame_a, *d)
  result = flow.compute_flow(frame_a, frame_b, preset)
  assert result.shape == (96, 96, 2) and result.dtype == np.float32
  interior = result[12:-12, 12:-12]
  epe = np.sqrt(np.sum((interior - d) ** 2, axis=-1))
  assert epe.mean() < 0.2, epe.mean()
  # The reverse pair gives the opposite displacement.
  reverse = flow.compute_flow(frame_b, frame_a, preset)[12:-12, 12:-12]
  assert np.sqrt(np.sum((reverse + d) ** 2, axis=-1)).mean() < 0.2


def test_compute_flow_accepts_grayscale_and_rejects_bad_input():
  a = _texture(48, channels=1)[..., 0]
  assert flow.compute_flow(a, a).shape == (48, 48, 2)
  with pytest.raises(ValueError):
    flow.compute_flow(a.astype(np.float32), a)
  with pytest.raises(ValueError):
    flow.compute_flow(a, a[:40])
  with pytest.raises(ValueError):
    flow.compute_flow(a, a, "slowest")


def test_pixel_to_normalized_flow_matches_geometry():
  from internet_jax import geometry  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  pixels = rng.normal(size=(5, 7, 2)).astype(np.float32) * 3
  ours = flow.pixel_to_normalized_flow(pixels, 5, 7)
  np.testing.assert_array_equal(ours, np.asarray(geometry.pixel_to_normalized_flow(pixels, 5, 7)))
  assert ours.dtype == np.float32
  # One column step is 2 / (W - 1) in align-corners units.
  np.testing.assert_allclose(flow.pixel_to_normalized_flow(np.array([1.0, 1.0]), 5, 7),
                             [2 / 6, 2 / 4], rtol=1e-6)


def _constant(h, w, d):
  return np.broadcast_to(np.asarray(d, np.float32), (h, w, 2)).copy()


def test_confidence_is_one_on_pure_translation_interior():
  h, w = 40, 50
  d = (1.5, -0.5)
  forward = _constant(h, w, d)
  backward = -forward
  mask = flow.sundaram_confidence(forward, backward)
  assert mask.shape == (h, w) and mask.dtype == np.float32
  assert set(np.unique(mask)) <= {0.0, 1.0}
  assert mask[1:-2, :-2].min() == 1.0  # every pixel whose target p + w stays inside frame b
  # Pixels moved out of the image (x + 1.5 > W - 1, y - 0.5 < 0) have no correspondence.
  assert mask[:, -1].max() == 0.0 and mask[0, :].max() == 0.0


def test_confidence_is_zero_where_an_occluding_square_moves():
  """Static background, a square moving right by s: the background it covers is occluded."""
  h, w, s = 48, 48, 4
  top, left, side = 16, 12, 14
  forward = np.zeros((h, w, 2), np.float32)
  forward[top:top + side, left:left + side] = (s, 0)  # frame a: square at [left, left + side)
  backward = np.zeros((h, w, 2), np.float32)
  backward[top:top + side, left + s:left + s + side] = (-s, 0)  # frame b: square moved by s
  mask = flow.sundaram_confidence(forward, backward)
  rows = slice(top + 2, top + side - 2)
  # Background pixels of frame a that the square covers in frame b: forward 0, backward -s.
  occluded = mask[rows, left + side + 1:left + side + s]
  assert occluded.max() == 0.0
  # The square's interior and the far background are consistent.
  assert mask[rows, left + 2:left + side - 2].min() == 1.0
  assert mask[:, :left - 2].min() == 1.0 and mask[:, left + side + s + 2:].min() == 1.0


def test_confidence_is_zero_on_a_motion_boundary_only():
  """A shear: the top half moves right, the bottom half left. Forward-backward is consistent
  everywhere, so the zeros along the discontinuity come from the motion-boundary test."""
  h, w, s = 32, 40, 2.0
  forward = np.zeros((h, w, 2), np.float32)
  forward[:h // 2, :, 0] = s
  forward[h // 2:, :, 0] = -s
  backward = -forward  # horizontal motion keeps each row in its half
  mask = flow.sundaram_confidence(forward, backward)
  interior = slice(4, w - 4)
  # Central differences see the jump on the two rows next to it.
  assert mask[h // 2 - 1:h // 2 + 1, interior].max() == 0.0
  assert mask[:h // 2 - 1, interior].min() == 1.0 and mask[h // 2 + 1:, interior].min() == 1.0
  without_boundary_test = flow.sundaram_confidence(forward, backward, mb_beta=np.inf)
  assert without_boundary_test[:, interior].min() == 1.0


def _reference_confidence(forward, backward, fb_alpha=0.01, fb_beta=0.5, mb_alpha=0.01,
                          mb_beta=0.002):
  """Per-formula numpy reference: exact bilinear sampling, central differences (replicated edge)."""
  h, w = forward.shape[:2]
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
  tx, ty = xs + forward[..., 0], ys + forward[..., 1]
  cx, cy = np.clip(tx, 0, w - 1), np.clip(ty, 0, h - 1)
  x0, y0 = np.minimum(np.floor(cx).astype(int), w - 2), np.minimum(np.floor(cy).astype(int), h - 2)
  fx, fy = (cx - x0)[..., None], (cy - y0)[..., None]
  b = backward.astype(np.float64)
  sampled = ((1 - fy) * ((1 - fx) * b[y0, x0] + fx * b[y0, x0 + 1])
             + fy * ((1 - fx) * b[y0 + 1, x0] + fx * b[y0 + 1, x0 + 1]))
  f = forward.astype(np.float64)
  fb_bad = (np.sum((f + sampled) ** 2, -1)
            > fb_alpha * (np.sum(f ** 2, -1) + np.sum(sampled ** 2, -1)) + fb_beta)
  padded = np.pad(f, ((1, 1), (1, 1), (0, 0)), mode="edge")
  gx = (padded[1:-1, 2:] - padded[1:-1, :-2]) / 2
  gy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) / 2
  mb_bad = np.sum(gx ** 2 + gy ** 2, -1) > mb_alpha * np.sum(f ** 2, -1) + mb_beta
  inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
  return (inside & ~fb_bad & ~mb_bad).astype(np.float32)


def test_confidence_matches_per_formula_reference():
  rng = np.random.default_rng(3)
  h, w = 64, 72
  forward = cv2.GaussianBlur(rng.normal(0, 80, (h, w, 2)).astype(np.float32), (0, 0), 16)
  backward = -forward + cv2.GaussianBlur(rng.normal(0, 4, (h, w, 2)).astype(np.float32), (0, 0), 2)
  reference = _reference_confidence(forward, backward)
  assert 0.3 < reference.mean() < 0.8  # both outcomes occur
  # The motion-boundary test alone agrees exactly.
  np.testing.assert_array_equal(flow.sundaram_confidence(forward, backward, fb_beta=np.inf),
                                _reference_confidence(forward, backward, fb_beta=np.inf))
  # cv2.remap interpolates with 1/32-pixel weights: allow the few pixels on the FB threshold.
  assert np.mean(flow.sundaram_confidence(forward, backward) == reference) > 0.99


def test_confidence_with_dis_marks_the_occluded_strip():
  """End to end with DIS: a textured square slides over a static textured background."""
  size, side, s = 96, 32, 4
  background = _texture(size, seed=1)
  square = _texture(side, seed=2)
  top, left = 32, 24
  frame_a, frame_b = background.copy(), background.copy()
  frame_a[top:top + side, left:left + side] = square
  frame_b[top:top + side, left + s:left + s + side] = square
  forward = flow.compute_flow(frame_a, frame_b)
  backward = flow.compute_flow(frame_b, frame_a)
  mask = flow.sundaram_confidence(forward, backward)
  rows = slice(top + 4, top + side - 4)
  occluded = mask[rows, left + side:left + side + s]
  assert occluded.mean() < 0.5, occluded.mean()
  far = np.ones_like(mask, bool)
  far[top - 8:top + side + 8, left - 8:left + side + s + 8] = False
  far[:4], far[-4:], far[:, :4], far[:, -4:] = False, False, False, False
  assert mask[far].mean() > 0.95, mask[far].mean()
