"""D2G-Net's Robust-PSNR / Robust-SSIM in the shared evaluation (internet_jax/evaluate.py): the
frames chosen by pose, their means against direct formulas, the copy-source baseline, the report,
and the not-computed reasons."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from configs import synthetic as synthetic_config
from input_pipeline import sources
from internet_jax import evaluate
from internet_jax.metrics import poses

T, J, SIZE = 6, 3, 16


def _psnr(a, b):
  return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.fixture(scope="module")
def scored():
  """Two test videos with joints; generated = reference + a known offset per frame."""
  rng = np.random.default_rng(0)
  names = ("clip_a", "clip_b")
  references = [rng.integers(20, 200, (T, SIZE, SIZE, 3)).astype(np.uint8) for _ in names]
  offsets = [np.arange(1, T + 1), np.arange(T + 1, 2 * T + 1)]  # per frame, grey levels
  generated = [(r.astype(int) + o[:, None, None, None]).astype(np.uint8)
               for r, o in zip(references, offsets)]
  train = rng.uniform(0, SIZE, (8, J, 2))
  # Test poses: near training pose 0, except three moved away by known amounts (frame 0 of
  # clip_b among them: the source, reproduced exactly by the copy).
  joints = [np.repeat(train[:1], T, 0) + rng.normal(0, 0.01, (T, J, 2)) for _ in names]
  joints[1][2] += 50.0
  joints[0][4] += 30.0
  joints[1][0] += 20.0
  joints[0][1, 1] = np.nan  # one missing joint: compared over the other two
  source = sources.InMemoryVideoSource(references, list(names),
                                       [{"joints": j.astype(np.float32)} for j in joints])
  scorer = evaluate.Scorer(evaluate.Options(robust_frames=3))
  for name, fake, real in zip(names, generated, references):
    scorer.add(name, fake, real)
  test_joints = {name: poses.video_joints(source, v) for v, name in enumerate(names)}
  return scorer, train, test_joints, references, generated


def test_robust_means_are_those_of_the_farthest_frames(scored):
  scorer, train, test_joints, references, generated = scored
  robust = evaluate._robust(scorer, train, test_joints, 3)
  assert robust["robust_frames"] == ["clip_b:2", "clip_a:4", "clip_b:0"]
  frames = [(1, 2), (0, 4), (1, 0)]
  psnrs = [_psnr(generated[v][t], references[v][t]) for v, t in frames]
  # The offsets are exact: PSNR = 20 log10(255 / offset).
  np.testing.assert_allclose(psnrs, [20 * np.log10(255 / o) for o in (9, 5, 7)], rtol=1e-12)
  assert robust["psnr_robust"] == pytest.approx(np.mean(psnrs), rel=1e-12)
  ssims = [structural_similarity(generated[v][t], references[v][t], channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255) for v, t in frames]
  assert robust["ssim_robust"] == pytest.approx(np.mean(ssims), abs=1e-6)
  # Copy-source: frame 0 of each video; clip_b:0 is that frame itself (+inf), left out of the
  # PSNR mean as psnr_copy_source leaves it out, with the model's mean over the same two frames.
  copies = [_psnr(references[v][0], references[v][t]) for v, t in frames[:2]]
  assert robust["psnr_robust_copy_source"] == pytest.approx(np.mean(copies), rel=1e-12)
  assert robust["psnr_robust_copy_frames"] == pytest.approx(np.mean(psnrs[:2]), rel=1e-12)
  copy_ssims = [structural_similarity(references[v][0], references[v][t], channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=255)
                for v, t in frames]
  assert robust["ssim_robust_copy_source"] == pytest.approx(np.mean(copy_ssims), abs=1e-6)
  assert copy_ssims[2] == pytest.approx(1.0)

  # In the results and in metrics.md, model beside copy-source.
  results = evaluate.Scorer.results(scorer, robust=robust, mode="self_imitation", label="run")
  for key in evaluate.ROBUST_KEYS:
    assert results["mean"][key] == robust[key]
    assert key in results["definitions"]
  assert not set(evaluate.ROBUST_KEYS) & set(results["not_computed"])
  markdown = evaluate.format_markdown(results)
  assert "## Robust frames" in markdown and "3 frames: clip_b:2, clip_a:4, clip_b:0." in markdown
  row = f"| Robust-SSIM ↑ | all robust frames | {robust['ssim_robust']:.3f} | " \
        f"{robust['ssim_robust_copy_source']:.3f} |"
  assert row in markdown

  # More frames asked than there are: every frame, farthest first.
  everything = scorer.robust_scores(train, test_joints, 100)
  assert len(everything["robust_frames"]) == 2 * T
  assert everything["robust_frames"][:3] == robust["robust_frames"]


def test_without_poses_the_robust_keys_say_why(scored, tmp_path):
  scorer, train, test_joints, _, _ = scored
  reason = evaluate._robust(scorer, train, {**test_joints, "clip_b": None}, 3)
  assert reason == "not computed: test video clip_b has no 'joints' annotation"
  results = scorer.results(robust=reason, mode="self_imitation", label="run")
  assert all(results["mean"][key] == reason == results["not_computed"][key]
             for key in evaluate.ROBUST_KEYS)
  assert f"## Robust frames\n\nD2G-Net's Robust-PSNR" in evaluate.format_markdown(results)
  assert reason in evaluate.format_markdown(results)
  # A training split that is not prepared: the reason names it.
  config = synthetic_config.get_config("tiny")
  config.data.manual_dir = str(tmp_path / "synthetic")
  config.data.data_dir = str(tmp_path / "tfds")
  missing = evaluate.training_poses(config.data)
  assert missing.startswith("not computed: no training split to compare the test poses with (")
  assert evaluate._robust(scorer, missing, test_joints, 3) == missing
  assert not (tmp_path / "synthetic").exists() and not (tmp_path / "tfds").exists()
  # Training poses without a valid joint: no distance, so not computed.
  empty = np.full_like(train, np.nan)
  assert scorer.robust_scores(empty, test_joints, 3) == dict.fromkeys(
      evaluate.ROBUST_KEYS, "not computed: farthest_poses: no training pose with a valid joint")
