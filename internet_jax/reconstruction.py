"""Evaluation during training: self- and cross-identity reconstruction of the test split, every
score beside its trivial baselines, and the sample animation. Any method, through its renderer
(`inference.Renderer`); the scores are those of `python -m internet_jax.evaluate`."""

from __future__ import annotations

import math
import os

from absl import logging
import numpy as np

from input_pipeline import video_io
from internet_jax import inference, visualize


def _eval_ground_truth(ground_truth_dir, name: str, num_frames: int) -> dict | None:
  """The synthetic ground truth of test video `name` (`<ground_truth_dir>/<name>.npz`: part_labels,
  source_coords, source_visible), or None (no directory, no file, or another frame count)."""
  if ground_truth_dir is None:
    return None
  from internet_jax.metrics import synthetic_gt  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.fspath(ground_truth_dir), f"{name}.npz")
  if not os.path.isfile(path):
    logging.warning("evaluation: no ground truth %s; no figure-region scores or motion EPE for "
                    "this video", path)
    return None
  truth = synthetic_gt.load_ground_truth(path, keys=synthetic_gt.EPE_KEYS)
  if len(truth["source_coords"]) != num_frames:
    logging.warning("evaluation: %s has %d frames, the test video %d; not used", path,
                    len(truth["source_coords"]), num_frames)
    return None
  return truth


def _score_animation(tally: dict, renderer, source_frame: np.ndarray, driving: np.ndarray,
                     target: np.ndarray, truth: dict | None, indices: np.ndarray,
                     options: dict) -> None:
  """Animates `source_frame` by `driving` (with the renderer's `options`) and adds the per-frame
  scores against `target` (uint8 frames `indices` of the test video), the mean confidence and the
  motion EPEs (for renderers whose outputs hold them) to `tally`."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from internet_jax.metrics import synthetic_gt  # pylint: disable=g-import-not-at-top
  figure = (None if truth is None else
            synthetic_gt.figure_mask(truth["part_labels"], target.shape[1:3], indices))
  motions = []
  for start, (valid, outputs) in zip(range(0, len(driving), renderer.batch_size),
                                     renderer.render_chunks(source_frame, driving, **options)):
    chunk = evaluate_lib.frame_scores(
        np.asarray(outputs["prediction"][:valid], np.float32),
        target[start:start + valid].astype(np.float32) / 255.0,
        source_frame.astype(np.float32) / 255.0, with_ssim=False, data_range=1.0,
        figure=None if figure is None else figure[start:start + valid])
    for key, value in chunk.items():
      tally["per_frame"].setdefault(key, []).append(value)
    if "confidence" in outputs:
      tally["confidence"].append(np.asarray(outputs["confidence"][:valid]).mean(axis=(1, 2, 3)))
    if truth is not None and "motion_full" in outputs:
      motions.append(np.asarray(outputs["motion_full"][:valid], np.float32))
  if motions:
    tally["motion"].append(synthetic_gt.motion_scores(np.concatenate(motions), truth,
                                                      frames=indices))


def _motion_scalars() -> dict[str, str]:
  """{eval scalar: `synthetic_gt.motion_scores` key}: the figure EPE and its body regions, each
  beside zero motion."""
  from internet_jax.metrics import BODY_REGIONS  # pylint: disable=g-import-not-at-top
  names = {"motion_epe": "epe_figure"}
  names.update({f"motion_epe_{region}": f"epe_{region}" for region, _ in BODY_REGIONS})
  return {key: value for name, motion_key in names.items()
          for key, value in ((name, motion_key),
                             (f"{name}_zero_motion", f"{motion_key}_zero_motion"))}


def _tally_scores(tally: dict, prefix: str) -> dict[str, float]:
  """The means of a `_score_animation` tally as `<prefix><key>` scalars."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  scores = {f"{prefix}{key}": value for key, value in
            evaluate_lib.mean_frame_scores(tally["per_frame"], None).items() if value is not None}
  for key, motion_key in _motion_scalars().items():
    # NaN: no visible pixel of the region at all; a key is absent without part names.
    values = [m[motion_key] for m in tally["motion"] if not math.isnan(m.get(motion_key, math.nan))]
    if values:
      scores[f"{prefix}{key}"] = float(np.mean(values))
  if tally["confidence"]:
    scores[f"{prefix}mean_confidence"] = float(np.concatenate(tally["confidence"]).mean())
  return scores


def evaluate_reconstruction(renderer: inference.Renderer, source, *, num_videos: int,
                            frames_per_video: int, ground_truth_dir=None,
                            manual_dir=None) -> dict[str, float]:
  """Self-reconstruction (paper Sec. 4.1): source = frame 0, drive with evenly spaced frames.

  Every model score comes with its trivial baseline on the same frames, computed by the functions
  `python -m internet_jax.evaluate` uses (`evaluate.frame_scores` / `mean_frame_scores`,
  `synthetic_gt.motion_scores`; definitions in `evaluate.DEFINITIONS`), on the float output:
    eval/l1, eval/l1_copy_source: L1 on [0, 1] of the model and of copy-source (output = frame 0);
    eval/psnr, eval/psnr_copy_source, eval/psnr_copy_frames: PSNR (dB); the copy-source mean
      leaves out the frames it reproduces exactly (frame 0), psnr_copy_frames is the model's
      PSNR on those same frames;
  with ground truth (`<ground_truth_dir>/<name>.npz`, the synthetic data's):
    eval/l1_figure, eval/l1_figure_copy_source, eval/psnr_figure, eval/psnr_figure_copy_source,
      eval/psnr_figure_copy_frames: the same on the figure region (pixels labelled as figure in
      the target or the source frame);
    eval/motion_epe, eval/motion_epe_zero_motion: EPE (px at the model resolution) of
      `motion_full` and of the identity field against the exact frame t -> frame 0
      correspondence, on the source-visible figure pixels (`epe_figure`), mean over videos;
    eval/motion_epe_<region>, eval/motion_epe_<region>_zero_motion: the same on the pixels of
      one of `internet_jax.metrics.BODY_REGIONS` (arms, legs, trunk);
  and eval/mean_confidence. Means are over all frames used (the EPEs over videos).

  Cross-identity, for the videos with a partner in `<manual_dir>/test_cross/` (the synthetic
  data's: the same motion with another appearance, `evaluate.cross_identity_frames`): the same
  frame 0 driven by the partner's frames, scored against the video's own frames (same motion,
  same ground truth, copy-source = frame 0), as eval/cross/<the keys above>.
  """
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  tallies = {name: {"per_frame": {}, "confidence": [], "motion": []} for name in ("self", "cross")}
  for video in range(min(num_videos, len(source))):
    count = source.num_frames(video)
    name = source.video_name(video)
    indices = np.linspace(0, count - 1, min(count, frames_per_video)).round().astype(int)
    target = np.stack([source.read_frame(video, int(t)) for t in indices])
    source_frame = source.read_frame(video, 0)
    truth = _eval_ground_truth(ground_truth_dir, name, count)
    _score_animation(tallies["self"], renderer, source_frame, target, target, truth, indices,
                     inference.video_annotation_options(renderer, source, video, 0, indices))
    partner = (None if manual_dir is None else
               evaluate_lib.cross_identity_frames(manual_dir, name, target.shape[1]))
    if partner is None:
      continue
    path, partner_frames = partner
    if len(partner_frames) != count:
      logging.warning("evaluation: %s has %d frames, its test video %d; not used", path,
                      len(partner_frames), count)
      continue
    _score_animation(tallies["cross"], renderer, source_frame, partner_frames[indices], target,
                     truth, indices, inference.video_annotation_options(
                         renderer, source, video, 0, indices, driving_file=path))
  scores = _tally_scores(tallies["self"], "eval/")
  if tallies["cross"]["per_frame"]:
    scores.update(_tally_scores(tallies["cross"], "eval/cross/"))
  return scores


# (title, model key, baseline key, baseline name, format, lower is better) of the log line.
_EVAL_LOG_PAIRS = (
    ("L1", "l1", "l1_copy_source", "copy-source", "{:.4f}", True),
    ("PSNR", "psnr_copy_frames", "psnr_copy_source", "copy-source", "{:.2f} dB", False),
    ("figure L1", "l1_figure", "l1_figure_copy_source", "copy-source", "{:.4f}", True),
    ("figure PSNR", "psnr_figure_copy_frames", "psnr_figure_copy_source", "copy-source",
     "{:.2f} dB", False),
    ("motion EPE", "motion_epe", "motion_epe_zero_motion", "zero motion", "{:.3f} px", True),
)


def format_eval_scores(scores: dict[str, float], prefix: str = "eval/") -> str:
  """`evaluate_reconstruction`'s `<prefix>` scores as one line, model (baseline), "WORSE" where
  the model does not beat its baseline. PSNR: both over the frames the copy does not reproduce."""
  parts = []
  for title, model, baseline, name, fmt, lower in _EVAL_LOG_PAIRS:
    model, baseline = prefix + model, prefix + baseline
    if model in scores and baseline in scores:
      a, b = scores[model], scores[baseline]
      worse = a >= b if lower else a <= b
      parts.append(f"{title} {fmt.format(a)} ({name} {fmt.format(b)}){' WORSE' if worse else ''}")
  if prefix + "mean_confidence" in scores:
    parts.append(f"mean confidence {scores[prefix + 'mean_confidence']:.3f}")
  return "; ".join(parts)


def write_sample_animation(path: str, renderer: inference.Renderer, source, *, max_frames: int,
                           fps: float = 30.0, manual_dir=None) -> None:
  """A side-by-side video of the first test video, and its contact sheet (`<path stem>.png`:
  the panels as rows, six frames as columns). Cross-identity when it has a partner in
  `<manual_dir>/test_cross/` (`evaluate.cross_identity_frames`): source | driving (the partner,
  another appearance) | output | target (the video's own frame); else self-imitation: source |
  driving | output."""
  from internet_jax import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  count = min(source.num_frames(0), max_frames)
  frames = np.stack([source.read_frame(0, t) for t in range(count)])
  partner = (None if manual_dir is None else
             evaluate_lib.cross_identity_frames(manual_dir, source.video_name(0), frames.shape[1]))
  if partner is not None and len(partner[1]) >= count:
    driving = partner[1][:count]
    output = renderer.animate(frames[0], driving, **inference.video_annotation_options(
        renderer, source, 0, 0, range(count), driving_file=partner[0]))
    panels = [np.broadcast_to(frames[0], frames.shape), driving, output, frames]
  else:
    output = renderer.animate(frames[0], frames, **inference.video_annotation_options(
        renderer, source, 0, 0, range(count)))
    panels = [np.broadcast_to(frames[0], frames.shape), frames, output]
  video_io.write_video(path, np.concatenate(panels, axis=2), fps=fps)
  visualize.save_png(os.path.splitext(path)[0] + ".png", visualize.animation_contact_sheet(panels))
