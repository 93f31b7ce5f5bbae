"""Weight-free metrics must match scikit-image and independent direct formulas numerically."""

import cv2
import numpy as np
import pytest
from scipy import signal
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from input_pipeline import synthetic
from internet_jax import metrics
from internet_jax.metrics import image, synthetic_gt, temporal

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def video64():
  return synthetic.render_video(11, 8, 64)


def _noisy(frames, rng, amplitude=40):
  noise = rng.integers(-amplitude, amplitude + 1, frames.shape)
  return np.clip(frames.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def _frame_pairs(video64):
  rng = np.random.default_rng(0)
  random_a = rng.integers(0, 256, (3, 40, 36, 3), dtype=np.uint8)
  frames = video64["frames"]
  return [(random_a, _noisy(random_a, rng)),  # random
          (frames[:-2], frames[2:]),  # synthetic, two frames apart
          (frames, _noisy(frames, rng, 10))]  # synthetic with noise


def _skimage_ssim(a, b):
  return structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True,
                               sigma=1.5, use_sample_covariance=False)


def test_metric_unavailable_is_an_exception_with_a_reason():
  with pytest.raises(metrics.MetricUnavailable, match="no weights"):
    raise metrics.MetricUnavailable("no weights")


def test_ssim_psnr_l1_match_skimage_and_formula(video64):
  for a, b in _frame_pairs(video64):
    np.testing.assert_allclose(image.ssim(a, b), [_skimage_ssim(x, y) for x, y in zip(a, b)],
                               atol=TOLERANCE)
    np.testing.assert_allclose(image.psnr(a, b),
                               [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b)],
                               atol=TOLERANCE)
    expected_l1 = np.abs(a / 255.0 - b / 255.0).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(image.l1(a, b), expected_l1, atol=1e-9)
  # Any leading batch shape; a single frame gives a scalar.
  a, b = _frame_pairs(video64)[0]
  assert image.ssim(a[0], b[0]).shape == ()
  assert image.psnr(a.reshape(3, 1, 40, 36, 3), b.reshape(3, 1, 40, 36, 3)).shape == (3, 1)


def test_identical_frames_give_ideal_values(video64):
  frames = video64["frames"][:2]
  np.testing.assert_allclose(image.ssim(frames, frames), 1.0, atol=1e-12)
  np.testing.assert_array_equal(image.psnr(frames, frames), np.inf)
  np.testing.assert_array_equal(image.l1(frames, frames), 0.0)
  big = cv2.resize(frames[0], (176, 176))[None]
  np.testing.assert_allclose(image.ms_ssim(big, big), 1.0, atol=1e-12)


def _ms_ssim_direct(a, b):
  """An independent MS-SSIM (Wang et al. 2003): 2-D window, scipy 'valid' correlation, explicit
  c*s terms at scales 1-4, skimage's SSIM at scale 5, crop-to-even 2x2 mean pooling."""
  radius = 5
  x = np.arange(-radius, radius + 1)
  g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
  window = np.outer(g, g) / np.outer(g, g).sum()
  c2 = (0.03 * 255) ** 2
  weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
  per_channel = []
  for channel in range(a.shape[-1]):
    p = a[..., channel].astype(np.float64)
    q = b[..., channel].astype(np.float64)
    value = 1.0
    for scale, weight in enumerate(weights):
      if scale == 4:
        term = structural_similarity(p, q, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
      else:
        f = lambda z: signal.correlate2d(z, window, mode="valid")
        mp, mq = f(p), f(q)
        sp, sq, spq = f(p * p) - mp ** 2, f(q * q) - mq ** 2, f(p * q) - mp * mq
        term = np.mean((2 * spq + c2) / (sp + sq + c2))
        h, w = p.shape[0] // 2 * 2, p.shape[1] // 2 * 2
        p = p[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        q = q[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
      value *= max(term, 0.0) ** weight
    per_channel.append(value)
  return np.mean(per_channel)


def test_ms_ssim_matches_a_direct_implementation():
  rng = np.random.default_rng(1)
  # Random frames at the minimum size (odd width: exercises the crop-to-even rule).
  a = rng.integers(0, 256, (2, 176, 181, 3), dtype=np.uint8)
  b = _noisy(a, rng)
  # Synthetic frames at 192: a figure moving between two frames.
  frames = synthetic.render_video(4, 3, 192)["frames"]
  for x, y in ((a, b), (frames[:1], frames[2:])):
    np.testing.assert_allclose(image.ms_ssim(x, y), [_ms_ssim_direct(p, q) for p, q in zip(x, y)],
                               atol=TOLERANCE)
  assert 0.0 < float(image.ms_ssim(frames[:1], frames[2:])[0]) < 1.0


def test_ms_ssim_and_ssim_reject_frames_below_their_minimum_size():
  frames = np.zeros((1, 175, 200, 3), np.uint8)
  with pytest.raises(ValueError, match="176x176"):
    image.ms_ssim(frames, frames)
  with pytest.raises(ValueError, match="11x11"):
    image.ssim(frames[:, :10], frames[:, :10])
  with pytest.raises(ValueError, match="shapes differ"):
    image.psnr(frames, frames[:, :-1])


def _translating_video(num_frames=6, size=96, step=(1, 2)):
  """A smooth random texture seen through a moving window: a pure translation."""
  rng = np.random.default_rng(3)
  texture = cv2.GaussianBlur(rng.uniform(0, 255, (200, 200, 3)).astype(np.float32), (0, 0), 2)
  texture = np.clip((texture - texture.mean()) * 4 + 128, 0, 255).astype(np.uint8)
  return np.stack([texture[20 + step[1] * t:20 + step[1] * t + size,
                           30 + step[0] * t:30 + step[0] * t + size] for t in range(num_frames)])


def test_warping_error_pair_follows_eq_10_literally():
  rng = np.random.default_rng(5)
  previous, now = rng.integers(0, 256, (2, 16, 20, 3), dtype=np.uint8)
  zero = np.zeros((16, 20, 2), np.float32)
  total, count = temporal.warping_error_pair(previous, now, zero, zero)
  expected = np.sqrt((((now / 255.0) - previous / 255.0) ** 2).sum(axis=-1)).sum()
  assert count == 16 * 20
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  # A 1-px backward flow reads the previous frame one column to the right (border-clamped).
  shift = zero.copy()
  shift[..., 0] = 1.0
  total, _ = temporal.warping_error_pair(previous, now, shift, -shift)
  shifted = np.concatenate([previous[:, 1:], previous[:, -1:]], axis=1)
  expected = np.sqrt((((now / 255.0) - shifted / 255.0) ** 2).sum(axis=-1)).sum()
  np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_d2g_confidence_is_the_forward_backward_rule():
  flow = np.full((8, 8, 2), 1.5, np.float32)
  np.testing.assert_array_equal(temporal.d2g_confidence(flow, -flow), 1.0)
  np.testing.assert_array_equal(temporal.d2g_confidence(flow, flow), 0.0)  # |3, 3|^2 = 18 > 1
  nearly = -flow + 0.6  # residual 0.6^2 * 2 = 0.72 < 1
  np.testing.assert_array_equal(temporal.d2g_confidence(flow, nearly), 1.0)


def test_e_temp_is_near_zero_for_a_translation_and_large_when_shuffled():
  video = _translating_video()
  smooth = temporal.warping_error(video, video)
  assert smooth["e_temp"] < 0.01, smooth
  assert smooth["confident_fraction"] > 0.95
  assert smooth["e_temp_per_pair"].shape == (len(video) - 1,)
  shuffled = temporal.warping_error(video[[0, 3, 1, 5, 2, 4]], video)
  assert shuffled["e_temp"] > 10 * smooth["e_temp"] and shuffled["e_temp"] > 0.1, shuffled
  with pytest.raises(ValueError, match="at least 2 frames"):
    temporal.warping_error(video[:1], video[:1])


def test_interp_psnr_flow_is_high_for_smooth_motion_and_low_for_shuffled():
  video = _translating_video()
  smooth = temporal.interp_psnr(video, video)
  assert smooth["interp_psnr_flow"] > 30.0, smooth
  assert smooth["interp_psnr_flow_per_frame"].shape == (len(video) - 2,)
  shuffled = temporal.interp_psnr(video[[0, 3, 1, 5, 2, 4]], video)
  assert shuffled["interp_psnr_flow"] < smooth["interp_psnr_flow"] - 10.0, shuffled
  # Against the reference I_t (not O_t): a static generated video scores its own frame exactly
  # but the moving reference poorly.
  static = np.repeat(video[:1], len(video), axis=0)
  scores = temporal.interp_psnr(static, video)
  assert scores["interp_psnr_flow_self"] > 100.0  # float32 warping of identical frames
  assert scores["interp_psnr_flow"] < 30.0


@pytest.fixture(scope="module")
def ground_truth64(tmp_path_factory, video64):
  path = tmp_path_factory.mktemp("gt") / "video.npz"
  synthetic.write_ground_truth(path, video64)
  return synthetic_gt.load_ground_truth(path)


def _normalised(coords_px, size):
  return coords_px * 2.0 / (size - 1) - 1.0


def test_epe_is_zero_for_the_ground_truth_correspondence(ground_truth64):
  gt = ground_truth64
  motion = _normalised(gt["source_coords"], 64)
  result = synthetic_gt.motion_epe(motion, gt["source_coords"], gt["source_visible"],
                                   gt["part_labels"])
  assert result["epe"] < 1e-4
  assert result["epe_per_frame"].shape == (len(motion),)
  # One pixel off along x everywhere: EPE is exactly one pixel.
  shifted = _normalised(gt["source_coords"] + np.array([1.0, 0.0], np.float32), 64)
  result = synthetic_gt.motion_epe(shifted, gt["source_coords"], gt["source_visible"],
                                   gt["part_labels"])
  np.testing.assert_allclose(result["epe"], 1.0, atol=1e-4)


def test_epe_compares_across_resolutions_by_the_half_pixel_rule(ground_truth64):
  # The same video rendered at 128: the 64-px correspondence agrees with it after resampling.
  high = synthetic.render_video(11, 8, 128)
  motion = _normalised(ground_truth64["source_coords"], 64)
  result = synthetic_gt.motion_epe(motion, high["source_coords"], high["source_visible"],
                                   high["part_labels"])
  assert result["epe"] < 0.05, result
  assert 0.5 < result["visible_fraction"] < 1.0


def test_true_temporal_error_small_for_the_rendered_video_large_when_shuffled(video64,
                                                                             ground_truth64):
  gt = ground_truth64
  args = (gt["flow_forward"], gt["valid_forward"], gt["mixed"], gt["part_labels"])
  exact = synthetic_gt.true_temporal_error(video64["frames"], *args)
  assert exact["temporal_error_gt"] < 0.005, exact
  assert exact["temporal_error_gt_per_pair"].shape == (7,)
  shuffled = synthetic_gt.true_temporal_error(video64["frames"][[0, 4, 2, 6, 1, 5, 3, 7]], *args)
  assert shuffled["temporal_error_gt"] > 3 * exact["temporal_error_gt"], shuffled
  # Frames at 32 px scored with the 64-px ground truth (resampled): still small.
  low = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in video64["frames"]])
  assert synthetic_gt.true_temporal_error(low, *args)["temporal_error_gt"] < 0.02


def test_load_ground_truth_rejects_other_files(tmp_path):
  np.savez(tmp_path / "other.npz", x=np.zeros(3))
  with pytest.raises(ValueError, match="other.npz: not a synthetic ground-truth file"):
    synthetic_gt.load_ground_truth(tmp_path / "other.npz")
  (tmp_path / "broken.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="broken.npz"):
    synthetic_gt.load_ground_truth(tmp_path / "broken.npz")
