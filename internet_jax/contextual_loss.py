"""BDMM's semantic losses as pure functions of ONE example: contextual, Gram style, content.

Sources: "Bidirectionally Deformable Motion Modulation for Video-based Human Pose Transfer"
(BDMM), Sec. 3.3: perceptual loss Eq. 11, style loss Eq. 12, contextual loss Eq. 13; the
contextual loss itself is from "The Contextual Loss for Image Transformation with Non-Aligned
Data" (Mechrez et al., 2018). Where the paper text and the public code differ, this module
follows the code, rocketappslab/BDMM: model/losses/CX_style_loss.py (CXLoss) and
model/networks/external_function.py (VGGLoss).

Features are (H, W, C) arrays without a batch axis (VGG activations of one frame); every loss
returns a float32 scalar and treats the target (ground-truth) features as constants. Loss
weights (lambda_per, lambda_gram, lambda_cx) are applied by the caller.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

from internet_jax.losses import _layer, gram_matrix

__all__ = [
    "BDMM_CONTENT_LAYERS", "BDMM_STYLE_LAYERS", "BDMM_CONTEXTUAL_LAYERS", "CX_SIGMA", "CX_B",
    "contextual_loss", "frames_contextual_loss", "gram_matrix", "style_loss", "content_loss",
]

# Layers of BDMM's VGGLoss (external_function.py). The paper names Conv1-2 for Eq. 11, "the
# same layers" for Eq. 12 and relu3_2, relu4_2 for Eq. 13; the code uses these.
BDMM_CONTENT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
BDMM_STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
BDMM_CONTEXTUAL_LAYERS = ("relu3_2", "relu4_2", "relu5_2")
# VGGLoss builds CXLoss(sigma=0.5); b keeps CXLoss's default.
CX_SIGMA = 0.5
CX_B = 1.0
# CXLoss.calc_relative_distances' epsilon.
_RELATIVE_EPS = 1e-5
_REDUCTIONS = ("mean", "sum", "none")


def _f32(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def _normalize(x: jax.Array, eps: float) -> jax.Array:
  """x / ||x|| over the last axis; the norm is floored at eps (eps = 0: exactly the code's)."""
  squared = jnp.sum(jnp.square(x), axis=-1, keepdims=True)
  # Floor the squared norm, not the norm, so that eps > 0 also keeps the gradient finite at 0.
  return x / jnp.sqrt(jnp.maximum(squared, eps * eps))


def contextual_loss(generated: jax.Array, target: jax.Array, *, sigma: float = CX_SIGMA,
                    b: float = CX_B, eps: float = 0.0) -> jax.Array:
  """BDMM's contextual loss CX(T, I) of one frame, T = generated, I = target; -> f32 scalar.

  With T_p (p = 1..P_T, the H*W positions of `generated`) and I_q (q = 1..P_I, those of
  `target`), each a C-vector:

    mu      = 1/P_T sum_p T_p                                  (centre by T, both maps)
    t_p     = (T_p - mu) / ||T_p - mu||,  i_q = (I_q - mu) / ||I_q - mu||
    d_pq    = (1 - <t_p, i_q>) / 2                             (P_T, P_I)
    dt_pq   = d_pq / (min_p' d_p'q + 1e-5)                     (min over T, per I position q)
    CX_pq   = exp((b - dt_pq)/sigma) / sum_p' exp((b - dt_p'q)/sigma)    (sums to 1 over p)
    loss    = -log(1/P_T sum_p max_q CX_pq)                    (max over I, mean over T)

  This is CXLoss.forward(featureT=generated, featureI=target), as VGGLoss calls it: its raw
  distances are (N, P_T, H_I, W_I) (F.conv2d of I with T's 1x1 patches), the min and the
  normalisation run over dim 1 (P_T), the max over dims 2 and 3 (I), the mean over P_T. In
  Mechrez et al.'s notation (CX = 1/N sum_j max_i CX_ij, d and CX normalised over j for each
  i) x_i is the target and y_j the generated frame. The code centres by the mean over (N, H, W)
  with N = 1 per frame, so the mean is over this frame's positions only.

  Precision and edge cases: computed in float32 with HIGHEST-precision matmuls (a TF32 matmul
  would blur the cosines that 1e-5 then amplifies). The code normalises with no epsilon: a
  position equal to mu (a constant feature map, say) gives 0/0 = NaN there, as in PyTorch;
  eps > 0 floors ||.|| at eps, so such a position becomes the zero vector (d = 1/2 to
  everything) with finite gradients. The exp is evaluated as a softmax over p (max subtracted),
  identical in value; b cancels in that normalisation and is kept for fidelity to the code.
  The mean inside the log is >= 1/P_T (each CX column sums to 1), so the log is finite.

  Args:
    generated: T, generated-frame features (H, W, C).
    target: I, ground-truth features (H', W', C) (BDMM: same size), treated as a constant.
    sigma: band width (BDMM 0.5). b: the code's bias (1.0). eps: norm floor (0 = the code).
  """
  if generated.ndim != 3 or target.ndim != 3:
    raise ValueError(f"contextual_loss: features must be (H, W, C), got {generated.shape} and "
                     f"{target.shape}")
  if generated.shape[-1] != target.shape[-1]:
    raise ValueError(f"contextual_loss: channel mismatch {generated.shape} vs {target.shape}")
  channels = generated.shape[-1]
  t = _f32(generated).reshape(-1, channels)
  i = jax.lax.stop_gradient(_f32(target)).reshape(-1, channels)
  mu = jnp.mean(t, axis=0)
  t = _normalize(t - mu, eps)
  i = _normalize(i - mu, eps)
  cosine = jnp.einsum("pc,qc->pq", t, i, precision=jax.lax.Precision.HIGHEST)
  dist = (1.0 - cosine) / 2.0
  relative = dist / (jnp.min(dist, axis=0, keepdims=True) + _RELATIVE_EPS)
  cx = jax.nn.softmax((b - relative) / sigma, axis=0)
  return -jnp.log(jnp.mean(jnp.max(cx, axis=1)))


def frames_contextual_loss(generated: jax.Array, target: jax.Array, *, sigma: float = CX_SIGMA,
                           b: float = CX_B, eps: float = 0.0, reduction: str = "mean"
                           ) -> jax.Array:
  """`contextual_loss` of each frame of (T, H, W, C) features, centred per frame.

  Frames run one at a time through `jax.lax.map` of a `jax.checkpoint`ed per-frame loss, so
  only one (P_T, P_I) matrix (64 MiB at 64x64 positions) is live in the forward pass and the
  backward pass recomputes it per frame; vmapping or unrolling would keep all T of them.

  Args:
    generated, target: (T, H, W, C) features of the generated and ground-truth frames.
    reduction: "mean" over frames (default), "sum" (BDMM's backward_G adds the frames' losses),
      or "none" for the (T,) per-frame vector.
  """
  if reduction not in _REDUCTIONS:
    raise ValueError(f"frames_contextual_loss: reduction {reduction!r} not in {_REDUCTIONS}")
  if generated.ndim != 4 or target.ndim != 4 or generated.shape[0] != target.shape[0]:
    raise ValueError(f"frames_contextual_loss: need (T, H, W, C) with equal T, got "
                     f"{generated.shape} and {target.shape}")
  per_frame = jax.checkpoint(functools.partial(contextual_loss, sigma=sigma, b=b, eps=eps))
  values = jax.lax.map(lambda pair: per_frame(*pair), (generated, target))
  if reduction == "mean":
    return jnp.mean(values)
  if reduction == "sum":
    return jnp.sum(values)
  return values


# `gram_matrix` is losses.gram_matrix, re-exported: F^T F / (C H W) in float32 at HIGHEST
# precision, BDMM's compute_gram. Only the distance differs from losses.style_loss (INTERnet's
# squared Frobenius norm); BDMM's is the L1 mean below.


def style_loss(generated_features: Mapping[str, jax.Array],
               target_features: Mapping[str, jax.Array],
               layers: Sequence[str] = BDMM_STYLE_LAYERS) -> jax.Array:
  """BDMM Eq. 12 as coded: sum_l mean_{c,d} |G(phi_l(gen)) - G(phi_l(gt))|_cd.

  G = `gram_matrix` (F^T F / (h w c)); the mean runs over the c x c Gram entries (nn.L1Loss).
  Features are {layer: (h, w, c)}; target Grams are constants.
  """
  total = jnp.zeros((), jnp.float32)
  for name in layers:
    a = gram_matrix(_layer(generated_features, name, "style_loss"))
    g = jax.lax.stop_gradient(gram_matrix(_layer(target_features, name, "style_loss")))
    total = total + jnp.mean(jnp.abs(a - g))
  return total


def content_loss(generated_features: Mapping[str, jax.Array],
                 target_features: Mapping[str, jax.Array],
                 layers: Sequence[str] = BDMM_CONTENT_LAYERS) -> jax.Array:
  """BDMM Eq. 11 as coded: sum_l mean_{h,w,c} |phi_l(gen) - phi_l(gt)| (weight 1 per layer)."""
  total = jnp.zeros((), jnp.float32)
  for name in layers:
    a = _layer(generated_features, name, "content_loss")
    g = jax.lax.stop_gradient(_layer(target_features, name, "content_loss"))
    total = total + jnp.mean(jnp.abs(a - g))
  return total
