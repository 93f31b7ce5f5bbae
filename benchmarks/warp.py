r"""`geometry.warp` (flat NHWC gather) against `jax.scipy.ndimage.map_coordinates(order=1)`.

  python benchmarks/warp.py [--config=configs/default.py] [--batch=B] \
      [--cases=generator_128,generator_256,generator_512,dense_motion] [--dtype=float32]

The shapes are the warps of one training step of `--config` (per device, batch B, default
config.batch_size / device count):
* generator_<r>: the deformable skip at the level of resolution r, B x r x r x C with the
  generator's width at that level (Eq. 6; 512 config: 256 ch at 128^2, 128 at 256^2, 64 at 512^2);
* dense_motion: the source warped by the K+1 sparse motions at the base resolution, as
  `motion.DenseMotion` does it: the source repeated K+1 times, (B (K+1)) x h x h x 3;
* dense_motion_shared: the same samples without the repeat: the B sources once, with the K+1
  coordinates of each pixel side by side, B x h x h x 3 image and B x h x h(K+1) coordinates.
Coordinates are a smooth motion (identity + slight zoom + a few pixels of smooth random
displacement), partly outside the image so the zero padding is exercised. For each case: forward;
forward+backward with gradients w.r.t. both the image and the coordinates (the generator's
features and motion both come from parameters); and forward+backward w.r.t. the coordinates only
(the dense-motion source is data, so training needs no image gradient there). Medians over
--repeats calls; the ratios map_coordinates / ours (> 1: ours is faster); and the largest
differences between the two implementations (they must agree: both are bilinear with zero
padding). Prints one JSON object (fields: benchmarks/README.md).
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from internet_jax import geometry  # noqa: E402
from internet_jax.models import generator as generator_lib  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Configuration file.",
                                          lock_config=False)
_BATCH = flags.DEFINE_integer("batch", None, "Per-device batch (default: config.batch_size / "
                              "device count).")
_CASES = flags.DEFINE_string(
    "cases", "generator_128,generator_256,generator_512,dense_motion,dense_motion_shared",
    "Comma-separated cases: generator_<resolution>, dense_motion, dense_motion_shared.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                           "Image (feature) dtype; coordinates stay float32.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per measurement.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def warp_map_coordinates(image: jax.Array, coords: jax.Array) -> jax.Array:
  """The same warp as `geometry.warp(image, coords, "zeros")` through map_coordinates.

  map_coordinates samples one (H, W) plane at (row, col) points, so it is vmapped over the
  channels and the batch; 'constant' mode with cval 0 zero-pads every tap like ours.
  """
  height, width = image.shape[1:3]
  cols = (coords[..., 0] + 1.0) * (0.5 * (width - 1))
  rows = (coords[..., 1] + 1.0) * (0.5 * (height - 1))

  def plane(values, r, c):
    # Coordinates stay float32 (bfloat16 would round them to ~1 px at 128^2 and above).
    out = jax.scipy.ndimage.map_coordinates(values, [r, c], order=1, mode="constant", cval=0.0)
    return out.astype(values.dtype)

  per_channel = jax.vmap(plane, in_axes=(2, None, None), out_axes=-1)
  return jax.vmap(per_channel)(image, rows, cols)


def warp_ours(image: jax.Array, coords: jax.Array) -> jax.Array:
  return geometry.warp(image, coords, padding_mode="zeros")


IMPLEMENTATIONS = {"ours": warp_ours, "map_coordinates": warp_map_coordinates}


def case_shapes(config, batch: int, names: list[str]) -> dict[str, dict]:
  """{case name: dict(image=(N, H, W, C), motions=M)} of the warps of one training step of
  `config`; M > 1 puts M coordinates per output pixel side by side (dense_motion_shared)."""
  resolution, base = config.data.resolution, config.model.base_resolution
  g = config.model.generator
  generator = generator_lib.Generator(resolution=resolution, base_resolution=base,
                                      block_expansion=g.block_expansion,
                                      max_features=g.max_features)
  levels = {base * 2 ** level: generator.level_features(level) for level in range(generator.levels)}
  shapes = {}
  for name in names:
    motions = config.model.num_anchors + 1
    if name == "dense_motion":
      shapes[name] = {"image": (batch * motions, base, base, 3), "motions": 1}
    elif name == "dense_motion_shared":
      shapes[name] = {"image": (batch, base, base, 3), "motions": motions}
    elif name.startswith("generator_") and name[len("generator_"):].isdigit():
      size = int(name[len("generator_"):])
      if size not in levels:
        raise ValueError(f"--cases: {name}: the config's generator has levels "
                         f"{sorted(levels)}, not {size}")
      shapes[name] = {"image": (batch, size, size, levels[size]), "motions": 1}
    else:
      raise ValueError(f"--cases: unknown case {name!r} (generator_<resolution>, dense_motion "
                       "or dense_motion_shared)")
  return shapes


def smooth_coords(key: jax.Array, n: int, height: int, width: int) -> jax.Array:
  """(n, H, W, 2) backward coordinates: a 1.05 zoom-out (borders sample outside the image) plus a
  smooth random displacement of up to a few pixels, like a dense motion field."""
  grid = geometry.coordinate_grid(height, width) * 1.05
  coarse = jax.random.normal(key, (n, 6, 6, 2)) * (3.0 / max(height, width))
  displacement = jax.image.resize(coarse, (n, height, width, 2), "linear")
  return grid[None] + displacement


def relative_diff(a: jax.Array, b: jax.Array) -> float:
  """max |a - b| / max |a| (both cast to float32)."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30))


def measure(shape: dict, dtype, repeats: int, seed: int = 0) -> dict:
  """Times both implementations on one case and compares their outputs and gradients."""
  n, height, width, channels = shape["image"]
  motions = shape["motions"]
  keys = jax.random.split(jax.random.key(seed), 3)
  image = jax.random.uniform(keys[0], shape["image"]).astype(dtype)
  # M smooth fields per image, interleaved per pixel: (n, H, W * M, 2).
  coords = smooth_coords(keys[1], n * motions, height, width).reshape(n, motions, height, width, 2)
  coords = jnp.moveaxis(coords, 1, 3).reshape(n, height, width * motions, 2)
  cotangent = jax.random.normal(keys[2], (n, height, width * motions, channels)).astype(dtype)
  result, outputs = {}, {}
  for name, warp_fn in IMPLEMENTATIONS.items():
    forward = jax.jit(warp_fn)
    # A random cotangent: the backward pass is the same work for any loss of the output.
    loss = lambda i, c, f=warp_fn: jnp.sum((f(i, c) * cotangent).astype(jnp.float32))
    backward = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    backward_coords = jax.jit(jax.value_and_grad(loss, argnums=1))
    timings = {}
    for label, fn in (("forward", forward), ("forward_backward", backward),
                      ("forward_backward_coords", backward_coords)):
      start = time.perf_counter()
      jax.block_until_ready(fn(image, coords))
      first = time.perf_counter() - start
      times = common.time_calls(lambda fn=fn: fn(image, coords), repeats=repeats, warmup=1)
      timings[label] = {"first_call_s": first, **common.summarise(times)}
    result[name] = timings
    out = forward(image, coords)
    _, (grad_image, grad_coords) = backward(image, coords)
    outputs[name] = (out, grad_image, grad_coords)
    common.log(f"  {shape} {name}: fwd {1e3 * timings['forward']['median_s']:.1f} ms, "
               f"fwd+bwd {1e3 * timings['forward_backward']['median_s']:.1f} ms, "
               f"fwd+bwd (coords) {1e3 * timings['forward_backward_coords']['median_s']:.1f} ms")
  ours, theirs = outputs["ours"], outputs["map_coordinates"]
  diffs = {"forward": relative_diff(ours[0], theirs[0]),
           "grad_image": relative_diff(ours[1], theirs[1]),
           "grad_coords": relative_diff(ours[2], theirs[2])}
  # float32 sums of 4 taps in different orders; bfloat16 rounds each product.
  tolerance = 1e-4 if dtype == jnp.float32 else 2e-2
  ratio = lambda label: (result["map_coordinates"][label]["median_s"]
                         / result["ours"][label]["median_s"])
  result.update({
      "shape": list(shape["image"]),
      "coords_shape": list(coords.shape),
      "ratio_forward": ratio("forward"),
      "ratio_forward_backward": ratio("forward_backward"),
      "ratio_forward_backward_coords": ratio("forward_backward_coords"),
      "relative_max_diff": diffs,
      "tolerance": tolerance,
      "agree": all(d <= tolerance for d in diffs.values()),
  })
  return result


def main(argv):
  del argv
  common.configure_jax()
  config = _CONFIG.value
  batch = _BATCH.value or max(1, config.batch_size // jax.device_count())
  names = [name.strip() for name in _CASES.value.split(",") if name.strip()]
  shapes = case_shapes(config, batch, names)
  dtype = jnp.float32 if _DTYPE.value == "float32" else jnp.bfloat16
  env = common.environment()
  common.log(f"warp: {env['device_kind']}, load {env['load_average']}")
  cases = {name: measure(shape, dtype, _REPEATS.value) for name, shape in shapes.items()}
  common.emit({
      "benchmark": "warp",
      "environment": env,
      "config": {"config_file": config_flags.get_config_filename(flags.FLAGS["config"]),
                 "batch": batch, "dtype": _DTYPE.value, "repeats": _REPEATS.value},
      "cases": cases,
      "all_agree": all(case["agree"] for case in cases.values()),
      # > 1 everywhere: keep geometry.warp; the backward pass is what training pays for.
      "faster_forward_backward": {name: ("ours" if case["ratio_forward_backward"] >= 1
                                         else "map_coordinates")
                                  for name, case in cases.items()},
  }, _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
