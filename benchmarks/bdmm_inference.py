r"""Speed of BDMM inference: frames/s of the chunked recurrent renderer (skeleton heatmaps, the
warped reference, forward and backward deformable motion modulation over a chunk, the state
carried to the next chunk; "Bidirectionally Deformable Motion Modulation for Video-based Human
Pose Transfer", run in chunks of 6 frames as rocketappslab/BDMM test.py does).

  python benchmarks/bdmm_inference.py --config=configs/bdmm/fashion.py [--resolution=256] \
      [--chunk=6] [--repeats=5] [--dtype=float32|bfloat16] [--output=PATH.json]

The networks keep the config's widths at every resolution. Parameters are randomly initialised
(speed does not depend on training); the driving poses are random joints and the warps into the
source are read as stored correspondences (`bdmm.warp_source = "source_coords"`, the identity),
so no motion model runs. A timed call is one chunk through `Renderer.step`: placing the joints and
warps on the device, the chunk, and copying its frames back to the host, as a streaming
animation does; `start` (the initial state from the source) is timed on its own. Prints one JSON
object (fields: benchmarks/README.md).
"""

from __future__ import annotations

import copy
import os
import sys

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from internet_jax import inference  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=False)
_RESOLUTION = flags.DEFINE_string("resolution", "256", "Comma-separated output resolutions.")
_CHUNK = flags.DEFINE_integer("chunk", 6, "Frames per chunk (the code's max_frames_per_gpu).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed chunks per case (the median is over these).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls per case after the first (compiling).")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                           "Compute dtype, config.model.dtype (default: config).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def config_at(config, resolution: int):
  """The config at another resolution, its warps read as stored correspondences."""
  config = copy.deepcopy(config)
  config.data.resolution = resolution
  config.bdmm.warp_source = "source_coords"
  return config


def driving_annotations(count: int, resolution: int, num_joints: int,
                        rng: np.random.Generator) -> tuple[dict, list[dict]]:
  """(source, driving) annotations: random joints, identity warps into the source."""
  ys, xs = np.mgrid[0:resolution, 0:resolution]
  identity = np.stack([xs, ys], -1).astype(np.float32)
  visible = np.ones((resolution, resolution), bool)

  def joints():
    return rng.uniform(0, resolution - 1, (num_joints, 2)).astype(np.float32)

  driving = [{"joints": joints(), "source_coords": identity, "source_visible": visible}
             for _ in range(count)]
  return {"joints": joints()}, driving


def main(argv):
  del argv
  common.configure_jax()
  config = _CONFIG.value
  if _DTYPE.value is not None:
    config.model.dtype = _DTYPE.value
  env = common.environment()
  common.log(f"bdmm inference: {env['device_kind']}, load {env['load_average']}")
  rng = np.random.default_rng(0)
  chunk = _CHUNK.value
  cases = []
  for resolution in common.parse_ints(_RESOLUTION.value, "resolution"):
    res_config = config_at(config, resolution)
    method, networks, g_params = common.random_generator(res_config)
    renderer = method.renderer(networks, {"g": g_params}, res_config, chunk)
    frames = np.zeros((chunk, resolution, resolution, 3), np.uint8)  # BDMM reads no pixels
    source, driving = driving_annotations(chunk, resolution, int(res_config.bdmm.num_joints), rng)
    options = inference.annotation_options(renderer, source, driving, "benchmark")
    start = common.time_case(
        lambda: jax.block_until_ready(renderer.start(frames[0], frames[0], **options)),
        _REPEATS.value, _WARMUP.value)
    carry = renderer.start(frames[0], frames[0], **options)

    def call():
      _, outputs = renderer.step(carry, frames)
      return np.asarray(outputs["prediction"])  # the frames reach the host

    case = {"resolution": resolution, "chunk": chunk, "g_params": common.count_params(g_params),
            "start": start,
            **common.time_case(call, _REPEATS.value, _WARMUP.value)}
    case["frames_per_s"] = chunk / case["call"]["median_s"]
    case["ms_per_frame"] = 1e3 * case["call"]["median_s"] / chunk
    cases.append(case)
    common.log(f"  {resolution}^2 chunk {chunk}: {case['frames_per_s']:.2f} frames/s "
               f"({case['ms_per_frame']:.0f} ms/frame)")
  common.emit(common.inference_report(
      "bdmm_inference", env, config, config_flags.get_config_filename(flags.FLAGS["config"]),
      cases), _OUTPUT.value)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
