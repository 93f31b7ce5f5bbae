"""Shared by the network-metric tests: a float64 numpy convolution written out per tap (torch
OIHW weights, NHWC activations), He-initialised random weights, a random Super SloMo checkpoint,
and the assertions."""
import numpy as np
import pytest

from internet_jax.metrics import MetricUnavailable


def np_conv2d(x, w, stride=(1, 1), pad=((0, 0), (0, 0))):
  x = np.pad(x, ((0, 0), tuple(pad[0]), tuple(pad[1]), (0, 0)))
  _, _, kh, kw = w.shape
  w = np.ascontiguousarray(np.asarray(w, np.float64).transpose(2, 3, 1, 0))  # (kh, kw, I, O)
  ho = (x.shape[1] - kh) // stride[0] + 1
  wo = (x.shape[2] - kw) // stride[1] + 1
  out = np.zeros((x.shape[0], ho, wo, w.shape[-1]))
  for a in range(kh):
    for b in range(kw):
      patch = x[:, a:a + stride[0] * (ho - 1) + 1:stride[0],
                b:b + stride[1] * (wo - 1) + 1:stride[1]]
      out += np.ascontiguousarray(patch) @ w[a, b]
  return out


def he(rng, shape, dtype=np.float32):
  fan_in = int(np.prod(shape[1:]))
  return (np.sqrt(2.0 / fan_in) * rng.standard_normal(shape, dtype=np.float32)).astype(dtype)


def close(got, want, tol=1e-4):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape, (got.shape, want.shape)
  np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(np.abs(want).max(), 1e-6))


def assert_unavailable(fn, *needles):
  with pytest.raises(MetricUnavailable) as info:
    fn()
  message = str(info.value)
  assert "\n" not in message
  for needle in needles:
    assert needle in message, message
  return message


# (name, out, in, kernel) of model.UNet(IN, OUT), IN/OUT filled in per network.
SLOMO_UNET = [("conv1", 32, "IN", 7), ("conv2", 32, 32, 7),
              ("down1.conv1", 64, 32, 5), ("down1.conv2", 64, 64, 5),
              ("down2.conv1", 128, 64, 3), ("down2.conv2", 128, 128, 3),
              ("down3.conv1", 256, 128, 3), ("down3.conv2", 256, 256, 3),
              ("down4.conv1", 512, 256, 3), ("down4.conv2", 512, 512, 3),
              ("down5.conv1", 512, 512, 3), ("down5.conv2", 512, 512, 3),
              ("up1.conv1", 512, 512, 3), ("up1.conv2", 512, 1024, 3),
              ("up2.conv1", 256, 512, 3), ("up2.conv2", 256, 512, 3),
              ("up3.conv1", 128, 256, 3), ("up3.conv2", 128, 256, 3),
              ("up4.conv1", 64, 128, 3), ("up4.conv2", 64, 128, 3),
              ("up5.conv1", 32, 64, 3), ("up5.conv2", 32, 64, 3),
              ("conv3", "OUT", 32, 3)]
SLOMO_NETWORKS = {"state_dictFC": (6, 4), "state_dictAT": (20, 5)}


def slomo_state(seed=0, zero=False):
  """A checkpoint's two state dicts, flattened as the conversion command writes them."""
  rng = np.random.default_rng(seed)
  state = {}
  for prefix, (cin, cout) in SLOMO_NETWORKS.items():
    for name, out, inp, k in SLOMO_UNET:
      out = cout if out == "OUT" else out
      inp = cin if inp == "IN" else inp
      weight = he(rng, (out, inp, k, k))
      if name == "conv3" and prefix == "state_dictFC":
        weight *= 3.0  # flows of a few pixels, so the warps move things
      state[f"{prefix}.{name}.weight"] = 0 * weight if zero else weight
      state[f"{prefix}.{name}.bias"] = np.zeros(out, np.float32) if zero else (
          0.05 * rng.standard_normal(out)).astype(np.float32)
  return state
