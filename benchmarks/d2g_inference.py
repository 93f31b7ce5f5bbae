r"""Speed of D2G-Net inference: milliseconds per frame of the frame-by-frame renderer (pose label,
TransG, hybrid-texture sampling, translation net, compositing; "Robust Pose Transfer with Dynamic
Details using Neural Video Rendering", Table 4: 90 ms per 512^2 frame on a P40).

  python benchmarks/d2g_inference.py --config=configs/d2g/person.py [--resolution=256,512] \
      [--batch=1,8] [--repeats=5] [--dtype=float32|bfloat16] [--output=PATH.json]

The networks keep the config's widths; the texture tile scales with the resolution (200 at 512^2,
`texture_size * R / config resolution`). Parameters are randomly initialised (speed does not
depend on training) and the driving poses are random joints. Each timed call includes placing
the joints on the device and copying the frames back to the host, as a streaming animation does.
Prints one JSON object (fields: benchmarks/README.md).
"""

from __future__ import annotations

import copy
import os
import sys

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from internet_jax.methods.d2g import renderer as d2g_renderer  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=False)
_RESOLUTION = flags.DEFINE_string("resolution", "256,512", "Comma-separated output resolutions.")
_BATCH = flags.DEFINE_string("batch", "1,8", "Comma-separated batch sizes (1 = streaming).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per case (the median is over these).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls per case after the first (compiling).")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                           "Compute dtype, config.model.dtype (default: config).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def config_at(config, resolution: int):
  """The config at another resolution, the texture tile scaled with it, nothing read from disk."""
  config = copy.deepcopy(config)
  config.model.texture_size = max(2, round(config.model.texture_size * resolution
                                           / config.data.resolution))
  config.data.resolution = resolution
  config.d2g.update(dict(texture_init="zeros", background_init="zeros", pretrained=""))
  return config


def main(argv):
  del argv
  common.configure_jax()
  config = _CONFIG.value
  if _DTYPE.value is not None:
    config.model.dtype = _DTYPE.value
  env = common.environment()
  common.log(f"d2g inference: {env['device_kind']}, load {env['load_average']}")
  rng = np.random.default_rng(0)
  cases = []
  for resolution in common.parse_ints(_RESOLUTION.value, "resolution"):
    res_config = config_at(config, resolution)
    _, networks, g_params = common.random_generator(res_config)
    n_params = common.count_params(g_params)
    for batch in common.parse_ints(_BATCH.value, "batch"):
      joints = rng.uniform(0, resolution - 1, (batch, res_config.d2g.num_joints, 2)).astype(
          np.float32)
      valid = np.ones(joints.shape[:2], bool)

      def call():
        out = d2g_renderer.render_frames(networks, g_params, jnp.asarray(joints),
                                         jnp.asarray(valid))
        return np.asarray(out["prediction"])

      case = {"resolution": resolution, "batch": batch, "texture_size":
              res_config.model.texture_size, "g_params": n_params,
              **common.time_case(call, _REPEATS.value, _WARMUP.value)}
      case["ms_per_frame"] = 1e3 * case["call"]["median_s"] / batch
      cases.append(case)
      common.log(f"  {resolution}^2 batch {batch}: {case['ms_per_frame']:.1f} ms/frame")
  common.emit(common.inference_report(
      "d2g_inference", env, config, config_flags.get_config_filename(flags.FLAGS["config"]),
      cases), _OUTPUT.value)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
