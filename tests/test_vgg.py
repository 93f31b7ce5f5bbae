"""models/vgg.py: weight loading (torchvision/timm layouts, every file format) and the forward pass
checked against an independent numpy convolution."""
import importlib.util
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy

from internet_jax.models import vgg

# (torchvision features index, out, in) of the 16 convolutions of VGG-19, written out by hand.
TORCHVISION_CONVS = [
    (0, 64, 3), (2, 64, 64),
    (5, 128, 64), (7, 128, 128),
    (10, 256, 128), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 512, 256), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _torchvision_state(convs=TORCHVISION_CONVS, seed=0):
  """A random torchvision-layout state dict (float16 halves the files; the loader casts)."""
  rng = np.random.default_rng(seed)
  state = {}
  for index, c_out, c_in in convs:
    std = np.sqrt(2.0 / (9 * c_in))
    state[f"features.{index}.weight"] = (std * rng.standard_normal(
        (c_out, c_in, 3, 3), dtype=np.float32)).astype(np.float16)
    state[f"features.{index}.bias"] = (0.1 * rng.standard_normal(c_out)).astype(np.float16)
  # Classifier entries are ignored (small stand-ins for the 4096-wide real ones).
  state["classifier.0.weight"] = np.ones((4, 8), np.float16)
  state["classifier.6.bias"] = np.ones((4,), np.float16)
  return state


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("vgg_weights")
  state = _torchvision_state()
  files = {"state": state}
  files["safetensors"] = str(root / "vgg19.safetensors")
  safetensors.numpy.save_file(state, files["safetensors"])
  files["npz"] = str(root / "vgg19.npz")
  np.savez(files["npz"], **state)
  # timm names the Sequential the same way; its classifier is pre_logits/head. Wrapped as saved
  # from DataParallel ("module.").
  timm = {f"module.{k}": v for k, v in state.items() if k.startswith("features.")}
  timm["module.pre_logits.fc1.weight"] = np.ones((4, 8, 1, 1), np.float16)
  timm["module.head.fc.weight"] = np.ones((10, 4), np.float16)
  files["timm"] = str(root / "timm_vgg19.safetensors")
  safetensors.numpy.save_file(timm, files["timm"])
  # A bare Sequential ("features." missing) under another wrapper prefix.
  bare = {f"vgg.{k[len('features.'):]}": v for k, v in state.items() if k.startswith("features.")}
  files["bare"] = str(root / "bare.npz")
  np.savez(files["bare"], **bare)
  return files


# --- an independent reference forward (float64 numpy) --------------------------------------------


def _conv3x3_same(x, weight, bias):
  """Cross-correlation with zero padding 1 (torch Conv2d(k=3, padding=1)); weight OIHW."""
  h, w, _ = x.shape
  padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
  out = np.zeros((h, w, weight.shape[0]))
  for dy in range(3):
    for dx in range(3):
      out += padded[dy:dy + h, dx:dx + w, :] @ weight[:, :, dy, dx].T
  return out + bias


def _maxpool2(x):
  h, w, c = x.shape
  x = x[:h // 2 * 2, :w // 2 * 2]
  return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def _reference_relu1_1_and_2_1(image, state):
  get = lambda i, kind: np.asarray(state[f"features.{i}.{kind}"], np.float64)
  x = (image.astype(np.float64) - MEAN) / STD
  relu1_1 = np.maximum(_conv3x3_same(x, get(0, "weight"), get(0, "bias")), 0)
  relu1_2 = np.maximum(_conv3x3_same(relu1_1, get(2, "weight"), get(2, "bias")), 0)
  relu2_1 = np.maximum(_conv3x3_same(_maxpool2(relu1_2), get(5, "weight"), get(5, "bias")), 0)
  return relu1_1, relu2_1


def test_layer_tables_match_torchvision():
  indices = [vgg.TORCH_FEATURE_INDEX[n] for n in vgg.CONV_NAMES]
  assert indices == [i for i, _, _ in TORCHVISION_CONVS]
  assert [vgg.CONV_CHANNELS[n] for n in vgg.CONV_NAMES] == [(i, o) for _, o, i in TORCHVISION_CONVS]
  assert len(vgg.LAYER_NAMES) == 16 and vgg.LAYER_NAMES[-1] == "relu5_4"


def test_loaded_forward_matches_numpy_reference(weight_files):
  params = vgg.load_vgg19_params(weight_files["safetensors"])
  # Layout conversion: flax HWIO kernel[h, w, i, o] = torch OIHW weight[o, i, h, w].
  kernel = np.asarray(params["params"]["conv1_1"]["kernel"])
  weight = np.asarray(weight_files["state"]["features.0.weight"], np.float32)
  np.testing.assert_array_equal(kernel[1, 2, 0, 5], weight[5, 0, 1, 2])  # HWIO <- OIHW
  image = np.random.default_rng(5).uniform(size=(12, 12, 3)).astype(np.float32)
  features = vgg.make_features_fn(params, ("relu2_1",))(jnp.asarray(image))
  assert set(features) == {"relu1_1", "relu1_2", "relu2_1"}  # stops at the deepest request
  ref1, ref2 = _reference_relu1_1_and_2_1(image, weight_files["state"])
  np.testing.assert_allclose(np.asarray(features["relu1_1"]), ref1, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(features["relu2_1"]), ref2, atol=1e-4, rtol=1e-4)


def test_all_layouts_and_formats_load_the_same(weight_files):
  reference = vgg.load_vgg19_params(weight_files["safetensors"])
  for name in ("npz", "timm", "bare"):
    loaded = vgg.load_vgg19_params(weight_files[name])
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 reference, loaded)
  shapes = jax.tree.map(lambda x: (x.shape, x.dtype), reference)
  assert shapes == jax.tree.map(lambda x: (x.shape, x.dtype), vgg.random_vgg19_params(0))
  assert shapes["params"]["conv3_2"]["kernel"] == ((3, 3, 256, 256), jnp.float32)


def _single_line_error(error_type, path, match):
  with pytest.raises(error_type) as info:
    vgg.load_vgg19_params(path)
  message = str(info.value)
  assert "\n" not in message and str(path) in message, message
  for part in match:
    assert part in message, message
  return message


def test_loader_errors_are_one_line_and_name_the_file(tmp_path):
  convs = TORCHVISION_CONVS[:3]
  bad_shape = _torchvision_state(convs)
  bad_shape["features.5.weight"] = np.zeros((128, 32, 3, 3), np.float32)
  path = tmp_path / "bad_shape.safetensors"
  safetensors.numpy.save_file(bad_shape, str(path))
  _single_line_error(ValueError, path, ["features.5.weight", "(128, 32, 3, 3)", "(128, 64, 3, 3)"])

  missing = _torchvision_state(convs[:1])
  path = tmp_path / "missing.npz"
  np.savez(path, **missing)
  _single_line_error(ValueError, path, ["features.2.weight", "conv1_2"])

  _single_line_error(FileNotFoundError, tmp_path / "nowhere.safetensors", ["no file"])

  path = tmp_path / "garbage.safetensors"
  path.write_bytes(b"not a safetensors file\nat all")
  _single_line_error(ValueError, path, ["cannot read"])

  path = tmp_path / "pickled.npz"
  np.savez(path, x=np.array([{"a": 1}], dtype=object))  # object arrays need pickle: refused
  _single_line_error(ValueError, path, ["cannot read"])

  path = tmp_path / "bn.npz"
  np.savez(path, **{"features.1.running_mean": np.zeros(64, np.float32)})
  _single_line_error(ValueError, path, ["vgg19_bn"])

  path = tmp_path / "weights.h5"
  path.write_bytes(b"x")
  _single_line_error(ValueError, path, ["unsupported extension"])


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_pth_without_torch_says_how_to_convert(tmp_path):
  path = tmp_path / "vgg19-dcbb9e9d.pth"
  path.write_bytes(b"\x80\x02not really")
  _single_line_error(ImportError, path, ["install torch", ".safetensors"])


def test_random_params_are_deterministic_per_seed():
  a, b, c = vgg.random_vgg19_params(3), vgg.random_vgg19_params(3), vgg.random_vgg19_params(4)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
  assert not np.array_equal(np.asarray(a["params"]["conv1_1"]["kernel"]),
                            np.asarray(c["params"]["conv1_1"]["kernel"]))
  std = float(np.std(np.asarray(a["params"]["conv4_2"]["kernel"])))
  np.testing.assert_allclose(std, np.sqrt(2.0 / (9 * 512)), rtol=0.02)  # He-normal, fan-in


def test_full_forward_shapes_and_layer_limit():
  params = vgg.random_vgg19_params(0)
  features = vgg.make_features_fn(params, vgg.LAYER_NAMES)(jnp.full((2, 16, 16, 3), 0.5))
  assert list(features) == list(vgg.LAYER_NAMES)
  assert features["relu1_2"].shape == (2, 16, 16, 64)
  assert features["relu3_4"].shape == (2, 4, 4, 256)
  assert features["relu5_4"].shape == (2, 1, 1, 512)
  variables = vgg.VGG19(layers=("relu2_1",)).init(jax.random.key(0), jnp.zeros((8, 8, 3)))
  assert set(variables["params"]) == {"conv1_1", "conv1_2", "conv2_1"}
  with pytest.raises(ValueError, match="relu6_1"):
    vgg.make_features_fn(params, ("relu6_1",))


def test_features_fn_gradients_reach_image_not_params():
  params = vgg.random_vgg19_params(1)
  image = jnp.asarray(np.random.default_rng(6).uniform(size=(8, 8, 3)), jnp.float32)
  layers = ("relu2_1",)
  loss = lambda p, x: jnp.sum(vgg.make_features_fn(p, layers)(x)["relu2_1"])
  g_params, g_image = jax.grad(loss, argnums=(0, 1))(params, image)
  assert np.abs(np.asarray(g_image)).max() > 0
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_params))


def test_make_vgg_features_fn_from_config(weight_files, caplog):
  config = ml_collections.ConfigDict(dict(vgg_weights="", allow_random_vgg=False))
  with pytest.raises(ValueError) as info:
    vgg.make_vgg_features_fn(config)
  message = str(info.value)
  assert "\n" not in message and "config.loss.vgg_weights" in message
  # It says how to get the weights: the one-time conversion command and where else to point.
  assert "internet_jax.convert_weights vgg19" in message
  assert "--config.loss.vgg_weights=PATH" in message

  config.allow_random_vgg = True
  with caplog.at_level(logging.WARNING):
    features_fn, description = vgg.make_vgg_features_fn(config, layers=("relu1_1",))
  assert "random" in description
  assert any("random VGG-19" in record.getMessage() for record in caplog.records)
  assert features_fn(jnp.zeros((4, 4, 3)))["relu1_1"].shape == (4, 4, 64)

  config.vgg_weights = weight_files["safetensors"]
  features_fn, description = vgg.make_vgg_features_fn(config, layers=("relu1_1",))
  assert weight_files["safetensors"] in description


def test_create_vgg_for_the_train_step(weight_files):
  config = ml_collections.ConfigDict(dict(
      vgg_weights=weight_files["safetensors"], allow_random_vgg=False,
      style_layers=("relu1_1", "relu2_2")))
  vgg_net, vgg_params = vgg.create_vgg(config)
  # The perceptual layers (FOMM, up to relu5_1) plus the configured style layers.
  assert set(vgg_net.layers) == {"relu1_1", "relu2_1", "relu2_2", "relu3_1", "relu4_1", "relu5_1"}
  small_net = vgg.VGG19(layers=("relu2_1",))
  image = jnp.asarray(np.random.default_rng(7).uniform(size=(8, 8, 3)), jnp.float32)
  loss = lambda p, x: jnp.sum(small_net.apply(p, x)["relu2_1"] ** 2)
  g_params, g_image = jax.grad(loss, argnums=(0, 1))(vgg_params, image)
  assert np.abs(np.asarray(g_image)).max() > 0
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_params))
  np.testing.assert_array_equal(  # the same weights as the loader's
      np.asarray(vgg_params["params"]["conv5_4"]["bias"]),
      np.asarray(weight_files["state"]["features.34.bias"], np.float32))
  config.vgg_weights = ""
  with pytest.raises(ValueError, match="allow_random_vgg"):
    vgg.create_vgg(config)


def test_without_imagenet_normalisation_the_input_is_fed_as_is():
  # VGG19(imagenet_normalize=False) on y must equal the normalising network on y * std + mean,
  # whose normalisation gives back y exactly.
  net_raw = vgg.VGG19(layers=("relu2_1",), imagenet_normalize=False)
  net_normalising = vgg.VGG19(layers=("relu2_1",))
  y = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, size=(2, 8, 8, 3)), jnp.float32)
  variables = net_raw.init(jax.random.key(0), y)
  raw = net_raw.apply(variables, y)["relu2_1"]
  normalised = net_normalising.apply(variables, y * STD + MEAN)["relu2_1"]
  np.testing.assert_allclose(raw, normalised, rtol=1e-4, atol=1e-5)
  assert not np.allclose(raw, net_normalising.apply(variables, y)["relu2_1"], atol=1e-3)
