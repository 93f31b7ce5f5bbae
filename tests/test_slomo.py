"""metrics/slomo.py: the Super SloMo port behind the learned Interp-PSNR, on weights made here.

The key -> shape table is typed from Super-SloMo's model.py (UNet(6, 4) and UNet(20, 5)), not
from the module; the numerics are checked against a float64 numpy implementation written from
the reference's description (per-tap convolutions, 2x2 average pooling, align-corners bilinear
upsampling, grid_sample(align_corners=True, zeros) on x + u normalised by W), and the sampler
quirk once more against scipy's map_coordinates.
"""
import contextlib
import datetime
import sys
import types

import numpy as np
import pytest
import safetensors.numpy
import scipy.ndimage
import skimage.metrics

from internet_jax.metrics import slomo
from numpy_layers import assert_unavailable, close, np_conv2d, slomo_state

MEAN = np.array([0.429, 0.431, 0.397])

@pytest.fixture(scope="module")
def slomo_file(tmp_path_factory):
  state = slomo_state()
  path = tmp_path_factory.mktemp("slomo") / "SuperSloMo.safetensors"
  safetensors.numpy.save_file(state, str(path))
  return str(path), state


# ---------------------------------------------------------------------------------------------
# The numpy reference (float64, NHWC).


def np_lrelu(x):
  return np.where(x > 0, x, 0.1 * x)


def np_upsample2_align_corners(x):
  """F.interpolate(scale_factor=2, mode='bilinear', align_corners=True), one axis at a time."""
  for axis in (1, 2):
    size = x.shape[axis]
    src = np.arange(2 * size) * (size - 1) / max(2 * size - 1, 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size - 1)
    frac = (src - low).reshape([-1 if a == axis else 1 for a in range(4)])
    x = np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac
  return x


def np_unet(state, prefix, x):
  def conv(name, x):
    k = state[f"{prefix}.{name}.weight"].shape[-1]
    return np_lrelu(np_conv2d(x, state[f"{prefix}.{name}.weight"], (1, 1),
                              (((k - 1) // 2,) * 2,) * 2) + state[f"{prefix}.{name}.bias"])

  x = conv("conv1", x)
  skips = [conv("conv2", x)]
  for i in range(1, 6):
    s = skips[-1]
    n, h, w, c = s.shape
    pooled = s.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    skips.append(conv(f"down{i}.conv2", conv(f"down{i}.conv1", pooled)))
  x = skips.pop()
  for i in range(1, 6):
    x = conv(f"up{i}.conv1", np_upsample2_align_corners(x))
    x = conv(f"up{i}.conv2", np.concatenate([x, skips.pop()], axis=-1))
  return conv("conv3", x)


def np_grid_sample(image, gx, gy):
  """torch grid_sample(bilinear, zeros, align_corners=True) with normalised gx, gy (N, H, W)."""
  n, h, w, _ = image.shape
  px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
  x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
  out = np.zeros(image.shape)
  batch = np.arange(n)[:, None, None]
  for xi, wx in ((x0, x0 + 1 - px), (x0 + 1, px - x0)):
    for yi, wy in ((y0, y0 + 1 - py), (y0 + 1, py - y0)):
      inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
      value = image[batch, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
      out += (wx * wy * inside)[..., None] * value
  return out


def np_back_warp(image, flow):
  """Super-SloMo backWarp: grid + flow, normalised as 2 (x / W - 0.5)."""
  _, h, w, _ = image.shape
  gx, gy = np.meshgrid(np.arange(w), np.arange(h))
  x, y = gx + flow[..., 0], gy + flow[..., 1]
  return np_grid_sample(image, 2 * (x / w - 0.5), 2 * (y / h - 0.5))


def np_halfway(state, frame_0, frame_1):
  """video_to_slomo.py's inference at t = 1/2 on uint8 frames -> [0, 255] float64."""
  i0, i1 = frame_0 / 255.0 - MEAN, frame_1 / 255.0 - MEAN
  out = np_unet(state, "state_dictFC", np.concatenate([i0, i1], -1))
  f01, f10 = out[..., :2], out[..., 2:4]
  t = 0.5
  ft0 = -t * (1 - t) * f01 + t * t * f10
  ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
  g0, g1 = np_back_warp(i0, ft0), np_back_warp(i1, ft1)
  out = np_unet(state, "state_dictAT",
                np.concatenate([i0, i1, f01, f10, ft1, ft0, g1, g0], -1))
  ft0f, ft1f = out[..., :2] + ft0, out[..., 2:4] + ft1
  v0 = 1 / (1 + np.exp(-out[..., 4:5]))
  v1 = 1 - v0
  mid = (((1 - t) * v0 * np_back_warp(i0, ft0f) + t * v1 * np_back_warp(i1, ft1f))
         / ((1 - t) * v0 + t * v1))
  return 255 * np.clip(mid + MEAN, 0, 1)


def frames(seed, shape):
  """Smooth random uint8 frames (textures a flow can follow)."""
  rng = np.random.default_rng(seed)
  noise = rng.uniform(0, 255, shape)
  return np.clip(scipy.ndimage.gaussian_filter(noise, (0, 2, 2, 0)) * 3 - 255, 0, 255
                 ).astype(np.uint8)


# ---------------------------------------------------------------------------------------------


def test_unet_matches_numpy(slomo_file):
  path, state = slomo_file
  params = slomo.load_slomo_params(path)
  x = np.random.default_rng(1).standard_normal((2, 64, 96, 6)).astype(np.float32)
  close(slomo.unet(params["flow"], x), np_unet(state, "state_dictFC", x.astype(np.float64)))


def test_interpolation_matches_numpy_reference(slomo_file):
  path, state = slomo_file
  model = slomo.create(path, batch_size=2)
  previous, following = frames(2, (3, 64, 96, 3)), frames(3, (3, 64, 96, 3))
  want = np_halfway(state, previous, following)
  got = model.interpolate_halfway(previous, following)
  assert got.dtype == np.float32 and got.shape == previous.shape
  close(got, want)
  # The weights move things: the result is neither input nor their plain average.
  assert np.abs(want - (previous / 2.0 + following / 2.0)).mean() > 1.0


def test_zero_network_averages_the_frames_resampled_at_the_reference_coordinates(tmp_path):
  """All weights 0: flows 0, visibility 1/2, so Î = (g(I0, 0) + g(I1, 0)) / 2 where g samples
  pixel (x, y) at (x (W-1)/W, y (H-1)/H) (the reference's normalisation by W, not W - 1)."""
  path = tmp_path / "zero.safetensors"
  safetensors.numpy.save_file(slomo_state(zero=True), str(path))
  previous, following = frames(4, (1, 32, 64, 3)), frames(5, (1, 32, 64, 3))
  got = slomo.create(str(path)).interpolate_halfway(previous, following)
  h, w = previous.shape[1:3]
  ys, xs = np.meshgrid(np.arange(h) * (h - 1) / h, np.arange(w) * (w - 1) / w, indexing="ij")
  want = np.stack([
      0.5 * (scipy.ndimage.map_coordinates(previous[0, ..., c].astype(np.float64), (ys, xs),
                                           order=1)
             + scipy.ndimage.map_coordinates(following[0, ..., c].astype(np.float64), (ys, xs),
                                             order=1)) for c in range(3)], axis=-1)
  close(got[0], want, tol=1e-5)
  # The shrink is real: an identity sampler would differ by about a pixel at the far edge.
  assert np.abs(want - 0.5 * (previous[0] / 1.0 + following[0])).max() > 1.0


def test_sizes_off_the_multiple_of_32_are_edge_padded_and_cropped(slomo_file):
  path, state = slomo_file
  previous, following = frames(6, (1, 40, 70, 3)), frames(7, (1, 40, 70, 3))
  got = slomo.create(path).interpolate_halfway(previous, following)
  assert got.shape == (1, 40, 70, 3)
  pad = ((0, 0), (0, 24), (0, 26), (0, 0))
  want = np_halfway(state, np.pad(previous, pad, mode="edge"),
                    np.pad(following, pad, mode="edge"))[:, :40, :70]
  close(got, want)


def test_interp_psnr_scores_each_middle_frame(slomo_file):
  path, state = slomo_file
  generated, reference = frames(8, (4, 32, 64, 3)), frames(9, (4, 32, 64, 3))
  result = slomo.create(path).interp_psnr(generated, reference)
  middles = [np_halfway(state, generated[t - 1:t], generated[t + 1:t + 2])[0] for t in (1, 2)]
  want = [skimage.metrics.peak_signal_noise_ratio(reference[t], m, data_range=255)
          for t, m in zip((1, 2), middles)]
  want_self = [skimage.metrics.peak_signal_noise_ratio(generated[t], m, data_range=255)
               for t, m in zip((1, 2), middles)]
  np.testing.assert_allclose(result["interp_psnr_per_frame"], want, atol=1e-3)
  np.testing.assert_allclose(result["interp_psnr_self_per_frame"], want_self, atol=1e-3)
  assert result["interp_psnr"] == pytest.approx(np.mean(want), abs=1e-3)
  assert result["interp_psnr_self"] == pytest.approx(np.mean(want_self), abs=1e-3)
  with pytest.raises(ValueError, match="at least 3 frames"):
    slomo.create(path).interp_psnr(generated[:2], reference[:2])


def test_weight_errors_name_the_file_and_the_key(tmp_path, slomo_file):
  _, state = slomo_file
  assert_unavailable(lambda: slomo.create(""), "no weights", "--slomo_weights")
  assert_unavailable(lambda: slomo.create(str(tmp_path / "absent.safetensors")),
                     "absent.safetensors", "no file")
  missing = dict(state)
  del missing["state_dictAT.up3.conv2.weight"]
  safetensors.numpy.save_file(missing, str(tmp_path / "missing.safetensors"))
  assert_unavailable(lambda: slomo.create(str(tmp_path / "missing.safetensors")),
                     "missing.safetensors", "'state_dictAT.up3.conv2.weight'", "(128, 256, 3, 3)")
  # The refinement U-Net's first layer takes 20 channels; a 6-channel one is the wrong network.
  swapped = dict(state)
  swapped["state_dictAT.conv1.weight"] = state["state_dictFC.conv1.weight"]
  safetensors.numpy.save_file(swapped, str(tmp_path / "swapped.safetensors"))
  assert_unavailable(lambda: slomo.create(str(tmp_path / "swapped.safetensors")),
                     "'state_dictAT.conv1.weight' has shape (32, 6, 7, 7), expected (32, 20, 7, 7)")
  # Without torch (or with it, for this empty file) the hint carries the conversion command,
  # which flattens the checkpoint's two state dicts.
  (tmp_path / "SuperSloMo.ckpt").write_bytes(b"")
  assert_unavailable(lambda: slomo.create(str(tmp_path / "SuperSloMo.ckpt")),
                     "SuperSloMo.ckpt", "state_dictFC", "add_safe_globals")


def test_the_checkpoint_itself_is_read_through_torch_with_its_state_dicts_flattened(
    tmp_path, monkeypatch, slomo_file):
  """SuperSloMo.ckpt as train.py saves it (two nested state dicts, a datetime, lists), through a
  stand-in for torch that records what the safe loader was allowed."""
  _, state = slomo_file

  class Tensor:
    def __init__(self, array):
      self.array = array

    def detach(self):
      return self

    def float(self):
      return self

    def cpu(self):
      return self

    def numpy(self):
      return self.array

  checkpoint = {"Detail": "End to end Super SloMo.", "epoch": 199, "valPSNR": [[29.5]],
                "timestamp": datetime.datetime(2018, 10, 1), "state_dictFC": {},
                "state_dictAT": {}}
  for key, value in state.items():
    group, name = key.split(".", 1)
    checkpoint[group][name] = Tensor(value)
  allowed = []

  @contextlib.contextmanager
  def safe_globals(classes):
    allowed.extend(classes)
    yield

  def load(path, map_location, weights_only):
    assert weights_only is True and datetime.datetime in allowed
    return checkpoint

  monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(
      load=load, serialization=types.SimpleNamespace(safe_globals=safe_globals)))
  path = tmp_path / "SuperSloMo.ckpt"
  path.write_bytes(b"read by the stand-in")
  params = slomo.load_slomo_params(str(path))
  np.testing.assert_array_equal(params["flow"]["conv1"]["kernel"],
                                state["state_dictFC.conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params["refine"]["up1.conv2"]["bias"],
                                state["state_dictAT.up1.conv2.bias"])
