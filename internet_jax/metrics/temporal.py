"""Weight-free temporal metrics: the warping error E_temp and a flow-based Interp-PSNR.

Frames are uint8 (T, H, W, 3); O denotes the generated video and I the reference (real) video of
the same length. Optical flow is OpenCV DIS (`input_pipeline.flow.compute_flow`, preset "medium"
unless told otherwise), in pixels, with the direction of that module: `compute_flow(a, b)(p)` is
the displacement of pixel p of frame a into frame b. Every warp is the project's one bilinear
sampler, `geometry.warp` (backward: out(p) = image(p + flow(p))), with "border" padding.

E_temp ("Robust Pose Transfer with Dynamic Details using Neural Video Rendering", Eq. 10, with its Eq. 5 and reference code):

  E_temp = 1 / ((T - 1) D) * sum_{t=1..T-1} sum_p c_t(p) || O_t(p) - O_{t-1}(p + b_t(p)) ||_2

* f^t(O_{t-1}) warps the *generated* frame t-1 to time t with flow pre-computed on the
  *reference* frames (D2G-Net computes its flows on the real training frames): the backward flow
  b_t = DIS(I_t, I_{t-1}), on frame t's grid.
* c_k is D2G-Net's own forward-backward rule (`cal_conf`): with f_t = DIS(I_{t-1}, I_t),
  c_t(p) = 1 where |b_t(p) + f_t(p + b_t(p))|^2 < 1 px^2 (f_t sampled bilinearly, border), else 0.
* The colour difference is the per-pixel Euclidean distance over RGB ("average pixel-wise
  Euclidean color difference", Sec. 4.1) on [0, 1] values; D = H * W, so pixels with c = 0 count
  as zero error in the average, exactly as Eq. 10 is written. `e_temp_valid` is the same sum
  divided by the number of confident pixels instead (the mean over valid pixels), reported beside.
  Lower is better.

Interp-PSNR (INTERnet paper, Sec. 4.1): "predict each frame I_t from O_{t-1} and O_{t+1}" and report the
average PSNR. The paper uses a pretrained Super SloMo [12] (`metrics.slomo`, needs its weights);
this weight-free variant keeps Super SloMo's intermediate-flow approximation (Jiang et al. 2018,
Eq. 4 at t = 1/2) and its blend (Eq. 1) without the learned refinement and visibility maps:
  F_{0->1} = DIS(O_{t-1}, O_{t+1}),  F_{1->0} = DIS(O_{t+1}, O_{t-1}),
  F_{t->0} = (F_{1->0} - F_{0->1}) / 4,  F_{t->1} = -F_{t->0},
  Î_t = (warp(O_{t-1}, F_{t->0}) + warp(O_{t+1}, F_{t->1})) / 2,
and the score is PSNR(Î_t, I_t) with L = 255 against the *reference* frame I_t, as the paper's
wording says (its Table 2 values, 17-24 dB, are reconstruction-PSNR sized, which a comparison
with O_t would not give), averaged over t = 1..T-2. It is labelled `interp_psnr_flow` so that it
is never confused with the learned-interpolator number; `interp_psnr_flow_self` compares Î_t with
the generated O_t instead (pure inter-frame consistency, reported beside).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from input_pipeline import flow as flow_lib
from internet_jax import geometry
from internet_jax.metrics import image as image_metrics

# D2G-Net cal_conf's Conf_Thresh: squared forward-backward residual in px^2.
D2G_CONFIDENCE_THRESHOLD = 1.0


@functools.partial(jax.jit, static_argnames=("padding_mode",))
def _warp_jit(image, flow_px, padding_mode):
  height, width = image.shape[-3:-1]
  coords = geometry.coordinate_grid(height, width) + geometry.pixel_to_normalized_flow(
      flow_px, height, width)
  return geometry.warp(image, coords, padding_mode=padding_mode)


def warp_by_flow(image: np.ndarray, flow_px: np.ndarray, padding_mode: str = "border") -> np.ndarray:
  """Backward warp with a pixel flow: out(p) = image(p + flow(p)), bilinear (`geometry.warp`).

  Args:
    image: (H, W, C) float or uint8 values (returned as float32 on the same scale).
    flow_px: (H, W, 2) pixel displacements (dx, dy) on the output grid.
    padding_mode: `geometry.warp`'s padding ("border" clamps to the edge).
  Returns:
    float32 (H, W, C).
  """
  return np.asarray(_warp_jit(jnp.asarray(image, jnp.float32), jnp.asarray(flow_px, jnp.float32),
                              padding_mode))


def d2g_confidence(flow_ab: np.ndarray, flow_ba: np.ndarray,
                   threshold: float = D2G_CONFIDENCE_THRESHOLD) -> np.ndarray:
  """D2G-Net's flow confidence c_k (`cal_conf`) on frame a's grid.

  c(p) = 1 where |flow_ab(p) + flow_ba(p + flow_ab(p))|^2 < threshold (px^2), flow_ba sampled
  bilinearly with border padding; else 0.

  Args:
    flow_ab: (H, W, 2) pixel flow from frame a to frame b, on a's grid.
    flow_ba: (H, W, 2) pixel flow from frame b to frame a, on b's grid.
  Returns:
    float32 (H, W) in {0, 1}.
  """
  round_trip = flow_ab + warp_by_flow(flow_ba, flow_ab, "border")
  return (np.sum(round_trip * round_trip, axis=-1) < threshold).astype(np.float32)


def _check_videos(generated: np.ndarray, reference: np.ndarray, min_frames: int, name: str):
  generated = np.asarray(generated)
  reference = np.asarray(reference)
  if generated.shape != reference.shape or generated.ndim != 4 or generated.shape[-1] != 3:
    raise ValueError(f"{name}: expected two (T, H, W, 3) videos of one shape, got "
                     f"{generated.shape} and {reference.shape}")
  if generated.dtype != np.uint8 or reference.dtype != np.uint8:
    raise ValueError(f"{name}: expected uint8 frames, got {generated.dtype} and {reference.dtype}")
  if len(generated) < min_frames:
    raise ValueError(f"{name}: needs at least {min_frames} frames, got {len(generated)}")
  return generated, reference


def warping_error_pair(generated_prev: np.ndarray, generated_now: np.ndarray,
                       backward_flow: np.ndarray, forward_flow: np.ndarray) -> tuple[float, float]:
  """One term of Eq. 10: (sum_p c(p) ||O_t(p) - O_{t-1}(p + b(p))||_2, sum_p c(p)).

  Args:
    generated_prev, generated_now: uint8 (H, W, 3) O_{t-1} and O_t.
    backward_flow: (H, W, 2) b_t, frame t -> frame t-1, on frame t's grid.
    forward_flow: (H, W, 2) f_t, frame t-1 -> frame t, on frame t-1's grid.
  Returns:
    (the confidence-weighted sum of RGB distances on [0, 1] values, the number of confident px).
  """
  confidence = d2g_confidence(backward_flow, forward_flow)
  warped = warp_by_flow(generated_prev, backward_flow, "border")
  diff = (generated_now.astype(np.float32) - warped) / 255.0
  distance = np.sqrt(np.sum(diff * diff, axis=-1))
  return float(np.sum(confidence * distance, dtype=np.float64)), float(confidence.sum())


def warping_error(generated: np.ndarray, reference: np.ndarray, preset: str = "medium") -> dict:
  """E_temp of D2G-Net Eq. 10 (see the module docstring for every choice).

  Args:
    generated: uint8 (T, H, W, 3) O, T >= 2.
    reference: uint8 (T, H, W, 3) I, the frames the flows are computed on.
    preset: DIS preset.
  Returns:
    dict(e_temp (float, Eq. 10), e_temp_valid (mean over confident pixels),
    confident_fraction (share of pixels with c = 1), e_temp_per_pair (T - 1,) Eq. 10's inner
    term per pair).
  """
  generated, reference = _check_videos(generated, reference, 2, "warping_error")
  num_pixels = generated.shape[1] * generated.shape[2]
  sums, counts = [], []
  for t in range(1, len(generated)):
    backward = flow_lib.compute_flow(reference[t], reference[t - 1], preset)
    forward = flow_lib.compute_flow(reference[t - 1], reference[t], preset)
    total, count = warping_error_pair(generated[t - 1], generated[t], backward, forward)
    sums.append(total)
    counts.append(count)
  sums = np.asarray(sums)
  counts = np.asarray(counts)
  return {
      "e_temp": float(sums.sum() / (len(sums) * num_pixels)),
      "e_temp_valid": float(sums.sum() / counts.sum()) if counts.sum() > 0 else float("nan"),
      "confident_fraction": float(counts.sum() / (len(counts) * num_pixels)),
      "e_temp_per_pair": sums / num_pixels,
  }


def interpolate_halfway(previous: np.ndarray, following: np.ndarray,
                        preset: str = "medium") -> np.ndarray:
  """The weight-free interpolator: frame t from frames t-1 and t+1 (module docstring).

  Args:
    previous, following: uint8 (H, W, 3) O_{t-1}, O_{t+1}.
  Returns:
    float32 (H, W, 3) on [0, 255].
  """
  flow_01 = flow_lib.compute_flow(previous, following, preset)
  flow_10 = flow_lib.compute_flow(following, previous, preset)
  # Super SloMo Eq. 4 at t = 1/2: F_t->0 = -t(1-t) F_0->1 + t^2 F_1->0, F_t->1 = -F_t->0.
  flow_t0 = 0.25 * (flow_10 - flow_01)
  return 0.5 * (warp_by_flow(previous, flow_t0, "border")
                + warp_by_flow(following, -flow_t0, "border"))


def interp_psnr(generated: np.ndarray, reference: np.ndarray, preset: str = "medium") -> dict:
  """Flow-based Interp-PSNR (module docstring): Î_t from O_{t-1}, O_{t+1}, PSNR against I_t.

  Args:
    generated: uint8 (T, H, W, 3) O, T >= 3.
    reference: uint8 (T, H, W, 3) I.
  Returns:
    dict(interp_psnr_flow (mean over t = 1..T-2 of PSNR(Î_t, I_t), dB),
    interp_psnr_flow_self (the same against O_t), and the per-frame values
    interp_psnr_flow_per_frame, interp_psnr_flow_self_per_frame, each (T - 2,)).
  """
  generated, reference = _check_videos(generated, reference, 3, "interp_psnr")
  against_reference, against_self = [], []
  for t in range(1, len(generated) - 1):
    predicted = interpolate_halfway(generated[t - 1], generated[t + 1], preset)
    against_reference.append(float(image_metrics.psnr(predicted, reference[t])))
    against_self.append(float(image_metrics.psnr(predicted, generated[t])))
  against_reference = np.asarray(against_reference)
  against_self = np.asarray(against_self)
  return {
      "interp_psnr_flow": float(np.mean(against_reference)),
      "interp_psnr_flow_self": float(np.mean(against_self)),
      "interp_psnr_flow_per_frame": against_reference,
      "interp_psnr_flow_self_per_frame": against_self,
  }
