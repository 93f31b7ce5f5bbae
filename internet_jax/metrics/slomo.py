"""Super SloMo (Jiang et al., CVPR 2018, "Super SloMo: High quality estimation of multiple
intermediate frames for video interpolation", [12] in the INTERnet paper): the learned frame
interpolator behind the paper's Interp-PSNR.

Interp-PSNR ("Intrinsic Temporal Regularization for High-resolution Human Video Synthesis", Sec. 4.1, Table 2): "we employ a pretrained video frame interpolation
model [12] to predict each frame I_t from O_{t-1} and O_{t+1}, allowing inter-frame consistency
to be reflected by average PSNR". Here Î_t = SuperSloMo(O_{t-1}, O_{t+1}, t = 1/2) and
`interp_psnr` = mean over t = 1..T-2 of PSNR(Î_t, I_t) (L = 255) against the reference frame
I_t, the same reading as `temporal.interp_psnr_flow` (see that module); `interp_psnr_self`
scores Î_t against the generated O_t instead.

The network is a port of the public PyTorch Super SloMo whose pretrained `SuperSloMo.ckpt`
(Adobe240fps) is the one in common use (avinashpaliwal/Super-SloMo, model.py and the inference
path of video_to_slomo.py):
* Both networks are one U-Net (`model.UNet(in, out)`), LeakyReLU(0.1) after every convolution,
  the last included: conv1 7x7 in->32, conv2 7x7 32->32 (skip s1); down1..down5 = 2x2 average
  pool, then two convolutions ((64, 5x5), (128, 3x3), (256, 3x3), (512, 3x3), (512, 3x3));
  skips s2..s5 are down1..down4's outputs; up1..up5 = 2x bilinear upsampling (align_corners=True),
  a 3x3 convolution to (512, 256, 128, 64, 32) channels, concatenation [x, skip], a 3x3
  convolution; conv3 3x3 32->out. Convolutions are zero-padded to keep the size, so H and W must
  be multiples of 32.
* Flow U-Net (6 -> 4) on [I0, I1]: F_{0->1} = out[0:2], F_{1->0} = out[2:4] (pixels, x then y).
* Intermediate flows at time t (Super SloMo's linear approximation):
    F^_{t->0} = -(1-t) t F_{0->1} + t^2 F_{1->0},   F^_{t->1} = (1-t)^2 F_{0->1} - t(1-t) F_{1->0}.
* Refinement U-Net (20 -> 5) on [I0, I1, F_{0->1}, F_{1->0}, F^_{t->1}, F^_{t->0},
  g(I1, F^_{t->1}), g(I0, F^_{t->0})] (that channel order): F_{t->0} = F^_{t->0} + out[0:2],
  F_{t->1} = F^_{t->1} + out[2:4], V_{t<-0} = sigmoid(out[4]), V_{t<-1} = 1 - V_{t<-0}.
* Fusion with visibility: Î_t = ((1-t) V_{t<-0} g(I0, F_{t->0}) + t V_{t<-1} g(I1, F_{t->1}))
  / ((1-t) V_{t<-0} + t V_{t<-1}).
* g is the reference's `backWarp`: it normalises x + u by W (not W - 1) before
  grid_sample(align_corners=True, zero padding), so a pixel samples its source at
  (x + u) (W - 1) / W, (y + v) (H - 1) / H, up to a pixel short towards the top-left corner. The
  pretrained weights were trained with this sampler; it is reproduced, not corrected.
* Frames: RGB on [0, 1] minus the training mean (0.429, 0.431, 0.397) (std 1, as in train.py;
  the CPU branch of video_to_slomo.py that skips the mean is a workaround, not the trained model);
  Î_t + mean is clipped to [0, 1] and scaled to [0, 255].
* Sizes: the reference resizes frames down to a multiple of 32 and the result back; here frames
  are edge-padded at the bottom and right to the next multiple of 32 and Î_t is cropped back,
  which is identical to the reference at multiples of 32 (every resolution of this project) and
  never resamples the frames otherwise.

Weights (none can be downloaded here): `create(path)` reads the checkpoint's two state dicts from
one .safetensors or .npz file whose keys are `state_dictFC.<name>` (flow U-Net) and
`state_dictAT.<name>` (refinement U-Net), `<name>` being model.UNet's parameter names
(`conv1.weight` (32, in, 7, 7), `down1.conv1.weight` (64, 32, 5, 5), `up1.conv2.weight`
(512, 1024, 3, 3), `conv3.bias` (out,), ...; torch layouts). The .ckpt itself is read when torch
is installed. Convert it once, on a machine with torch (the checkpoint also stores a
datetime, which torch's safe loader must be told is harmless):

  python -c "import datetime, torch, safetensors.torch as s;
  torch.serialization.add_safe_globals([datetime.datetime]); c = torch.load('SuperSloMo.ckpt',
  map_location='cpu', weights_only=True); s.save_file({f'{g}.{k}': v.contiguous() for g in
  ('state_dictFC', 'state_dictAT') for k, v in c[g].items()}, 'SuperSloMo.safetensors')"

(one line; the checkpoint is linked from the Super-SloMo README).

Checked once against PyTorch 2.13 (F.grid_sample, F.interpolate, avg_pool2d; a checkpoint saved
as the reference's train.py saves it, read directly and through the command above; 128x160
frames, ~3 px flows): max |difference| 0.0025 on [0, 255]. The tests compare with float64 numpy.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from internet_jax import geometry
from internet_jax.metrics import image as image_metrics
from internet_jax.metrics.fid import (WeightReader, as_reader, check_frames, conv2d,
                                      run_batched)

MEAN = (0.429, 0.431, 0.397)  # Super-SloMo train.py's Normalize(mean, std=1)
NEGATIVE_SLOPE = 0.1
MULTIPLE = 32  # five 2x poolings
# (channels, kernel) of down1..down5, and the output channels of up1..up5.
DOWN = ((64, 5), (128, 3), (256, 3), (512, 3), (512, 3))
UP = (512, 256, 128, 64, 32)
# state-dict prefix -> (our name, input channels, output channels).
NETWORKS = {"state_dictFC": ("flow", 6, 4), "state_dictAT": ("refine", 20, 5)}

SLOMO_HINT = (
    "pass --slomo_weights=FILE, the Super-SloMo checkpoint as one .safetensors with keys "
    "state_dictFC.* and state_dictAT.*: python -c \"import datetime, torch, safetensors.torch as "
    "s; torch.serialization.add_safe_globals([datetime.datetime]); c = torch.load("
    "'SuperSloMo.ckpt', map_location='cpu', weights_only=True); s.save_file({f'{g}.{k}': "
    "v.contiguous() for g in ('state_dictFC', 'state_dictAT') for k, v in c[g].items()}, "
    "'SuperSloMo.safetensors')\"")


def unet_layers(in_channels: int, out_channels: int) -> list[tuple[str, int, int, int]]:
  """(name, in, out, kernel) of every convolution of model.UNet(in_channels, out_channels)."""
  layers = [("conv1", in_channels, 32, 7), ("conv2", 32, 32, 7)]
  channels = 32
  for index, (out, kernel) in enumerate(DOWN, 1):
    layers += [(f"down{index}.conv1", channels, out, kernel),
               (f"down{index}.conv2", out, out, kernel)]
    channels = out
  for index, out in enumerate(UP, 1):
    layers += [(f"up{index}.conv1", channels, out, 3), (f"up{index}.conv2", 2 * out, out, 3)]
    channels = out
  return layers + [("conv3", channels, out_channels, 3)]


def open_weights(weights_path: Any) -> WeightReader:
  return WeightReader(weights_path, "Super SloMo", SLOMO_HINT)


def load_slomo_params(weights_path: Any) -> dict:
  """{"flow" | "refine": {layer name: {"kernel": HWIO, "bias"}}} from the user's checkpoint;
  `MetricUnavailable` names the file, the key and the shapes on any problem."""
  reader = as_reader(weights_path, open_weights)
  params = {}
  for prefix, (network, cin, cout) in NETWORKS.items():
    layers = {}
    for name, layer_in, layer_out, kernel in unet_layers(cin, cout):
      weight = reader.take(f"{prefix}.{name}.weight", (layer_out, layer_in, kernel, kernel))
      layers[name] = {"kernel": jnp.asarray(weight.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
                      "bias": jnp.asarray(reader.take(f"{prefix}.{name}.bias", (layer_out,)))}
    params[network] = layers
  return params


def _conv_lrelu(layer: dict, x: jax.Array) -> jax.Array:
  pad = (layer["kernel"].shape[0] - 1) // 2
  y = conv2d(x, layer["kernel"], 1, ((pad, pad), (pad, pad))) + layer["bias"]
  return jax.nn.leaky_relu(y, NEGATIVE_SLOPE)


def unet(layers: dict, x: jax.Array) -> jax.Array:
  """model.UNet.forward on NHWC x (N, H, W, C), H and W multiples of 32."""
  x = _conv_lrelu(layers["conv1"], x)
  skips = [_conv_lrelu(layers["conv2"], x)]
  for index in range(1, len(DOWN) + 1):
    n, h, w, c = skips[-1].shape
    x = skips[-1].reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))  # avg_pool2d(2)
    x = _conv_lrelu(layers[f"down{index}.conv1"], x)
    skips.append(_conv_lrelu(layers[f"down{index}.conv2"], x))
  x = skips.pop()  # down5's output is the bottleneck, not a skip
  for index in range(1, len(UP) + 1):
    skip = skips.pop()
    x = geometry.resize_align_corners(x, skip.shape[1], skip.shape[2])
    x = _conv_lrelu(layers[f"up{index}.conv1"], x)
    x = _conv_lrelu(layers[f"up{index}.conv2"], jnp.concatenate([x, skip], axis=-1))
  return _conv_lrelu(layers["conv3"], x)


def back_warp(image: jax.Array, flow_px: jax.Array) -> jax.Array:
  """The reference's backWarp g(image, flow) on NHWC, including its W (not W - 1) normalisation
  (module docstring)."""
  height, width = image.shape[1:3]
  x = jnp.arange(width, dtype=image.dtype)[None, None, :] + flow_px[..., 0]
  y = jnp.arange(height, dtype=image.dtype)[None, :, None] + flow_px[..., 1]
  coords = jnp.stack([2.0 * x / width - 1.0, 2.0 * y / height - 1.0], axis=-1)
  return geometry.warp(image, coords, padding_mode="zeros")


def interpolate(params: dict, frame_0: jax.Array, frame_1: jax.Array, t: float = 0.5
                ) -> jax.Array:
  """Î_t between mean-subtracted frames (N, H, W, 3), H and W multiples of 32 (module
  docstring, step by step); returns the mean-subtracted Î_t."""
  flows = unet(params["flow"], jnp.concatenate([frame_0, frame_1], axis=-1))
  flow_01, flow_10 = flows[..., 0:2], flows[..., 2:4]
  flow_t0 = -(1.0 - t) * t * flow_01 + t * t * flow_10
  flow_t1 = (1.0 - t) ** 2 * flow_01 - t * (1.0 - t) * flow_10
  warped_0, warped_1 = back_warp(frame_0, flow_t0), back_warp(frame_1, flow_t1)
  refined = unet(params["refine"], jnp.concatenate(
      [frame_0, frame_1, flow_01, flow_10, flow_t1, flow_t0, warped_1, warped_0], axis=-1))
  flow_t0 = flow_t0 + refined[..., 0:2]
  flow_t1 = flow_t1 + refined[..., 2:4]
  visible_0 = jax.nn.sigmoid(refined[..., 4:5])
  weight_0, weight_1 = (1.0 - t) * visible_0, t * (1.0 - visible_0)
  return ((weight_0 * back_warp(frame_0, flow_t0) + weight_1 * back_warp(frame_1, flow_t1))
          / (weight_0 + weight_1))


@functools.partial(jax.jit, static_argnames=("t",))
def _interpolate_uint8(params: dict, pairs: jax.Array, t: float) -> jax.Array:
  """(N, 2, H, W, 3) uint8 frame pairs -> (N, H, W, 3) float32 Î_t on [0, 255]."""
  height, width = pairs.shape[2:4]
  padded = (-height % MULTIPLE, -width % MULTIPLE)
  mean = jnp.asarray(MEAN, jnp.float32)
  frames = pairs.astype(jnp.float32) / 255.0 - mean
  frames = jnp.pad(frames, ((0, 0), (0, 0), (0, padded[0]), (0, padded[1]), (0, 0)), mode="edge")
  middle = interpolate(params, frames[:, 0], frames[:, 1], t)[:, :height, :width]
  return 255.0 * jnp.clip(middle + mean, 0.0, 1.0)


class SuperSloMo:
  """The pretrained interpolator: `interpolate_halfway` and the learned `interp_psnr`."""

  def __init__(self, params: dict, batch_size: int = 4):
    self.params, self.batch_size = params, batch_size

  def interpolate_halfway(self, previous: Any, following: Any) -> np.ndarray:
    """Î_t at t = 1/2 between uint8 frames previous, following (N, H, W, 3); float32 (N, H, W, 3)
    on [0, 255]."""
    previous = check_frames(previous, "Super SloMo previous frames")
    following = check_frames(following, "Super SloMo following frames")
    if previous.shape != following.shape:
      raise ValueError(f"Super SloMo: previous {previous.shape} and following "
                       f"{following.shape} frames differ in shape")
    return run_batched(lambda chunk: _interpolate_uint8(self.params, chunk, 0.5),
                       np.stack([previous, following], axis=1), self.batch_size)

  def interp_psnr(self, generated: Any, reference: Any) -> dict:
    """Interp-PSNR of the INTERnet paper (module docstring).

    Args:
      generated: uint8 (T, H, W, 3) O, T >= 3.
      reference: uint8 (T, H, W, 3) I.
    Returns:
      dict(interp_psnr (mean over t = 1..T-2 of PSNR(Î_t, I_t), dB), interp_psnr_self (against
      O_t), interp_psnr_per_frame, interp_psnr_self_per_frame, each (T - 2,)).
    """
    generated = check_frames(generated, "Interp-PSNR generated video")
    reference = check_frames(reference, "Interp-PSNR reference video")
    if generated.shape != reference.shape:
      raise ValueError(f"Interp-PSNR: generated {generated.shape} and reference "
                       f"{reference.shape} differ in shape")
    if len(generated) < 3:
      raise ValueError(f"Interp-PSNR: needs at least 3 frames, got {len(generated)}")
    predicted = self.interpolate_halfway(generated[:-2], generated[2:])
    against_reference = image_metrics.psnr(predicted, reference[1:-1])
    against_self = image_metrics.psnr(predicted, generated[1:-1])
    return {
        "interp_psnr": float(np.mean(against_reference)),
        "interp_psnr_self": float(np.mean(against_self)),
        "interp_psnr_per_frame": against_reference,
        "interp_psnr_self_per_frame": against_self,
    }


def create(weights_path: Any, batch_size: int = 4) -> SuperSloMo:
  """Super SloMo from user-supplied weights (layout in the module docstring); `MetricUnavailable`
  names the file and what is wrong when they are missing or do not fit."""
  return SuperSloMo(load_slomo_params(weights_path), batch_size)
