"""Speed of the synthetic renderer: one video with all its ground truth, and its .npz write.

    taskset -c 0 python benchmarks/render_synthetic.py --resolution=256 --num_frames=100 --repeats=3

Prints one JSON object: the median wall time of `render_video` over `repeats` runs (frames + joints,
labels, UV, both flows and validity masks, source correspondence), frames per second, and the time
and size of writing that video's ground-truth .npz (what `write_dataset` adds per video).
Pin to one core with `taskset -c 0` for the single-core number (numpy here is single-threaded
apart from BLAS, which the renderer does not use in its loops).
"""

import json
import os
import platform
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags

from input_pipeline import synthetic

_RESOLUTION = flags.DEFINE_integer("resolution", 256, "Frame height and width.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 100, "Frames per video.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed renders (seeds seed, seed+1, ...).")
_BACKGROUND = flags.DEFINE_string("background", "studio", "studio | textured | mixed.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the first repeat.")
_MEASURE_WRITE = flags.DEFINE_bool("measure_write", True, "Also time the .npz write once.")


def main(argv):
  del argv
  if _REPEATS.value < 1:
    print("error: --repeats: must be >= 1", file=sys.stderr)
    sys.exit(1)
  # Warm-up at a tiny size: imports, first-call costs of numpy routines.
  synthetic.render_video(0, 2, 32, _BACKGROUND.value)
  times = []
  video = None
  for repeat in range(_REPEATS.value):
    start = time.perf_counter()
    video = synthetic.render_video(_SEED.value + repeat, _NUM_FRAMES.value, _RESOLUTION.value,
                                   _BACKGROUND.value)
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  result = {
      "resolution": _RESOLUTION.value,
      "num_frames": _NUM_FRAMES.value,
      "background": _BACKGROUND.value,
      "repeats": _REPEATS.value,
      "render_seconds": [round(t, 3) for t in times],
      "median_seconds": round(median, 3),
      "frames_per_second": round(_NUM_FRAMES.value / median, 1),
      "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "machine": platform.processor() or platform.machine(),
  }
  if _MEASURE_WRITE.value:
    with tempfile.TemporaryDirectory() as directory:
      path = os.path.join(directory, "video.npz")
      start = time.perf_counter()
      synthetic.write_ground_truth(path, video)
      result["npz_write_seconds"] = round(time.perf_counter() - start, 3)
      result["npz_megabytes"] = round(os.path.getsize(path) / 2**20, 1)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
