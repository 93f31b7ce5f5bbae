"""INTERnet's networks (internet_jax/methods/internet/): shapes, the outputs contract and the geometric identities of INTERnet.

Everything runs at a tiny config (R=64, base 16, K=4, widths 8-32) under jax.jit, one compile per
function, so the file stays fast on a shared CPU.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from internet_jax import geometry, method
from internet_jax.methods.internet import generator as generator_lib
from internet_jax.methods.internet import motion
from internet_jax.methods.internet.discriminator import MultiScaleDiscriminator
from internet_jax.methods.internet.model import INTERnet
from internet_jax.models import layers

R, BASE, K, B = 64, 16, 4, 2


def tiny_config(**model_overrides) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.data.resolution = R
  config.model.base_resolution = BASE
  config.model.num_anchors = K
  config.model.motion.update(detector_block_expansion=8, detector_max_features=32,
                             detector_num_blocks=2, block_expansion=8, max_features=32,
                             num_blocks=2)
  config.model.generator.update(block_expansion=8, max_features=32, num_bottleneck_blocks=1)
  config.model.discriminator.update(num_scales=2, block_expansion=8, max_features=32,
                                    num_blocks=3)
  config.model.update(model_overrides)
  return config


def build(config):
  """(generator, discriminator) of INTERnet's `Method.build`."""
  networks = method.get("internet").build(config)
  return networks.generator, networks.discriminator


def count_params(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def images():
  source = jax.random.uniform(jax.random.key(1), (B, R, R, 3))
  driving = jax.random.uniform(jax.random.key(2), (B, R, R, 3))
  return source, driving


@pytest.fixture(scope="module")
def internet(images):
  """(model, params, outputs of model(source, driving)) from one compiled init_with_output."""
  generator, _ = build(tiny_config())
  outputs, params = jax.jit(generator.init_with_output)(jax.random.key(0), *images)
  return generator, params, outputs


@pytest.fixture(scope="module")
def outputs(internet):
  return internet[2]


# --- Anchor detector ------------------------------------------------------------------------------


def test_anchors_are_expected_coordinates_of_the_heatmap():
  height, width = 8, 10
  logits = np.zeros((1, height, width, 2), np.float32)
  logits[0, 3, 7, 0] = 5.0  # /0.1 temperature -> a delta at row 3, column 7
  # channel 1 stays flat: a uniform heatmap has the grid's centre of mass (0, 0).
  heatmap, anchors = motion.spatial_softmax_anchors(jnp.asarray(logits), 0.1)
  np.testing.assert_allclose(np.sum(heatmap, axis=(1, 2)), 1.0, rtol=1e-6)
  expected = [-1 + 2 * 7 / (width - 1), -1 + 2 * 3 / (height - 1)]  # (x, y), align-corners
  np.testing.assert_allclose(anchors[0, 0], expected, atol=1e-5)
  np.testing.assert_allclose(anchors[0, 1], [0.0, 0.0], atol=1e-6)
  # Two equal peaks: the expectation is their midpoint.
  logits[0, 3, 7, 0] = 0.0
  logits[0, 1, 2, 0] = logits[0, 5, 4, 0] = 5.0
  _, anchors = motion.spatial_softmax_anchors(jnp.asarray(logits), 0.1)
  mid = [-1 + 2 * 3 / (width - 1), -1 + 2 * 3 / (height - 1)]
  np.testing.assert_allclose(anchors[0, 0], mid, atol=1e-5)


def test_detector_outputs_identity_jacobian_and_anchors_in_range(outputs):
  for name in ("source_anchors", "driving_anchors"):
    anchors = outputs[name]
    assert anchors["value"].shape == (B, K, 2) and anchors["value"].dtype == jnp.float32
    assert anchors["jacobian"].shape == (B, K, 2, 2)
    assert anchors["heatmap"].shape == (B, BASE, BASE, K)  # SAME padding: full base grid
    np.testing.assert_allclose(np.sum(anchors["heatmap"], axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.all(np.abs(anchors["value"]) <= 1.0)
    # Zero kernel + identity bias and a heatmap that sums to 1: exactly I at init.
    np.testing.assert_allclose(anchors["jacobian"], np.broadcast_to(np.eye(2), (B, K, 2, 2)),
                               atol=1e-6)
  assert not np.allclose(outputs["source_anchors"]["value"], outputs["driving_anchors"]["value"])


# --- Dense motion ---------------------------------------------------------------------------------


def _random_anchors(key, batch=B, num=K):
  key_v, key_j = jax.random.split(key)
  value = jax.random.uniform(key_v, (batch, num, 2), minval=-0.8, maxval=0.8)
  jacobian = jnp.eye(2) + 0.3 * jax.random.normal(key_j, (batch, num, 2, 2))
  return {"value": value, "jacobian": jacobian}


def test_sparse_motion_maps_driving_anchor_to_source_anchor():
  h = w = 9
  grid = np.asarray(geometry.coordinate_grid(h, w))
  source = _random_anchors(jax.random.key(3), batch=1, num=2)
  driving = _random_anchors(jax.random.key(4), batch=1, num=2)
  # Put the driving anchors on pixel centres so that T_k can be read off the grid.
  pix = [(2, 6), (7, 1)]
  driving["value"] = jnp.asarray([[grid[r, c] for r, c in pix]])
  motions = np.asarray(jax.jit(motion.sparse_motions, static_argnums=(0, 1))(h, w, source, driving))
  assert motions.shape == (1, h, w, 3, 2)
  np.testing.assert_allclose(motions[0, ..., 0, :], grid, atol=1e-6)  # background = identity
  for k, (r, c) in enumerate(pix):
    np.testing.assert_allclose(motions[0, r, c, k + 1], source["value"][0, k], atol=1e-5)
    # First order: one pixel to the right of K^d moves by J^s (J^d)^-1 (dx, 0).
    affine = np.asarray(source["jacobian"][0, k]) @ np.linalg.inv(driving["jacobian"][0, k])
    expected = np.asarray(source["value"][0, k]) + affine @ (grid[r, (c + 1) % w] - grid[r, c])
    np.testing.assert_allclose(motions[0, r, (c + 1) % w, k + 1], expected, atol=1e-5)


def test_dense_motion_is_identity_when_anchors_coincide():
  dense = motion.DenseMotion(num_anchors=K, block_expansion=8, max_features=32, num_blocks=2)
  image = jax.random.uniform(jax.random.key(5), (B, BASE, BASE, 3))
  anchors = _random_anchors(jax.random.key(6))
  other = _random_anchors(jax.random.key(7))

  # One batch of 2B: the first B pairs share their anchors, the last B do not.
  both = lambda a, b: jax.tree.map(lambda x, y: jnp.concatenate([x, y]), a, b)
  source_anchors, driving_anchors = both(anchors, anchors), both(anchors, other)
  images2 = jnp.concatenate([image, image])

  @jax.jit
  def run(key):
    params = dense.init(key, images2, source_anchors, driving_anchors)
    return dense.apply(params, images2, source_anchors, driving_anchors,
                       return_sparse_deformed=True)

  out_both = run(jax.random.key(8))
  out = jax.tree.map(lambda x: x[:B], out_both)
  moved = out_both["motion"][B:]
  assert out["motion"].shape == (B, BASE, BASE, 2) and out["motion"].dtype == jnp.float32
  assert out["confidence"].shape == (B, BASE, BASE, 1)
  assert out["composition"].shape == (B, BASE, BASE, K + 1)
  assert out["sparse_deformed"].shape == (B, BASE, BASE, K + 1, 3)
  np.testing.assert_allclose(np.sum(out["composition"], -1), 1.0, rtol=1e-5)
  assert np.all((out["confidence"] > 0) & (out["confidence"] < 1))
  # Every T_k is the identity, so any convex combination (Eq. 5) is too, whatever the weights.
  grid = np.broadcast_to(geometry.coordinate_grid(BASE, BASE), (B, BASE, BASE, 2))
  np.testing.assert_allclose(out["motion"], grid, atol=1e-5)
  np.testing.assert_allclose(out["sparse_deformed"][..., 0, :], image, atol=1e-5)
  # ... and with different anchors the field is not the identity (the test can fail).
  assert np.abs(np.asarray(moved) - grid).max() > 1e-2


# --- Generator ------------------------------------------------------------------------------------


def test_motion_pyramid_doubles_and_keeps_identity():
  grid = jnp.broadcast_to(geometry.coordinate_grid(BASE, BASE), (1, BASE, BASE, 2))
  pyramid = jax.jit(generator_lib.motion_pyramid, static_argnums=1)(grid, 3)
  assert [p.shape[1] for p in pyramid] == [BASE, 2 * BASE, 4 * BASE]
  np.testing.assert_allclose(pyramid[-1][0], geometry.coordinate_grid(4 * BASE, 4 * BASE),
                             atol=1e-6)
  assert generator_lib.num_levels(512, 128) == 3 and generator_lib.num_levels(64, 64) == 1
  # Eq. 6 with the identity motion and confidence 1 leaves the feature unchanged.
  feature = jax.random.normal(jax.random.key(9), (1, 4 * BASE, 4 * BASE, 5))
  deformed = jax.jit(generator_lib.deform)(feature, pyramid[-1], jnp.ones((1,) * 4))
  np.testing.assert_allclose(deformed, feature, atol=1e-4)


@pytest.mark.parametrize("skip_mode", ["multiscale", "single"])
def test_skips_carry_the_high_resolution_features(skip_mode):
  gen = generator_lib.Generator(R, BASE, block_expansion=8, max_features=32,
                                num_bottleneck_blocks=1, skip_mode=skip_mode)
  source = jax.random.uniform(jax.random.key(10), (1, R, R, 3))
  flow = jnp.broadcast_to(geometry.coordinate_grid(BASE, BASE), (1, BASE, BASE, 2)) * 0.9
  conf = jnp.full((1, BASE, BASE, 1), 0.7)

  @jax.jit
  def run(key):
    params = gen.init(key, source, flow, conf)
    features = gen.apply(params, source, method=gen.encode)
    # Second example: only the full-resolution encoder feature changes, which only a deformable
    # skip connection can see.
    pair = features[:-1] + (features[-1] + 1.0,)
    pair = tuple(jnp.concatenate([f, g]) for f, g in zip(features, pair))
    twice = lambda x: jnp.concatenate([x, x])
    return features, gen.apply(params, pair, twice(flow), twice(conf), method=gen.decode)

  features, out_pair = run(jax.random.key(11))
  out = jax.tree.map(lambda x: x[:1], out_pair)
  assert [f.shape for f in features] == [(1, 16, 16, 32), (1, 32, 32, 16), (1, 64, 64, 8)]
  assert out["prediction"].shape == (1, R, R, 3) and out["prediction"].dtype == jnp.float32
  assert out["motion_pyramid"][-1].shape == (1, R, R, 2)
  assert out["confidence_pyramid"][-1].shape == (1, R, R, 1)
  diff = np.abs(np.asarray(out_pair["prediction"][1] - out_pair["prediction"][0])).max()
  if skip_mode == "multiscale":
    assert diff > 1e-4
  else:  # equal up to rounding (XLA:CPU may round two batch rows differently, ~6e-8)
    assert diff < 1e-6


def test_single_skip_mode_has_fewer_params_and_same_outputs(images):
  counts = {}
  for mode in ("multiscale", "single"):
    config = tiny_config()
    config.model.generator.skip_mode = mode
    generator, _ = build(config)
    params = jax.eval_shape(generator.init, jax.random.key(0), *images)["params"]
    counts[mode] = count_params(params)
    shapes = jax.eval_shape(generator.apply, {"params": params}, *images)
    assert shapes["prediction"].shape == (B, R, R, 3)
    assert shapes["motion_full"].shape == (B, R, R, 2)
  # The decoder convs that read the concatenated skips are narrower without them.
  assert counts["single"] < counts["multiscale"]


# --- INTERnet -------------------------------------------------------------------------------------


def test_internet_outputs_contract(outputs, images):
  expected = {
      "prediction": (B, R, R, 3), "motion": (B, BASE, BASE, 2),
      "confidence": (B, BASE, BASE, 1), "composition": (B, BASE, BASE, K + 1),
      "motion_full": (B, R, R, 2), "confidence_full": (B, R, R, 1),
      "deformed_source": (B, R, R, 3),
  }
  assert set(outputs) == set(expected) | {"source_anchors", "driving_anchors"}
  for key, shape in expected.items():
    assert outputs[key].shape == shape, key
    assert outputs[key].dtype == jnp.float32, key
    assert np.all(np.isfinite(outputs[key])), key
  assert np.all((outputs["prediction"] >= 0) & (outputs["prediction"] <= 1))
  assert np.all((outputs["confidence_full"] >= 0) & (outputs["confidence_full"] <= 1))
  # The pyramid tops are the base fields upsampled: same range, mean close to the base mean.
  np.testing.assert_allclose(outputs["confidence_full"].mean(), outputs["confidence"].mean(),
                             atol=2e-2)
  np.testing.assert_allclose(outputs["deformed_source"],
                             geometry.warp(images[0], outputs["motion_full"]), atol=1e-6)


@pytest.fixture(scope="module")
def animate(internet):
  """The animation path: encode the source once, detect the driving anchors, generate."""
  generator, params, _ = internet

  @jax.jit
  def run(source, driving):
    encoding = generator.apply(params, source, method=INTERnet.encode_source)
    anchors = generator.apply(params, driving, method=INTERnet.detect_anchors)
    return encoding, generator.apply(params, encoding, anchors, method=INTERnet.generate)

  return run


def test_encode_once_then_generate_equals_call(animate, images, outputs):
  encoding, cached = animate(*images)
  assert set(encoding) == {"image", "image_base", "anchors", "features"}
  assert encoding["image_base"].shape == (B, BASE, BASE, 3)
  assert len(encoding["features"]) == 3  # log2(64 / 16) + 1 levels
  assert set(cached) == set(outputs)
  for key in ("prediction", "motion", "confidence", "motion_full", "deformed_source"):
    np.testing.assert_allclose(cached[key], outputs[key], atol=1e-5, err_msg=key)


def test_same_source_and_driving_gives_identity_motion(animate, images):
  source = images[0]
  _, out = animate(source, source)
  np.testing.assert_allclose(out["source_anchors"]["value"], out["driving_anchors"]["value"])
  grid = np.broadcast_to(geometry.coordinate_grid(R, R), (B, R, R, 2))
  np.testing.assert_allclose(out["motion_full"], grid, atol=1e-5)
  np.testing.assert_allclose(out["deformed_source"], source, atol=1e-4)


def test_bfloat16_compute_returns_float32(internet, images, outputs):
  config = tiny_config(dtype="bfloat16")
  generator, _ = build(config)
  _, params, _ = internet  # parameters are float32 in both dtypes: the same tree applies
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
  out = jax.jit(generator.apply)(params, *images)
  for key in ("prediction", "motion", "confidence", "motion_full", "confidence_full"):
    assert out[key].dtype == jnp.float32, key
    assert np.all(np.isfinite(out[key])), key
  # bf16 approximates the same network (measured correlation 0.97 at this config), not another.
  ours, reference = np.ravel(out["prediction"]), np.ravel(outputs["prediction"])
  assert np.corrcoef(ours, reference)[0, 1] > 0.9


def test_composite_source_blends_the_warped_source_by_the_top_confidence(internet, images,
                                                                          outputs):
  config = tiny_config()
  config.model.generator.composite_source = True
  generator, _ = build(config)
  _, params, _ = internet  # the switch adds no parameter: the same tree applies
  blended = jax.jit(generator.apply)(params, *images)
  confidence = outputs["confidence_full"]
  expected = (1 - confidence) * outputs["prediction"] + confidence * outputs["deformed_source"]
  np.testing.assert_allclose(blended["prediction"], expected, atol=5e-5)  # two compilations
  # Identity motion (the driving is the source) and a confidence of 1 return the source exactly.
  ones = jnp.ones((B, R, R, 1))
  np.testing.assert_array_equal(
      generator_lib.composite_with_source(outputs["prediction"], images[0], ones), images[0])


def test_detector_resolution_sets_the_image_the_anchors_come_from(internet, images):
  config = tiny_config()
  config.model.motion.detector_resolution = R
  generator, _ = build(config)
  _, params, _ = internet  # the detector's weights do not depend on its input size
  anchors = jax.jit(lambda p, x: generator.apply(p, x, method=INTERnet.detect_anchors))(
      params, images[0])
  assert anchors["heatmap"].shape == (B, R, R, K)
  # The same detector applied to the full-size image by hand.
  detector = motion.AnchorDetector(num_anchors=K, block_expansion=8, max_features=32,
                                   num_blocks=2)
  expected = detector.apply({"params": params["params"]["detector"]}, images[0])
  np.testing.assert_allclose(anchors["value"], expected["value"], atol=1e-5)
  outputs = jax.jit(generator.apply)(params, *images)
  assert outputs["motion"].shape == (B, BASE, BASE, 2)  # the dense motion stays at the base


# --- Discriminator --------------------------------------------------------------------------------


def test_multiscale_discriminator_structure(images):
  _, disc = build(tiny_config())
  out, params = jax.jit(disc.init_with_output)(jax.random.key(0), images[0])
  assert len(out) == 2 and set(params["params"]) == {"scale_0", "scale_1"}
  sizes = []
  for scale, entry in enumerate(out):
    feats = entry["features"]
    assert len(feats) == 3
    size = R // 2 ** scale
    # strides 2, 2, 1 and widths 8, 16, 32 (block_expansion * 2^i, capped at 32).
    assert [f.shape for f in feats] == [(B, size // 2, size // 2, 8), (B, size // 4, size // 4, 16),
                                        (B, size // 4, size // 4, 32)]
    assert entry["prediction"].shape == (B, size // 4, size // 4, 1)
    assert entry["prediction"].dtype == jnp.float32
    sizes.append(entry["prediction"].shape[1])
  assert sizes[1] < sizes[0]


# --- Registry and validation ----------------------------------------------------------------------


def test_registry_and_one_line_errors():
  assert "internet" in method.available()
  generator, disc = build(tiny_config())
  assert isinstance(generator, INTERnet) and isinstance(disc, MultiScaleDiscriminator)
  with pytest.raises(ValueError, match=r"^config.method: unknown method 'nope'; known: .*internet"):
    method.get("nope")
  for resolution in (72, 48):  # not divisible by 16; 48 / 16 = 3 is not a power of two
    config = tiny_config()
    config.data.resolution = resolution
    with pytest.raises(ValueError, match=r"^config.data.resolution: ") as info:
      build(config)
    assert "\n" not in str(info.value)
  config = tiny_config()
  config.model.motion.num_blocks = 5  # 16 is not divisible by 2^5
  with pytest.raises(ValueError, match=r"^config.model.motion.num_blocks: "):
    build(config)
  config = tiny_config(dtype="float16")
  with pytest.raises(ValueError, match=r"^config.model.dtype: "):
    build(config)
  for size, field in ((24, "detector_resolution"), (2, "detector_num_blocks")):
    config = tiny_config()
    config.model.motion.detector_resolution = size  # 24 does not divide 64; 2 < 2^2 blocks
    with pytest.raises(ValueError, match=rf"^config.model.motion.{field}: "):
      build(config)
  with pytest.raises(ValueError, match="not divisible"):
    layers.Hourglass(8, num_blocks=3).init(jax.random.key(0), jnp.zeros((1, 12, 12, 3)))
