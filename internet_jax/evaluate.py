"""The paper's metrics on the test split, or on any folders of generated vs reference videos.

  python -m internet_jax.evaluate --workdir=DIR [--config=FILE] [--max_videos=N] [--output_dir=DIR]
  python -m internet_jax.evaluate --generated=DIR --reference=DIR [--ground_truth=DIR]
      [--resolution=R] [--output_dir=DIR]
  common: [--lpips_weights=F] [--inception_weights=F] [--i3d_weights=F] [--slomo_weights=F]
      [--flow_preset=medium] [--verbose]

(a) `--workdir`: the self-imitation test of the INTERnet paper ("Intrinsic Temporal
Regularization for High-resolution Human Video Synthesis"), Sec. 4.1. The model saved in the
newest checkpoint of the workdir (its EMA when the run kept one, as training's own evaluation
does) animates the first frame of every test video with every frame of that video (frame 0
included: "the first frame is selected as source image to reconstruct the entire video clip").
The test split comes from the checkpoint's config (training saves its data paths absolute);
`--config` replaces its `data` section (another copy of the dataset; the resolution must stay the
checkpoint's). Evaluation never renders or prepares data: when the data the config names is
missing it stops with one line naming the folder and the `python -m input_pipeline.prepare ...`
command that recreates it. Where a test video has a cross-identity partner (the synthetic data's
`<data.manual_dir>/test_cross/<name>`: the same motion with another appearance,
`input_pipeline.synthetic`), cross-identity imitation is scored too, as a second block
("cross_identity" in metrics.json, a section of metrics.md): source = frame 0 of test/<name>,
driving = the partner's frames (fitted to the resolution as the test split is), target =
test/<name>'s frames, motion EPE against test/<name>.npz. Output: `<workdir>/eval/`.
(b) `--generated --reference`: two folders of videos with matching names (anything
`input_pipeline.video_io` reads: mp4/mov/avi/gif/webm/mkv files or folders of PNG/JPEG frames),
so that any method's outputs are scored by the same code. Frames must have one size on both sides
unless `--resolution` resizes both (`video_io.resize_and_pad`). Output: `<generated>_metrics/`.

Written: `metrics.json` (every metric per video, the means and what was not computed and why) and
`metrics.md` (a table laid out like the INTERnet paper's Table 2, then the synthetic-ground-truth metrics,
the model beside its trivial baselines, the anchors and confidence map beside chance, the reasons
for anything not computed, and per-video tables).

Metrics (definitions in `internet_jax.metrics.image`, `.temporal`, `.synthetic_gt`):
* per frame, averaged over a video's frames, then over videos: SSIM, MS-SSIM, PSNR (dB; +inf for
  identical frames, written "inf" in JSON), L1 on [0, 1], LPIPS (needs weights);
* over the whole set of frames: FID (generated vs reference frames, Inception weights);
* temporal, per video: Interp-PSNR with the paper's learned interpolator (`interp_psnr`, Super
  SloMo weights), `interp_psnr_flow` (the same protocol with a weight-free flow interpolator, always
  computed), E_temp (D2G-Net Eq. 10, flows on the reference video), Act-Recog-L1 (I3D weights);
  over the set of videos: FVD (I3D weights);
* mode (a), when the test frames and the training split have "joints" annotations: D2G-Net's
  Robust-PSNR / Robust-SSIM ("Robust Pose Transfer with Dynamic Details using Neural Video
  Rendering", Sec. 4.1, Table 1), PSNR and SSIM over the Options.robust_frames (10) frames of all
  test videos whose pose is farthest from every training pose (`psnr_robust`, `ssim_robust`,
  `robust_frames` naming them; `internet_jax.metrics.poses`);
* with synthetic ground truth (`<name>.npz` beside the reference videos, or in --ground_truth;
  in mode (a) in `<data.manual_dir>/test/`): `epe` (px at the model resolution, mode (a) only: it
  needs the predicted motion field) and `temporal_error_gt` (both modes);
* the INTERnet paper's Figs. 7-8 (Sec. 4.3-4.4) measured, with synthetic ground truth, in mode (a)
  for renderers whose outputs hold the driving anchors and the confidence map (INTERnet's):
  `anchors_on_figure` and `anchor_boundary_distance` (where the driving anchors lie: on the
  moving body, near its motion boundary), `confidence_auc` and `confidence_iou` (how well the
  confidence map marks the pixels the source shows), `_figure` variants over the figure pixels
  (`synthetic_gt.anchor_scores`, `confidence_scores`).
A metric that cannot be computed (missing weights, frames too small for MS-SSIM, too few frames,
no ground truth) is reported as "not computed: <why>", never left out.

Trivial baselines, on the same frames as the model (a score means little without them):
* copy-source: the output is the source, frame 0 of the reference video, for every frame
  (`<metric>_copy_source` for SSIM, MS-SSIM, PSNR, L1, LPIPS, the robust frames' PSNR and SSIM
  and the true temporal error);
* figure region (synthetic ground truth): L1, PSNR and SSIM on the pixels where the part labels of
  the target frame or of the source frame are non-zero (`<metric>_figure`, and its copy-source
  `<metric>_figure_copy_source`), since background dominates small frames;
* zero motion (synthetic ground truth, mode (a)): the identity field scored by the same EPE
  function on the same pixels (`epe_zero_motion`; `epe_figure`, `epe_figure_zero_motion` on the
  visible figure pixels only, `epe` also counting the static background);
* chance, for the anchors and the confidence map: a uniformly placed anchor
  (`anchors_on_figure_chance` = the figure's share of the frame, `anchor_boundary_distance_chance`),
  AUC 0.5, and the IoU of a confidence map that is 1 everywhere (`confidence_iou_all_visible`).
`frame_scores` / `mean_frame_scores` and `synthetic_gt.motion_scores` compute them here and in
training's evaluation (`reconstruction.evaluate_reconstruction`). metrics.md shows them side by side.

Bad input (unreadable or empty video, frame counts or sizes that differ, names that do not match,
a missing or incompatible checkpoint, a missing --ground_truth folder or a damaged `<name>.npz`,
a size or count flag below 1) stops with one line naming the file or flag, a non-zero exit and no
output files (both files are written to temporary names beside their targets and renamed at the
very end; SIGTERM/SIGINT end the run with one line `interrupted: ...` and exit 128 + the signal,
and the temporaries of a run killed with SIGKILL are removed by the next run for the same folder,
`internet_jax.temporaries`). An --output_dir that is an input (a videos or ground-truth folder, the checkpoints,
the test split) or lies inside one, or whose report files would replace an input file (weights), is
refused before any work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from etils import epy

from internet_jax import temporaries
from internet_jax.metrics import BODY_REGIONS, MetricUnavailable

with epy.lazy_imports():  # imported on first use: `--help` returns at once
  import numpy as np
  import tqdm

  from input_pipeline import flow as flow_lib
  from internet_jax.metrics import image as image_metrics
  from internet_jax.metrics import poses as pose_metrics
  from internet_jax.metrics import synthetic_gt
  from internet_jax.metrics import temporal as temporal_metrics

NOT_COMPUTED = "not computed"
# (module under internet_jax.metrics, flag naming its weights)
NETWORK_MODULES = (("lpips", "lpips_weights"), ("fid", "inception_weights"), ("i3d", "i3d_weights"),
                   ("slomo", "slomo_weights"))

# (key, column title, better) in the order of the INTERnet paper's Table 2, then the extra columns.
PER_FRAME_COLUMNS = (("ms_ssim", "MS-SSIM", "↑"), ("fid", "FID", "↓"), ("lpips", "LPIPS", "↓"),
                     ("ssim", "SSIM", "↑"), ("psnr", "PSNR", "↑"), ("l1", "L1", "↓"))
TEMPORAL_COLUMNS = (("interp_psnr", "Interp-PSNR", "↑"), ("act_recog_l1", "Act-Recog-L1", "↓"),
                    ("interp_psnr_flow", "Interp-PSNR (flow)", "↑"), ("e_temp", "E_temp", "↓"),
                    ("fvd", "FVD", "↓"))
GROUND_TRUTH_COLUMNS = (("epe", "EPE (px)", "↓"), ("temporal_error_gt", "True temporal error", "↓"))
# Metrics of the whole set, not of single videos.
DATASET_KEYS = ("fid", "fvd")
# Model vs trivial baselines (metrics.md's side-by-side table): (title, region, model key,
# copy-source key, zero-motion key); None where a baseline does not apply.
BASELINE_ROWS = (
    ("L1 ↓", "whole frame", "l1", "l1_copy_source", None),
    ("PSNR ↑", "whole frame", "psnr_copy_frames", "psnr_copy_source", None),
    ("SSIM ↑", "whole frame", "ssim", "ssim_copy_source", None),
    ("MS-SSIM ↑", "whole frame", "ms_ssim", "ms_ssim_copy_source", None),
    ("LPIPS ↓", "whole frame", "lpips", "lpips_copy_source", None),
    ("L1 ↓", "figure", "l1_figure", "l1_figure_copy_source", None),
    ("PSNR ↑", "figure", "psnr_figure_copy_frames", "psnr_figure_copy_source", None),
    ("SSIM ↑", "figure", "ssim_figure", "ssim_figure_copy_source", None),
    ("True temporal error ↓", "exact-flow pixels", "temporal_error_gt",
     "temporal_error_gt_copy_source", None),
    ("EPE (px) ↓", "source-visible pixels, background included", "epe", None, "epe_zero_motion"),
    ("EPE (px) ↓", "source-visible figure pixels", "epe_figure", None, "epe_figure_zero_motion"),
) + tuple(("EPE (px) ↓", f"source-visible {region} pixels", f"epe_{region}", None,
           f"epe_{region}_zero_motion") for region, _ in BODY_REGIONS)
# Per-frame scores `frame_scores` gives (the figure ones with a figure mask) and the PSNR pairs
# whose copy-source mean leaves out the frames the copy reproduces exactly (+inf): (model key,
# copy-source key, the model's mean over the copy-source's frames).
FRAME_SCORE_KEYS = ("l1", "psnr", "ssim")
FIGURE_SCORE_KEYS = ("l1_figure", "psnr_figure", "ssim_figure")
COPY_FRAME_PAIRS = (("psnr", "psnr_copy_source", "psnr_copy_frames"),
                    ("psnr_figure", "psnr_figure_copy_source", "psnr_figure_copy_frames"))
REGION_MOTION_KEYS = tuple(key for region, _ in BODY_REGIONS
                           for key in (f"epe_{region}", f"epe_{region}_zero_motion"))
MOTION_KEYS = ("epe", "epe_zero_motion", "epe_figure", "epe_figure_zero_motion") + REGION_MOTION_KEYS
# The INTERnet paper's Figs. 7-8 (Sec. 4.3-4.4) measured (`synthetic_gt.anchor_scores`,
# `confidence_scores`): mode (a), renderers whose outputs hold the driving anchors and the
# confidence map; each model score with its chance reference (`_chance`, `_all_visible`).
ANCHOR_KEYS = ("anchors_on_figure", "anchors_on_figure_chance", "anchor_boundary_distance",
               "anchor_boundary_distance_chance")
CONFIDENCE_KEYS = ("confidence_auc", "confidence_iou", "confidence_iou_all_visible",
                   "confidence_auc_figure", "confidence_iou_figure",
                   "confidence_iou_figure_all_visible")
# How many of the anchor motions the dense-motion network composes at all (`anchor_motions_used`):
# a soft composition (INTERnet paper Eq. 5) can leave channels whose weight never wins a pixel.
# Needs no ground truth, only the renderer's composition weights.
COMPOSITION_KEYS = ("anchor_motions_used",)
# Why one of them is undefined (NaN) on a video: reported as not computed.
UNDEFINED_REASONS = {
    "anchors_on_figure": "no anchors",
    "anchors_on_figure_chance": "no pixels",
    "anchor_boundary_distance": "no motion boundary in any frame (the figure never moves "
                                "relative to the source)",
    "anchor_boundary_distance_chance": "no motion boundary in any frame",
    "confidence_auc": "every pixel is visible from the source, or none (AUC needs both)",
    "confidence_iou": "no pixel is visible from the source and none has M > 0.5",
    "confidence_iou_all_visible": "no pixels",
    "confidence_auc_figure": "every figure pixel is visible from the source, or none (AUC needs "
                             "both)",
    "confidence_iou_figure": "no figure pixel is visible from the source and none has M > 0.5",
    "confidence_iou_figure_all_visible": "no figure pixels",
}
# (Scorer.add argument: the path to it in a renderer's outputs) that mode (a) collects.
RENDERER_OUTPUTS = {"motion_full": ("motion_full",), "anchors": ("driving_anchors", "value"),
                    "confidence": ("confidence_full",), "composition": ("composition",)}
# metrics.md's anchors and confidence table: (title, region, model key, reference key or value).
INTRINSIC_ROWS = (
    ("Anchors on figure ↑", "all anchors of all frames", "anchors_on_figure",
     "anchors_on_figure_chance"),
    ("Anchor to motion boundary (px) ↓", "anchors of the frames with a motion boundary",
     "anchor_boundary_distance", "anchor_boundary_distance_chance"),
    ("Confidence AUC ↑", "all pixels", "confidence_auc", 0.5),
    ("Confidence IoU ↑", "all pixels", "confidence_iou", "confidence_iou_all_visible"),
    ("Confidence AUC ↑", "figure pixels", "confidence_auc_figure", 0.5),
    ("Confidence IoU ↑", "figure pixels", "confidence_iou_figure",
     "confidence_iou_figure_all_visible"),
    ("Anchor motions used ↑", "any pixel of any frame", "anchor_motions_used", 1.0),
)
# Every per-video key beside the Table 2 columns: the baselines table's, then the anchors and
# confidence table's.
BASELINE_KEYS = ("l1_copy_source", "psnr_copy_source", "psnr_copy_frames", "ssim_copy_source",
                 "ms_ssim_copy_source", "lpips_copy_source", "l1_figure", "l1_figure_copy_source",
                 "psnr_figure", "psnr_figure_copy_source", "psnr_figure_copy_frames",
                 "ssim_figure", "ssim_figure_copy_source", "temporal_error_gt_copy_source",
                 "epe_zero_motion", "epe_figure", "epe_figure_zero_motion") + REGION_MOTION_KEYS + (
                     ANCHOR_KEYS + CONFIDENCE_KEYS + COMPOSITION_KEYS)
# D2G-Net's Robust-PSNR / Robust-SSIM ("Robust Pose Transfer with Dynamic Details using Neural
# Video Rendering", Sec. 4.1, Table 1): the per-frame scores kept for them, and the keys of the
# means (`Scorer.robust_scores`), model and copy-source on the frames whose pose is farthest from
# the training poses.
ROBUST_FRAME_KEYS = ("psnr", "ssim", "psnr_copy_source", "ssim_copy_source")
ROBUST_KEYS = ("psnr_robust", "ssim_robust", "psnr_robust_copy_source", "ssim_robust_copy_source",
               "psnr_robust_copy_frames", "robust_frames")
# metrics.md's Robust frames table: (title, frames, model key, copy-source key or None).
ROBUST_ROWS = (("Robust-PSNR ↑", "all robust frames", "psnr_robust", None),
               ("Robust-PSNR ↑", "those the copy does not reproduce exactly",
                "psnr_robust_copy_frames", "psnr_robust_copy_source"),
               ("Robust-SSIM ↑", "all robust frames", "ssim_robust", "ssim_robust_copy_source"))
# Per-video metrics: the table's, plus diagnostics and baselines reported beside them.
VIDEO_KEYS = tuple(key for key, _, _ in PER_FRAME_COLUMNS + TEMPORAL_COLUMNS + GROUND_TRUTH_COLUMNS
                   if key not in DATASET_KEYS) + ("interp_psnr_self", "interp_psnr_flow_self",
                                                  "e_temp_valid") + BASELINE_KEYS

CROSS_IDENTITY_TEXT = (
    "Source: frame 0 of test/<name> (appearance A); driving: the frames of test_cross/<name>, the "
    "same motion with another appearance B; target: the frames of test/<name>. Copy-source = "
    "frame 0 of A; motion EPE against test/<name>.npz (the motion is the same).")


DEFINITIONS = {
    "ssim": "Wang et al. 2004, Gaussian 11x11 window sigma 1.5, K1 0.01, K2 0.03, L 255 "
            "(= skimage structural_similarity), mean over frames",
    "ms_ssim": "Wang et al. 2003, 5 scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), "
               "2x2 average pooling, frames >= 176 px",
    "psnr": "10 log10(255^2 / MSE) per frame (= skimage peak_signal_noise_ratio), mean over frames",
    "l1": "mean |generated - reference| on [0, 1] (FOMM reconstruction L1)",
    "lpips": "LPIPS distance per frame, mean over frames",
    "fid": "Frechet Inception distance between all generated and all reference frames",
    "fvd": "Frechet video distance between the I3D logits of the generated and reference videos",
    "act_recog_l1": "L1 distance of the I3D pool features of the generated and reference video",
    "e_temp": "D2G-Net Eq. 10: sum_t sum_p c ||O_t - warp(O_{t-1}, DIS(I_t, I_{t-1}))||_2 on [0, 1] "
              "/ ((T-1) H W), c = D2G-Net's forward-backward rule |b + f(p + b)|^2 < 1 px^2",
    "e_temp_valid": "the E_temp sum divided by the number of confident pixels instead of (T-1) H W",
    "interp_psnr": "INTERnet paper Sec. 4.1: PSNR(I_t, SuperSloMo(O_{t-1}, O_{t+1}, t = 1/2)), mean over "
                   "t = 1..T-2 (pretrained Super SloMo, avinashpaliwal/Super-SloMo port)",
    "interp_psnr_self": "the same interpolation scored against the generated O_t",
    "interp_psnr_flow": "PSNR(I_t, flow-interpolated O_{t-1}, O_{t+1}) (Super SloMo Eq. 4 flow "
                        "approximation, DIS, no learned parts), mean over t = 1..T-2; NOT the "
                        "paper's learned-interpolator Interp-PSNR",
    "interp_psnr_flow_self": "the same interpolation scored against the generated O_t",
    "epe": "end-point error (px at the model resolution) of the predicted motion field vs the exact "
           "frame t -> frame 0 correspondence, mean over all frames' source-visible pixels: the "
           "figure where visible in frame 0 AND the static background (source_visible is True "
           "there, correspondence = the pixel itself), so background dominates small frames",
    "temporal_error_gt": "||O_t(p + f_gt(p)) - O_{t-1}(p)||_2 on [0, 1], mean over pixels valid "
                         "for the exact flow (not occluded, not anti-aliased)",
    "<metric>_copy_source": "the metric of the copy-source baseline: output = the source (frame 0 "
                            "of the reference video) for every frame, scored on the same frames "
                            "and pixels as the model",
    "psnr_copy_source": "mean over the frames the copy does not reproduce exactly (PSNR +inf: "
                        "frame 0, the source itself, in self-imitation); +inf if it reproduces "
                        "all",
    "psnr_copy_frames": "the model's PSNR averaged over the same frames as psnr_copy_source (the "
                        "model column of metrics.md's baseline table); psnr keeps every frame",
    "figure region": "pixels where the ground-truth part label of the target frame OR of the "
                     "source frame is non-zero (synthetic ground truth only; at another "
                     "resolution a pixel whose area overlaps a figure pixel)",
    "l1_figure": "mean |generated - reference| on [0, 1] over the figure region's pixels and "
                 "channels, per frame, mean over frames",
    "psnr_figure": "10 log10(255^2 / MSE over the figure region) per frame, mean over frames "
                   "(psnr_figure_copy_frames: over psnr_figure_copy_source's frames)",
    "ssim_figure": "the SSIM map of `ssim` (11x11 window) averaged over the valid window "
                   "positions centred in the figure region (windows reach 5 px beyond it)",
    "epe_zero_motion": "epe of zero motion (the identity field: every pixel taken from its own "
                       "position in the source), same function, same pixels as epe",
    "epe_figure": "epe over the source-visible figure pixels only (part label of frame t "
                  "non-zero), background left out",
    "epe_figure_zero_motion": "epe_figure of zero motion (identity field), same pixels",
    "epe_<region>": "epe_figure over the source-visible pixels of one body region's parts only "
                    "(internet_jax.metrics.BODY_REGIONS: arms, legs, trunk; <region>_zero_motion beside "
                    "it): whether thin, fast limbs are followed",
    "psnr_robust": "Robust-PSNR of \"Robust Pose Transfer with Dynamic Details using Neural Video "
                   "Rendering\" (Sec. 4.1, Table 1): psnr's per-frame PSNR averaged over the "
                   "robust_frames only",
    "ssim_robust": "Robust-SSIM of the same paper (Table 1): ssim's per-frame SSIM averaged over "
                   "the robust_frames only",
    "psnr_robust_copy_source": "the copy-source PSNR over the robust_frames, leaving out those the "
                               "copy reproduces exactly (+inf), as psnr_copy_source does",
    "ssim_robust_copy_source": "the copy-source SSIM averaged over the robust_frames",
    "psnr_robust_copy_frames": "the model's PSNR over the same frames as psnr_robust_copy_source "
                               "(the model column of metrics.md's Robust frames table)",
    "robust_frames": "the scored test frames (\"video:frame\", up to Options.robust_frames = 10, "
                     "the paper's M) whose pose is farthest from every training pose: nearest-"
                     "neighbour Euclidean distance of the flattened 2D keypoints in pixels, over "
                     "the joints valid in both (internet_jax.metrics.poses); chosen among all "
                     "frames of all scored videos, in each block among that block's frames",
    "cross_identity": CROSS_IDENTITY_TEXT + " Mode (a) only, for the test videos with a partner.",
    "anchors_on_figure": "INTERnet paper Fig. 7 / Sec. 4.3 (anchors on the moving body, not on "
                         "the still background): the fraction of the driving anchors of all "
                         "frames whose nearest ground-truth pixel (the anchor brought to the "
                         "ground truth's resolution by the half-pixel rule) has a non-zero part "
                         "label in that frame; an anchor outside the frame is not on the figure",
    "anchors_on_figure_chance": "the same for a uniformly placed anchor: the figure's share of "
                                "the frame's pixels, mean over frames",
    "anchor_boundary_distance": "Fig. 7 / Sec. 4.3 (\"all anchors ... are close to the motion "
                                "boundary\"): mean distance (px at the model resolution) from "
                                "each anchor to the nearest motion-boundary pixel of its frame, "
                                "over the frames that have one; a pixel is on the motion "
                                "boundary where a 4-neighbour has another part label (figure/"
                                "background or part/part) and the two sides' motions to the "
                                "source differ by more than 1 px (at the ground truth's "
                                "resolution) where they meet (synthetic_gt.motion_boundary)",
    "anchor_boundary_distance_chance": "the same for a uniformly placed anchor: the mean "
                                       "distance of every pixel of those frames",
    "confidence_auc": "Fig. 8 / Sec. 4.4: ROC AUC (Mann-Whitney U, ties counted half) of the "
                      "confidence map M (confidence_full, resampled bilinearly to the ground "
                      "truth's resolution) as a predictor of each pixel being visible from the "
                      "source (source_visible), over all pixels of all frames; the background "
                      "counts (static, visible from the source where background owns the pixel "
                      "in both frames); 0.5 = chance",
    "confidence_iou": "IoU of {M > 0.5} with the pixels visible from the source, over all "
                      "pixels of all frames",
    "confidence_iou_all_visible": "the IoU of M = 1 everywhere (the reference for "
                                  "confidence_iou): the visible share of the pixels",
    "anchor_motions_used": "the fraction of the K anchor motions (INTERnet paper Eq. 5; channel 0, "
                           "the still background, left out) that have the largest composition "
                           "weight at one pixel of the base motion grid at least, in one frame "
                           "at least; 1 = every anchor motion is used somewhere",
    "confidence_<measure>_figure": "confidence_auc, confidence_iou and confidence_iou_all_visible "
                                   "over the figure pixels of each frame only (part label "
                                   "non-zero), where the invisible pixels are disoccluded body "
                                   "parts",
}


def not_computed(reason: str) -> str:
  return f"{NOT_COMPUTED}: {reason}"


def _one_line(error: BaseException | str) -> str:
  return " ".join(str(error).split()) or type(error).__name__


@dataclasses.dataclass
class Options:
  """What both modes share: network-metric weights and the optical-flow preset."""
  lpips_weights: str = ""
  inception_weights: str = ""
  i3d_weights: str = ""
  slomo_weights: str = ""
  flow_preset: str = "medium"
  chunk_size: int = 16  # frames per per-frame-metric call: bounds float64 temporaries
  robust_frames: int = 10  # M of D2G-Net's Robust-PSNR / Robust-SSIM (mode (a), with poses)


# ---------------------------------------------------------------------------------------------
# Network metrics (another module each; weights are the user's)


def load_network_metrics(options: Options) -> dict[str, Any]:
  """{name: (module, metric object)} or {name: "not computed: <why>"} per NETWORK_MODULES."""
  from internet_jax import weights  # pylint: disable=g-import-not-at-top
  loaded = {}
  for name, flag in NETWORK_MODULES:
    path = getattr(options, flag) or weights.find_default(name)
    if not path:
      loaded[name] = not_computed(f"no weights given (--{flag}) and none at "
                                  f"{weights.default_path(name)}")
      continue
    try:
      module = importlib.import_module(f"internet_jax.metrics.{name}")
    except ImportError as e:
      loaded[name] = not_computed(f"internet_jax.metrics.{name} is unavailable ({_one_line(e)})")
      continue
    try:
      loaded[name] = (module, module.create(path))
    except MetricUnavailable as e:
      loaded[name] = not_computed(_one_line(e))
  return loaded


# ---------------------------------------------------------------------------------------------
# Scoring


def _mean_of(values: list) -> Any:
  """Mean of the numbers among `values`; a "not computed" string if there is none."""
  numbers = [v for v in values if not isinstance(v, str)]
  if numbers:
    return float(np.mean(numbers))
  reasons = list(dict.fromkeys(v for v in values if isinstance(v, str)))
  return reasons[0] if len(reasons) == 1 else not_computed("; ".join(
      r.removeprefix(f"{NOT_COMPUTED}: ") for r in reasons))


def frame_scores(generated: np.ndarray, reference: np.ndarray, source: np.ndarray, *,
                 figure: np.ndarray | None = None, with_ssim: bool = True,
                 data_range: float = 255.0) -> dict[str, np.ndarray]:
  """Per-frame scores of the model and of the copy-source baseline against the reference.

  Args:
    generated, reference: (T, H, W, 3) frames on [0, data_range].
    source: (H, W, 3) the source frame; the copy-source output is this frame for every t.
    figure: (T, H, W) bool figure region (`synthetic_gt.figure_mask`), or None: no figure scores.
    with_ssim: also SSIM (and figure SSIM); frames must then be >= 11 px.
  Returns:
    {key: (T,) float64} for the keys of FRAME_SCORE_KEYS (and FIGURE_SCORE_KEYS with `figure`),
    each also with the suffix "_copy_source"; NaN for a frame with an empty figure region.
  """
  copy = np.broadcast_to(np.asarray(source), np.shape(reference))
  scores = {}
  for suffix, output in (("", generated), ("_copy_source", copy)):
    scores["l1" + suffix] = image_metrics.l1(output, reference, data_range)
    scores["psnr" + suffix] = image_metrics.psnr(output, reference, data_range)
    if with_ssim:
      scores["ssim" + suffix] = image_metrics.ssim(output, reference, data_range)
    if figure is not None:
      scores["l1_figure" + suffix] = image_metrics.masked_l1(output, reference, figure, data_range)
      scores["psnr_figure" + suffix] = image_metrics.masked_psnr(output, reference, figure,
                                                                 data_range)
      if with_ssim:
        scores["ssim_figure" + suffix] = image_metrics.masked_ssim(output, reference, figure,
                                                                   data_range)
  return scores


def mean_frame_scores(per_frame: dict[str, Any], empty_reason: str) -> dict[str, Any]:
  """Means over frames of `frame_scores`' values ({key: (T,) or a list of chunks}).

  NaN frames (no figure pixels) are left out, and `empty_reason` stands for a key with none left.
  Each COPY_FRAME_PAIRS copy-source PSNR also leaves out the frames the copy reproduces exactly
  (+inf: the source frame itself), and the model's PSNR over the same frames is added as the
  pair's third key, so that the two are compared on the same frames.
  """
  values = {key: np.concatenate([np.reshape(v, -1) for v in chunks])
            if isinstance(chunks, (list, tuple)) else np.reshape(chunks, -1)
            for key, chunks in per_frame.items()}

  def mean(array, keep):
    return float(np.mean(array[keep])) if keep.any() else empty_reason

  out = {key: mean(array, ~np.isnan(array)) for key, array in values.items()}
  for model_key, copy_key, same_key in COPY_FRAME_PAIRS:
    if model_key not in values or copy_key not in values:
      continue
    copy = values[copy_key]
    keep = np.isfinite(copy) & ~np.isnan(values[model_key])
    if not keep.any():  # the copy reproduces every frame (or no frame has a figure region)
      keep = ~np.isnan(copy) & ~np.isnan(values[model_key])
    out[copy_key] = mean(copy, keep)
    out[same_key] = mean(values[model_key], keep)
  return out


def _defined(scores: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
  """`scores`' values of `keys`, a NaN (undefined on this video) replaced by its
  UNDEFINED_REASONS reason."""
  return {key: not_computed(UNDEFINED_REASONS[key])
          if isinstance(scores[key], float) and math.isnan(scores[key]) else scores[key]
          for key in keys}


def _intrinsic_scores(anchors: np.ndarray | None, confidence: np.ndarray | None, truth: dict,
                      shape: tuple[int, int]) -> dict[str, Any]:
  """ANCHOR_KEYS and CONFIDENCE_KEYS of one video (the INTERnet paper's Figs. 7-8), or why not:
  anchors (T, K, 2) normalised and confidence (T, R, R, 1) are the renderer's, None where it gives
  none; truth: the video's ground truth; shape: the model resolution (R, R)."""
  scores: dict[str, Any] = {}
  if anchors is None:
    scores.update(dict.fromkeys(ANCHOR_KEYS, not_computed(
        "needs the predicted anchors (driving_anchors of an INTERnet renderer, --workdir mode "
        "only)")))
  else:
    scores.update(_defined(synthetic_gt.anchor_scores(anchors, truth["part_labels"],
                                                      truth["source_coords"], shape), ANCHOR_KEYS))
  if confidence is None:
    scores.update(dict.fromkeys(CONFIDENCE_KEYS, not_computed(
        "needs the predicted confidence map (confidence_full of an INTERnet renderer, --workdir "
        "mode only)")))
  else:
    scores.update(_defined(synthetic_gt.confidence_scores(confidence, truth["source_visible"],
                                                          truth["part_labels"]), CONFIDENCE_KEYS))
  return scores


def anchor_motions_used(composition: np.ndarray) -> float:
  """The fraction of the K anchor motions that win a pixel: composition (T, h, w, K + 1) holds the
  softmax weights of the still background (channel 0) and of the K anchor motions; motion k is
  used when it has the largest weight at one pixel of one frame at least (the ties of an
  all-equal pixel go to the first channel, as np.argmax breaks them)."""
  composition = np.asarray(composition)
  if composition.ndim != 4 or composition.shape[-1] < 2:
    raise ValueError("anchor_motions_used: expected composition weights (T, h, w, K + 1) with "
                     f"K >= 1, got {composition.shape}")
  winners = np.unique(np.argmax(composition, axis=-1))
  return float(np.count_nonzero(winners > 0) / (composition.shape[-1] - 1))


class Scorer:
  """Scores videos one at a time and keeps what the set-level metrics (FID, FVD) need."""

  def __init__(self, options: Options):
    self.options = options
    self.networks = load_network_metrics(options)
    self.videos: dict[str, dict[str, Any]] = {}
    # {name: {key: (T,) float64}} per ROBUST_FRAME_KEYS: what the robust-frame means need.
    self.frame_values: dict[str, dict[str, np.ndarray]] = {}
    self._fid_features = ([], [])  # (generated, reference) (N, 2048) chunks
    self._i3d_features = ([], [])  # (generated, reference) one vector per video

  def _network(self, name: str):
    value = self.networks[name]
    return (None, value) if isinstance(value, str) else (value, None)

  def _per_frame(self, generated: np.ndarray, reference: np.ndarray, figure: np.ndarray | None,
                 no_figure_reason: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The means over frames of the per-frame metrics of the model and of copy-source (frame 0 of
    the reference), and their figure-region versions when there is a figure mask; and the
    per-frame values of ROBUST_FRAME_KEYS."""
    lpips, lpips_reason = self._network("lpips")
    fid, _ = self._network("fid")
    source = reference[0]
    values: dict[str, list] = {}
    ms_ssim_reason = None
    if min(generated.shape[1:3]) < image_metrics.MS_SSIM_MIN_SIZE:
      ms_ssim_reason = not_computed(
          f"frames {generated.shape[2]}x{generated.shape[1]} are smaller than the "
          f"{image_metrics.MS_SSIM_MIN_SIZE}x{image_metrics.MS_SSIM_MIN_SIZE} MS-SSIM needs")
    for start in range(0, len(generated), self.options.chunk_size):
      fake = generated[start:start + self.options.chunk_size]
      real = reference[start:start + self.options.chunk_size]
      copy = np.broadcast_to(source, real.shape)
      chunk = frame_scores(fake, real, source, figure=None if figure is None else
                           figure[start:start + self.options.chunk_size])
      if ms_ssim_reason is None:
        chunk["ms_ssim"] = image_metrics.ms_ssim(fake, real)
        chunk["ms_ssim_copy_source"] = image_metrics.ms_ssim(copy, real)
      if lpips is not None:
        chunk["lpips"] = np.asarray(lpips[1](fake, real), np.float64).reshape(-1)
        chunk["lpips_copy_source"] = np.asarray(lpips[1](np.ascontiguousarray(copy), real),
                                                np.float64).reshape(-1)
      if fid is not None:
        self._fid_features[0].append(np.asarray(fid[1].features(fake)))
        self._fid_features[1].append(np.asarray(fid[1].features(real)))
      for key, value in chunk.items():
        values.setdefault(key, []).append(value)
    scores = mean_frame_scores(values, not_computed("no figure pixels in any frame"))
    kept = {key: np.concatenate(values[key]).astype(np.float64) for key in ROBUST_FRAME_KEYS}
    for key in ("ms_ssim", "ms_ssim_copy_source"):
      scores.setdefault(key, ms_ssim_reason)
    for key in ("lpips", "lpips_copy_source"):
      scores.setdefault(key, lpips_reason)
    for key in FIGURE_SCORE_KEYS:
      for name in (key, f"{key}_copy_source"):
        scores.setdefault(name, no_figure_reason)
    for _, copy_key, same_key in COPY_FRAME_PAIRS[1:]:
      scores.setdefault(copy_key, no_figure_reason)
      scores.setdefault(same_key, no_figure_reason)
    return scores, kept

  def _temporal(self, generated: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    scores: dict[str, Any] = {}
    preset = self.options.flow_preset
    if len(generated) >= 2:
      warping = temporal_metrics.warping_error(generated, reference, preset)
      scores["e_temp"] = warping["e_temp"]
      scores["e_temp_valid"] = warping["e_temp_valid"]
    else:
      scores["e_temp"] = scores["e_temp_valid"] = not_computed("needs at least 2 frames")
    if len(generated) >= 3:
      interp = temporal_metrics.interp_psnr(generated, reference, preset)
      scores["interp_psnr_flow"] = interp["interp_psnr_flow"]
      scores["interp_psnr_flow_self"] = interp["interp_psnr_flow_self"]
    else:
      scores["interp_psnr_flow"] = scores["interp_psnr_flow_self"] = not_computed(
          "needs at least 3 frames")
    slomo, slomo_reason = self._network("slomo")
    if slomo_reason is not None or len(generated) < 3:
      scores["interp_psnr"] = scores["interp_psnr_self"] = slomo_reason or not_computed(
          "needs at least 3 frames")
    else:
      learned = slomo[1].interp_psnr(generated, reference)
      scores["interp_psnr"] = learned["interp_psnr"]
      scores["interp_psnr_self"] = learned["interp_psnr_self"]
    i3d, i3d_reason = self._network("i3d")
    if i3d is None:
      scores["act_recog_l1"] = i3d_reason
      return scores
    module, model = i3d
    try:
      # One pass each: Kinetics logits (FVD) and pool features (Act-Recog-L1), as i3d.py defines.
      fake_logits, fake_pool = model.embed(generated)
      real_logits, real_pool = model.embed(reference)
    except ValueError as e:  # e.g. fewer frames than I3D's temporal downsampling needs
      scores["act_recog_l1"] = not_computed(_one_line(e))
      return scores
    self._i3d_features[0].append(np.asarray(fake_logits))
    self._i3d_features[1].append(np.asarray(real_logits))
    scores["act_recog_l1"] = float(module.act_recog_l1(real_pool, fake_pool))
    return scores

  @staticmethod
  def _ground_truth(generated: np.ndarray, reference: np.ndarray, motion_full: np.ndarray | None,
                    truth: dict | None, no_truth_reason: str, anchors: np.ndarray | None = None,
                    confidence: np.ndarray | None = None) -> dict[str, Any]:
    temporal_keys = ("temporal_error_gt", "temporal_error_gt_copy_source")
    if truth is None:
      return dict.fromkeys(MOTION_KEYS + ANCHOR_KEYS + CONFIDENCE_KEYS + temporal_keys,
                           no_truth_reason)
    scores: dict[str, Any] = {}
    if motion_full is None:
      scores.update(dict.fromkeys(MOTION_KEYS, not_computed(
          "needs the predicted motion field (--workdir mode only)")))
    else:
      scores.update(dict.fromkeys(REGION_MOTION_KEYS, not_computed(
          "the ground truth has no part_names")))
      scores.update(synthetic_gt.motion_scores(motion_full, truth))
    scores.update(_intrinsic_scores(anchors, confidence, truth, generated.shape[1:3]))
    if len(generated) >= 2:
      copy = np.broadcast_to(reference[0], reference.shape)
      for key, output in zip(temporal_keys, (generated, copy)):
        scores[key] = synthetic_gt.true_temporal_error(
            output, truth["flow_forward"], truth["valid_forward"], truth["mixed"],
            truth["part_labels"])["temporal_error_gt"]
    else:
      scores.update(dict.fromkeys(temporal_keys, not_computed("needs at least 2 frames")))
    return scores

  def add(self, name: str, generated: np.ndarray, reference: np.ndarray, *,
          motion_full: np.ndarray | None = None, anchors: np.ndarray | None = None,
          confidence: np.ndarray | None = None, composition: np.ndarray | None = None,
          ground_truth: Path | None = None) -> dict:
    """Scores one video: uint8 (T, H, W, 3) generated and reference frames of one shape (the
    source is the reference's frame 0); in mode (a) the predicted motion field (T, H, W, 2), and
    where the renderer gives them the driving anchors (T, K, 2) (normalised), the confidence
    map (T, H, W, 1) and the composition weights (T, h, w, K + 1); the path of its ground-truth
    npz if any."""
    truth = figure = None
    no_truth_reason = not_computed("no synthetic ground truth (<name>.npz) for this video")
    if ground_truth is not None:
      truth = synthetic_gt.load_ground_truth(ground_truth)
      if len(truth["source_coords"]) != len(generated):
        raise ValueError(f"{ground_truth}: ground truth of {len(truth['source_coords'])} frames, "
                         f"the video has {len(generated)}")
      figure = synthetic_gt.figure_mask(truth["part_labels"], generated.shape[1:3])
    scores: dict[str, Any] = {"num_frames": int(len(generated))}
    per_frame, self.frame_values[name] = self._per_frame(generated, reference, figure,
                                                         no_truth_reason)
    scores.update(per_frame)
    scores.update(self._temporal(generated, reference))
    scores.update(self._ground_truth(generated, reference, motion_full, truth, no_truth_reason,
                                     anchors, confidence))
    scores["anchor_motions_used"] = (
        anchor_motions_used(composition) if composition is not None else not_computed(
            "needs the composition weights (composition of an INTERnet renderer, --workdir "
            "mode only)"))
    self.videos[name] = {"num_frames": scores["num_frames"],
                         **{key: scores[key] for key in VIDEO_KEYS}}
    return self.videos[name]

  def robust_scores(self, train_joints: np.ndarray, test_joints: dict[str, np.ndarray],
                    count: int) -> dict[str, Any]:
    """D2G-Net's Robust-PSNR / Robust-SSIM ("Robust Pose Transfer with Dynamic Details using
    Neural Video Rendering", Sec. 4.1) and their copy-source baselines: {ROBUST_KEYS: value}.

    The `count` frames, among all frames of the videos scored so far, whose pose is farthest from
    the training poses (`poses.farthest_poses`); their per-frame scores are averaged as
    `mean_frame_scores` averages a video's (the copy-source PSNR leaves out a frame it reproduces
    exactly, psnr_robust_copy_frames is the model's PSNR over the same frames). Args:
    train_joints: (N, J, 2) pixel joints, NaN where missing; test_joints: {video name: (T, J, 2)}
    for every video scored, T its frame count.
    """
    where, stacked = [], []
    for name, video in self.videos.items():
      joints = test_joints.get(name)
      if joints is None:
        return dict.fromkeys(ROBUST_KEYS, not_computed(f"test video {name} has no poses"))
      if len(joints) != video["num_frames"]:
        raise ValueError(f"test video {name}: {len(joints)} poses for {video['num_frames']} "
                         "frames")
      where += [(name, t) for t in range(len(joints))]
      stacked.append(joints)
    if not where:
      return dict.fromkeys(ROBUST_KEYS, not_computed("no video scored"))
    try:
      chosen = pose_metrics.farthest_poses(train_joints, np.concatenate(stacked), count)
    except ValueError as e:  # e.g. no training pose with a valid joint, other joint counts
      return dict.fromkeys(ROBUST_KEYS, not_computed(_one_line(e)))
    if not len(chosen):
      return dict.fromkeys(ROBUST_KEYS, not_computed(
          "no test frame has a valid joint shared with a training pose" if count else
          "robust_frames is 0"))
    frames = [where[i] for i in chosen]
    means = mean_frame_scores({key: np.array([self.frame_values[name][key][t]
                                              for name, t in frames])
                               for key in ROBUST_FRAME_KEYS}, not_computed("no frame"))
    return {"psnr_robust": means["psnr"], "ssim_robust": means["ssim"],
            "psnr_robust_copy_source": means["psnr_copy_source"],
            "ssim_robust_copy_source": means["ssim_copy_source"],
            "psnr_robust_copy_frames": means["psnr_copy_frames"],
            "robust_frames": [f"{name}:{t}" for name, t in frames]}

  def _dataset_metrics(self) -> dict[str, Any]:
    out = {}
    fid, fid_reason = self._network("fid")
    if fid is None:
      out["fid"] = fid_reason
    else:
      try:
        out["fid"] = float(fid[0].frechet_distance(np.concatenate(self._fid_features[1]),
                                                   np.concatenate(self._fid_features[0])))
      except (MetricUnavailable, ValueError) as e:  # e.g. too few frames for the covariance
        out["fid"] = not_computed(_one_line(e))
    i3d, i3d_reason = self._network("i3d")
    if i3d is None:
      out["fvd"] = i3d_reason
    else:
      try:
        if not self._i3d_features[0]:
          raise ValueError("no video could be embedded by I3D (see act_recog_l1)")
        out["fvd"] = float(i3d[0].fvd(np.stack(self._i3d_features[1]),
                                      np.stack(self._i3d_features[0])))
      except (MetricUnavailable, ValueError) as e:  # e.g. too few videos for the covariance
        out["fvd"] = not_computed(_one_line(e))
    return out

  def results(self, robust: dict[str, Any] | str | None = None, **header) -> dict[str, Any]:
    """Everything metrics.json holds: header fields, means, per-video scores, reasons.
    `robust`: `robust_scores`' result, or the reason it is not computed."""
    mean: dict[str, Any] = {}
    notes = []
    for key in VIDEO_KEYS:
      values = [video[key] for video in self.videos.values()]
      mean[key] = _mean_of(values)
      skipped = [v for v in values if isinstance(v, str)]
      if skipped and len(skipped) < len(values):
        notes.append(f"{key}: mean over {len(values) - len(skipped)} of {len(values)} videos "
                     f"(others {skipped[0]})")
    mean.update(self._dataset_metrics())
    if not isinstance(robust, dict):
      mean.update(dict.fromkeys(ROBUST_KEYS, robust or not_computed("no poses given")))
    else:
      mean.update({key: robust[key] for key in ROBUST_KEYS})
    ordered = {key: mean[key] for key, _, _ in
               PER_FRAME_COLUMNS + TEMPORAL_COLUMNS + GROUND_TRUTH_COLUMNS}
    ordered.update({key: mean[key] for key in mean if key not in ordered})
    return {
        **header,
        "num_videos": len(self.videos),
        "num_frames": int(sum(video["num_frames"] for video in self.videos.values())),
        "mean": ordered,
        "not_computed": {key: value for key, value in ordered.items() if isinstance(value, str)},
        "notes": notes,
        "videos": self.videos,
        "definitions": DEFINITIONS,
    }


# ---------------------------------------------------------------------------------------------
# Reports


def _jsonable(value):
  """Non-finite floats become "inf" / "-inf" / "nan" strings (strict JSON has no such numbers)."""
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else str(value)
  if isinstance(value, np.integer):
    return int(value)
  return value


def _cell(value, key: str) -> str:
  if isinstance(value, str):
    return NOT_COMPUTED if value.startswith(NOT_COMPUTED) else value
  if not math.isfinite(value):
    return str(value)
  # Baseline and region variants (psnr_figure, l1_copy_source, ...) keep their metric's digits.
  digits = next((d for prefix, d in (("psnr", 2), ("l1", 4), ("e_temp", 4),
                                     ("temporal_error_gt", 4)) if key.startswith(prefix)), 3)
  return f"{value:.{digits}f}"


def _baseline_table(mean: dict[str, Any]) -> list[str]:
  """metrics.md's model vs trivial baselines table (BASELINE_ROWS), one row per metric."""
  lines = ["| Metric | Region | Model | Copy-source | Zero motion |", "|---|---|---|---|---|"]
  for title, region, model, copy, zero in BASELINE_ROWS:
    cells = [_cell(mean[key], key) if key else "—" for key in (model, copy, zero)]
    lines.append(f"| {title} | {region} | " + " | ".join(cells) + " |")
  return lines


def _intrinsic_lines(mean: dict[str, Any], heading: str) -> list[str]:
  """metrics.md's anchors and confidence section (INTRINSIC_ROWS): model vs chance."""
  lines = ["", f"{heading} Anchors and confidence map", "",
           "The INTERnet paper's Figs. 7-8 (Sec. 4.3-4.4) measured on the synthetic ground truth: "
           "whether the driving anchors lie on the moving body, near its motion boundary, and how "
           "well the confidence map M marks the pixels visible from the source; and how many "
           "anchor motions the composition uses at all. Reference: a uniformly placed anchor; "
           "AUC 0.5 (chance); the IoU of M = 1 everywhere; every motion used.", "",
           "| Metric | Region | Model | Reference |", "|---|---|---|---|"]
  for title, region, model, reference in INTRINSIC_ROWS:
    cell = (_cell(reference, model) if isinstance(reference, float) else
            _cell(mean[reference], reference))
    lines.append(f"| {title} | {region} | {_cell(mean[model], model)} | {cell} |")
  return lines


def _robust_lines(mean: dict[str, Any], heading: str) -> list[str]:
  """metrics.md's Robust frames section: model vs copy-source on the ROBUST_ROWS."""
  frames = mean["robust_frames"]
  lines = ["", f"{heading} Robust frames", "",
           "D2G-Net's Robust-PSNR / Robust-SSIM (\"Robust Pose Transfer with Dynamic Details using "
           "Neural Video Rendering\", Table 1): the test frames whose pose is farthest from every "
           "training pose."]
  if isinstance(frames, str):
    return lines + ["", frames]
  lines += [f"{len(frames)} frames: {', '.join(frames)}.", "",
            "| Metric | Frames | Model | Copy-source |", "|---|---|---|---|"]
  for title, which, model, copy in ROBUST_ROWS:
    lines.append(f"| {title} | {which} | {_cell(mean[model], model)} | "
                 f"{_cell(mean[copy], copy) if copy else '—'} |")
  return lines


def _per_video_baselines(videos: dict[str, Any]) -> list[str]:
  """Per-video model / baseline pairs of the whole-frame and figure scores and the anchors."""
  pairs = (("L1", "l1", "l1_copy_source", "copy"),
           ("PSNR", "psnr_copy_frames", "psnr_copy_source", "copy"),
           ("figure L1", "l1_figure", "l1_figure_copy_source", "copy"),
           ("figure PSNR", "psnr_figure_copy_frames", "psnr_figure_copy_source", "copy"),
           ("figure EPE", "epe_figure", "epe_figure_zero_motion", "zero motion"),
           ("anchors on figure", "anchors_on_figure", "anchors_on_figure_chance", "chance"))
  lines = ["| Video | " + " | ".join(f"{title} (model / {baseline})"
                                     for title, _, _, baseline in pairs) + " |",
           "|" + "---|" * (len(pairs) + 1)]
  for name, video in videos.items():
    lines.append(f"| {name} | " + " | ".join(
        f"{_cell(video[a], a)} / {_cell(video[b], b)}" for _, a, b, _ in pairs) + " |")
  return lines


def _exactly_reproduced_psnr(mean: dict[str, Any]) -> str | None:
  """The headline PSNR cell when the mean PSNR is +inf only because some frames are reproduced
  exactly (self-imitation reproduces its source frame) while the others are not: psnr_copy_frames
  (the frames the copy does not reproduce); None otherwise."""
  psnr, other = mean.get("psnr"), mean.get("psnr_copy_frames")
  if (isinstance(psnr, float) and psnr == math.inf and isinstance(other, float)
      and math.isfinite(other)):
    return _cell(other, "psnr")
  return None


def _block_lines(results: dict[str, Any], label: str, heading: str) -> list[str]:
  """The tables of one evaluation (Table 2, ground truth, baselines, reasons, per video), with
  section headings of level `heading` ("##" or "###")."""
  mean = results["mean"]
  per_frame, temporal = PER_FRAME_COLUMNS, TEMPORAL_COLUMNS
  groups = ["Metric", "Per-frame"] + [""] * (len(per_frame) - 1) + ["Temporal"] + [""] * (
      len(temporal) - 1)
  lines = [f"{results['num_videos']} videos, {results['num_frames']} frames "
           f"({results.get('mode', '')}).", ""]
  lines.append("| " + " | ".join(groups) + " |")
  lines.append("|" + "---|" * len(groups))
  lines.append("| | " + " | ".join(f"{title} {arrow}" for _, title, arrow in per_frame + temporal)
               + " |")
  cells = [_cell(mean[key], key) for key, _, _ in per_frame + temporal]
  exact_frames = _exactly_reproduced_psnr(mean)
  if exact_frames is not None:  # an infinite mean says nothing: the other frames' mean instead
    cells[[key for key, _, _ in per_frame + temporal].index("psnr")] = exact_frames + "*"
  lines.append(f"| {label} | " + " | ".join(cells) + " |")
  if exact_frames is not None:
    lines += ["", "\\* PSNR over the frames the output does not reproduce exactly: it reproduces "
              "the source frame itself (∞ dB), which makes the mean over all frames (psnr in "
              "metrics.json) ∞."]
  lines += ["", "Interp-PSNR interpolates with the pretrained Super SloMo, as the paper does "
            "(--slomo_weights); Interp-PSNR (flow) follows the same protocol with a weight-free "
            "flow interpolator: compare it only with numbers computed by this tool.", "",
            f"{heading} Synthetic ground truth", "",
            "| " + " | ".join(f"{title} {arrow}" for _, title, arrow in GROUND_TRUTH_COLUMNS) + " |",
            "|" + "---|" * len(GROUND_TRUTH_COLUMNS),
            "| " + " | ".join(_cell(mean[key], key) for key, _, _ in GROUND_TRUTH_COLUMNS) + " |",
            "", f"{heading} Model vs trivial baselines", "",
            "Copy-source: the output is the source (frame 0 of the reference) for every frame. "
            "Zero motion: the identity motion field. Same frames and pixels as the model; "
            "figure: pixels labelled as figure in the target or the source frame (synthetic "
            "ground truth). PSNR rows average over the frames the copy does not reproduce "
            "exactly (all but the source frame itself).", ""]
  lines += _baseline_table(mean)
  lines += _intrinsic_lines(mean, heading)
  lines += _robust_lines(mean, heading)
  if results["not_computed"]:
    lines += ["", f"{heading} Not computed", ""]
    lines += [f"- {key}: {reason}" for key, reason in results["not_computed"].items()]
  if results["notes"]:
    lines += ["", f"{heading} Notes", ""] + [f"- {note}" for note in results["notes"]]
  video_columns = [(key, title, arrow) for key, title, arrow in
                   per_frame + temporal + GROUND_TRUTH_COLUMNS if key not in DATASET_KEYS]
  lines += ["", f"{heading} Per video", "",
            "| Video | Frames | " + " | ".join(f"{t} {a}" for _, t, a in video_columns) + " |",
            "|" + "---|" * (len(video_columns) + 2)]
  for name, video in results["videos"].items():
    lines.append(f"| {name} | {video['num_frames']} | " + " | ".join(
        _cell(video[key], key) for key, _, _ in video_columns) + " |")
  lines += ["", f"{heading} Per video: model vs baselines", ""]
  return lines + _per_video_baselines(results["videos"])


def format_markdown(results: dict[str, Any]) -> str:
  """metrics.md: Table 2's layout (groups Per-frame | Temporal), then the extras; in mode (a)
  the cross-identity block with the same tables."""
  label = results.get("label", "")
  lines = [f"# Metrics: {label}", ""] + _block_lines(results, label, "##")
  cross = results.get("cross_identity")
  if cross is not None:
    lines += ["", "## Cross-identity", ""]
    if isinstance(cross, str):
      lines.append(cross)
    else:
      lines += [CROSS_IDENTITY_TEXT, ""] + _block_lines(cross, label, "###")
  lines += ["", "## Definitions", ""] + [f"- {key}: {text}" for key, text in DEFINITIONS.items()]
  return "\n".join(lines) + "\n"


REPORT_NAMES = ("metrics.json", "metrics.md")  # what write_reports writes


def check_output_dir(output_dir: str | os.PathLike,
                     inputs: dict[str, str | os.PathLike | None]) -> Path:
  """Checks, before any work, that the reports can be written into `output_dir`: a folder that
  exists or can be created, not one of `inputs` ({what: path}) or inside one, and none of its
  REPORT_NAMES files an input file. Returns the folder."""
  from internet_jax import errors  # pylint: disable=g-import-not-at-top
  output_dir = Path(output_dir)
  errors.check_writable(output_dir, f"--output_dir: {output_dir}")
  errors.refuse_inputs(output_dir, inputs, folders=True)
  for name in REPORT_NAMES:
    errors.refuse_inputs(output_dir / name, inputs)
  return output_dir


def _weight_inputs(options: Options) -> dict[str, str]:
  """The weight files `options` names, as inputs for `check_output_dir`."""
  return {f"--{flag} file": getattr(options, flag) for _, flag in NETWORK_MODULES}


def write_reports(results: dict[str, Any], output_dir: str | os.PathLike) -> tuple[Path, Path]:
  """Writes metrics.json and metrics.md into output_dir, each through a temporary file beside it
  that is renamed only once both are complete."""
  output_dir = Path(output_dir)
  if output_dir.exists() and not output_dir.is_dir():
    raise ValueError(f"--output_dir: {output_dir} is an existing file")
  texts = {"metrics.json": json.dumps(_jsonable(results), indent=2, allow_nan=False) + "\n",
           "metrics.md": format_markdown(results)}
  created = not output_dir.exists()
  try:
    output_dir.mkdir(parents=True, exist_ok=True)
    # Nested: both files are complete before either is renamed into place.
    with contextlib.ExitStack() as stack:
      for name, text in texts.items():
        path = stack.enter_context(temporaries.replaced(output_dir / name))
        path.write_text(text, encoding="utf-8")
  except BaseException as e:
    if created and output_dir.is_dir() and not any(output_dir.iterdir()):
      output_dir.rmdir()
    if not isinstance(e, OSError):
      raise
    raise ValueError(f"--output_dir: cannot write {output_dir}: {e.strerror or e}") from None
  return output_dir / "metrics.json", output_dir / "metrics.md"


# ---------------------------------------------------------------------------------------------
# Mode (b): folders


def _name_mismatch(generated_dir, reference_dir, generated: set, reference: set) -> str | None:
  def listing(names):
    names = sorted(names)
    shown = ", ".join(names[:10])
    return shown + (f" (and {len(names) - 10} more)" if len(names) > 10 else "")

  parts = []
  if reference - generated:
    parts.append(f"missing from {generated_dir}: {listing(reference - generated)}")
  if generated - reference:
    parts.append(f"not in {reference_dir}: {listing(generated - reference)}")
  return "; ".join(parts) if parts else None


def _ground_truth_files(names: list[str], reference: dict[str, Path],
                        ground_truth_dir) -> dict[str, Path | None]:
  """{name: its <name>.npz, or None without one}: in `ground_truth_dir`, else beside the
  reference video. A folder given that holds none of them is an error, not ignored."""
  folder = Path(ground_truth_dir) if ground_truth_dir else None
  files = {name: (folder or reference[name].parent) / f"{name}.npz" for name in names}
  files = {name: path if path.is_file() else None for name, path in files.items()}
  if folder is not None and not any(files.values()):
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise ValueError(f"--ground_truth: {folder} holds none of the <name>.npz files of the "
                     f"{len(names)} videos ({shown})")
  return files


def evaluate_folders(generated_dir, reference_dir, *, output_dir=None, ground_truth_dir=None,
                     resolution: int | None = None, max_videos: int | None = None,
                     options: Options | None = None) -> dict[str, Any]:
  """Mode (b): scores every video of `generated_dir` against the same-named one of
  `reference_dir`, writes the reports (default `<generated_dir>_metrics/`) and returns the results."""
  from input_pipeline import video_io  # pylint: disable=g-import-not-at-top
  options = options or Options()
  generated_dir, reference_dir = Path(generated_dir), Path(reference_dir)
  if ground_truth_dir is not None and not Path(ground_truth_dir).is_dir():
    raise ValueError(f"--ground_truth: {ground_truth_dir} is not a folder")
  target = Path(output_dir or f"{str(generated_dir).rstrip(os.sep)}_metrics")
  check_output_dir(target, {"generated videos folder": generated_dir,
                            "reference videos folder": reference_dir,
                            "ground-truth folder": ground_truth_dir, **_weight_inputs(options)})
  generated = {video_io.video_name(p): p for p in video_io.list_videos(generated_dir)}
  reference = {video_io.video_name(p): p for p in video_io.list_videos(reference_dir)}
  if not reference:
    raise ValueError(f"{reference_dir}: no videos")
  if not generated:
    raise ValueError(f"{generated_dir}: no videos")
  mismatch = _name_mismatch(generated_dir, reference_dir, set(generated), set(reference))
  if mismatch:
    raise ValueError(f"{generated_dir}: video names do not match {reference_dir}: {mismatch}")
  names = sorted(reference)[:max_videos] if max_videos else sorted(reference)
  truths = _ground_truth_files(names, reference, ground_truth_dir)
  scorer = Scorer(options)
  for name in tqdm.tqdm(names, desc="evaluate", unit="video", file=sys.stderr, disable=None):
    fake = video_io.read_video(generated[name], resolution)
    real = video_io.read_video(reference[name], resolution)
    if len(fake) != len(real):
      raise ValueError(f"{generated[name]}: {len(fake)} frames, but {reference[name]} has "
                       f"{len(real)}")
    if fake.shape != real.shape:
      raise ValueError(f"{generated[name]}: frames are {fake.shape[2]}x{fake.shape[1]}, "
                       f"{reference[name]}'s {real.shape[2]}x{real.shape[1]}; pass --resolution "
                       "to resize both")
    scorer.add(name, fake, real, ground_truth=truths[name])
  results = scorer.results(robust=not_computed("folder mode: no poses (Robust-PSNR/SSIM need the "
                                               "test and training poses of --workdir mode)"),
                           mode="folders", label=generated_dir.name,
                           generated=str(generated_dir), reference=str(reference_dir))
  write_reports(results, target)
  return results


# ---------------------------------------------------------------------------------------------
# Mode (a): self-imitation with a trained workdir


def _renderer_output(outputs: dict, path: tuple[str, ...]):
  """outputs[path[0]][path[1]]...; None where the renderer's outputs lack it."""
  for key in path:
    if not isinstance(outputs, dict) or key not in outputs:
      return None
    outputs = outputs[key]
  return outputs


def _animate(renderer, source: np.ndarray, driving: np.ndarray, options: dict,
             keys: tuple[str, ...] = ("motion_full",)) -> tuple:
  """`source` animated by every frame of `driving` (with the renderer's `options`): (uint8
  output, then for each of `keys`, names of RENDERER_OUTPUTS, that output over all frames, or
  None when the method's renderer does not give it). Absolute motion, as FOMM's reconstruction
  test."""
  predictions = []
  collected: dict[str, list] = {key: [] for key in keys}
  for valid, outputs in renderer.render_chunks(source, driving, **options):
    predictions.append(np.asarray(outputs["prediction"][:valid], np.float32))
    for key in keys:
      value = _renderer_output(outputs, RENDERER_OUTPUTS[key])
      if value is not None:
        collected[key].append(np.asarray(value[:valid], np.float32))
  generated = np.clip(np.round(np.concatenate(predictions) * 255.0), 0, 255).astype(np.uint8)
  return (generated,) + tuple(np.concatenate(chunks) if chunks else None
                              for chunks in collected.values())


def cross_identity_frames(manual_dir, name: str, resolution: int
                          ) -> tuple[Path, np.ndarray] | None:
  """(path, uint8 frames) of the cross-identity partner of test video `name`
  (`<manual_dir>/test_cross/<name>`, `input_pipeline.synthetic.cross_identity_video`), read and
  fitted to `resolution` as the dataset builder fits the test split (`video_io.resize_and_pad`);
  None without a partner."""
  from input_pipeline import synthetic, video_io  # pylint: disable=g-import-not-at-top
  path = synthetic.cross_identity_video(manual_dir, name)
  if path is None:
    return None
  return path, video_io.read_video(path, int(resolution))


def training_poses(data_config) -> np.ndarray | str:
  """(N, J, 2) pixel joints of every frame of the training split of `data_config` (NaN where
  "joints_valid" is False; annotations are read, never pixels), or the reason they are missing
  (`not_computed`): no prepared training split, or a training video without joints."""
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  try:
    source = datasets.get_video_source(data_config, "train", create=False)
  except datasets.DataError as e:  # MissingDataError included
    return not_computed(f"no training split to compare the test poses with ({_one_line(e)})")
  stacked = []
  for video in range(len(source)):
    joints = pose_metrics.video_joints(source, video)
    if joints is None:
      return not_computed(f"training video {source.video_name(video)} has no 'joints' "
                          "annotation")
    stacked.append(joints)
  shapes = sorted({joints.shape[1:] for joints in stacked})
  if len(shapes) != 1:
    return not_computed(f"the training videos' joints have different shapes {shapes}")
  return np.concatenate(stacked)


def _robust(scorer: Scorer, train_joints: np.ndarray | str | None,
            test_joints: dict[str, np.ndarray | None], count: int) -> dict[str, Any] | str:
  """`scorer.robust_scores`, or the reason it is not computed."""
  if not count:
    return not_computed("robust_frames is 0")
  missing = [name for name in scorer.videos if test_joints.get(name) is None]
  if missing:
    return not_computed(f"test video {missing[0]} has no 'joints' annotation")
  if isinstance(train_joints, str):
    return train_joints
  return scorer.robust_scores(train_joints, test_joints, count)


def evaluate_workdir(workdir: str, *, config=None, output_dir=None, max_videos: int | None = None,
                     batch_size: int | None = None, step: int | None = None,
                     options: Options | None = None) -> dict[str, Any]:
  """Mode (a): self-imitation (INTERnet paper Sec. 4.1) on the test split; writes the reports (default
  `<workdir>/eval/`) and returns the results. `config`: its `data` section replaces the
  checkpoint's. Nothing is rendered or prepared: missing data is a one-line
  `datasets.MissingDataError` naming the folder and the command that recreates it."""
  from input_pipeline import datasets  # pylint: disable=g-import-not-at-top
  from internet_jax import checkpointing, inference  # pylint: disable=g-import-not-at-top
  options = options or Options()
  if not os.path.isdir(checkpointing.checkpoint_dir(workdir)):
    raise FileNotFoundError(f"{checkpointing.checkpoint_dir(workdir)}: no checkpoints (is "
                            "--workdir a training workdir?)")
  # The EMA when the run kept one, as training's own evaluation uses.
  method, networks, params, saved, step = checkpointing.load_inference(workdir, step=step)
  data_config = saved.data
  if config is not None:
    if int(config.data.resolution) != int(saved.data.resolution):
      raise ValueError(f"--config: data.resolution {config.data.resolution} differs from the "
                       f"checkpoint's {saved.data.resolution} (in {workdir})")
    data_config = config.data
  # Checkpoints written before training saved absolute paths name their data relatively.
  relative = [f"data.{field}={data_config[field]}" for field in ("manual_dir", "data_dir")
              if config is None and not os.path.isabs(str(data_config.get(field) or "/"))]
  # Absolute folders (the synthetic dataset's own): the truth and partners are read from there.
  data_config = datasets.resolve_paths(data_config)
  try:
    source = datasets.get_video_source(data_config, "test", create=False)
  except datasets.MissingDataError as error:
    if not relative:
      raise
    raise datasets.MissingDataError(
        f"{error} (the checkpoint's config names {', '.join(relative)}, relative to the directory "
        "training ran in: run from there, or pass --config)") from None
  renderer = method.renderer(networks, params, saved,
                             batch_size or int(saved.get("eval_batch_size", 8)))
  truth_dir = Path(data_config.manual_dir) / "test"
  from input_pipeline import synthetic  # pylint: disable=g-import-not-at-top
  cross_dir = Path(data_config.manual_dir) / synthetic.CROSS_SPLIT
  target = output_dir or os.path.join(workdir, "eval")
  check_output_dir(target, {"checkpoints folder": checkpointing.checkpoint_dir(workdir),
                            "test split folder": truth_dir, "cross-identity folder": cross_dir,
                            **_weight_inputs(options)})
  count = min(len(source), max_videos) if max_videos else len(source)
  scorer, cross_scorer = Scorer(options), Scorer(options)
  without_partner = []
  test_joints: dict[str, np.ndarray | None] = {}  # the robust frames' poses
  for video in tqdm.tqdm(range(count), desc="evaluate", unit="video", file=sys.stderr,
                    disable=None):
    name = source.video_name(video)
    frames = np.stack([source.read_frame(video, t) for t in range(source.num_frames(video))])
    # Self-imitation: frame 0 animated by every frame.
    generated, *outputs = _animate(renderer, frames[0], frames,
                                   inference.video_annotation_options(
                                       renderer, source, video, 0, range(len(frames))),
                                   keys=tuple(RENDERER_OUTPUTS))
    truth = truth_dir / f"{name}.npz"
    truth = truth if truth.is_file() else None
    scorer.add(name, generated, frames, **dict(zip(RENDERER_OUTPUTS, outputs)),
               ground_truth=truth)
    test_joints[name] = pose_metrics.video_joints(source, video)
    partner = cross_identity_frames(data_config.manual_dir, name, data_config.resolution)
    if partner is None:
      without_partner.append(name)
      continue
    path, driving = partner
    if len(driving) != len(frames):
      raise ValueError(f"{path}: {len(driving)} frames, but its test video {name} has "
                       f"{len(frames)}")
    # Cross-identity: A's frame 0 driven by B's frames; the target is A's own video.
    generated, *outputs = _animate(renderer, frames[0], driving,
                                   inference.video_annotation_options(
                                       renderer, source, video, 0, range(len(frames)),
                                       driving_file=path),
                                   keys=tuple(RENDERER_OUTPUTS))
    cross_scorer.add(name, generated, frames, **dict(zip(RENDERER_OUTPUTS, outputs)),
                     ground_truth=truth)
  # D2G-Net's robust frames: the training poses are read only when the test frames have poses.
  train_joints = None
  if options.robust_frames and any(joints is not None for joints in test_joints.values()):
    train_joints = training_poses(data_config)
  results = scorer.results(robust=_robust(scorer, train_joints, test_joints, options.robust_frames),
                           mode="self_imitation", label=f"{Path(workdir).name} (step {step})",
                           workdir=str(workdir), step=step,
                           test_split=getattr(source, "dataset_dir", str(data_config.manual_dir)))
  if cross_scorer.videos:
    # The same test frames (the partner moves as test/<name> does): chosen among those scored.
    cross = cross_scorer.results(
        robust=_robust(cross_scorer, train_joints, test_joints, options.robust_frames),
        mode="cross_identity", partners=str(cross_dir))
    del cross["definitions"]  # the top level's
    if without_partner:
      cross["notes"].append(f"{len(without_partner)} of {count} test videos have no partner in "
                            f"{cross_dir} ({', '.join(without_partner[:10])})")
    results["cross_identity"] = cross
  else:
    results["cross_identity"] = not_computed(f"no cross-identity partners ({cross_dir}/<name>)")
  write_reports(results, target)
  return results


# ---------------------------------------------------------------------------------------------
# Command line


def _define_flags():
  # Defined only when run as a program: animate.py may define flags of the same names.
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Mode (a): a training workdir; self-imitation on its test split.")
  config_flags.DEFINE_config_file("config", None, "Mode (a): a config whose data section replaces "
                                  "the checkpoint's.", lock_config=False)
  flags.DEFINE_integer("step", None, "Mode (a): checkpoint step (default: newest).")
  flags.DEFINE_integer("batch_size", None, "Mode (a): frames per generator call (default: the "
                       "checkpoint config's eval_batch_size).")
  flags.DEFINE_string("generated", None, "Mode (b): folder of generated videos.")
  flags.DEFINE_string("reference", None, "Mode (b): folder of reference videos, same names.")
  flags.DEFINE_string("ground_truth", None, "Mode (b): folder of synthetic <name>.npz ground truth "
                      "(default: beside the reference videos); a folder given must exist and "
                      "hold at least one video's.")
  flags.DEFINE_integer("resolution", None, "Mode (b): resize and pad both sides to this size.")
  flags.DEFINE_integer("max_videos", None, "Evaluate only the first N videos.")
  flags.DEFINE_string("output_dir", None, "Where metrics.json and metrics.md go (default: "
                      "<workdir>/eval, or <generated>_metrics).")
  flags.DEFINE_string("lpips_weights", "", "LPIPS weights (LPIPS is not computed without).")
  flags.DEFINE_string("inception_weights", "", "Inception weights for FID.")
  flags.DEFINE_string("i3d_weights", "", "I3D weights for FVD and Act-Recog-L1.")
  flags.DEFINE_string("slomo_weights", "", "Super SloMo weights for the paper's Interp-PSNR.")
  flags.DEFINE_string("flow_preset", "medium", "DIS preset of the temporal metrics.")
  flags.DEFINE_bool("verbose", False, "Show INFO logs and full tracebacks for errors.")


def main(argv):
  from absl import logging  # pylint: disable=g-import-not-at-top
  from internet_jax import cli, errors  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  del argv  # stray words are refused by errors.flags_parser
  f = flags.FLAGS
  # Warnings (e.g. about the dataset) stay visible; INFO logs (Orbax, TFDS) only with --verbose.
  cli.start(f.verbose, level=logging.WARNING)
  with errors.user_errors(verbose=f.verbose), temporaries.stop_on_signals("the evaluation"):
    options = Options(lpips_weights=f.lpips_weights, inception_weights=f.inception_weights,
                      i3d_weights=f.i3d_weights, slomo_weights=f.slomo_weights,
                      flow_preset=f.flow_preset)
    folder_mode = bool(f.generated or f.reference)
    if folder_mode == bool(f.workdir):
      raise ValueError("give either --workdir (self-imitation) or --generated and --reference")
    if folder_mode and not (f.generated and f.reference):
      raise ValueError("--generated and --reference go together")
    errors.check_positive(f, "max_videos", "resolution", "batch_size")
    if f.flow_preset not in flow_lib.PRESETS:
      raise ValueError(f"--flow_preset: unknown preset {f.flow_preset!r}; known: "
                       f"{', '.join(flow_lib.PRESETS)}")
    if folder_mode:
      results = evaluate_folders(f.generated, f.reference, output_dir=f.output_dir,
                                 ground_truth_dir=f.ground_truth, resolution=f.resolution,
                                 max_videos=f.max_videos, options=options)
      target = f.output_dir or f"{f.generated.rstrip(os.sep)}_metrics"
    else:
      results = evaluate_workdir(f.workdir, config=f.config, output_dir=f.output_dir,
                                 max_videos=f.max_videos, batch_size=f.batch_size, step=f.step,
                                 options=options)
      target = f.output_dir or os.path.join(f.workdir, "eval")
  means = dict(results["mean"])
  if isinstance(results.get("cross_identity"), dict):
    means.update({f"cross_identity/{k}": v for k, v in results["cross_identity"]["mean"].items()})
  for key, value in means.items():
    print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
  print(f"wrote {os.path.join(target, 'metrics.json')} and metrics.md", file=sys.stderr)


def run() -> None:
  """The `internet-jax-evaluate` console script."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from internet_jax import errors  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main, flags_parser=errors.flags_parser("config"))


if __name__ == "__main__":
  run()
