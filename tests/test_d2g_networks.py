"""D2G-Net's networks (internet_jax/methods/d2g/networks.py).

Known values come from float64 numpy written here from the definitions: torch's ConvTranspose2d
as a scatter of each input pixel times the kernel, grid_sample's bilinear lookup with align
corners and zeros outside (SunYangtian/Neural-Human-Video-Rendering, util/util.py
`texture2image`), AvgPool2d with count_include_pad=False, pix2pixHD's ResnetBlock, and the
paper's Eqs. 3-4. Widths follow the code's arithmetic (models/networks.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from internet_jax.methods.d2g import networks
from numpy_layers import np_conv2d

PARTS = 3
R = 16
TEXTURE = 5
POSE = 3
TINY = dict(uv_base_features=4, uv_max_features=8, uv_num_downsamples=2, uv_num_blocks=1,
            translation_base_features=4, translation_max_features=8,
            translation_num_downsamples=2, translation_num_blocks=1)


def _generator(**kwargs):
  fields = dict(num_parts=PARTS, resolution=R, texture_size=TEXTURE, feature_channels=2, **TINY)
  fields.update(kwargs)
  return networks.D2GGenerator(**fields)


def _pose(seed=0):
  return jax.random.uniform(jax.random.key(seed), (2, R, R, POSE), jnp.float32, -1.0, 1.0)


def _key():
  """An RBG key: XLA:CPU compiles a threefry draw per parameter in about 2 s (measured), which
  made initialisation, not the networks, dominate this file's time; the distributions are the
  same."""
  return jax.random.key(0, impl="rbg")


def _init_with_output(module, *args):
  """(output, variables) from one compilation (init and apply separately would compile twice)."""
  return jax.jit(module.init_with_output)(_key(), *args)


def _param_shapes(module, *shapes):
  args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  variables = jax.eval_shape(module.init, jax.random.key(0), *args)
  return jax.tree_util.tree_map(lambda a: a.shape, variables["params"])


def _random_params(module, *shapes, seed=0, scale=0.05):
  """Parameters of the right shapes drawn in numpy, N(0, scale): the tests that do not check the
  initialisation skip compiling it."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda shape: jnp.asarray(scale * rng.standard_normal(shape), jnp.float32),
      _param_shapes(module, *shapes), is_leaf=lambda leaf: isinstance(leaf, tuple))


# ---------------------------------------------------------------------------------------------
# numpy references


def np_conv_transpose(x, kernel, bias, padding=1):
  """torch ConvTranspose2d(stride 2, output_padding 1) from its definition: every input pixel
  (i, j) adds x[i, j] @ kernel[a, b] at (2i + a, 2j + b) of an uncropped output; the result is
  that output from row/column `padding` on, 2H x 2W of it."""
  b, h, w, _ = x.shape
  k = kernel.shape[0]
  full = np.zeros((b, 2 * (h - 1) + k + 1, 2 * (w - 1) + k + 1, kernel.shape[-1]))
  for i in range(h):
    for j in range(w):
      for a in range(k):
        for c in range(k):
          full[:, 2 * i + a, 2 * j + c] += x[:, i, j] @ kernel[a, c]
  return full[:, padding:padding + 2 * h, padding:padding + 2 * w] + bias


def np_bilinear(tile, x, y):
  """grid_sample with align corners and zeros outside at one normalised point (x, y)."""
  size_y, size_x = tile.shape[:2]
  px = (x + 1.0) / 2.0 * (size_x - 1)
  py = (y + 1.0) / 2.0 * (size_y - 1)
  x0, y0 = int(np.floor(px)), int(np.floor(py))
  value = np.zeros(tile.shape[-1])
  for yi in (y0, y0 + 1):
    for xi in (x0, x0 + 1):
      if 0 <= xi < size_x and 0 <= yi < size_y:
        value += (1 - abs(px - xi)) * (1 - abs(py - yi)) * tile[yi, xi]
  return value


def np_sample_texture(texture, uv, probs):
  b, h, w, parts = probs.shape
  out = np.zeros((b, h, w, texture.shape[-1]))
  for n in range(b):
    for i in range(h):
      for j in range(w):
        for p in range(parts):
          out[n, i, j] += probs[n, i, j, p] * np_bilinear(texture[p], *uv[n, i, j, p])
  return out


def np_instance_norm(x):
  mean = x.mean(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)


def np_avg_pool_exclude_pad(x):
  """AvgPool2d(3, stride 2, padding 1, count_include_pad=False), window by window."""
  b, h, w, c = x.shape
  out_h, out_w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
  out = np.zeros((b, out_h, out_w, c))
  for i in range(out_h):
    for j in range(out_w):
      rows = [r for r in range(2 * i - 1, 2 * i + 2) if 0 <= r < h]
      cols = [s for s in range(2 * j - 1, 2 * j + 2) if 0 <= s < w]
      out[:, i, j] = x[:, rows][:, :, cols].mean(axis=(1, 2))
  return out


def _torch_weight(kernel):
  """(kh, kw, in, out) -> torch Conv2d's (out, in, kh, kw), the layout np_conv2d takes."""
  return np.asarray(kernel, np.float64).transpose(3, 2, 0, 1)


# ---------------------------------------------------------------------------------------------
# layers


def test_conv_transpose_matches_torch_definition():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
  layer = networks.ConvTranspose2d(6)
  kernel = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)
  bias = rng.standard_normal(6).astype(np.float32)
  got = layer.apply({"params": {"kernel": kernel, "bias": bias}}, x)
  assert got.shape == (2, 6, 8, 6)
  want = np_conv_transpose(x.astype(np.float64), kernel.astype(np.float64), bias)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_conv2d_zero_padding_and_stride_match_numpy():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((1, 7, 6, 3)).astype(np.float32)
  layer = networks.Conv2d(4, 4, stride=2, padding=2)
  kernel = rng.standard_normal((4, 4, 3, 4)).astype(np.float32)
  bias = rng.standard_normal(4).astype(np.float32)
  got = layer.apply({"params": {"kernel": kernel, "bias": bias}}, x)
  want = np_conv2d(x.astype(np.float64), _torch_weight(kernel), (2, 2), ((2, 2), (2, 2))) + bias
  assert got.shape == (1, 7 // 2 + 1, 6 // 2 + 1, 4)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_resnet_block_matches_numpy():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
  block = networks.ResnetBlock()
  params = _param_shapes(block, x.shape)
  # Instance norm without affine: the block's only parameters are its two convolutions.
  assert set(params) == {"conv1", "conv2"}
  params = jax.tree_util.tree_map(
      lambda shape: rng.standard_normal(shape).astype(np.float32) * 0.3, params,
      is_leaf=lambda leaf: isinstance(leaf, tuple))
  got = block.apply({"params": params}, x)

  def conv(y, name):
    y = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")  # ReflectionPad2d(1)
    return np_conv2d(y, _torch_weight(params[name]["kernel"])) + params[name]["bias"]

  y = np.maximum(np_instance_norm(conv(x.astype(np.float64), "conv1")), 0.0)
  want = x + np_instance_norm(conv(y, "conv2"))
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_avg_pool_excludes_padding():
  rng = np.random.default_rng(3)
  for shape in [(1, 7, 6, 2), (2, 8, 5, 1)]:
    x = rng.standard_normal(shape).astype(np.float32)
    got = networks.downsample_avg(x)
    want = np_avg_pool_exclude_pad(x.astype(np.float64))
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
  # The corner window has 4 in-bounds elements: their mean, not their sum over 9.
  ones = np.ones((1, 4, 4, 1), np.float32)
  np.testing.assert_allclose(np.asarray(networks.downsample_avg(ones)), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# texture sampling and compositing


def _uv_near_edges(rng, shape):
  """Uniform in [-1, 1] with a quarter of the values within 0.02 of +-1 and a few just beyond."""
  uv = rng.uniform(-1.0, 1.0, shape)
  edge = rng.random(shape) < 0.25
  uv[edge] = np.sign(uv[edge]) * rng.uniform(0.98, 1.05, edge.sum())
  return uv


def test_sample_texture_matches_numpy_loop():
  rng = np.random.default_rng(4)
  texture = rng.standard_normal((PARTS, TEXTURE, TEXTURE, 4))
  uv = _uv_near_edges(rng, (2, 4, 4, PARTS, 2))
  uv[0, 0, 0] = [[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]]  # exact corners read the corner texels
  probs = rng.dirichlet(np.ones(PARTS + 1), (2, 4, 4))[..., 1:]
  got = networks.sample_texture(*(jnp.asarray(a, jnp.float32) for a in (texture, uv, probs)))
  want = np_sample_texture(texture, uv, probs)
  assert got.shape == (2, 4, 4, 4) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)
  corner = probs[0, 0, 0, 0] * texture[0, 0, 0] + probs[0, 0, 0, 1] * texture[1, -1, -1] \
      + probs[0, 0, 0, 2] * texture[2, 0, -1]
  np.testing.assert_allclose(np.asarray(got[0, 0, 0]), corner, atol=1e-5)


def test_sample_texture_gradients_float64():
  rng = np.random.default_rng(5)
  with jax.enable_x64(True):
    texture = rng.standard_normal((PARTS, TEXTURE, TEXTURE, 2))
    # Pixel positions with integer parts in [-1, S - 1] (some corners fall outside the tile) and
    # fractional parts in [0.2, 0.8]: bilinear sampling has kinks at whole pixels.
    pixels = rng.integers(-1, TEXTURE, (1, 3, 3, PARTS, 2)) + rng.uniform(0.2, 0.8,
                                                                         (1, 3, 3, PARTS, 2))
    uv = pixels / (TEXTURE - 1) * 2.0 - 1.0
    probs = rng.dirichlet(np.ones(PARTS + 1), (1, 3, 3))[..., 1:]
    args = tuple(jnp.asarray(a) for a in (texture, uv, probs))
    assert all(a.dtype == jnp.float64 for a in args)
    check_grads(jax.jit(networks.sample_texture), args, order=1, modes=["rev"], atol=1e-5,
                rtol=1e-5)
    grad_uv = jax.grad(lambda u: jnp.sum(networks.sample_texture(args[0], u, args[2]) ** 2))(
        args[1])
    assert float(jnp.abs(grad_uv).max()) > 1e-3


def test_sample_texture_backward_keeps_no_sampled_image_per_part():
  """The gradient's scratch memory grows by less than one sampled image per extra part (it keeps
  the per-part UV and probabilities, 3 floats a pixel, not C-channel samples). Measured on
  XLA:CPU: 48 KiB per part here; 1.8 MiB without the remat and 3.1 MiB for a Python sum over
  parts, against 288 KiB for one sampled image."""
  batch, size, tile, channels = 1, 64, 16, 18

  def temp_bytes(parts):
    shapes = [(parts, tile, tile, channels), (batch, size, size, parts, 2),
              (batch, size, size, parts)]
    loss = lambda *args: jnp.sum(networks.sample_texture(*args) ** 2)  # noqa: E731
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(
        *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  per_part = (temp_bytes(8) - temp_bytes(4)) / 4
  assert per_part < 0.5 * batch * size * size * channels * 4, per_part


def test_sample_texture_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="sample_texture"):
    networks.sample_texture(jnp.zeros((PARTS, 4, 4, 3)), jnp.zeros((1, 2, 2, PARTS + 1, 2)),
                            jnp.zeros((1, 2, 2, PARTS + 1)))


def test_composite_follows_eqs_3_4():
  foreground = np.full((2, 2, 3, 3), 0.6, np.float32)
  foreground[1] = -0.4
  background = np.full((2, 3, 3), -0.2, np.float32)
  p0 = np.array([0.25, 1.0, 0.0], np.float32)[None, None, :] * np.ones((2, 2, 1), np.float32)
  # 0.6 * 0.75 - 0.2 * 0.25 = 0.4; P0 = 1 gives the background, P0 = 0 the foreground.
  want = np.empty((2, 2, 3, 3), np.float32)
  want[0, :, 0], want[0, :, 1], want[0, :, 2] = 0.4, -0.2, 0.6
  want[1, :, 0], want[1, :, 1], want[1, :, 2] = -0.4 * 0.75 - 0.2 * 0.25, -0.2, -0.4
  for prob in (p0, p0[..., None]):
    for bg in (background, np.broadcast_to(background, (2, 2, 3, 3))):
      got = networks.composite(jnp.asarray(foreground), jnp.asarray(bg), jnp.asarray(prob))
      np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# generators and discriminator


def test_default_widths_follow_the_code():
  trans_g = _param_shapes(networks.TransG(num_parts=24), (1, 32, 32, 3))["trunk"]
  assert [trans_g[f"down{i}"]["kernel"][-1] for i in range(1, 5)] == [128, 256, 512, 1024]
  assert [trans_g[f"up{i}"]["kernel"][-1] for i in (3, 2, 1, 0)] == [512, 256, 128, 64]
  assert sum(name.startswith("block") for name in trans_g) == 9
  translation = _param_shapes(networks.TranslationNet(), (1, 32, 32, 18))
  trunk = translation["trunk"]
  assert trunk["stem"]["kernel"] == (7, 7, 18, 64)
  assert [trunk[f"down{i}"]["kernel"][-1] for i in range(1, 5)] == [128, 256, 512, 512]
  assert [trunk[f"up{i}"]["kernel"][-1] for i in (3, 2, 1, 0)] == [512, 256, 128, 64]
  assert sum(name.startswith("block") for name in trunk) == 2
  assert translation["to_rgb"]["kernel"] == (7, 7, 64, 3)
  disc = _param_shapes(networks.MultiscaleDiscriminator(), (1, 32, 32, 3), (1, 32, 32, 3))
  assert set(disc) == {"scale0", "scale1"}
  assert [disc["scale0"][f"conv{i}"]["kernel"][-1] for i in range(4)] == [64, 128, 256, 512]
  assert disc["scale0"]["conv0"]["kernel"] == (4, 4, 6, 64)
  assert disc["scale0"]["logits"]["kernel"] == (4, 4, 512, 1)


def test_trans_g_shapes_ranges_and_init():
  model = networks.TransG(num_parts=PARTS, base_features=8, max_features=16, num_downsamples=1,
                          num_blocks=1)
  (uv, logits), variables = _init_with_output(model, _pose())
  assert uv.shape == (2, R, R, PARTS, 2) and logits.shape == (2, R, R, PARTS + 1)
  assert uv.dtype == logits.dtype == jnp.float32
  assert float(jnp.abs(uv).max()) <= 1.0 and float(jnp.abs(uv).std()) > 0
  # weights_init: N(0, 0.02) conv weights (3 * 3 * 8 * 16 entries in down1).
  kernel = np.asarray(variables["params"]["trunk"]["down1"]["kernel"])
  assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
  # Instance norm without affine parameters anywhere.
  names = {"/".join(str(k.key) for k in path)
           for path, _ in jax.tree_util.tree_flatten_with_path(variables["params"])[0]}
  assert all(name.endswith(("/kernel", "/bias")) for name in names), names


def test_trunk_rejects_indivisible_size():
  model = networks.TranslationNet(base_features=4, max_features=8, num_downsamples=2,
                                  num_blocks=1)
  with pytest.raises(ValueError, match="divisible"):
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 10, 12, 3),
                                                                        jnp.float32))


def test_translation_net_output_and_pytorch_default_init():
  model = networks.TranslationNet(base_features=8, max_features=16, num_downsamples=1,
                                  num_blocks=1)
  x = jax.random.normal(jax.random.key(1), (2, R, R, 5))
  out, variables = _init_with_output(model, x)
  assert out.shape == (2, R, R, 3) and out.dtype == jnp.float32
  assert float(jnp.abs(out).max()) <= 1.0 and float(out.std()) > 0
  # PyTorch's default init U(+-1/sqrt(fan_in)): fan_in = in * 9 = 8 * 9 for the 8 -> 16 conv
  # down1, and out * 9 = 8 * 9 (not in * 9 = 16 * 9) for the 16 -> 8 transposed conv up0: torch
  # reads the fan from the weight's second axis.
  trunk = variables["params"]["trunk"]
  for name, fan_in in (("down1", 8 * 9), ("up0", 8 * 9)):
    bound = 1.0 / np.sqrt(fan_in)
    for leaf in ("kernel", "bias"):
      assert np.abs(np.asarray(trunk[name][leaf])).max() <= bound
    kernel = np.asarray(trunk[name]["kernel"])
    assert abs(kernel.std() - bound / np.sqrt(3.0)) < 0.1 * bound, name


@pytest.fixture(scope="module")
def generated():
  """The full pose-conditioned generator on a 16^2 pose label: model, variables, pose, the
  jitted apply and its outputs."""
  model = _generator(pose_condition=True)
  pose = _pose()
  variables = {"params": _random_params(model, pose.shape)}
  apply = jax.jit(model.apply)
  return model, variables, pose, apply, apply(variables, pose)


def test_generator_parameters():
  params = _param_shapes(_generator(pose_condition=True), (2, R, R, POSE))
  assert set(params) == {"uv_generator", "texture", "translation", "background"}
  assert params["texture"] == (PARTS, TEXTURE, TEXTURE, 5)
  assert params["background"] == (R, R, 3)
  # Pose-conditioned: the translation net's first conv reads 3 + F texture and the pose channels.
  assert params["translation"]["trunk"]["stem"]["kernel"] == (7, 7, 5 + POSE, 4)


def test_generator_outputs_follow_the_equations(generated):
  _, variables, pose, apply, _ = generated
  rng = np.random.default_rng(6)
  # Non-trivial texture and background, so that every term of Eqs. 1, 3, 4 shows.
  params = dict(variables["params"])
  params["texture"] = jnp.asarray(rng.uniform(0, 1, (PARTS, TEXTURE, TEXTURE, 5)), jnp.float32)
  params["background"] = jnp.asarray(rng.uniform(-1, 1, (R, R, 3)), jnp.float32)
  out = apply({"params": params}, pose)
  shapes = {"uv": (2, R, R, PARTS, 2), "logits": (2, R, R, PARTS + 1),
            "probs": (2, R, R, PARTS + 1), "texture_image": (2, R, R, 5),
            "static_foreground": (2, R, R, 3), "foreground": (2, R, R, 3),
            "background": (R, R, 3), "output": (2, R, R, 3), "static_output": (2, R, R, 3)}
  assert {k: v.shape for k, v in out.items()} == shapes
  o = {k: np.asarray(v, np.float64) for k, v in out.items()}
  assert np.abs(o["uv"]).max() <= 1.0
  logits = o["logits"] - o["logits"].max(-1, keepdims=True)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(o["probs"], probs, atol=1e-6)
  texture_image = np_sample_texture(np.asarray(params["texture"], np.float64), o["uv"],
                                    probs[..., 1:])
  np.testing.assert_allclose(o["texture_image"], texture_image, atol=1e-5)
  np.testing.assert_allclose(o["static_foreground"], texture_image[..., :3] * 2 - 1, atol=1e-5)
  assert np.abs(o["foreground"]).max() <= 1.0
  assert np.abs(o["foreground"] - o["static_foreground"]).max() > 1e-3
  p0 = probs[..., :1]
  background = np.asarray(params["background"], np.float64)
  np.testing.assert_allclose(o["output"], o["foreground"] * (1 - p0) + background * p0,
                             atol=1e-5)
  np.testing.assert_allclose(o["static_output"],
                             o["static_foreground"] * (1 - p0) + background * p0, atol=1e-5)
  np.testing.assert_array_equal(o["background"], background)


def test_uv_head_channel_order(generated):
  _, variables, pose, apply, _ = generated
  # A zero UV-head kernel leaves tanh(bias): channel 2p + c must land at uv[..., p, c].
  params = jax.tree_util.tree_map(lambda a: a, variables["params"])
  head = params["uv_generator"]["uv_head"]
  bias = 0.1 * np.arange(2 * PARTS, dtype=np.float32)
  params["uv_generator"]["uv_head"] = {"kernel": jnp.zeros_like(head["kernel"]),
                                       "bias": jnp.asarray(bias)}
  uv = np.asarray(apply({"params": params}, pose)["uv"])
  want = np.tanh(bias.astype(np.float64)).reshape(PARTS, 2)
  np.testing.assert_allclose(uv, np.broadcast_to(want, uv.shape), atol=1e-6)


def test_pose_condition_feeds_the_pose_to_the_translation_net(generated):
  _, variables, pose, apply, out = generated
  # Changing only the stem weights of the pose channels changes the detailed foreground and
  # leaves the static one (TransG + texture) alone.
  params = jax.tree_util.tree_map(lambda a: a, variables["params"])
  stem = params["translation"]["trunk"]["stem"]["kernel"]
  params["translation"]["trunk"]["stem"]["kernel"] = stem.at[:, :, 5:].multiply(-3.0)
  changed = apply({"params": params}, pose)
  np.testing.assert_array_equal(np.asarray(changed["static_foreground"]),
                                np.asarray(out["static_foreground"]))
  assert float(jnp.abs(changed["foreground"] - out["foreground"]).max()) > 1e-4


def test_uv_only_runs_trans_g_alone(generated):
  model, variables, pose, _, out = generated
  uv_out = jax.jit(lambda v, x: model.apply(v, x, uv_only=True))(variables, pose)
  assert set(uv_out) == {"uv", "logits", "probs"}
  for key in uv_out:
    np.testing.assert_allclose(np.asarray(uv_out[key]), np.asarray(out[key]), atol=1e-6)


def test_generator_rejects_wrong_resolution(generated):
  model, variables, *_ = generated
  with pytest.raises(ValueError, match="D2GGenerator"):
    jax.eval_shape(model.apply, variables, jax.ShapeDtypeStruct((1, 2 * R, 2 * R, POSE),
                                                                jnp.float32))


def test_without_translation_foreground_is_static_and_initial_texture():
  model = _generator(use_translation=False)
  out, variables = _init_with_output(model, _pose())
  params = variables["params"]
  assert set(params) == {"uv_generator", "texture", "background"}
  texture = np.asarray(params["texture"])
  assert texture.shape == (PARTS, TEXTURE, TEXTURE, 5)
  np.testing.assert_array_equal(texture[..., :3], 0.5)
  np.testing.assert_array_equal(texture[..., 3:], 0.0)
  np.testing.assert_array_equal(np.asarray(params["background"]), np.zeros((R, R, 3)))
  assert out["texture_image"].shape == (2, R, R, 5)
  np.testing.assert_array_equal(np.asarray(out["foreground"]),
                                np.asarray(out["static_foreground"]))
  # A texture of 0.5 everywhere samples to sum_p P_p * 0.5 wherever the UV stays inside the
  # tile, so the static foreground there is (1 - P_0) - 1 = -P_0.
  p0 = np.asarray(out["probs"][..., 0])
  inside = np.all(np.abs(np.asarray(out["uv"])) <= 1.0, axis=(-1, -2))
  assert inside.any()
  np.testing.assert_allclose(np.asarray(out["static_foreground"])[inside],
                             np.repeat(-p0[inside][:, None], 3, 1), atol=1e-5)


def test_three_channel_texture_with_translation_and_no_pose():
  model = _generator(feature_channels=0)
  pose = _pose()
  params = _random_params(model, pose.shape)
  assert params["texture"].shape == (PARTS, TEXTURE, TEXTURE, 3)
  # PyTorch FgFeature2RGB (pose_condition False): the first conv reads the 3 texture channels.
  assert params["translation"]["trunk"]["stem"]["kernel"].shape == (7, 7, 3, 4)
  params["texture"] = jnp.full(params["texture"].shape, 0.5)
  out = jax.jit(model.apply)({"params": params}, pose)
  assert out["texture_image"].shape == (2, R, R, 3)
  assert out["foreground"].shape == (2, R, R, 3)
  assert np.abs(np.asarray(out["foreground"])).max() <= 1.0
  assert np.isfinite(np.asarray(out["output"])).all()


def test_multiscale_discriminator_shapes():
  model = networks.MultiscaleDiscriminator(base_features=4, max_features=8)
  pose, image = _pose(), _pose(1)
  variables = {"params": _random_params(model, pose.shape, image.shape, scale=0.1)}
  logits = jax.jit(model.apply)(variables, pose, image)
  # pad 2, kernel 4: stride 2 maps H -> H // 2 + 1, stride 1 maps H -> H + 1.
  # scale 0: 16 -> 9 -> 5 -> 3 -> 4 -> 5; scale 1 (avg-pooled to 8): 8 -> 5 -> 3 -> 2 -> 3 -> 4.
  assert isinstance(logits, list)
  assert [l.shape for l in logits] == [(2, 5, 5, 1), (2, 4, 4, 1)]
  assert variables["params"]["scale0"]["conv0"]["kernel"].shape == (4, 4, 6, 4)
  assert all(l.dtype == jnp.float32 and np.isfinite(np.asarray(l)).all() for l in logits)
  # The second scale sees the pooled input: scoring it alone with scale1's weights agrees.
  single = networks.NLayerDiscriminator(base_features=4, max_features=8)
  pooled = networks.downsample_avg(jnp.concatenate([pose, image], -1))
  np.testing.assert_allclose(
      np.asarray(jax.jit(single.apply)({"params": variables["params"]["scale1"]}, pooled)),
      np.asarray(logits[1]), atol=1e-5)


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
  model = _generator(pose_condition=True, dtype=jnp.bfloat16)
  pose = jax.ShapeDtypeStruct((2, R, R, POSE), jnp.float32)
  out, variables = jax.eval_shape(model.init_with_output, _key(), pose)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
  assert {value.dtype for value in out.values()} == {jnp.dtype("float32")}
  disc = networks.MultiscaleDiscriminator(base_features=4, max_features=8, dtype=jnp.bfloat16)
  logits, _ = jax.eval_shape(disc.init_with_output, _key(), pose, out["output"])
  assert [l.dtype for l in logits] == [jnp.float32, jnp.float32]
