r"""Animation speed: frames/s of INTERnet inference, with and without the source-feature cache.

  python benchmarks/inference.py --config=configs/synthetic.py [--resolution=256,512] \
      [--batch=1,16] [--repeats=10] [--dtype=float32|bfloat16] [--output=PATH.json]

For every resolution and batch size it times two ways of producing frames from one source image:
* cache: INTERnet's renderer (`Method.renderer`), the source encoded once (`start`, timed
  separately) and every batch of driving frames run through `step` (anchors of the driving
  frames, dense motion, decoder);
* no_cache: the full `INTERnet.__call__` per batch, which re-encodes the source for every frame
  (source tiled to the batch), i.e. what one would run without the cache.
Both include the uint8 -> float conversion and placement of the driving frames and the copy of the
predicted frames back to the host, as a streaming animation does. Batch 1 is streaming (latency =
the per-call time); larger batches are offline throughput. Parameters are randomly initialised:
speed does not depend on training. Prints one JSON object (fields: benchmarks/README.md).

Resolutions other than the config's keep its output/base ratio (512/128 -> 256/64) unless
--base_resolution is given.
"""

from __future__ import annotations

import copy
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from internet_jax import method as method_lib  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=False)
_RESOLUTION = flags.DEFINE_string("resolution", "256,512", "Comma-separated output resolutions.")
_BASE_RESOLUTION = flags.DEFINE_integer(
    "base_resolution", None, "Motion base resolution (default: keep the config's ratio).")
_BATCH = flags.DEFINE_string("batch", "1,16", "Comma-separated batch sizes (1 = streaming).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per case (the median is over these).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls per case after the first (compiling).")
_MODES = flags.DEFINE_string("modes", "cache,no_cache", "Which of cache,no_cache to run.")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                           "Compute dtype, config.model.dtype (default: config).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def config_at(config, resolution: int, base_resolution: int | None):
  """A copy of `config` at `resolution`, keeping the output/base ratio unless a base is given."""
  config = copy.deepcopy(config)
  ratio = config.data.resolution // config.model.base_resolution
  config.data.resolution = resolution
  config.model.base_resolution = base_resolution or max(1, resolution // ratio)
  return config


def random_frames(count: int, resolution: int, seed: int) -> np.ndarray:
  """uint8 (count, R, R, 3): smooth random images (a moving blob field), not white noise."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (count, 8, 8, 3)).astype(np.float32)
  frames = jax.image.resize(jnp.asarray(coarse), (count, resolution, resolution, 3), "linear")
  return np.clip(np.asarray(frames), 0, 255).astype(np.uint8)


def main(argv):
  del argv
  common.configure_jax()
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required")
  if _DTYPE.value is not None:
    config.model.dtype = _DTYPE.value
  resolutions = common.parse_ints(_RESOLUTION.value, "resolution")
  batches = common.parse_ints(_BATCH.value, "batch")
  modes = [m.strip() for m in _MODES.value.split(",") if m.strip()]
  if not modes or set(modes) - {"cache", "no_cache"}:
    raise app.UsageError(f"--modes: expected a subset of cache,no_cache, got {_MODES.value!r}")
  env = common.environment()
  common.log(f"inference: {env['device_kind']}, load {env['load_average']}")

  cases, encodes = [], []
  for resolution in resolutions:
    res_config = config_at(config, resolution, _BASE_RESOLUTION.value)
    method = method_lib.get(res_config.method)
    networks = method.build(res_config)
    generator = networks.generator
    image = jnp.zeros((1, resolution, resolution, 3), jnp.float32)
    params = jax.jit(generator.init)(jax.random.key(0), image, image)
    n_params = int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
    source = random_frames(1, resolution, seed=1)[0]
    driving_pool = random_frames(max(batches), resolution, seed=2)

    full_call = jax.jit(lambda p, s, d: generator.apply(p, s, d))
    for batch in batches:
      driving = driving_pool[:batch]
      renderer = method.renderer(networks, {"g": params}, res_config, batch)
      if "cache" in modes:
        # Encoding once per source image: timed on its own, amortised over the whole video.
        encode = common.time_case(lambda: renderer.start(source, driving[0]), _REPEATS.value,
                           _WARMUP.value)
        carry = renderer.start(source, driving[0])
        if batch == batches[0]:
          encodes.append({"resolution": resolution, **encode})

        def cached():
          _, outputs = renderer.step(carry, driving)
          return np.asarray(outputs["prediction"])  # the frames reach the host

        cases.append({"resolution": resolution, "base_resolution":
                      res_config.model.base_resolution, "batch": batch, "mode": "cache",
                      **common.time_case(cached, _REPEATS.value, _WARMUP.value)})
      if "no_cache" in modes:
        tiled_source = jnp.broadcast_to(jnp.asarray(source, jnp.float32)[None] / 255.0,
                                        (batch, resolution, resolution, 3))

        def uncached():
          frames = jnp.asarray(driving, jnp.float32) / 255.0
          return np.asarray(full_call(params, tiled_source, frames)["prediction"])

        cases.append({"resolution": resolution, "base_resolution":
                      res_config.model.base_resolution, "batch": batch, "mode": "no_cache",
                      **common.time_case(uncached, _REPEATS.value, _WARMUP.value)})
      for case in cases[-len(modes):]:
        median = case["call"]["median_s"]
        case["frames_per_s"] = case["batch"] / median
        case["latency_ms"] = 1e3 * median
        case["g_params"] = n_params
        common.log(f"  {resolution}^2 batch {batch} {case['mode']}: "
                   f"{case['frames_per_s']:.2f} frames/s")

  # Speed-up of the cache per (resolution, batch).
  speedups = []
  for case in cases:
    if case["mode"] != "cache":
      continue
    for other in cases:
      if (other["mode"] == "no_cache" and other["resolution"] == case["resolution"]
          and other["batch"] == case["batch"]):
        speedups.append({"resolution": case["resolution"], "batch": case["batch"],
                         "cache_speedup": case["frames_per_s"] / other["frames_per_s"]})

  common.emit({
      "benchmark": "inference",
      "environment": env,
      "config": {"config_file": config_flags.get_config_filename(flags.FLAGS["config"]),
                 "dtype": config.model.dtype, "resolutions": resolutions, "batches": batches,
                 "params": "random init (speed does not depend on training)"},
      "encode_source": encodes,
      "cases": cases,
      "cache_speedup": speedups,
  }, _OUTPUT.value)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
