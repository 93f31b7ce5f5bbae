"""INTERnet's losses as pure functions of ONE example (paper Eqs. 1-4, 7-11; FOMM's equivariance).

Every loss takes arrays without a batch axis and returns a float32 scalar (the equivariance loss a
dict of two scalars). The `batch_*` wrappers vmap a loss over a leading batch axis and average;
callers may equally `jax.vmap` the per-example functions themselves. Loss weights (lambda_per,
lambda_sty, lambda_reg, ... in `config.loss` and `config.temporal`) are applied by the caller.

Conventions: images (H, W, C) float in [0, 1]; coordinates and flows normalised to
[-1, 1], (x, y), align-corners; `geometry.warp` is the only sampler.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax import geometry

FeaturesFn = Callable[[jax.Array], Mapping[str, jax.Array]]

TEMPORAL_SCHEMES = ("none", "plain", "extrinsic", "intrinsic")
GAN_MODES = ("vanilla", "lsgan")
# FOMM's perceptual layers (first-order-model modules/model.py, Vgg19), weight 1 each; the caller
# multiplies by lambda_per (config.loss.perceptual).
PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# The paper does not name its style layers: one per VGG block, the default of
# config.loss.style_layers (BDMM uses relu2_2, relu3_4, relu4_4, relu5_2).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _f32(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def l1_loss(prediction: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error over all elements."""
  return jnp.mean(jnp.abs(_f32(prediction) - _f32(target)))


def pyramid_l1_loss(prediction: jax.Array, target: jax.Array,
                    scales: Sequence[float] = (1.0,)) -> jax.Array:
  """Sum over the image pyramid of the mean absolute error: Eq. 9 with the pixels themselves as
  the features (the FOMM ImagePyramide levels of `_pyramid_level`). Not in the paper; the
  stand-in for the perceptual loss when no ImageNet VGG-19 weights are available."""
  return sum(l1_loss(_pyramid_level(prediction, s), _pyramid_level(target, s)) for s in scales)


def change_weighted_l1_loss(prediction: jax.Array, target: jax.Array,
                            source: jax.Array) -> jax.Array:
  """sum_p w(p) |O(p) - I(p)| / sum_p w(p), with w(p) = mean over channels of |I(p) - S(p)|: the
  L1 error where the driving frame differs from the source, i.e. where something moved. Not in
  the paper: small moving parts (arms) are few pixels of a frame's L1, so the plain L1 barely
  rewards moving them; this term weighs them by how much they changed. No annotation is needed
  (source and driving frames only). (H, W, C) images; 0 when nothing changed."""
  weight = jax.lax.stop_gradient(jnp.mean(jnp.abs(_f32(target) - _f32(source)), axis=-1,
                                          keepdims=True))
  error = jnp.abs(_f32(prediction) - _f32(target))
  return jnp.sum(weight * error) / (jnp.sum(weight) * error.shape[-1] + 1e-6)


def composition_floor_loss(composition: jax.Array, floor: float) -> jax.Array:
  """mean_k max(0, floor - u_k) / floor over the anchor motions k >= 1, u_k the share of the
  frame composed from motion k (the mean of its softmax weight over the base grid; composition
  (h, w, K+1), index 0 the background). Not in the paper: a motion whose weight the softmax has
  driven to ~0 everywhere gets no gradient and never returns (a dead channel, as an unused expert
  of a mixture); measured on the synthetic set, the four arm motions die this way even when they
  are the exact arm motions. The floor keeps each in use on at least `floor` of the frame."""
  usage = jnp.mean(_f32(composition), axis=(0, 1))[1:]
  return jnp.mean(jax.nn.relu(floor - usage)) / floor


def anchor_composition_loss(composition: jax.Array, anchors: jax.Array, floor: float,
                            variance: float) -> jax.Array:
  """mean_k max(0, floor - v_k) / floor, v_k the composition weight of anchor motion k around its
  own driving anchor: sum_z g_k(z) w_k(z), g_k a Gaussian of `variance` (normalised coordinates)
  at anchor k, normalised to sum 1 over the base grid. composition (h, w, K+1), index 0 the
  background; anchors (K, 2) normalised (x, y), held fixed (stop-gradient): the loss moves the
  weights, not the anchors. Not in the paper: a local form of `composition_floor_loss` that
  keeps each motion in use where it is exact (T_k(K_k^d) = K_k^s, Eq. 5), so that the
  reconstruction keeps sending gradient to anchor k."""
  height, width = composition.shape[:2]
  diff = geometry.coordinate_grid(height, width)[:, :, None, :] - jax.lax.stop_gradient(
      _f32(anchors))
  window = jax.nn.softmax(-0.5 * jnp.sum(diff * diff, axis=-1).reshape(height * width, -1)
                          / variance, axis=0)  # (h w, K): the normalised Gaussians
  local = jnp.sum(window * _f32(composition).reshape(height * width, -1)[:, 1:], axis=0)
  return jnp.mean(jax.nn.relu(floor - local)) / floor


# ---------------------------------------------------------------------------------------------
# Temporal regularisation (Eqs. 2-4).


def flow_warp(image: jax.Array, flow: jax.Array) -> jax.Array:
  """f_t(image): (H, W, C) on frame t's grid -> frame t-1's grid, `image(p + flow(p))`.

  `flow` (H, W, 2) is the normalised displacement of each pixel p of frame t-1 into frame t
  (the pipeline's DIS flow). Zeros padding: samples that leave frame t read 0.
  """
  height, width = flow.shape[:2]
  return geometry.warp(image, geometry.coordinate_grid(height, width) + flow, padding_mode="zeros")


def flow_valid_mask(flow: jax.Array) -> jax.Array:
  """(H, W, 1): 1 where p + flow(p) lies inside frame t, else 0 (a constant: no gradient).

  Where the flow leaves the frame, f_t(O_t) is undefined: the zero-padded sample would add a
  gradient-free |I_{t-1}(p)| to the loss, so those pixels are left out of every scheme.
  """
  flow = jax.lax.stop_gradient(_f32(flow))
  height, width = flow.shape[:2]
  coords = geometry.coordinate_grid(height, width) + flow
  x = (coords[..., 0] + 1.0) * (0.5 * (width - 1))
  y = (coords[..., 1] + 1.0) * (0.5 * (height - 1))
  tol = 1e-3  # pixels: an integer shift onto the last row/column must stay valid in float32
  inside = (x >= -tol) & (x <= width - 1 + tol) & (y >= -tol) & (y <= height - 1 + tol)
  return inside[..., None].astype(jnp.float32)


def temporal_residual(prediction: jax.Array, previous: jax.Array, flow: jax.Array) -> jax.Array:
  """|f_t(O_t) - I_{t-1}| per pixel and channel, (H, W, C) on frame t-1's grid (Eq. 2)."""
  return jnp.abs(flow_warp(_f32(prediction), _f32(flow)) - _f32(previous))


def _as_mask(mask: jax.Array, shape: tuple[int, int], name: str) -> jax.Array:
  mask = _f32(mask)
  if mask.ndim == 2:
    mask = mask[..., None]
  if mask.shape != tuple(shape) + (1,):
    raise ValueError(f"temporal_loss: {name} must be (H, W, 1) = {tuple(shape) + (1,)}, "
                     f"got {mask.shape}")
  return mask


def temporal_mask(scheme: str, flow: jax.Array, extrinsic_mask: jax.Array | None = None,
                  confidence_full: jax.Array | None = None) -> jax.Array:
  """The per-pixel weight of the temporal loss on frame t-1's grid, (H, W, 1).

  plain (Eq. 2): 1; extrinsic (Eq. 3): the pipeline's Sundaram et al. mask `extrinsic_mask`
  (already on frame t-1's grid); intrinsic (Eq. 4): M_t(F_t), the generator's confidence map for
  frame t at output resolution, warped by the same flow: warp(confidence_full, grid + flow).
  Each is multiplied by `flow_valid_mask`. "none": zeros. The train step may log the mean of
  this mask to watch a collapse of M towards 0.
  """
  shape = flow.shape[:2]
  if scheme not in TEMPORAL_SCHEMES:
    raise ValueError(f"unknown temporal scheme {scheme!r} (config.temporal.scheme); "
                     f"expected one of {TEMPORAL_SCHEMES}")
  valid = flow_valid_mask(flow)
  if scheme == "none":
    return jnp.zeros_like(valid)
  if scheme == "plain":
    return valid
  if scheme == "extrinsic":
    if extrinsic_mask is None:
      raise ValueError("temporal_loss: config.temporal.scheme='extrinsic' needs extrinsic_mask")
    return valid * jax.lax.stop_gradient(_as_mask(extrinsic_mask, shape, "extrinsic_mask"))
  if confidence_full is None:
    raise ValueError("temporal_loss: config.temporal.scheme='intrinsic' needs confidence_full")
  confidence = _as_mask(confidence_full, shape, "confidence_full")
  # No stop_gradient: the gradient through M into Stage I is the paper's "shortcut" (Sec. 3.2).
  return valid * flow_warp(confidence, _f32(flow))


def temporal_loss(scheme: str, prediction: jax.Array, previous: jax.Array, flow: jax.Array,
                  extrinsic_mask: jax.Array | None = None,
                  confidence_full: jax.Array | None = None) -> jax.Array:
  """L_reg of Eq. 1 for one example: Eq. 2 (plain), Eq. 3 (extrinsic) or Eq. 4 (intrinsic).

  L = mean over pixels p and channels c of |f_t(O_t)(p, c) - I_{t-1}(p, c)| * M(p), with
  f_t(O_t) = warp(O_t, grid + flow) and M from `temporal_mask`. The norm of Eqs. 2-4 is read as
  this mean absolute error. The sum is divided by H*W*C, NOT by sum(M) or mean(M): the paper
  does not normalise by the mask, so shrinking M lowers the loss (the frame loss, which needs M
  through Eq. 6, is what stops M from collapsing).

  Args:
    scheme: config.temporal.scheme, "none" | "plain" | "extrinsic" | "intrinsic".
    prediction: O_t, (H, W, C) on frame t's grid.
    previous: I_{t-1}, (H, W, C) ground truth.
    flow: (H, W, 2) normalised displacement from frame t-1 into frame t.
    extrinsic_mask: (H, W, 1) on frame t-1's grid, for "extrinsic".
    confidence_full: (H, W, 1) M_t on frame t's grid at output resolution, for "intrinsic";
      gradients reach it only in that scheme.
  Returns:
    float32 scalar (0 for "none").
  """
  mask = temporal_mask(scheme, flow, extrinsic_mask, confidence_full)
  if scheme == "none":
    return jnp.zeros((), jnp.float32)
  return jnp.mean(temporal_residual(prediction, previous, flow) * mask)


# ---------------------------------------------------------------------------------------------
# Perceptual (Eq. 9) and style (Eqs. 10-11) losses on VGG-19 features.


def _pyramid_level(image: jax.Array, scale: float) -> jax.Array:
  """The image at `scale` (anti-aliased, FOMM ImagePyramide); sizes floor like torch."""
  if scale == 1:
    return image
  height, width = image.shape[:2]
  new_h = max(1, int(np.floor(height * scale + 1e-6)))
  new_w = max(1, int(np.floor(width * scale + 1e-6)))
  return geometry.downsample(image, new_h, new_w)


def _layer(features: Mapping[str, jax.Array], name: str, where: str) -> jax.Array:
  if name not in features:
    raise KeyError(f"{where}: features_fn returned no {name!r} (has {sorted(features)})")
  value = features[name]
  if value.size == 0:
    raise ValueError(f"{where}: {name} is empty ({value.shape}); the image is too small for "
                     "this layer: use fewer pyramid scales (config.loss.pyramid_scales) or larger "
                     "images")
  return _f32(value)


def _layer_weights(layer_weights: Mapping[str, float] | Sequence[str] | None
                   ) -> dict[str, float]:
  if layer_weights is None:
    return {name: 1.0 for name in PERCEPTUAL_LAYERS}
  if isinstance(layer_weights, Mapping):
    return dict(layer_weights)
  return {name: 1.0 for name in layer_weights}


def _perceptual_terms(pred_features, target_features, weights, where) -> jax.Array:
  total = jnp.zeros((), jnp.float32)
  for name, weight in weights.items():
    a = _layer(pred_features, name, where)
    b = jax.lax.stop_gradient(_layer(target_features, name, where))
    total = total + weight * jnp.mean(jnp.abs(a - b))
  return total


def gram_matrix(features: jax.Array) -> jax.Array:
  """Eq. 11: G(F)_ij = 1/(C H W) sum_{h,w} F_ihw F_jhw for features (H, W, C) -> (C, C)."""
  height, width, channels = features.shape
  flat = _f32(features).reshape(height * width, channels)
  # HIGHEST: a TF32 matmul on GPUs would blur the small Gram differences of similar images.
  gram = jnp.matmul(flat.T, flat, precision=jax.lax.Precision.HIGHEST)
  return gram / (channels * height * width)


def _style_terms(pred_features, target_features, layers, where) -> jax.Array:
  total = jnp.zeros((), jnp.float32)
  for name in layers:
    a = gram_matrix(_layer(pred_features, name, where))
    b = jax.lax.stop_gradient(gram_matrix(_layer(target_features, name, where)))
    total = total + jnp.sum(jnp.square(a - b))
  return total


def perceptual_loss(features_fn: FeaturesFn, prediction: jax.Array, target: jax.Array,
                    scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
                    layer_weights: Mapping[str, float] | Sequence[str] | None = None
                    ) -> jax.Array:
  """Eq. 9 over an image pyramid (FOMM): sum_scales sum_l w_l mean|phi_l(I) - phi_l(O)|.

  The mean over a layer's (h, w, c) is Eq. 9's 1/CHW. Pyramid levels come from
  `geometry.downsample` (anti-aliased) at `scales` (config.loss.pyramid_scales).

  Args:
    features_fn: image (H, W, 3) in [0, 1] -> {layer name: (h, w, c)} (a frozen VGG-19,
      `models.vgg.make_vgg_features_fn`).
    prediction: O_t (H, W, 3); target: I_t (H, W, 3), treated as a constant.
    scales: pyramid scales, 1 = full resolution.
    layer_weights: {layer: weight}, a sequence of layers (weight 1), or None for FOMM's
      relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 with weight 1.
  """
  weights = _layer_weights(layer_weights)
  total = jnp.zeros((), jnp.float32)
  for scale in scales:
    pred = features_fn(_pyramid_level(prediction, scale))
    targ = features_fn(_pyramid_level(target, scale))
    total = total + _perceptual_terms(pred, targ, weights, f"perceptual_loss(scale {scale})")
  return total


def style_loss(features_fn: FeaturesFn, prediction: jax.Array, target: jax.Array,
               layers: Sequence[str] = STYLE_LAYERS) -> jax.Array:
  """Eq. 10 at full resolution: sum_l ||G(phi_l(I)) - G(phi_l(O))||_F^2, G from Eq. 11.

  Reading of Eq. 10: its leading 1/CHW is the same normalisation as Eq. 11's, printed twice;
  it is applied ONCE, inside the Gram matrix (G = F^T F / (C H W)), as in the cited Johnson et
  al. [13], whose style loss is the plain squared Frobenius distance of CHW-normalised Grams.
  Dividing a second time would multiply each layer's term by another 1/(C_l H_l W_l), 1e-7 to
  1e-6 at 512x512, reweighting the layers by their sizes and making lambda_sty resolution
  dependent. Target Grams are constants.
  """
  pred = features_fn(prediction)
  targ = features_fn(target)
  return _style_terms(pred, targ, layers, "style_loss")


def perceptual_and_style_loss(features_fn: FeaturesFn, prediction: jax.Array, target: jax.Array,
                              scales: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
                              layer_weights: Mapping[str, float] | Sequence[str] | None = None,
                              style_layers: Sequence[str] = STYLE_LAYERS
                              ) -> tuple[jax.Array, jax.Array]:
  """(Eq. 9, Eq. 10) sharing one VGG pass at full resolution (the costly one); same values as
  `perceptual_loss` and `style_loss`."""
  weights = _layer_weights(layer_weights)
  per = jnp.zeros((), jnp.float32)
  sty = jnp.zeros((), jnp.float32)
  for scale in scales:
    pred = features_fn(_pyramid_level(prediction, scale))
    targ = features_fn(_pyramid_level(target, scale))
    per = per + _perceptual_terms(pred, targ, weights, f"perceptual_loss(scale {scale})")
    if scale == 1:
      sty = _style_terms(pred, targ, style_layers, "style_loss")
  if 1 not in scales:
    sty = style_loss(features_fn, prediction, target, style_layers)
  return per, sty


# ---------------------------------------------------------------------------------------------
# Adversarial (Eq. 8, multi-scale) and feature matching.


def _as_list(predictions: Any) -> list[jax.Array]:
  if isinstance(predictions, Mapping):
    return [predictions[key] for key in sorted(predictions)]
  if isinstance(predictions, (list, tuple)):
    return list(predictions)
  return [predictions]


def _check_gan_mode(mode: str) -> None:
  if mode not in GAN_MODES:
    raise ValueError(f"unknown GAN mode {mode!r} (config.loss.gan_mode); expected one of "
                     f"{GAN_MODES}")


def generator_adversarial_loss(fake_predictions: Sequence[jax.Array] | jax.Array,
                               mode: str = "vanilla") -> jax.Array:
  """G's part of Eq. 8 summed over the N_D discriminator scales, each map averaged.

  vanilla: the non-saturating form of Eq. 8, -log D(O) = -log sigmoid(logit) per map position;
  lsgan: FOMM's (1 - D(O))^2 on the raw outputs.

  Args:
    fake_predictions: one output map per discriminator scale (e.g. (h, w, 1)) for O_t.
    mode: config.loss.gan_mode.
  """
  _check_gan_mode(mode)
  total = jnp.zeros((), jnp.float32)
  for fake in _as_list(fake_predictions):
    fake = _f32(fake)
    if mode == "vanilla":
      total = total + jnp.mean(-jax.nn.log_sigmoid(fake))
    else:
      total = total + jnp.mean(jnp.square(1.0 - fake))
  return total


def discriminator_loss(real_predictions: Sequence[jax.Array] | jax.Array,
                       fake_predictions: Sequence[jax.Array] | jax.Array,
                       mode: str = "vanilla") -> jax.Array:
  """D's loss, Eq. 8 negated: sum over scales of mean(-log D(I)) + mean(-log(1 - D(O))).

  vanilla: with logits, -log sigmoid(real) - log sigmoid(-fake) (stable for large logits);
  lsgan: FOMM's (1 - D(I))^2 + D(O)^2. The caller stops the gradient into G (fake frames).
  """
  _check_gan_mode(mode)
  reals, fakes = _as_list(real_predictions), _as_list(fake_predictions)
  if len(reals) != len(fakes):
    raise ValueError(f"discriminator_loss: {len(reals)} real vs {len(fakes)} fake scales")
  total = jnp.zeros((), jnp.float32)
  for real, fake in zip(reals, fakes):
    real, fake = _f32(real), _f32(fake)
    if mode == "vanilla":
      total = total + jnp.mean(-jax.nn.log_sigmoid(real)) + jnp.mean(-jax.nn.log_sigmoid(-fake))
    else:
      total = total + jnp.mean(jnp.square(1.0 - real)) + jnp.mean(jnp.square(fake))
  return total


def feature_matching_loss(real_features: Any, fake_features: Any) -> jax.Array:
  """pix2pixHD/FOMM feature matching: sum over scales and layers of mean|D_l(I) - D_l(O)|.

  Both arguments are the same nested structure (e.g. a list per scale of a list per layer of
  (h, w, c) maps); the real features are constants (stop_gradient).
  """
  reals = jax.tree.leaves(real_features)
  fakes = jax.tree.leaves(fake_features)
  if len(reals) != len(fakes):
    raise ValueError(f"feature_matching_loss: {len(reals)} real vs {len(fakes)} fake maps")
  total = jnp.zeros((), jnp.float32)
  for real, fake in zip(reals, fakes):
    if real.shape != fake.shape:
      raise ValueError(f"feature_matching_loss: shapes differ, {real.shape} vs {fake.shape}")
    total = total + jnp.mean(jnp.abs(jax.lax.stop_gradient(_f32(real)) - _f32(fake)))
  return total


# ---------------------------------------------------------------------------------------------
# Equivariance (FOMM; the paper's Sec. 4.1 "equivalence loss" with a TPS transform).


def equivariance_loss(driving_anchors: Mapping[str, jax.Array],
                      transformed_anchors: Mapping[str, jax.Array],
                      tps_params: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
  """Equivariance of the anchors under a random TPS T, for one example (FOMM: first-order-model
  modules/model.py, `Transform` and the equivariance terms of `GeneratorFullModel`).

  The transformed frame is D'(z) = D(T(z)) (`geometry.tps_warp_image`), so a point z of D'
  shows what D shows at T(z): anchors must satisfy kp_D = T(kp_D'), and their Jacobians
  J_D = dT(kp_D') J_D'.

    value    = mean |kp_D - T(kp_D')|                      over K anchors and (x, y)
    jacobian = mean |I - J_D^-1 (dT(kp_D') J_D')|          over K and the 2x2 entries

  Args:
    driving_anchors: {"value": (K, 2), "jacobian": (K, 2, 2)} detected on D.
    transformed_anchors: the same detected on D'.
    tps_params: the transform from `geometry.random_tps`.
  Returns:
    {"value": scalar, "jacobian": scalar}; "jacobian" is 0 when either dict has no Jacobians
    (config.model.motion.estimate_jacobian False).
  """
  kp_d = _f32(driving_anchors["value"])
  kp_t = _f32(transformed_anchors["value"])
  value = jnp.mean(jnp.abs(kp_d - geometry.tps_transform(tps_params, kp_t)))
  if "jacobian" not in driving_anchors or "jacobian" not in transformed_anchors:
    return {"value": value, "jacobian": jnp.zeros((), jnp.float32)}
  grad_t = jax.vmap(lambda point: geometry.tps_jacobian(tps_params, point))(kp_t)  # (K, 2, 2)
  jac_t = jnp.matmul(grad_t, _f32(transformed_anchors["jacobian"]),
                     precision=jax.lax.Precision.HIGHEST)
  normed = jnp.matmul(geometry.inverse_2x2(_f32(driving_anchors["jacobian"])), jac_t,
                      precision=jax.lax.Precision.HIGHEST)
  jacobian = jnp.mean(jnp.abs(jnp.eye(2, dtype=jnp.float32) - normed))
  return {"value": value, "jacobian": jacobian}


def random_colour_change(key: jax.Array, image: jax.Array, strength: float) -> jax.Array:
  """A random affine map of the RGB values, clip(A c + b) with A = I + strength N(0, 1)^(3x3) and
  b = strength / 2 N(0, 1)^3, applied to one (H, W, 3) image in [0, 1].

  Not in FOMM or the paper: composed with the TPS of the equivariance loss (the frame D' becomes
  colour(D(T(z)))), it asks the anchors to follow the geometry and ignore the appearance, which is
  what cross-identity animation needs (the driving person wears other colours than the source).
  strength 0 returns the image unchanged.
  """
  matrix_key, offset_key = jax.random.split(key)
  matrix = jnp.eye(3) + strength * jax.random.normal(matrix_key, (3, 3))
  offset = 0.5 * strength * jax.random.normal(offset_key, (3,))
  return jnp.clip(jnp.einsum("hwc,dc->hwd", _f32(image), matrix) + offset, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Batching: every loss above is per example; a method vmaps it and averages.


def batch_mean(loss_fn: Callable[..., Any]) -> Callable[..., Any]:
  """Turns a per-example loss of array arguments into the batch mean (works on dict outputs)."""

  def batched(*args):
    return jax.tree.map(lambda v: jnp.mean(v, axis=0), jax.vmap(loss_fn)(*args))

  return batched
