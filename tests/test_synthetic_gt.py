"""The measures behind the INTERnet paper's Figs. 7-8 (`synthetic_gt.anchor_scores`,
`confidence_scores`, `motion_boundary`, `roc_auc`) on constructed inputs whose answers follow from
first principles, and their place in `evaluate`'s reports."""

import itertools

import numpy as np
import pytest

from internet_jax import evaluate
from internet_jax.metrics import synthetic_gt


def _normalised(px, size):
  """Pixel (x, y) -> normalised align-corners on a size x size grid."""
  return np.asarray(px, np.float64) * 2.0 / (size - 1) - 1.0


def _identity(num_frames, size):
  grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).astype(np.float32)
  return np.repeat(grid[None], num_frames, 0)


def _right_half_moves(size=16, shift=(3.0, 0.0)):
  """Two frames: the right half (columns size/2..) is figure (label 1) in both; in frame 1 its
  source position is shifted by `shift` px, the background is static."""
  labels = np.zeros((2, size, size), np.uint8)
  labels[:, :, size // 2:] = 1
  coords = _identity(2, size)
  coords[1, :, size // 2:] += np.asarray(shift, np.float32)
  return labels, coords


# ---------------------------------------------------------------------------------------------
# Anchors (Fig. 7)


def test_anchors_on_figure_is_the_fraction_on_the_labelled_square():
  size = 16
  labels = np.zeros((2, size, size), np.uint8)
  labels[:, 4:12, 4:12] = 2  # an 8 x 8 square: 64 of 256 pixels
  coords = _identity(2, size)
  on = [(4, 4), (11, 11), (3.6, 7)]  # 3.6 rounds to column 4
  off = [(3.4, 7), (12, 8), (20, 8), (7, -3)]  # 3.4 rounds to 3; the last two outside the frame
  anchors = np.stack([_normalised(on + off[:1], size), _normalised([on[0]] + off[1:], size)])
  scores = synthetic_gt.anchor_scores(anchors, labels, coords)
  assert scores["anchors_on_figure"] == pytest.approx(4 / 8)
  assert scores["anchors_on_figure_chance"] == pytest.approx(64 / 256)
  # The figure does not move: no motion boundary, no distance.
  assert scores["boundary_frames"] == 0 and np.isnan(scores["anchor_boundary_distance"])


def test_anchors_on_figure_at_another_model_resolution_uses_the_half_pixel_rule():
  # R = 8, S = 16: x_S = (x_R + 0.5) * 2 - 0.5, so R pixel 2 is S 4.5 (rounds up to 5), R 1.5 is
  # S 3.5 (rounds up to 4, on the square), R 1.4 is S 3.3 (column 3, off).
  labels = np.zeros((1, 16, 16), np.uint8)
  labels[0, 4:12, 4:12] = 1
  anchors = _normalised([[(2, 2), (1.5, 1.5), (1.4, 5), (5, 1.4)]], 8)
  scores = synthetic_gt.anchor_scores(anchors, labels, _identity(1, 16), shape=(8, 8))
  assert scores["anchors_on_figure"] == pytest.approx(2 / 4)


def test_motion_boundary_is_where_the_moving_figure_meets_the_background():
  labels, coords = _right_half_moves()
  boundary = synthetic_gt.motion_boundary(coords, labels)
  assert not boundary[0].any()  # frame 0 is the source itself
  expected = np.zeros((16, 16), bool)
  expected[:, 7:9] = True  # both pixels of every pair across the edge
  np.testing.assert_array_equal(boundary[1], expected)
  # A jump of 1 px is not more than the threshold; 1.5 px is.
  assert not synthetic_gt.motion_boundary(*_right_half_moves(shift=(0.0, 1.0))[::-1]).any()
  assert synthetic_gt.motion_boundary(*_right_half_moves(shift=(0.0, 1.5))[::-1])[1].any()


def test_parts_turning_together_have_no_boundary_between_them():
  # Two parts (labels 1, 2) under one 90-degree rotation about (7.5, 7.5): neighbouring
  # displacements differ by sqrt(2) px, but the motion is continuous across their edge.
  size = 16
  labels = np.ones((2, size, size), np.uint8)
  labels[:, :, size // 2:] = 2
  coords = _identity(2, size).astype(np.float64)
  centred = coords[1] - 7.5
  coords[1] = np.stack([-centred[..., 1], centred[..., 0]], -1) + 7.5
  assert not synthetic_gt.motion_boundary(coords, labels).any()
  # Moved apart by 3 px, the same edge is a boundary.
  coords[1, :, size // 2:, 1] += 3.0
  boundary = synthetic_gt.motion_boundary(coords, labels)[1]
  assert boundary[:, 7:9].all() and not boundary[:, :7].any() and not boundary[:, 9:].any()


def test_anchor_boundary_distance_to_a_vertical_boundary():
  labels, coords = _right_half_moves()
  # Frame 0 has no boundary: its anchors do not count. Frame 1: 4.5 px from column 7's centre,
  # and 4 px from column 8's.
  anchors = np.stack([_normalised([(0, 0), (15, 15)], 16),
                      _normalised([(2.5, 5), (12, 3)], 16)])
  scores = synthetic_gt.anchor_scores(anchors, labels, coords)
  assert scores["boundary_frames"] == 1
  assert scores["anchor_boundary_distance"] == pytest.approx((4.5 + 4.0) / 2)
  # A uniform anchor: column c is min(|c - 7|, |c - 8|) away, mean 2 (0 + ... + 7) / 16.
  assert scores["anchor_boundary_distance_chance"] == pytest.approx(3.5)
  # At R = 8 the boundary's centres are x_R = (7.5, 8.5) / 2 - 0.5 = 3.25, 3.75 (rows likewise
  # at y_R = 0.25, 0.75, ...); px at R.
  anchors = np.stack([_normalised([(0, 0), (7, 7)], 8),
                      _normalised([(1.25, 1.75), (5.75, 5.75)], 8)])
  scores = synthetic_gt.anchor_scores(anchors, labels, coords, shape=(8, 8))
  assert scores["anchor_boundary_distance"] == pytest.approx(2.0)
  assert scores["anchor_boundary_distance_chance"] == pytest.approx(3.5 / 2)
  assert scores["anchors_on_figure"] == pytest.approx(2 / 4)  # (7, 7) and (5.75, 6)


def test_anchor_scores_refuse_mismatched_shapes():
  labels, coords = _right_half_moves()
  with pytest.raises(ValueError, match=r"expected anchors \(T, K, 2\)"):
    synthetic_gt.anchor_scores(np.zeros((2, 3)), labels, coords)
  with pytest.raises(ValueError, match="anchors of 3 frames, ground truth has 2"):
    synthetic_gt.anchor_scores(np.zeros((3, 1, 2)), labels, coords)


# ---------------------------------------------------------------------------------------------
# Confidence (Fig. 8)


def _pair_count_auc(scores, positive):
  """P(score of a positive > score of a negative) + P(tie) / 2 over all pairs."""
  pos = [s for s, p in zip(scores, positive) if p]
  neg = [s for s, p in zip(scores, positive) if not p]
  wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def test_roc_auc_counts_ties_half():
  scores = [0.1, 0.4, 0.4, 0.8, 0.4, 0.9, 0.1]
  positive = [False, True, False, True, True, False, True]
  # By hand: positives 0.4, 0.8, 0.4, 0.1 against negatives 0.1, 0.4, 0.9:
  # 0.4: 1 + 0.5 + 0; 0.8: 1 + 1 + 0; 0.4: 1 + 0.5 + 0; 0.1: 0.5 + 0 + 0 -> 5.5 / 12.
  assert synthetic_gt.roc_auc(scores, positive) == pytest.approx(5.5 / 12)
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 4, 40) / 4.0  # many ties
  positive = rng.random(40) < 0.4
  assert synthetic_gt.roc_auc(scores, positive) == pytest.approx(_pair_count_auc(scores, positive))
  assert np.isnan(synthetic_gt.roc_auc([0.2, 0.3], [True, True]))


def _visibility():
  rng = np.random.default_rng(1)
  visible = rng.random((3, 8, 8)) < 0.7
  labels = np.zeros((3, 8, 8), np.uint8)
  labels[:, 2:7, 3:6] = 1
  return visible, labels


def test_confidence_equal_to_visibility_scores_one_and_its_complement_zero():
  visible, labels = _visibility()
  perfect = synthetic_gt.confidence_scores(visible.astype(np.float32)[..., None], visible, labels)
  for key in ("confidence_auc", "confidence_iou", "confidence_auc_figure", "confidence_iou_figure"):
    assert perfect[key] == 1.0, key
  assert perfect["confidence_iou_all_visible"] == pytest.approx(visible.mean())
  figure = labels != 0
  assert perfect["confidence_iou_figure_all_visible"] == pytest.approx(visible[figure].mean())
  inverse = synthetic_gt.confidence_scores(1.0 - visible.astype(np.float32), visible, labels)
  assert inverse["confidence_auc"] == 0.0 and inverse["confidence_iou"] == 0.0
  assert inverse["confidence_auc_figure"] == 0.0
  constant = synthetic_gt.confidence_scores(np.full((3, 8, 8), 0.7), visible)
  assert constant["confidence_auc"] == 0.5 and "confidence_auc_figure" not in constant
  assert constant["confidence_iou"] == pytest.approx(visible.mean())  # M > 0.5 everywhere


def test_confidence_at_the_model_resolution_is_brought_to_the_ground_truths():
  # R = 4, S = 8: a map constant on 2 x 2 blocks resampled bilinearly at S's pixel centres keeps
  # its ordering; visibility = the left half, M = 1 on R's left half, 0 on its right half.
  visible = np.zeros((1, 8, 8), bool)
  visible[:, :, :4] = True
  confidence = np.zeros((1, 4, 4, 1), np.float32)
  confidence[:, :, :2] = 1.0
  scores = synthetic_gt.confidence_scores(confidence, visible)
  assert scores["confidence_auc"] == 1.0 and scores["confidence_iou"] == 1.0
  with pytest.raises(ValueError, match="confidence of 2 frames, ground truth has 1"):
    synthetic_gt.confidence_scores(np.zeros((2, 4, 4)), visible)
  with pytest.raises(ValueError, match="expected a confidence map"):
    synthetic_gt.confidence_scores(np.zeros((1, 4, 4, 2)), visible)


# ---------------------------------------------------------------------------------------------
# In evaluate's reports


def _write_truth(path, labels, coords, visible):
  t, h, w = labels.shape
  np.savez_compressed(path, part_labels=labels, source_coords=coords, source_visible=visible,
                      flow_forward=np.zeros((t - 1, h, w, 2), np.float32),
                      valid_forward=np.ones((t - 1, h, w), bool), mixed=np.zeros((t, h, w), bool))


def test_scorer_reports_anchor_and_confidence_scores_beside_their_references(tmp_path):
  labels, coords = _right_half_moves()
  visible = np.ones((2, 16, 16), bool)
  visible[1, :, 8:11] = False  # disoccluded
  _write_truth(tmp_path / "clip.npz", labels, coords, visible)
  rng = np.random.default_rng(2)
  frames = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  anchors = np.stack([_normalised([(12, 3), (2, 2)], 16), _normalised([(12, 3), (2.5, 5)], 16)])
  scorer = evaluate.Scorer(evaluate.Options(flow_preset="ultrafast"))
  video = scorer.add("clip", frames, frames, anchors=anchors,
                     confidence=visible.astype(np.float32)[..., None],
                     ground_truth=tmp_path / "clip.npz")
  assert video["anchors_on_figure"] == pytest.approx(2 / 4)
  assert video["anchors_on_figure_chance"] == pytest.approx(0.5)
  assert video["anchor_boundary_distance"] == pytest.approx((4.0 + 4.5) / 2)
  assert video["confidence_auc"] == 1.0 and video["confidence_iou_figure"] == 1.0
  assert video["confidence_iou_all_visible"] == pytest.approx(1 - 48 / 512)
  # Without anchors or confidence (another method's renderer, or folders): the reason.
  other = scorer.add("other", frames, frames, ground_truth=tmp_path / "clip.npz")
  for key in evaluate.ANCHOR_KEYS + evaluate.CONFIDENCE_KEYS:
    assert other[key].startswith("not computed: needs the predicted"), key
  results = scorer.results(mode="self_imitation", label="model")
  assert results["mean"]["confidence_auc"] == 1.0  # over the one video that has it
  assert any(note.startswith("confidence_auc: mean over 1 of 2") for note in results["notes"])
  markdown = evaluate.format_markdown(results)
  assert (f"| Anchors on figure ↑ | all anchors of all frames | "
          f"{results['mean']['anchors_on_figure']:.3f} | 0.500 |") in markdown
  assert "| Confidence AUC ↑ | all pixels | 1.000 | 0.500 |" in markdown
  figure_keys = {key for key in evaluate.CONFIDENCE_KEYS if "_figure" in key}
  assert "confidence_<measure>_figure" in results["definitions"]  # defines figure_keys
  assert set(evaluate.ANCHOR_KEYS + evaluate.CONFIDENCE_KEYS) - figure_keys <= set(
      results["definitions"])
  # A figure that does not move has no boundary: named, not NaN.
  # The composition: channel 0 = still background; of the K = 3 anchor motions, 1 wins a pixel
  # of frame 0 and 3 one of frame 1; 2 never has the largest weight (0.4 beside 0.6 at most).
  composition = np.zeros((2, 2, 2, 4), np.float32)
  composition[..., 0] = 0.6
  composition[..., 2] = 0.4
  composition[0, 0, 0] = (0.1, 0.8, 0.1, 0.0)
  composition[1, 1, 1] = (0.0, 0.0, 0.3, 0.7)
  used = scorer.add("used", frames, frames, composition=composition, ground_truth=None)
  assert used["anchor_motions_used"] == pytest.approx(2 / 3)
  assert other["anchor_motions_used"].startswith("not computed: needs the composition")
  results = scorer.results(mode="self_imitation", label="model")
  assert "anchor_motions_used" in results["definitions"]
  assert ("| Anchor motions used ↑ | any pixel of any frame | 0.667 | 1.000 |"
          in evaluate.format_markdown(results))  # the mean over the one video that has it
  with pytest.raises(ValueError, match=r"expected composition weights \(T, h, w, K \+ 1\)"):
    evaluate.anchor_motions_used(np.zeros((2, 2, 2, 1)))
  still = scorer.add("still", frames[:1], frames[:1], anchors=anchors[:1],
                     confidence=np.ones((1, 16, 16, 1)), ground_truth=None)
  assert still["anchor_boundary_distance"].startswith("not computed: no synthetic ground truth")
  _write_truth(tmp_path / "still.npz", labels, _identity(2, 16), np.ones((2, 16, 16), bool))
  still = scorer.add("still", frames, frames, anchors=anchors, confidence=np.ones((2, 16, 16, 1)),
                     ground_truth=tmp_path / "still.npz")
  assert still["anchor_boundary_distance"].startswith("not computed: no motion boundary")
  assert still["confidence_auc"].startswith("not computed: ")


class _FakeRenderer:
  """Chunks of 2 frames; outputs like INTERnet's (with anchors and confidence) or without."""

  batch_size = 2

  def __init__(self, with_intrinsics):
    self.with_intrinsics = with_intrinsics

  def render_chunks(self, source, driving, **options):
    del source, options
    for start in range(0, len(driving), self.batch_size):
      valid = min(self.batch_size, len(driving) - start)
      index = np.arange(start, start + self.batch_size, dtype=np.float32)  # padded last chunk
      outputs = {"prediction": np.zeros((self.batch_size, 4, 4, 3), np.float32),
                 "motion_full": np.zeros((self.batch_size, 4, 4, 2), np.float32)}
      if self.with_intrinsics:
        outputs["driving_anchors"] = {"value": np.broadcast_to(index[:, None, None], (2, 5, 2)),
                                      "jacobian": np.zeros((2, 5, 2, 2))}
        outputs["confidence_full"] = np.broadcast_to(index[:, None, None, None], (2, 4, 4, 1))
        outputs["composition"] = np.broadcast_to(index[:, None, None, None], (2, 2, 2, 6))
      yield valid, outputs


def test_animate_collects_anchors_and_confidence_where_the_renderer_gives_them():
  driving = np.zeros((3, 4, 4, 3), np.uint8)
  keys = tuple(evaluate.RENDERER_OUTPUTS)
  generated, motion, anchors, confidence, composition = evaluate._animate(
      _FakeRenderer(True), driving[0], driving, {}, keys=keys)
  assert generated.shape == (3, 4, 4, 3) and motion.shape == (3, 4, 4, 2)
  assert anchors.shape == (3, 5, 2) and confidence.shape == (3, 4, 4, 1)
  assert composition.shape == (3, 2, 2, 6)
  np.testing.assert_array_equal(anchors[:, 0, 0], [0, 1, 2])  # the padded frame left out
  np.testing.assert_array_equal(confidence[:, 0, 0, 0], [0, 1, 2])
  _, motion, anchors, confidence, composition = evaluate._animate(
      _FakeRenderer(False), driving[0], driving, {}, keys=keys)
  assert motion.shape == (3, 4, 4, 2) and anchors is None and confidence is None
  assert composition is None
  assert len(evaluate._animate(_FakeRenderer(True), driving[0], driving, {})) == 2
