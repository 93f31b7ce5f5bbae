"""metrics/lpips.py, fid.py, i3d.py: the pretrained-network metrics with random weights.

No pretrained weights exist on our machines, so these tests check the weight layouts (files
built here from key -> shape tables typed independently of the modules), the shapes of the
outputs, and the numerics of the layers against a plain numpy implementation (explicit
per-tap convolutions, pools, batch norm) written from the reference descriptions.
"""
import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import scipy.linalg

from internet_jax.metrics import fid
from internet_jax.metrics import i3d
from internet_jax.metrics import lpips
from numpy_layers import assert_unavailable, close, he, np_conv2d


# ---------------------------------------------------------------------------------------------
# numpy reference layers (float64, NHWC / NTHWC activations, torch OIHW / OIDHW weights).


def np_conv3d(x, w, stride, pads):
  x = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
  _, _, kt, kh, kw = w.shape
  w = np.ascontiguousarray(np.asarray(w, np.float64).transpose(2, 3, 4, 1, 0))
  size = [(x.shape[1 + i] - k) // stride + 1 for i, k in enumerate((kt, kh, kw))]
  out = np.zeros((x.shape[0], *size, w.shape[-1]))
  for a in range(kt):
    for b in range(kh):
      for c in range(kw):
        patch = x[:, a:a + stride * (size[0] - 1) + 1:stride,
                  b:b + stride * (size[1] - 1) + 1:stride, c:c + stride * (size[2] - 1) + 1:stride]
        out += np.ascontiguousarray(patch) @ w[a, b, c]
  return out


def np_max_pool(x, kernel, stride, pads, pad_value=-np.inf):
  """Max over windows along the spatial axes 1..len(kernel) of a channels-last array."""
  x = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)], constant_values=pad_value)
  size = [(x.shape[1 + i] - k) // s + 1 for i, (k, s) in enumerate(zip(kernel, stride))]
  out = np.full((x.shape[0], *size, x.shape[-1]), -np.inf)
  for offset in np.ndindex(*kernel):
    index = (slice(None),) + tuple(slice(o, o + s * (n - 1) + 1, s)
                                   for o, s, n in zip(offset, stride, size))
    out = np.maximum(out, x[index])
  return out


def np_avg_pool_3x3_exclude_pad(x):
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  ones = np.pad(np.ones(x.shape[1:3]), 1)
  total = sum(padded[:, a:a + x.shape[1], b:b + x.shape[2]] for a in range(3) for b in range(3))
  count = sum(ones[a:a + x.shape[1], b:b + x.shape[2]] for a in range(3) for b in range(3))
  return total / count[None, :, :, None]


def np_bn_relu(x, state, prefix, eps=1e-3):
  g = lambda k: state[f"{prefix}.{k}"].astype(np.float64)  # noqa: E731
  return np.maximum((x - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight")
                    + g("bias"), 0.0)


def random_bn(rng, state, prefix, channels):
  state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
  state[f"{prefix}.bias"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
  state[f"{prefix}.running_mean"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
  state[f"{prefix}.running_var"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
  state[f"{prefix}.num_batches_tracked"] = np.array(7, np.int64)  # ignored by the loaders


# ---------------------------------------------------------------------------------------------
# LPIPS.

# (torchvision features index, out, in, kernel, stride, pad), typed from torchvision's AlexNet
# and VGG-16 `features`.
ALEX = [(0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1),
        (8, 256, 384, 3, 1, 1), (10, 256, 256, 3, 1, 1)]
VGG = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
       (14, 256, 256), (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512),
       (26, 512, 512), (28, 512, 512)]
HEADS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def lpips_state(net, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  state = {}
  convs = ALEX if net == "alex" else [(i, o, c, 3, 1, 1) for i, o, c in VGG]
  for index, c_out, c_in, k, _, _ in convs:
    state[f"features.{index}.weight"] = he(rng, (c_out, c_in, k, k), dtype)
    state[f"features.{index}.bias"] = (0.1 * rng.standard_normal(c_out)).astype(dtype)
  for k, channels in enumerate(HEADS[net]):
    state[f"lin{k}.model.1.weight"] = rng.uniform(0, 0.2, (1, channels, 1, 1)).astype(np.float32)
  return state


def np_lpips_per_layer(state, net, a, b):
  """Zhang et al.'s LPIPS v0.1 written out in numpy, per layer."""
  shift, scale = np.array([-.030, -.088, -.188]), np.array([.458, .448, .450])
  feats = []
  for frames in (a, b):
    x = (frames.astype(np.float64) / 127.5 - 1.0 - shift) / scale
    taps = []
    if net == "alex":
      for index, _, _, _, stride, pad in ALEX:
        if index in (3, 6):
          x = np_max_pool(x, (3, 3), (2, 2), [(0, 0)] * 2)
        x = np.maximum(np_conv2d(x, state[f"features.{index}.weight"], (stride, stride),
                                 ((pad, pad), (pad, pad))) + state[f"features.{index}.bias"], 0)
        taps.append(x)  # every AlexNet conv's ReLU is an LPIPS layer
    else:
      for index, _, _ in VGG:
        if index in (5, 10, 17, 24):
          x = np_max_pool(x, (2, 2), (2, 2), [(0, 0)] * 2)
        x = np.maximum(np_conv2d(x, state[f"features.{index}.weight"], (1, 1), ((1, 1), (1, 1)))
                       + state[f"features.{index}.bias"].astype(np.float64), 0)
        if index in (2, 7, 14, 21, 28):
          taps.append(x)
    feats.append(taps)
  terms = []
  for k, (f0, f1) in enumerate(zip(*feats)):
    n0 = f0 / (np.sqrt((f0 ** 2).sum(-1, keepdims=True)) + 1e-10)
    n1 = f1 / (np.sqrt((f1 ** 2).sum(-1, keepdims=True)) + 1e-10)
    head = state[f"lin{k}.model.1.weight"].astype(np.float64)  # (1, C, 1, 1): a 1x1 conv
    terms.append(np_conv2d((n0 - n1) ** 2, head)[..., 0].mean(axis=(1, 2)))
  return np.stack(terms, axis=-1)


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory):
  state = lpips_state("alex")
  path = tmp_path_factory.mktemp("lpips") / "lpips_alex.safetensors"
  safetensors.numpy.save_file(state, str(path))
  return str(path), state


def test_lpips_alexnet_matches_numpy(alex_file):
  path, state = alex_file
  metric = lpips.create(path)
  assert metric.net == "alex"
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (2, 48, 40, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
  per_layer = metric.per_layer(a, b)
  close(per_layer, np_lpips_per_layer(state, "alex", a, b))
  distance = metric(a, b)
  assert distance.shape == (2,)
  close(distance, per_layer.sum(-1))
  assert np.all(distance > 0)
  np.testing.assert_array_equal(metric(a, a), np.zeros(2, np.float32))


def test_lpips_vgg_two_files_and_lpips_key_layout(tmp_path):
  state = lpips_state("vgg", seed=2, dtype=np.float16)
  # The backbone as a saved lpips.LPIPS names it (net.sliceK.N.*), in an npz; the heads as the
  # ModuleList copy (lins.K.model.1.weight) in a second file.
  slices = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}
  backbone = {f"net.slice{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
              for k, v in state.items() if k.startswith("features.")}
  backbone["scaling_layer.shift"] = np.array([-.030, -.088, -.188], np.float32)
  heads = {k.replace("lin", "lins.", 1): v for k, v in state.items() if k.startswith("lin")}
  np.savez(tmp_path / "vgg.npz", **backbone)
  safetensors.numpy.save_file(heads, str(tmp_path / "heads.safetensors"))
  metric = lpips.create(f"{tmp_path / 'vgg.npz'}, {tmp_path / 'heads.safetensors'}")
  assert metric.net == "vgg"
  rng = np.random.default_rng(3)
  a = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)  # relu5_3 is 1x1
  b = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
  per_layer = metric.per_layer(a, b)
  close(per_layer, np_lpips_per_layer(state, "vgg", a, b))
  assert per_layer.shape == (2, 5) and np.all(per_layer.sum(-1) > 0)
  assert np.all(metric(b, b) == 0)


def test_lpips_heads_are_1x1_convolutions(alex_file):
  """Each per-layer term is mean_hw(sum_c w_c d_c) of the unit-normalised squared differences."""
  path, state = alex_file
  metric = lpips.create(path)
  rng = np.random.default_rng(4)
  a, b = (rng.integers(0, 256, (1, 40, 40, 3), dtype=np.uint8) for _ in range(2))
  params = lpips.load_lpips_params(path)[0]
  feats = lpips.backbone(params, "alex", lpips.scale_inputs(jnp.asarray(np.concatenate([a, b]))))
  per_layer = metric.per_layer(a, b)
  for k, f in enumerate(feats):
    f = np.asarray(f, np.float64)
    n = f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)
    want = np.einsum("nhwc,oc->nhwo", (n[:1] - n[1:]) ** 2,
                     state[f"lin{k}.model.1.weight"][:, :, 0, 0]).mean(axis=(1, 2, 3))
    close(per_layer[:, k], want)


def test_lpips_weight_errors(tmp_path, alex_file):
  _, state = alex_file
  assert_unavailable(lambda: lpips.create(""), "no weights", "--lpips_weights")
  assert_unavailable(lambda: lpips.create(str(tmp_path / "missing.safetensors")),
                     "missing.safetensors", "no file")
  (tmp_path / "junk.safetensors").write_bytes(b"definitely not a safetensors file")
  assert_unavailable(lambda: lpips.create(str(tmp_path / "junk.safetensors")),
                     "junk.safetensors", "cannot read")
  np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
  assert_unavailable(lambda: lpips.create(str(tmp_path / "objects.npz")), "objects.npz")
  (tmp_path / "w.h5").write_bytes(b"")
  assert_unavailable(lambda: lpips.create(str(tmp_path / "w.h5")), "w.h5", "extension")

  def write(name, **changes):
    changed = {k: v for k, v in state.items() if k not in changes}
    changed.update({k: v for k, v in changes.items() if v is not None})
    path = tmp_path / name
    safetensors.numpy.save_file(changed, str(path))
    return str(path)

  path = write("no_head.safetensors", **{"lin2.model.1.weight": None})
  assert_unavailable(lambda: lpips.create(path), "no_head.safetensors", "lin2.model.1.weight",
                     "(1, 384, 1, 1)")
  path = write("bad_shape.safetensors", **{"features.3.weight": np.zeros((192, 64, 3, 3),
                                                                          np.float32)})
  assert_unavailable(lambda: lpips.create(path), "bad_shape.safetensors", "features.3.weight",
                     "(192, 64, 3, 3)", "(192, 64, 5, 5)")
  path = write("negative.safetensors",
               **{"lin0.model.1.weight": -np.ones((1, 64, 1, 1), np.float32)})
  assert_unavailable(lambda: lpips.create(path), "negative.safetensors", "negative")
  path = write("resnet.safetensors", **{"features.0.weight": np.zeros((64, 3, 7, 7), np.float32)})
  assert_unavailable(lambda: lpips.create(path), "resnet.safetensors", "(64, 3, 7, 7)")
  if importlib.util.find_spec("torch") is None:
    (tmp_path / "alex.pth").write_bytes(b"")
    assert_unavailable(lambda: lpips.create(str(tmp_path / "alex.pth")), "alex.pth",
                       "torch is not installed", "safetensors")


# ---------------------------------------------------------------------------------------------
# Fréchet distance.


def test_frechet_distance_matches_direct_scipy():
  rng = np.random.default_rng(5)
  a = rng.standard_normal((300, 12)) @ rng.standard_normal((12, 12)) + rng.standard_normal(12)
  b = rng.standard_normal((250, 12)) @ rng.standard_normal((12, 12))
  mu_a, mu_b = a.mean(0), b.mean(0)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  want = (np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b)
          - 2 * np.trace(np.real(scipy.linalg.sqrtm(s_a @ s_b))))
  got = fid.frechet_distance(a, b)
  assert abs(got - want) <= 1e-6 * abs(want)
  assert abs(fid.frechet_distance(a, a)) < 1e-6 * np.trace(s_a)


def test_frechet_distance_isotropic_closed_form():
  """N(mu_a, s_a^2 I) vs N(mu_b, s_b^2 I): ||mu_a - mu_b||^2 + d (s_a - s_b)^2."""
  rng = np.random.default_rng(6)
  d = 6

  def whitened(n):  # samples whose sample mean is 0 and sample covariance exactly I
    z = rng.standard_normal((n, d))
    z -= z.mean(0)
    return z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T

  mu_a, mu_b, s_a, s_b = rng.standard_normal(d), rng.standard_normal(d), 1.5, 0.5
  got = fid.frechet_distance(mu_a + s_a * whitened(40), mu_b + s_b * whitened(70))
  want = np.sum((mu_a - mu_b) ** 2) + d * (s_a - s_b) ** 2
  assert abs(got - want) <= 1e-6 * want
  assert i3d.fvd(mu_a + s_a * whitened(40), mu_a + s_a * whitened(50)) == pytest.approx(
      0.0, abs=1e-9)


def test_frechet_distance_few_samples_is_finite():
  rng = np.random.default_rng(7)
  value = fid.frechet_distance(rng.standard_normal((4, 10)), rng.standard_normal((5, 10)))
  assert np.isfinite(value) and value > 0


# ---------------------------------------------------------------------------------------------
# FID InceptionV3.


def _inception_table():
  """{name: (out, in, kh, kw, stride, pad_h, pad_w)} of pytorch-fid's FID Inception, typed
  from torchvision's Inception3 (BasicConv2d layers) and pytorch-fid's patched blocks."""
  t = {"Conv2d_1a_3x3": (32, 3, 3, 3, 2, 0, 0), "Conv2d_2a_3x3": (32, 32, 3, 3, 1, 0, 0),
       "Conv2d_2b_3x3": (64, 32, 3, 3, 1, 1, 1), "Conv2d_3b_1x1": (80, 64, 1, 1, 1, 0, 0),
       "Conv2d_4a_3x3": (192, 80, 3, 3, 1, 0, 0)}
  for name, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
    t.update({f"{name}.branch1x1": (64, cin, 1, 1, 1, 0, 0),
              f"{name}.branch5x5_1": (48, cin, 1, 1, 1, 0, 0),
              f"{name}.branch5x5_2": (64, 48, 5, 5, 1, 2, 2),
              f"{name}.branch3x3dbl_1": (64, cin, 1, 1, 1, 0, 0),
              f"{name}.branch3x3dbl_2": (96, 64, 3, 3, 1, 1, 1),
              f"{name}.branch3x3dbl_3": (96, 96, 3, 3, 1, 1, 1),
              f"{name}.branch_pool": (pool, cin, 1, 1, 1, 0, 0)})
  t.update({"Mixed_6a.branch3x3": (384, 288, 3, 3, 2, 0, 0),
            "Mixed_6a.branch3x3dbl_1": (64, 288, 1, 1, 1, 0, 0),
            "Mixed_6a.branch3x3dbl_2": (96, 64, 3, 3, 1, 1, 1),
            "Mixed_6a.branch3x3dbl_3": (96, 96, 3, 3, 2, 0, 0)})
  for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
    t.update({f"{name}.branch1x1": (192, 768, 1, 1, 1, 0, 0),
              f"{name}.branch7x7_1": (c7, 768, 1, 1, 1, 0, 0),
              f"{name}.branch7x7_2": (c7, c7, 1, 7, 1, 0, 3),
              f"{name}.branch7x7_3": (192, c7, 7, 1, 1, 3, 0),
              f"{name}.branch7x7dbl_1": (c7, 768, 1, 1, 1, 0, 0),
              f"{name}.branch7x7dbl_2": (c7, c7, 7, 1, 1, 3, 0),
              f"{name}.branch7x7dbl_3": (c7, c7, 1, 7, 1, 0, 3),
              f"{name}.branch7x7dbl_4": (c7, c7, 7, 1, 1, 3, 0),
              f"{name}.branch7x7dbl_5": (192, c7, 1, 7, 1, 0, 3),
              f"{name}.branch_pool": (192, 768, 1, 1, 1, 0, 0)})
  t.update({"Mixed_7a.branch3x3_1": (192, 768, 1, 1, 1, 0, 0),
            "Mixed_7a.branch3x3_2": (320, 192, 3, 3, 2, 0, 0),
            "Mixed_7a.branch7x7x3_1": (192, 768, 1, 1, 1, 0, 0),
            "Mixed_7a.branch7x7x3_2": (192, 192, 1, 7, 1, 0, 3),
            "Mixed_7a.branch7x7x3_3": (192, 192, 7, 1, 1, 3, 0),
            "Mixed_7a.branch7x7x3_4": (192, 192, 3, 3, 2, 0, 0)})
  for name, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
    t.update({f"{name}.branch1x1": (320, cin, 1, 1, 1, 0, 0),
              f"{name}.branch3x3_1": (384, cin, 1, 1, 1, 0, 0),
              f"{name}.branch3x3_2a": (384, 384, 1, 3, 1, 0, 1),
              f"{name}.branch3x3_2b": (384, 384, 3, 1, 1, 1, 0),
              f"{name}.branch3x3dbl_1": (448, cin, 1, 1, 1, 0, 0),
              f"{name}.branch3x3dbl_2": (384, 448, 3, 3, 1, 1, 1),
              f"{name}.branch3x3dbl_3a": (384, 384, 1, 3, 1, 0, 1),
              f"{name}.branch3x3dbl_3b": (384, 384, 3, 1, 1, 1, 0),
              f"{name}.branch_pool": (192, cin, 1, 1, 1, 0, 0)})
  return t


INCEPTION = _inception_table()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
  rng = np.random.default_rng(8)
  state = {}
  for name, (c_out, c_in, kh, kw, _, _, _) in INCEPTION.items():
    state[f"{name}.conv.weight"] = he(rng, (c_out, c_in, kh, kw), np.float16)
    random_bn(rng, state, f"{name}.bn", c_out)
  state["fc.weight"] = np.zeros((1008, 2048), np.float16)  # present in the real file, unused
  state["fc.bias"] = np.zeros((1008,), np.float16)
  path = tmp_path_factory.mktemp("fid") / "pt_inception.safetensors"
  safetensors.numpy.save_file(state, str(path))
  return str(path), state, fid.load_inception_params(str(path))


def np_basic(state, name, x):
  _, _, _, _, stride, ph, pw = INCEPTION[name]
  y = np_conv2d(x, state[f"{name}.conv.weight"], (stride, stride), ((ph, ph), (pw, pw)))
  return np_bn_relu(y, state, f"{name}.bn")


def np_block(state, name, x):
  """pytorch-fid's patched blocks in numpy."""
  c = lambda layer, h: np_basic(state, f"{name}.{layer}", h)  # noqa: E731
  cat = lambda *xs: np.concatenate(xs, axis=-1)  # noqa: E731
  if name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
    return cat(c("branch1x1", x), c("branch5x5_2", c("branch5x5_1", x)),
               c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
               c("branch_pool", np_avg_pool_3x3_exclude_pad(x)))
  if name == "Mixed_6a":
    return cat(c("branch3x3", x), c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
               np_max_pool(x, (3, 3), (2, 2), [(0, 0)] * 2))
  if name.startswith("Mixed_6"):
    seven = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
    double = x
    for i in range(1, 6):
      double = c(f"branch7x7dbl_{i}", double)
    return cat(c("branch1x1", x), seven, double, c("branch_pool", np_avg_pool_3x3_exclude_pad(x)))
  if name == "Mixed_7a":
    seven = x
    for i in range(1, 5):
      seven = c(f"branch7x7x3_{i}", seven)
    return cat(c("branch3x3_2", c("branch3x3_1", x)), seven,
               np_max_pool(x, (3, 3), (2, 2), [(0, 0)] * 2))
  three = c("branch3x3_1", x)
  double = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
  pooled = (np_avg_pool_3x3_exclude_pad(x) if name == "Mixed_7b"  # FIDInceptionE_1
            else np_max_pool(x, (3, 3), (1, 1), [(1, 1)] * 2))  # FIDInceptionE_2
  return cat(c("branch1x1", x), c("branch3x3_2a", three), c("branch3x3_2b", three),
             c("branch3x3dbl_3a", double), c("branch3x3dbl_3b", double),
             c("branch_pool", pooled))


def test_fid_first_block_matches_numpy(inception_file):
  _, state, params = inception_file
  x = np.random.default_rng(9).uniform(-1, 1, (2, 23, 23, 3))
  first = np_basic(state, "Conv2d_1a_3x3", x)
  close(fid.basic_conv2d(params, "Conv2d_1a_3x3", jnp.asarray(x, jnp.float32)), first)
  want = np_max_pool(np_basic(state, "Conv2d_2b_3x3", np_basic(state, "Conv2d_2a_3x3", first)),
                     (3, 3), (2, 2), [(0, 0)] * 2)
  got = fid.inception_blocks(params, jnp.asarray(x, jnp.float32), last_block=0)
  assert len(got) == 1
  close(got[0], want)


@pytest.mark.parametrize("name,size,channels", [
    ("Mixed_5b", 5, 192), ("Mixed_6a", 7, 288), ("Mixed_6b", 5, 768), ("Mixed_7a", 5, 768),
    ("Mixed_7b", 3, 1280), ("Mixed_7c", 3, 2048)])
def test_fid_inception_blocks_match_numpy(inception_file, name, size, channels):
  _, state, params = inception_file
  x = np.maximum(np.random.default_rng(10).standard_normal((1, size, size, channels)), 0)
  block = {"Mixed_5b": fid.inception_a, "Mixed_6a": fid.inception_b, "Mixed_6b": fid.inception_c,
           "Mixed_7a": fid.inception_d,
           "Mixed_7b": lambda p, n, h: fid.inception_e(p, n, h, pool="avg"),
           "Mixed_7c": lambda p, n, h: fid.inception_e(p, n, h, pool="max")}[name]
  close(block(params, name, jnp.asarray(x, jnp.float32)), np_block(state, name, x))


def test_fid_features_shape(inception_file):
  path, _, _ = inception_file
  model = fid.create(path)
  frames = np.random.default_rng(11).integers(0, 256, (2, 32, 24, 3), dtype=np.uint8)
  features = model.features(frames)
  assert features.shape == (2, 2048) and features.dtype == np.float32
  assert np.all(np.isfinite(features)) and np.all(features >= 0)  # a mean of ReLU outputs
  assert not np.allclose(features[0], features[1])


def test_bilinear_resize_conventions():
  # torch align_corners=False: 2 -> 4 gives a, .75a+.25b, .25a+.75b, b; 4 -> 2 averages pairs.
  np.testing.assert_allclose(fid.bilinear_matrix(2, 4), [[1, 0], [.75, .25], [.25, .75], [0, 1]])
  np.testing.assert_allclose(fid.bilinear_matrix(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])
  # TF1 resize_bilinear (no half-pixel centres): src = dst * in / out.
  np.testing.assert_allclose(fid.bilinear_matrix(2, 4, half_pixel=False),
                             [[1, 0], [.5, .5], [0, 1], [0, 1]])
  np.testing.assert_allclose(fid.bilinear_matrix(4, 2, half_pixel=False),
                             [[1, 0, 0, 0], [0, 0, 1, 0]])
  # Arbitrary sizes: the torch convention equals jax.image.resize without antialiasing.
  import jax  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(12).uniform(size=(1, 13, 7, 3)).astype(np.float32)
  for size in ((29, 11), (5, 4)):
    want = jax.image.resize(x, (1, *size, 3), "linear", antialias=False)
    close(fid.resize_bilinear(jnp.asarray(x), size), want, 1e-5)


def test_fid_weight_errors(tmp_path, inception_file):
  _, state, _ = inception_file
  assert_unavailable(lambda: fid.create(None), "no weights", "--inception_weights")
  assert_unavailable(lambda: fid.create(str(tmp_path / "nope.npz")), "nope.npz")
  partial = {k: v for k, v in state.items() if not k.startswith("Mixed_7c.branch_pool.bn")}
  safetensors.numpy.save_file(partial, str(tmp_path / "partial.safetensors"))
  assert_unavailable(lambda: fid.create(str(tmp_path / "partial.safetensors")),
                     "partial.safetensors", "Mixed_7c.branch_pool.bn.weight")
  wrong = dict(state)
  wrong["Mixed_6b.branch7x7_2.conv.weight"] = np.zeros((128, 128, 7, 1), np.float16)
  safetensors.numpy.save_file(wrong, str(tmp_path / "wrong.safetensors"))
  assert_unavailable(lambda: fid.create(str(tmp_path / "wrong.safetensors")),
                     "wrong.safetensors", "(128, 128, 7, 1)", "(128, 128, 1, 7)")


# ---------------------------------------------------------------------------------------------
# I3D, FVD, Act-Recog-L1.

# (name, in, (b0, b1a, b1b, b2a, b2b, b3b)) of piergiaj's InceptionI3d Mixed blocks.
I3D_MIXED = [("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
             ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
             ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
             ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
             ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
             ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
             ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
             ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
             ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128))]


def _i3d_table():
  """{unit name: (out, in, k)} for every Unit3D with batch norm."""
  t = {"Conv3d_1a_7x7": (64, 3, 7), "Conv3d_2b_1x1": (64, 64, 1), "Conv3d_2c_3x3": (192, 64, 3)}
  for name, cin, (o0, o1a, o1b, o2a, o2b, o3) in I3D_MIXED:
    t.update({f"{name}.b0": (o0, cin, 1), f"{name}.b1a": (o1a, cin, 1),
              f"{name}.b1b": (o1b, o1a, 3), f"{name}.b2a": (o2a, cin, 1),
              f"{name}.b2b": (o2b, o2a, 3), f"{name}.b3b": (o3, cin, 1)})
  return t


I3D_UNITS = _i3d_table()


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
  rng = np.random.default_rng(13)
  state = {}
  for name, (c_out, c_in, k) in I3D_UNITS.items():
    state[f"{name}.conv3d.weight"] = he(rng, (c_out, c_in, k, k, k), np.float16)
    random_bn(rng, state, f"{name}.bn", c_out)
  state["logits.conv3d.weight"] = he(rng, (400, 1024, 1, 1, 1), np.float16)
  state["logits.conv3d.bias"] = (0.1 * rng.standard_normal(400)).astype(np.float16)
  # DataParallel checkpoints prefix every key with `module.`.
  state = {f"module.{k}": v for k, v in state.items()}
  path = tmp_path_factory.mktemp("i3d") / "rgb_imagenet.safetensors"
  safetensors.numpy.save_file(state, str(path))
  state = {k[len("module."):]: v for k, v in state.items()}
  return str(path), state, i3d.load_i3d_params(str(path))


def tf_same(size, k, s):
  """TF 'SAME' padding (front, back) for one dimension."""
  total = max((-(-size // s) - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def np_unit(state, name, x, stride=1):
  k = I3D_UNITS[name][2]
  pads = [tf_same(n, k, stride) for n in x.shape[1:4]]
  y = np_conv3d(x, state[f"{name}.conv3d.weight"], stride, pads)
  return np_bn_relu(y, state, f"{name}.bn")


def test_i3d_first_unit_and_pool_match_numpy(i3d_file):
  _, state, params = i3d_file
  # Even T (asymmetric SAME padding 2/3) and odd H (3/3).
  x = np.random.default_rng(14).uniform(-1, 1, (1, 6, 9, 10, 3))
  first = np_unit(state, "Conv3d_1a_7x7", x, stride=2)
  got = i3d.unit3d(params, "Conv3d_1a_7x7", jnp.asarray(x, jnp.float32))
  assert got.shape == (1, 3, 5, 5, 64)
  close(got, first)
  pads = [(0, 0)] + [tf_same(n, 3, 2) for n in first.shape[2:4]]
  want = np_max_pool(first, (1, 3, 3), (1, 2, 2), pads, pad_value=0.0)  # F.pad with zeros
  close(i3d.max_pool3d_same(jnp.asarray(first, jnp.float32), (1, 3, 3), (1, 2, 2)), want)


def test_i3d_inception_module_matches_numpy(i3d_file):
  _, state, params = i3d_file
  x = np.maximum(np.random.default_rng(15).standard_normal((1, 3, 4, 5, 192)), 0)
  u = lambda branch, h: np_unit(state, f"Mixed_3b.{branch}", h)  # noqa: E731
  pooled = np_max_pool(x, (3, 3, 3), (1, 1, 1), [(1, 1)] * 3, pad_value=0.0)
  want = np.concatenate([u("b0", x), u("b1b", u("b1a", x)), u("b2b", u("b2a", x)),
                         u("b3b", pooled)], axis=-1)
  close(i3d.inception_module(params, "Mixed_3b", jnp.asarray(x, jnp.float32)), want)


def test_i3d_features_pool_and_logits_layer(i3d_file):
  path, state, _ = i3d_file
  model = i3d.create(path)
  video = np.random.default_rng(16).integers(0, 256, (9, 24, 32, 3), dtype=np.uint8)
  logits, pool = model.embed(video)
  assert logits.shape == (400,) and pool.shape == (1024,)
  assert np.all(np.isfinite(logits)) and np.all(pool >= 0)
  # The time-averaged logits are the 1x1x1 logits convolution (with bias) of the pool features.
  weight = state["logits.conv3d.weight"].astype(np.float64)
  want = np.einsum("oc,c->o", weight[:, :, 0, 0, 0], pool) + state["logits.conv3d.bias"]
  close(logits, want)
  with pytest.raises(ValueError, match="at least 9 frames"):
    model.features(video[:8])


def test_fvd_and_act_recog_l1():
  rng = np.random.default_rng(17)
  real, fake = rng.standard_normal((30, 16)), rng.standard_normal((30, 16))
  assert i3d.fvd(real, fake) == fid.frechet_distance(real, fake)
  assert i3d.act_recog_l1(real, fake) == pytest.approx(np.abs(real - fake).sum(1).mean())
  assert i3d.act_recog_l1(real[0], real[0]) == 0.0
  assert i3d.act_recog_l1(np.zeros(4), np.array([1.0, -2.0, 0.5, 0.0])) == pytest.approx(3.5)
  with pytest.raises(ValueError, match="paired"):
    i3d.act_recog_l1(real, fake[:5])


def test_i3d_weight_errors(tmp_path, i3d_file):
  _, state, _ = i3d_file
  assert_unavailable(lambda: i3d.create(""), "no weights", "--i3d_weights")
  assert_unavailable(lambda: i3d.create(str(tmp_path / "gone.safetensors")), "gone.safetensors")
  charades = dict(state)
  charades["logits.conv3d.weight"] = np.zeros((157, 1024, 1, 1, 1), np.float16)
  charades["logits.conv3d.bias"] = np.zeros((157,), np.float16)
  np.savez(tmp_path / "charades.npz", **charades)
  assert_unavailable(lambda: i3d.create(str(tmp_path / "charades.npz")), "charades.npz",
                     "logits.conv3d.weight", "(400, 1024, 1, 1, 1)")
  partial = {k: v for k, v in state.items() if not k.startswith("Mixed_4d.b2b.")}
  np.savez(tmp_path / "partial.npz", **partial)
  assert_unavailable(lambda: i3d.create(str(tmp_path / "partial.npz")), "partial.npz",
                     "Mixed_4d.b2b.conv3d.weight")
