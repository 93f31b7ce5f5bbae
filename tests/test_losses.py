"""losses.py: every loss checked on constructed cases with hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from internet_jax import geometry
from internet_jax import losses

H, W, C = 16, 16, 3
SHIFT = (2, 1)  # (dx, dy) pixels from frame t-1 into frame t
# A mismatch block in O_t (frame t's grid) and where it lands on frame t-1's grid (minus SHIFT).
BLOCK_T = (slice(5, 9), slice(6, 11))
BLOCK_PREV = (slice(4, 8), slice(4, 9))
OFFSET = 0.5


def _temporal_case():
  """I_{t-1}, O_t = I_{t-1} moved by SHIFT plus OFFSET on BLOCK_T, and the matching flow."""
  rng = np.random.default_rng(0)
  previous = rng.uniform(size=(H, W, C)).astype(np.float32)
  # O_t(p + s) = I_{t-1}(p): rows move down by dy, columns right by dx.
  prediction = np.roll(previous, shift=(SHIFT[1], SHIFT[0]), axis=(0, 1)).copy()
  prediction[BLOCK_T] += OFFSET
  flow = np.broadcast_to(
      geometry.pixel_to_normalized_flow(np.array(SHIFT, np.float32), H, W), (H, W, 2))
  return jnp.asarray(prediction), jnp.asarray(previous), jnp.asarray(flow, jnp.float32)


def _hand_mismatch_mean():
  rows, cols = BLOCK_PREV
  return OFFSET * (rows.stop - rows.start) * (cols.stop - cols.start) * C / (H * W * C)


def test_plain_temporal_loss_zero_for_matching_shift():
  _, previous, flow = _temporal_case()
  exact = jnp.roll(previous, shift=(SHIFT[1], SHIFT[0]), axis=(0, 1))
  assert float(losses.temporal_loss("plain", exact, previous, flow)) < 1e-5
  # The residual itself vanishes on the interior (where p + s lies inside frame t) ...
  residual = np.asarray(losses.temporal_residual(exact, previous, flow))
  np.testing.assert_allclose(residual[:H - SHIFT[1], :W - SHIFT[0]], 0.0, atol=1e-5)
  # ... and the pixels whose flow leaves the frame are masked out.
  valid = np.asarray(losses.flow_valid_mask(flow))[..., 0]
  expected_valid = np.zeros((H, W))
  expected_valid[:H - SHIFT[1], :W - SHIFT[0]] = 1
  np.testing.assert_array_equal(valid, expected_valid)


def test_plain_temporal_loss_equals_hand_computed_mean():
  prediction, previous, flow = _temporal_case()
  value = float(losses.temporal_loss("plain", prediction, previous, flow))
  np.testing.assert_allclose(value, _hand_mismatch_mean(), rtol=1e-4)
  residual = np.asarray(losses.temporal_residual(prediction, previous, flow))
  np.testing.assert_allclose(residual[BLOCK_PREV], OFFSET, atol=1e-5)


def test_extrinsic_mask_removes_mismatch():
  prediction, previous, flow = _temporal_case()
  mask = np.ones((H, W, 1), np.float32)
  mask[BLOCK_PREV] = 0
  value = losses.temporal_loss("extrinsic", prediction, previous, flow, extrinsic_mask=mask)
  assert float(value) < 1e-5
  # Half weight on the block halves the plain value; (H, W) masks are accepted too.
  half = np.where(mask[..., 0] == 0, 0.5, 1.0).astype(np.float32)
  value = losses.temporal_loss("extrinsic", prediction, previous, flow, extrinsic_mask=half)
  np.testing.assert_allclose(float(value), 0.5 * _hand_mismatch_mean(), rtol=1e-4)


def test_intrinsic_mask_is_warped_confidence():
  prediction, previous, flow = _temporal_case()
  confidence = np.ones((H, W, 1), np.float32)
  confidence[BLOCK_T] = 0  # M_t is zero where O_t is wrong, on frame t's grid
  value = losses.temporal_loss("intrinsic", prediction, previous, flow, confidence_full=confidence)
  assert float(value) < 1e-5
  mask = np.asarray(losses.temporal_mask("intrinsic", flow, confidence_full=confidence))[..., 0]
  expected = np.zeros((H, W))
  expected[:H - SHIFT[1], :W - SHIFT[0]] = 1
  expected[BLOCK_PREV] = 0  # the zero block moved back by the shift
  np.testing.assert_allclose(mask, expected, atol=1e-5)
  # A constant confidence scales the plain loss.
  value = losses.temporal_loss("intrinsic", prediction, previous, flow,
                               confidence_full=np.full((H, W, 1), 0.25, np.float32))
  np.testing.assert_allclose(float(value), 0.25 * _hand_mismatch_mean(), rtol=1e-4)


def test_confidence_gradient_only_for_intrinsic():
  prediction, previous, flow = _temporal_case()
  ext = jnp.ones((H, W, 1))
  confidence = jnp.full((H, W, 1), 0.7)
  grads = {}
  for scheme in losses.TEMPORAL_SCHEMES:
    grads[scheme] = np.asarray(jax.grad(
        lambda m, s=scheme: losses.temporal_loss(s, prediction, previous, flow, ext, m))(
            confidence))
  for scheme in ("none", "plain", "extrinsic"):
    assert np.all(grads[scheme] == 0.0), scheme
  # dL/dM_t(z) = sum_c |residual(z - s, c)| / (H W C) on the mismatch block, 0 where matched.
  g = grads["intrinsic"][..., 0]
  np.testing.assert_allclose(g[BLOCK_T], OFFSET * C / (H * W * C), rtol=1e-4)
  outside = np.ones((H, W), bool)
  outside[BLOCK_T] = False
  assert np.abs(g[outside]).max() < 1e-6
  # The prediction gets gradients in every scheme but "none".
  g_pred = jax.grad(lambda o: losses.temporal_loss("plain", o, previous, flow))(prediction)
  assert np.abs(np.asarray(g_pred)).max() > 0


def test_temporal_errors_and_batch():
  prediction, previous, flow = _temporal_case()
  with pytest.raises(ValueError, match="config.temporal.scheme"):
    losses.temporal_loss("bogus", prediction, previous, flow)
  with pytest.raises(ValueError, match="confidence_full"):
    losses.temporal_loss("intrinsic", prediction, previous, flow)
  assert float(losses.temporal_loss("none", prediction, previous, flow)) == 0.0
  batch = [jnp.stack([x, x]) for x in (prediction, previous, flow)]
  value = losses.batch_mean(lambda *a: losses.temporal_loss("plain", *a))(*batch)
  np.testing.assert_allclose(float(value), _hand_mismatch_mean(), rtol=1e-4)


# --- perceptual / style -------------------------------------------------------------------------


def _linear_features(image):
  return {"a": image, "b": 2.0 * image}


def test_gram_matrix_matches_double_loop():
  f = np.random.default_rng(1).normal(size=(5, 4, 3)).astype(np.float32)
  h, w, c = f.shape
  expected = np.zeros((c, c))
  for i in range(c):
    for j in range(c):
      expected[i, j] = sum(f[y, x, i] * f[y, x, j] for y in range(h) for x in range(w))
  expected /= c * h * w
  np.testing.assert_allclose(np.asarray(losses.gram_matrix(f)), expected, rtol=1e-5, atol=1e-6)


def test_style_loss_zero_on_identical_and_hand_value():
  rng = np.random.default_rng(2)
  image = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
  other = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
  assert float(losses.style_loss(_linear_features, image, image, ("a", "b"))) == 0.0
  value = float(losses.style_loss(_linear_features, other, image, ("a", "b")))
  g = lambda x: np.einsum("hwi,hwj->ij", x, x) / x.size  # Eq. 11, once
  x, y = np.asarray(other, np.float64), np.asarray(image, np.float64)
  expected = np.sum((g(x) - g(y)) ** 2) + np.sum((g(2 * x) - g(2 * y)) ** 2)
  assert value > 0
  np.testing.assert_allclose(value, expected, rtol=1e-4)


def test_perceptual_loss_pyramid_value():
  image = jnp.asarray(np.random.default_rng(3).uniform(size=(16, 16, 3)), jnp.float32)
  # Downsampling is linear with unit-sum weights, so a constant offset survives every level:
  # per scale 0.1 (layer a) + 0.5 * 0.2 (layer b).
  value = losses.perceptual_loss(_linear_features, image + 0.1, image, (1.0, 0.5),
                                 {"a": 1.0, "b": 0.5})
  np.testing.assert_allclose(float(value), 2 * 0.2, rtol=1e-4)
  grad_pred, grad_target = jax.grad(
      lambda p, t: losses.perceptual_loss(_linear_features, p, t, (1.0,), ["a"]),
      argnums=(0, 1))(image + 0.1, image)
  assert np.abs(np.asarray(grad_pred)).max() > 0
  assert np.all(np.asarray(grad_target) == 0)  # I_t is a constant
  with pytest.raises(KeyError, match="relu1_1"):
    losses.perceptual_loss(_linear_features, image, image, (1.0,))


def test_perceptual_and_style_with_vgg():
  from internet_jax.models import vgg
  params = vgg.random_vgg19_params(0)
  # Shallow layers keep the compile short; the loss code is the same for any layer.
  features_fn = vgg.make_features_fn(params, ("relu1_1", "relu2_1", "relu2_2"))
  weights, style_layers = {"relu1_1": 1.0, "relu2_1": 0.5}, ("relu1_1", "relu2_2")
  rng = np.random.default_rng(4)
  pred = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32)
  target = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)), jnp.float32)
  scales = (1.0, 0.5)
  per, sty = jax.jit(lambda p, t: losses.batch_mean(lambda a, b: losses.perceptual_and_style_loss(
      features_fn, a, b, scales, weights, style_layers))(p, t))(pred, target)
  # The shared-pass version equals the separate losses, averaged over the batch.
  per_each, sty_each, per_same = jax.jit(lambda p, t: (
      jax.vmap(lambda a, b: losses.perceptual_loss(features_fn, a, b, scales, weights))(p, t),
      jax.vmap(lambda a, b: losses.style_loss(features_fn, a, b, style_layers))(p, t),
      losses.perceptual_loss(features_fn, p[0], p[0], scales, weights)))(pred, target)
  np.testing.assert_allclose(float(per), float(jnp.mean(per_each)), rtol=1e-4)
  np.testing.assert_allclose(float(sty), float(jnp.mean(sty_each)), rtol=1e-4)
  assert np.all(np.asarray(per_each) > 0) and np.all(np.asarray(sty_each) > 0)
  assert float(per_same) == 0.0
  # At 32 px, scale 0.25 leaves 8 px: relu5_1 (after 4 pools) would be empty.
  with pytest.raises(ValueError, match="pyramid_scales"):
    losses.perceptual_loss(vgg.make_features_fn(params), pred[0], target[0], (0.25,))


# --- adversarial / feature matching -------------------------------------------------------------


def test_adversarial_closed_forms():
  zeros = [jnp.zeros((4, 4, 1)), jnp.zeros((2, 2, 1))]
  np.testing.assert_allclose(float(losses.generator_adversarial_loss(zeros, "vanilla")),
                             2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(float(losses.discriminator_loss(zeros, zeros, "vanilla")),
                             4 * np.log(2), rtol=1e-6)
  c = 1.5
  fake = [jnp.full((3, 3, 1), c)]
  np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake, "vanilla")),
                             np.log1p(np.exp(-c)), rtol=1e-6)
  np.testing.assert_allclose(float(losses.discriminator_loss(fake, fake, "vanilla")),
                             np.log1p(np.exp(-c)) + np.log1p(np.exp(c)), rtol=1e-6)
  np.testing.assert_allclose(float(losses.generator_adversarial_loss(zeros, "lsgan")), 2.0)
  real = [jnp.full((3, 3, 1), 0.3)]
  fake = [jnp.full((3, 3, 1), 0.2)]
  np.testing.assert_allclose(float(losses.discriminator_loss(real, fake, "lsgan")),
                             0.7 ** 2 + 0.2 ** 2, rtol=1e-6)
  np.testing.assert_allclose(float(losses.generator_adversarial_loss(fake, "lsgan")), 0.64,
                             rtol=1e-6)
  # Stable for large logits.
  big = [jnp.full((2, 2, 1), 200.0)]
  assert np.isfinite(float(losses.discriminator_loss(big, [-b for b in big], "vanilla")))
  assert np.isfinite(float(losses.generator_adversarial_loss([-b for b in big], "vanilla")))
  with pytest.raises(ValueError, match="config.loss.gan_mode"):
    losses.generator_adversarial_loss(zeros, "wgan")


@pytest.mark.parametrize("mode", losses.GAN_MODES)
def test_discriminator_loss_decreases_as_real_logits_rise(mode):
  fake = [jnp.zeros((4, 4, 1))]
  values = [float(losses.discriminator_loss([jnp.full((4, 4, 1), r)], fake, mode))
            for r in (-1.0, 0.0, 0.5, 1.0)]
  assert all(a > b for a, b in zip(values, values[1:])), values
  batched = losses.batch_mean(lambda r, f: losses.discriminator_loss(r, f, mode))(
      [jnp.full((2, 4, 4, 1), 0.5)], [jnp.zeros((2, 4, 4, 1))])
  np.testing.assert_allclose(float(batched), values[2], rtol=1e-6)


def test_feature_matching_value_and_gradients():
  real = [[jnp.zeros((4, 4, 2)), jnp.ones((2, 2, 3))], [jnp.zeros((3, 3, 1))]]
  fake = [[jnp.full((4, 4, 2), 0.5), jnp.full((2, 2, 3), 3.0)], [jnp.full((3, 3, 1), -0.25)]]
  np.testing.assert_allclose(float(losses.feature_matching_loss(real, fake)), 0.5 + 2.0 + 0.25)
  g_real, g_fake = jax.grad(losses.feature_matching_loss, argnums=(0, 1))(real, fake)
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_real))
  assert all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(g_fake))


# --- equivariance -------------------------------------------------------------------------------


def _affine_params(a, b):
  return {"theta": jnp.asarray(np.concatenate([a, b[:, None]], axis=1), jnp.float32),
          "control_points": geometry.coordinate_grid(3, 3).reshape(-1, 2),
          "control_params": jnp.zeros((9, 2))}


def _random_anchors(seed, k=5):
  rng = np.random.default_rng(seed)
  value = rng.uniform(-0.6, 0.6, size=(k, 2)).astype(np.float32)
  jac = (np.eye(2) + 0.3 * rng.normal(size=(k, 2, 2))).astype(np.float32)
  return {"value": value, "jacobian": jac}


def test_equivariance_identity_is_zero():
  params = geometry.random_tps(jax.random.key(0), 0.0, 0.0, 5)
  anchors = _random_anchors(0)
  out = losses.equivariance_loss(anchors, anchors, params)
  assert float(out["value"]) < 1e-6 and float(out["jacobian"]) < 1e-5


def test_equivariance_consistent_affine_is_zero_and_violation_is_hand_value():
  a = np.array([[1.1, 0.2], [-0.1, 0.9]], np.float32)
  b = np.array([0.05, -0.03], np.float32)
  params = _affine_params(a, b)
  transformed = _random_anchors(1)
  # kp_D = T(kp_D') and J_D = A J_D' satisfy the constraints exactly.
  driving = {"value": transformed["value"] @ a.T + b,
             "jacobian": np.einsum("ij,kjl->kil", a, transformed["jacobian"])}
  out = losses.equivariance_loss(driving, transformed, params)
  assert float(out["value"]) < 1e-6 and float(out["jacobian"]) < 1e-5
  # Violations: every anchor off by (0.1, -0.3); Jacobians twice too large -> J_D^-1 ... = I / 2.
  bad = {"value": driving["value"] + np.array([0.1, -0.3], np.float32),
         "jacobian": 2.0 * driving["jacobian"]}
  out = losses.equivariance_loss(bad, transformed, params)
  np.testing.assert_allclose(float(out["value"]), (0.1 + 0.3) / 2, rtol=1e-5)
  np.testing.assert_allclose(float(out["jacobian"]), 0.25, rtol=1e-5)  # |1 - 1/2| on 2 of 4
  no_jac = losses.equivariance_loss({"value": bad["value"]}, {"value": transformed["value"]},
                                    params)
  assert float(no_jac["jacobian"]) == 0.0


def test_equivariance_batch_and_gradients_with_tps():
  keys = jax.random.split(jax.random.key(1), 2)
  params = jax.vmap(lambda k: geometry.random_tps(k, 0.05, 0.005, 5))(keys)
  transformed = jax.tree.map(lambda x: jnp.stack([x, x]), _random_anchors(2))
  driving = jax.tree.map(lambda x: jnp.stack([x, x]), _random_anchors(3))
  out = jax.jit(losses.batch_mean(losses.equivariance_loss))(driving, transformed, params)
  assert set(out) == {"value", "jacobian"} and all(np.isfinite(float(v)) for v in out.values())
  grads = jax.jit(jax.grad(
      lambda t: sum(losses.batch_mean(losses.equivariance_loss)(driving, t, params).values())))(transformed)
  assert all(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grads))


def test_l1_loss():
  np.testing.assert_allclose(float(losses.l1_loss(jnp.zeros((2, 3)), jnp.full((2, 3), -2.0))), 2.0)
  assert losses.l1_loss(jnp.zeros((2, 3), jnp.bfloat16), jnp.ones((2, 3))).dtype == jnp.float32


def test_pyramid_l1_sums_the_levels():
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.random((16, 16, 3)), jnp.float32)
  # A constant offset c stays c at every level of an (averaging) pyramid: c per level.
  value = losses.pyramid_l1_loss(image + 0.25, image, (1.0, 0.5, 0.25))
  np.testing.assert_allclose(float(value), 3 * 0.25, rtol=1e-5)
  # One level: the plain mean absolute error.
  other = jnp.asarray(rng.random((16, 16, 3)), jnp.float32)
  np.testing.assert_allclose(float(losses.pyramid_l1_loss(image, other)),
                             np.abs(np.asarray(image) - np.asarray(other)).mean(), rtol=1e-6)
  # The half level is anti-aliased: a +-0.1 checkerboard (the Nyquist frequency) all but vanishes
  # there (what is left comes from the image border), so the levels sum to ~0.1.
  checker = np.indices((16, 16)).sum(axis=0) % 2 * 2.0 - 1.0
  wiggle = image + 0.1 * jnp.asarray(checker)[..., None]
  assert float(losses.pyramid_l1_loss(wiggle, image, (0.5,))) < 1e-3
  np.testing.assert_allclose(float(losses.pyramid_l1_loss(wiggle, image, (1.0, 0.5))), 0.1,
                             rtol=1e-2)


def test_random_colour_change_is_one_affine_map_per_image():
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.uniform(0.3, 0.7, (8, 8, 3)), jnp.float32)
  key = jax.random.key(0)  # a draw that leaves most pixels unclipped (others clip a channel)
  np.testing.assert_array_equal(np.asarray(losses.random_colour_change(key, image, 0.0)),
                                np.asarray(image))
  changed = np.asarray(losses.random_colour_change(key, image, 0.2), np.float64)
  assert changed.min() >= 0 and changed.max() <= 1
  assert np.abs(changed - np.asarray(image)).mean() > 0.02  # it does change the colours
  # Every pixel goes through the same map c -> A c + b (where nothing clips): fit A, b by least
  # squares on all pixels; the residual is float noise, and the geometry is untouched.
  inside = np.all((changed > 0) & (changed < 1), axis=-1).ravel()
  colours = np.asarray(image, np.float64).reshape(-1, 3)[inside]
  design = np.concatenate([colours, np.ones((len(colours), 1))], axis=1)
  target = changed.reshape(-1, 3)[inside]
  fit, *_ = np.linalg.lstsq(design, target, rcond=None)
  assert inside.sum() > 40
  np.testing.assert_allclose(design @ fit, target, atol=1e-5)
  assert not np.allclose(fit[:3], np.eye(3), atol=0.05)


def test_composition_floor_charges_only_motions_used_on_less_than_the_floor():
  # 10 x 10 grid, background + 3 motions: motion 1 on 50 cells, motion 2 on 1 cell (1 %), motion
  # 3 nowhere; the rest background.
  composition = np.zeros((10, 10, 4), np.float32)
  composition[..., 0] = 1.0
  composition[:5, :, 0], composition[:5, :, 1] = 0.0, 1.0
  composition[9, 9, 0], composition[9, 9, 2] = 0.0, 1.0
  # floor 2 %: motion 1 free, motion 2 short by 1 % (half the floor), motion 3 by all of it:
  # mean over the 3 motions of (0, 0.01, 0.02) / 0.02 = 0.5.
  np.testing.assert_allclose(losses.composition_floor_loss(composition, 0.02), 0.5, rtol=1e-5)
  np.testing.assert_allclose(losses.composition_floor_loss(composition, 0.01), 1.0 / 3, rtol=1e-5)
  # Its gradient reaches exactly the motions below the floor.
  grad = jax.grad(lambda c: losses.composition_floor_loss(c, 0.02))(jnp.asarray(composition))
  assert np.all(np.asarray(grad[..., 1]) == 0) and np.all(np.asarray(grad[..., 0]) == 0)
  assert np.all(np.asarray(grad[..., 2]) < 0) and np.all(np.asarray(grad[..., 3]) < 0)


def test_anchor_composition_charges_a_motion_by_its_weight_around_its_own_anchor():
  # 5 x 5 grid (normalised spacing 0.5), background + 2 motions; anchor 1 on the centre cell,
  # anchor 2 on the corner cell (-1, -1). Gaussian window of variance 0.25 (one spacing = one
  # sigma): the centre's weights are proportional to exp(-d^2 / 2) in cells, d^2 = 0, 1, 2, 4, ...
  composition = np.zeros((5, 5, 3), np.float32)
  composition[..., 0] = 1.0
  composition[2, 2] = (0.0, 1.0, 0.0)  # motion 1 only on its anchor's cell
  anchors = np.array([[0.0, 0.0], [-1.0, -1.0]], np.float32)
  offsets = np.arange(5) - 2.0
  gauss = np.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2))
  share = 1.0 / gauss.sum()  # the window's weight on the centre cell
  # floor 0.5: motion 1 short by 0.5 - share, motion 2 (unused) by all of it.
  expected = (max(0.5 - share, 0.0) / 0.5 + 1.0) / 2
  np.testing.assert_allclose(losses.anchor_composition_loss(composition, anchors, 0.5, 0.25),
                             expected, rtol=1e-5)
  assert share < 0.5  # so motion 1 is charged too
  # Motion 1 on the whole grid: free; motion 2 charged fully.
  composition[..., 0], composition[..., 1] = 0.0, 1.0
  np.testing.assert_allclose(losses.anchor_composition_loss(composition, anchors, 0.5, 0.25),
                             0.5, rtol=1e-5)
  # The anchors get no gradient (the loss moves weights, not anchors); motion 2's weight near its
  # anchor gets the larger pull than far from it.
  anchor_grad = jax.grad(lambda a: losses.anchor_composition_loss(composition, a, 0.5, 0.25))(
      jnp.asarray(anchors))
  assert np.all(np.asarray(anchor_grad) == 0)
  grad = jax.grad(lambda c: losses.anchor_composition_loss(c, anchors, 0.5, 0.25))(
      jnp.asarray(composition))
  assert float(grad[0, 0, 2]) < float(grad[4, 4, 2]) < 0
  assert np.all(np.asarray(grad[..., :2]) == 0)


def test_change_weighted_l1_counts_only_what_changed_between_source_and_driving():
  source = np.zeros((6, 6, 3), np.float32)
  driving = source.copy()
  driving[1:3, 2:5] = 0.5  # what moved: 6 pixels, weight 0.5 each
  prediction = driving.copy()
  prediction[4:, :] = 0.9  # errors where nothing changed cost nothing
  assert float(losses.change_weighted_l1_loss(prediction, driving, source)) == 0.0
  prediction[1, 2] += np.array([0.3, 0.0, 0.0], np.float32)  # one changed pixel off by 0.3 in R
  # sum w |e| / (sum w * C) = 0.5 * 0.3 / (6 * 0.5 * 3)
  np.testing.assert_allclose(losses.change_weighted_l1_loss(prediction, driving, source),
                             0.5 * 0.3 / (6 * 0.5 * 3), rtol=1e-5)
