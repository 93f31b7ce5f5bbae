"""Trivial baselines beside every model score: copy-source, the figure region and zero motion, in
`evaluate` (both modes share `frame_scores`) and in training's evaluation, on hand-built cases
whose answers follow from independent numpy formulas."""

import copy
import json

import cv2
import numpy as np
import pytest
from scipy import signal

from input_pipeline import synthetic
from internet_jax import evaluate, inference, reconstruction, train
from internet_jax.metrics import BODY_REGIONS, image, synthetic_gt


def _frames(num_frames=3, size=16, seed=0):
  """A textured reference video whose frames differ (brightness steps and a moving bar)."""
  rng = np.random.default_rng(seed)
  base = rng.integers(40, 200, (size, size, 3)).astype(np.int64)
  frames = []
  for t in range(num_frames):
    frame = base + 7 * t
    frame[:, 2 + 3 * t:4 + 3 * t] = 250
    frames.append(np.clip(frame, 0, 255).astype(np.uint8))
  return np.stack(frames)


def _masked_l1(a, b, mask):
  return np.abs(a[mask].astype(float) - b[mask].astype(float)).mean() / 255.0


def _masked_psnr(a, b, mask):
  d = a[mask].astype(float) - b[mask].astype(float)
  return 10 * np.log10(255.0 ** 2 / np.mean(d * d))


# ---------------------------------------------------------------------------------------------
# Masked metrics


def test_masked_l1_and_psnr_are_the_plain_formulas_over_the_mask():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
  b = rng.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
  mask = rng.random((3, 12, 12)) < 0.3
  mask[2] = False
  l1 = image.masked_l1(a, b, mask)
  psnr = image.masked_psnr(a, b, mask)
  for t in range(2):
    assert l1[t] == pytest.approx(_masked_l1(a[t], b[t], mask[t]), rel=1e-12)
    assert psnr[t] == pytest.approx(_masked_psnr(a[t], b[t], mask[t]), rel=1e-12)
  assert np.isnan(l1[2]) and np.isnan(psnr[2])  # an empty region has no score
  everywhere = np.ones((3, 12, 12), bool)
  np.testing.assert_allclose(image.masked_l1(a, b, everywhere), image.l1(a, b), rtol=1e-12)
  np.testing.assert_allclose(image.masked_psnr(a, b, everywhere), image.psnr(a, b), rtol=1e-12)
  assert image.masked_psnr(a, a, mask)[0] == np.inf
  with pytest.raises(ValueError, match="bool mask"):
    image.masked_l1(a, b, mask[:, :6])


def _ssim_map(x, y):
  """Wang et al. 2004 SSIM map, channels averaged, by 2D 'valid' convolution (scipy)."""
  radius, sigma = 5, 1.5
  w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  kernel = np.outer(w, w) / np.outer(w, w).sum()
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  maps = []
  for c in range(x.shape[-1]):
    xc, yc = x[..., c].astype(float), y[..., c].astype(float)
    f = lambda z: signal.convolve2d(z, kernel, mode="valid")  # noqa: E731
    mx, my = f(xc), f(yc)
    vx, vy, cov = f(xc * xc) - mx * mx, f(yc * yc) - my * my, f(xc * yc) - mx * my
    maps.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
  return np.mean(maps, axis=0)


def test_masked_ssim_averages_the_ssim_map_over_window_centres_in_the_mask():
  rng = np.random.default_rng(2)
  a = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
  b = a.copy()
  b[:, :, 14:] = rng.integers(0, 256, (2, 24, 10, 3))  # the right part differs
  mask = np.zeros((2, 24, 24), bool)
  mask[0, 6:18, 5:9] = True  # windows centred here reach column 13 at most: identical pixels
  mask[1, 3:20, 8:20] = True
  values = image.masked_ssim(a, b, mask)
  assert values[0] == pytest.approx(1.0, abs=1e-12)
  expected = _ssim_map(a[1], b[1])[mask[1, 5:-5, 5:-5]].mean()
  assert values[1] == pytest.approx(expected, abs=1e-9) and values[1] < 0.9
  np.testing.assert_allclose(image.masked_ssim(a, b, np.ones((2, 24, 24), bool)),
                             image.ssim(a, b), atol=1e-12)
  border_only = np.zeros((1, 24, 24), bool)
  border_only[0, :5] = True  # no valid window centre there
  assert np.isnan(image.masked_ssim(a[:1], b[:1], border_only)[0])


# ---------------------------------------------------------------------------------------------
# Figure region and zero motion


def test_figure_mask_is_target_or_source_labels_at_any_resolution():
  labels = np.zeros((3, 8, 8), np.uint8)
  labels[0, 1:3, 1:3] = 2  # the source's figure
  labels[2, 5:7, 4:7] = 1
  mask = synthetic_gt.figure_mask(labels, (8, 8), frames=[0, 2])
  expected = np.zeros((2, 8, 8), bool)
  expected[:, 1:3, 1:3] = True
  expected[1, 5:7, 4:7] = True
  np.testing.assert_array_equal(mask, expected)

  one = np.zeros((1, 8, 8), np.uint8)
  one[0, 3, 5] = 4
  half = synthetic_gt.figure_mask(one, (4, 4))  # R pixel (1, 2) covers S rows 2-3, cols 4-5
  assert half.shape == (1, 4, 4) and np.argwhere(half[0]).tolist() == [[1, 2]]
  double = synthetic_gt.figure_mask(one, (16, 16))  # S pixel (3, 5) is R rows 6-7, cols 10-11
  assert np.argwhere(double[0]).tolist() == [[6, 10], [6, 11], [7, 10], [7, 11]]
  third = synthetic_gt.figure_mask(one, (3, 3))  # areas [0, 8/3), [8/3, 16/3), [16/3, 8)
  assert np.argwhere(third[0]).tolist() == [[1, 1], [1, 2]]


def _translation_truth(size=16, num_frames=3, shift=(2, 4), block=4, corner=2):
  """A square figure translating by `shift` px per frame; everything visible (as the renderer:
  background is visible with its own position as correspondence)."""
  labels = np.zeros((num_frames, size, size), np.uint8)
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).astype(np.float32)
  coords = np.repeat(grid[None], num_frames, 0)
  for t in range(num_frames):
    x0, y0 = corner + shift[0] * t, corner + shift[1] * t
    labels[t, y0:y0 + block, x0:x0 + block] = 1
    coords[t, y0:y0 + block, x0:x0 + block] -= np.array(shift, np.float32) * t
  return {"part_labels": labels, "source_coords": coords,
          "source_visible": np.ones((num_frames, size, size), bool)}


def _normalised(coords_px, size):
  return coords_px * 2.0 / (size - 1) - 1.0


def test_zero_motion_epe_is_the_mean_displacement_norm_of_a_known_translation():
  truth = _translation_truth()
  norm = float(np.hypot(2, 4))
  exact = _normalised(truth["source_coords"], 16)
  scores = synthetic_gt.motion_scores(exact, truth)
  assert scores["epe"] == pytest.approx(0, abs=1e-5)
  assert scores["epe_figure"] == pytest.approx(0, abs=1e-5)
  # Frames 0, 1, 2 displaced by 0, |d|, 2|d|, 16 figure pixels each.
  assert scores["epe_figure_zero_motion"] == pytest.approx(norm, rel=1e-6)
  # All visible pixels: the figure's error spread over 3 * 256 pixels (background error 0).
  assert scores["epe_zero_motion"] == pytest.approx(norm * 3 * 16 / (3 * 256), rel=1e-6)
  # Chosen frames only, and the field of a model that stays 1 px off in x.
  off = exact[[2]] + np.array([2.0 / 15, 0.0], np.float32)
  chosen = synthetic_gt.motion_scores(off, truth, frames=[2])
  assert chosen["epe_figure"] == pytest.approx(1.0, rel=1e-5)
  assert chosen["epe_figure_zero_motion"] == pytest.approx(2 * norm, rel=1e-6)
  # At half the rendered resolution displacements halve (the renderer's 16 px -> 8 px).
  half = synthetic_gt.motion_scores(synthetic_gt.identity_motion(2, 8, 8),
                                    _translation_truth(num_frames=2))
  assert half["epe_figure_zero_motion"] == pytest.approx(norm / 2 / 2, rel=1e-6)


def test_region_epe_splits_the_figure_by_the_renderers_part_names():
  # Two parts: a 4x4 "lower_arm_right" block translating by (2, 4) px per frame and a static 4x4
  # "torso" block; no leg pixel at all.
  truth = _translation_truth()
  static = (slice(10, 14), slice(10, 14))
  truth["part_labels"][:, static[0], static[1]] = 2
  truth["part_names"] = np.array(["lower_arm_right", "torso"])
  scores = synthetic_gt.motion_scores(synthetic_gt.identity_motion(3, 16, 16), truth)
  norm = float(np.hypot(2, 4))
  # Frames 0, 1, 2 displace the arm by 0, |d|, 2|d|: mean |d|; the torso does not move.
  assert scores["epe_arms"] == pytest.approx(norm, rel=1e-6)
  assert scores["epe_arms_zero_motion"] == pytest.approx(norm, rel=1e-6)
  assert scores["epe_trunk"] == pytest.approx(0.0, abs=1e-6)
  assert np.isnan(scores["epe_legs"]) and np.isnan(scores["epe_legs_zero_motion"])
  # The figure mean weights the 16 + 16 pixels of each frame alike.
  assert scores["epe_figure"] == pytest.approx(norm / 2, rel=1e-6)
  # Without part names there is no split.
  del truth["part_names"]
  assert not any(key.startswith(("epe_arms", "epe_legs", "epe_trunk"))
                 for key in synthetic_gt.motion_scores(synthetic_gt.identity_motion(3, 16, 16),
                                                       truth))


def test_best_grid_motion_is_the_least_squares_fit_of_the_upsampled_grid():
  # Reference: a dense least-squares solve written from the definition (bilinear, align corners,
  # visible pixels only), on a random field with hidden pixels.
  rng = np.random.default_rng(0)
  size, base = 12, 4
  truth = {"source_coords": rng.uniform(0, size - 1, (2, size, size, 2)).astype(np.float32),
           "source_visible": rng.random((2, size, size)) < 0.7}
  position = np.arange(size) * (base - 1) / (size - 1)
  hat = np.maximum(0.0, 1.0 - np.abs(position[:, None] - np.arange(base)[None]))  # (size, base)
  upsample = np.einsum("ia,jb->ijab", hat, hat).reshape(size * size, base * base)
  fields = synthetic_gt.best_grid_motion(truth, base)
  for t in range(2):
    rows = truth["source_visible"][t].ravel()
    target = truth["source_coords"][t].reshape(-1, 2) * 2.0 / (size - 1) - 1.0
    expected = upsample @ np.linalg.lstsq(upsample[rows], target[rows], rcond=None)[0]
    np.testing.assert_allclose(fields[t].reshape(-1, 2), expected, atol=1e-5)


def test_best_grid_motion_is_exact_where_the_grid_can_hold_the_field():
  # A global translation is affine: bilinear upsampling of any grid holds it exactly.
  size, shift = 16, np.array([1.5, -0.5], np.float32)
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).astype(np.float32)
  global_shift = {"source_coords": np.stack([grid, grid - shift]),
                  "source_visible": np.ones((2, size, size), bool),
                  "part_labels": np.ones((2, size, size), np.uint8)}
  scores = synthetic_gt.motion_scores(synthetic_gt.best_grid_motion(global_shift, 2), global_shift)
  assert scores["epe_figure"] == pytest.approx(0.0, abs=1e-4)
  # A 4 px block moving alone: the full-resolution grid holds it, a 4x4 grid cannot.
  block = _translation_truth()
  full = synthetic_gt.motion_scores(synthetic_gt.best_grid_motion(block, 16), block)
  coarse = synthetic_gt.motion_scores(synthetic_gt.best_grid_motion(block, 4), block)
  assert full["epe_figure"] == pytest.approx(0.0, abs=1e-4)
  assert 0.2 * coarse["epe_figure_zero_motion"] < coarse["epe_figure"]


def test_body_regions_cover_every_part_of_the_renderer_once():
  parts = [part for _, names in BODY_REGIONS for part in names]
  assert sorted(parts) == sorted(synthetic.PART_NAMES)


# ---------------------------------------------------------------------------------------------
# evaluate: frame_scores and the reports


def test_frame_scores_give_copy_source_and_figure_scores_of_the_formulas():
  reference = _frames()
  rng = np.random.default_rng(3)
  generated = np.clip(reference + rng.integers(-20, 20, reference.shape), 0, 255).astype(np.uint8)
  figure = np.zeros((3, 16, 16), bool)
  figure[:, 4:12, 3:9] = True
  figure[2, 0:2] = True
  scores = evaluate.frame_scores(generated, reference, reference[0], figure=figure)
  everywhere = np.ones((16, 16), bool)
  for t in range(3):
    assert scores["l1_copy_source"][t] == pytest.approx(
        _masked_l1(reference[0], reference[t], everywhere), rel=1e-12)
    assert scores["l1_figure_copy_source"][t] == pytest.approx(
        _masked_l1(reference[0], reference[t], figure[t]), rel=1e-12)
    assert scores["l1_figure"][t] == pytest.approx(
        _masked_l1(generated[t], reference[t], figure[t]), rel=1e-12)
    assert scores["psnr_figure"][t] == pytest.approx(
        _masked_psnr(generated[t], reference[t], figure[t]), rel=1e-12)
  assert scores["psnr_copy_source"][0] == np.inf
  assert scores["ssim_copy_source"][0] == pytest.approx(1.0, abs=1e-12)

  mean = evaluate.mean_frame_scores(scores, "none")
  # The copy's PSNR leaves out frame 0 (the source itself); the model's is also given there.
  copy_psnr = [_masked_psnr(reference[0], reference[t], everywhere) for t in (1, 2)]
  model_psnr = [_masked_psnr(generated[t], reference[t], everywhere) for t in range(3)]
  assert mean["psnr_copy_source"] == pytest.approx(np.mean(copy_psnr), rel=1e-12)
  assert mean["psnr_copy_frames"] == pytest.approx(np.mean(model_psnr[1:]), rel=1e-12)
  assert mean["psnr"] == pytest.approx(np.mean(model_psnr), rel=1e-12)
  assert mean["l1_copy_source"] == pytest.approx(np.mean(
      [_masked_l1(reference[0], reference[t], everywhere) for t in range(3)]), rel=1e-12)


def _write_case(root, reference, generated, labels):
  """PNG folders reference/clip and generated/clip, and a hand-made reference/clip.npz."""
  for name, frames in (("reference", reference), ("generated", generated)):
    folder = root / name / "clip"
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
      cv2.imwrite(str(folder / f"{t:07d}.png"), frame[..., ::-1])
  t, h, w = labels.shape
  grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
  np.savez_compressed(root / "reference" / "clip.npz", part_labels=labels,
                      source_coords=np.repeat(grid[None], t, 0),
                      source_visible=np.ones((t, h, w), bool),
                      flow_forward=np.zeros((t - 1, h, w, 2), np.float32),
                      valid_forward=np.ones((t - 1, h, w), bool), mixed=np.zeros((t, h, w), bool))


def test_folders_mode_reports_every_score_beside_its_baselines(tmp_path):
  reference = _frames(num_frames=3, size=32)
  generated = np.stack([cv2.GaussianBlur(f, (5, 5), 0) for f in reference])
  labels = np.zeros((3, 32, 32), np.uint8)
  labels[0, 8:20, 6:14] = 1
  labels[1, 10:24, 12:20] = 3
  labels[2, 4:12, 20:28] = 2
  _write_case(tmp_path, reference, generated, labels)
  results = evaluate.evaluate_folders(tmp_path / "generated", tmp_path / "reference",
                                      output_dir=tmp_path / "out",
                                      options=evaluate.Options(flow_preset="ultrafast"))
  saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
  video = saved["videos"]["clip"]
  union = (labels != 0) | (labels[0] != 0)
  everywhere = np.ones((32, 32), bool)
  assert video["l1_copy_source"] == pytest.approx(
      np.mean([_masked_l1(reference[0], reference[t], everywhere) for t in range(3)]), rel=1e-9)
  assert video["l1_figure"] == pytest.approx(
      np.mean([_masked_l1(generated[t], reference[t], union[t]) for t in range(3)]), rel=1e-9)
  assert video["l1_figure_copy_source"] == pytest.approx(
      np.mean([_masked_l1(reference[0], reference[t], union[t]) for t in range(3)]), rel=1e-9)
  assert video["psnr_figure_copy_source"] == pytest.approx(
      np.mean([_masked_psnr(reference[0], reference[t], union[t]) for t in (1, 2)]), rel=1e-9)
  # The exact flow is zero here: a static output (copy-source) then has no true temporal error.
  assert video["temporal_error_gt_copy_source"] == pytest.approx(0.0, abs=1e-5)
  assert video["temporal_error_gt"] > 0.01  # the blurred reference does change
  assert saved["mean"]["l1_copy_source"] == video["l1_copy_source"]
  for key in evaluate.MOTION_KEYS:  # folders carry no motion field
    assert video[key].startswith("not computed: needs the predicted motion field")
  markdown = (tmp_path / "out" / "metrics.md").read_text()
  assert "## Model vs trivial baselines" in markdown
  row = next(line for line in markdown.splitlines() if line.startswith("| L1 ↓ | figure |"))
  assert row == (f"| L1 ↓ | figure | {results['mean']['l1_figure']:.4f} | "
                 f"{results['mean']['l1_figure_copy_source']:.4f} | — |")
  assert "| EPE (px) ↓ | source-visible figure pixels | not computed | — | not computed |" in markdown
  for key in ("l1_figure", "epe_zero_motion", "epe_figure", "psnr_copy_source"):
    assert key in saved["definitions"]


def test_folders_mode_without_ground_truth_names_the_missing_figure_scores(tmp_path):
  reference = _frames(num_frames=3, size=16)
  _write_case(tmp_path, reference, reference, np.zeros((3, 16, 16), np.uint8))
  (tmp_path / "reference" / "clip.npz").unlink()
  results = evaluate.evaluate_folders(tmp_path / "generated", tmp_path / "reference",
                                      output_dir=tmp_path / "out",
                                      options=evaluate.Options(flow_preset="ultrafast"))
  video = results["videos"]["clip"]
  assert video["l1"] == 0.0 and video["l1_copy_source"] > 0
  for key in ("l1_figure", "l1_figure_copy_source", "psnr_figure", "ssim_figure_copy_source",
              "epe_zero_motion", "temporal_error_gt_copy_source"):
    assert video[key].startswith("not computed: no synthetic ground truth"), key


# ---------------------------------------------------------------------------------------------
# Training-time evaluation


class _Source:
  def __init__(self, frames, name="clip"):
    self.frames, self.name = frames, name

  def __len__(self):
    return 1

  def num_frames(self, video):
    return len(self.frames)

  def video_name(self, video):
    return self.name

  def read_frame(self, video, t):
    return self.frames[t]


class _Renderer(inference.Renderer):
  """Outputs the driving frame itself; its motion field is the ground truth's exact one for the
  driving frame's index (looked up by its pixels), when given. Chunks of 3 frames."""

  def __init__(self, motion, videos):
    super().__init__(resolution=16, batch_size=3)
    self.motion = motion  # (T, H, W, 2) for every frame of the video
    self.index = {frame.tobytes(): t for frames in videos for t, frame in enumerate(frames)}
    self.driven = []

  def start(self, source, first_driving):
    return None

  def step(self, carry, chunk):
    indices = [self.index[frame.tobytes()] for frame in chunk]
    self.driven.append(indices)
    outputs = {"prediction": chunk.astype(np.float32) / 255.0,
               "confidence": np.ones(chunk.shape[:3] + (1,), np.float32)}
    if self.motion is not None:
      outputs["motion_full"] = self.motion[indices]
    return carry, outputs


def _paint(truth, background, figure):
  """Frames of the translating square: background grey `background` + 7 t, figure colour."""
  count, size = truth["part_labels"].shape[:2]
  frames = np.empty((count, size, size, 3), np.uint8)
  for t in range(count):
    frames[t] = background + 7 * t
    frames[t][truth["part_labels"][t] != 0] = figure
  return frames


def _cross_case(tmp_path, count=5, size=16):
  """test/clip.npz and test_cross/clip/ (PNG frames) of a dataset folder: appearance A (the
  returned frames) and its partner B (same motion, other colours)."""
  truth = _translation_truth(size=size, num_frames=count, shift=(1, 2), block=4, corner=2)
  a, b = _paint(truth, 60, (200, 200, 200)), _paint(truth, 120, (20, 90, 30))
  (tmp_path / "test").mkdir()
  np.savez_compressed(tmp_path / "test" / "clip.npz", **truth)
  folder = tmp_path / "test_cross" / "clip"
  folder.mkdir(parents=True)
  for t, frame in enumerate(b):
    cv2.imwrite(str(folder / f"{t:07d}.png"), frame[..., ::-1])
  return truth, a, b


def test_training_evaluation_logs_copy_source_figure_and_zero_motion(tmp_path):
  truth, frames, partner = _cross_case(tmp_path)
  animator = _Renderer(_normalised(truth["source_coords"], 16), (frames, partner))
  scores = reconstruction.evaluate_reconstruction(animator, _Source(frames), num_videos=3,
                                         frames_per_video=3, ground_truth_dir=tmp_path / "test",
                                         manual_dir=tmp_path)
  indices = [0, 2, 4]
  assert sum(animator.driven, []) == indices + indices  # self-imitation, then cross-identity
  targets = frames[indices].astype(float) / 255.0
  driving_b = partner[indices].astype(float) / 255.0
  source = frames[0].astype(float) / 255.0
  union = (truth["part_labels"][indices] != 0) | (truth["part_labels"][0] != 0)
  # The stand-in model outputs its driving frame: exact in self-imitation ...
  assert scores["eval/l1"] == 0.0
  assert scores["eval/l1_copy_source"] == pytest.approx(np.abs(source - targets).mean(), rel=1e-6)
  assert scores["eval/l1_figure_copy_source"] == pytest.approx(np.mean(
      [np.abs(source - targets[i])[union[i]].mean() for i in range(3)]), rel=1e-6)
  figure_psnr = [10 * np.log10(1 / np.mean((source - targets[i])[union[i]] ** 2)) for i in (1, 2)]
  assert scores["eval/psnr_figure_copy_source"] == pytest.approx(np.mean(figure_psnr), rel=1e-5)
  assert scores["eval/motion_epe"] == pytest.approx(0.0, abs=1e-5)
  # Frames 0, 2, 4 are displaced by 0, 2|d|, 4|d| with |d| = sqrt(5), 16 figure pixels each.
  assert scores["eval/motion_epe_zero_motion"] == pytest.approx(2 * np.sqrt(5), rel=1e-6)
  # ... and B's frames in cross-identity, scored against A's frames (the target).
  assert scores["eval/cross/l1"] == pytest.approx(np.abs(driving_b - targets).mean(), rel=1e-6)
  assert scores["eval/cross/l1_figure"] == pytest.approx(np.mean(
      [np.abs(driving_b[i] - targets[i])[union[i]].mean() for i in range(3)]), rel=1e-6)
  assert scores["eval/cross/l1_copy_source"] == scores["eval/l1_copy_source"]
  assert scores["eval/cross/motion_epe_zero_motion"] == scores["eval/motion_epe_zero_motion"]
  line = reconstruction.format_eval_scores(scores)
  assert f"L1 0.0000 (copy-source {scores['eval/l1_copy_source']:.4f});" in line
  assert "motion EPE 0.000 px (zero motion 4.472 px);" in line
  cross = reconstruction.format_eval_scores(scores, "eval/cross/")
  assert (f"L1 {scores['eval/cross/l1']:.4f} (copy-source "
          f"{scores['eval/cross/l1_copy_source']:.4f}) WORSE") in cross

  # Without ground truth and partners (another dataset): the whole-frame pair only.
  plain = reconstruction.evaluate_reconstruction(_Renderer(animator.motion, (frames,)),
                                                 _Source(frames), num_videos=1,
                                                 frames_per_video=3)
  assert "eval/l1_figure" not in plain and "eval/motion_epe" not in plain
  assert not any(key.startswith("eval/cross/") for key in plain)
  assert plain["eval/l1_copy_source"] == scores["eval/l1_copy_source"]


def test_sample_animation_is_cross_identity_when_a_partner_exists(tmp_path, monkeypatch):
  truth, frames, partner = _cross_case(tmp_path)
  written = []
  monkeypatch.setattr(reconstruction.video_io, "write_video", lambda path, video, fps: written.append(video))
  animator = _Renderer(None, (frames, partner))
  monkeypatch.chdir(tmp_path)
  reconstruction.write_sample_animation("x.mp4", animator, _Source(frames), max_frames=4,
                                        manual_dir=tmp_path)
  panels = np.split(written[-1], 4, axis=2)  # source | driving (B) | output | target (A)
  # The contact sheet: 4 rows (panels) x 4 columns (all 4 frames), 16 px cells, 2 px padding.
  sheet = cv2.imread(str(tmp_path / "x.png"))[..., ::-1]
  assert sheet.shape == (4 * 16 + 5 * 2, 4 * 16 + 5 * 2, 3)
  for row, panel in enumerate((np.broadcast_to(frames[0], (4, 16, 16, 3)), partner, partner,
                               frames)):
    for column in range(4):
      top, left = 2 + row * 18, 2 + column * 18
      np.testing.assert_array_equal(sheet[top:top + 16, left:left + 16], panel[column])
  np.testing.assert_array_equal(panels[0], np.broadcast_to(frames[0], (4, 16, 16, 3)))
  np.testing.assert_array_equal(panels[1], partner[:4])
  np.testing.assert_array_equal(panels[2], partner[:4])  # the stand-in outputs its driving frame
  np.testing.assert_array_equal(panels[3], frames[:4])
  reconstruction.write_sample_animation("x.mp4", animator, _Source(frames), max_frames=4,
                                        manual_dir=tmp_path / "test")  # no test_cross/ there
  panels = np.split(written[-1], 3, axis=2)  # self-imitation: source | driving | output
  np.testing.assert_array_equal(panels[1], frames[:4])


def test_eval_every_steps_is_validated_and_adds_evaluations(tiny_config, tmp_path, monkeypatch):
  for bad in (-1, -5):
    config = copy.deepcopy(tiny_config)
    config.eval_every_steps = bad
    with pytest.raises(ValueError, match=r"config\.eval_every_steps"):
      train.validate_config(config)
  calls = []
  real = reconstruction.evaluate_reconstruction

  def recording(*args, **kwargs):
    calls.append(real(*args, **kwargs))
    return calls[-1]

  monkeypatch.setattr(reconstruction, "evaluate_reconstruction", recording)
  config = copy.deepcopy(tiny_config)
  config.eval_every_steps, config.sample_animation, config.image_every_steps = 1, False, 0
  train.train_and_evaluate(config, str(tmp_path / "run"))
  assert len(calls) == 3  # steps 0 and 1, and the end (step 2) once
  for scores in calls:  # the synthetic test video's ground truth and partner are found and used
    for prefix in ("eval/", "eval/cross/"):
      assert {f"{prefix}{key}" for key in (
          "l1", "l1_copy_source", "l1_figure", "l1_figure_copy_source", "psnr_figure",
          "psnr_figure_copy_source", "motion_epe", "motion_epe_zero_motion",
          *(f"motion_epe_{region}{suffix}" for region in ("arms", "legs", "trunk")
            for suffix in ("", "_zero_motion")))} <= set(scores)
      assert 0 < scores[f"{prefix}motion_epe_zero_motion"] < 32
    assert scores["eval/cross/l1_copy_source"] == scores["eval/l1_copy_source"]
