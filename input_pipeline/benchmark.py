r"""Input-pipeline throughput and a contact sheet of one batch.

  python -m input_pipeline.benchmark --config=configs/synthetic.py --num_batches=20 \
      [--worker_count=2] [--config.data.resolution=512] [--fake] [--output=PATH.png]

Runs the training pipeline twice with the same seed:
  1. in-process (worker_count=0): throughput and the share of time spent in decode (read_frame),
     flow (two DIS flows + the Sundaram mask) and augment (colour jitter + flip). The shares can
     only be measured in-process: grain worker processes keep their own counters. Also reports
     the process CPU time per example: on a machine shared with other jobs, cpu_count / that is
     what the cores could deliver without the other load.
  2. with --worker_count grain worker processes (default config.data.worker_count): throughput
     after warm-up, plus the worker start-up time. Also checks that the first batch equals the
     in-process one (the stream must not depend on the worker count).
Prints one JSON object and writes a contact sheet PNG (rows = examples; columns source | driving |
previous | flow (colour-coded) | confidence) and the JSON next to it, creating their folder
(default ./workdirs/pipeline_benchmark/), each through a temporary file renamed into place:
SIGTERM/SIGINT end the run with one line `interrupted: ...` and exit status 128 + the signal, and
nothing half-written is left (`internet_jax.temporaries`).

--fake benchmarks on random moving-pattern videos at config.data.resolution instead of the dataset
given by `input_pipeline.datasets.get_video_source(config.data, "train")`.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
from absl import logging
from etils import epy
from ml_collections import config_flags

from internet_jax import errors, temporaries

with epy.lazy_imports():  # imported on first use: `--help` returns at once
  import cv2
  import numpy as np

  from input_pipeline import datasets, pipeline
  from internet_jax import visualize

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=True)
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 20, "Timed batches per run (after warm-up).")
_WARMUP = flags.DEFINE_integer("warmup_batches", 2, "Untimed batches before timing.")
_WORKER_COUNT = flags.DEFINE_integer(
    "worker_count", None, "grain worker processes for the second run (default: "
    "config.data.worker_count; 0 skips it).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch size (default: config.batch_size).")
_FAKE = flags.DEFINE_bool("fake", False, "Use random moving-pattern videos, not the dataset.")
_FAKE_VIDEOS = flags.DEFINE_integer("fake_videos", 6, "Number of --fake videos.")
_FAKE_FRAMES = flags.DEFINE_integer("fake_frames", 16, "Frames per --fake video.")
_MAX_ROWS = flags.DEFINE_integer("max_rows", 8, "At most this many examples on the contact sheet.")
_OUTPUT = flags.DEFINE_string("output", "./workdirs/pipeline_benchmark/contact_sheet.png",
                              "Contact sheet PNG path (the JSON report goes next to it).")
_SEED = flags.DEFINE_integer("seed", 0, "Pipeline seed.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show full tracebacks for configuration and data errors.")


def contact_sheet(batch: dict[str, np.ndarray], max_rows: int = 8) -> np.ndarray:
  """uint8 sheet: one row per example, columns source | driving | previous | flow | confidence."""
  rows = []
  height, width = batch["source"].shape[1:3]
  for i in range(min(max_rows, batch["source"].shape[0])):
    # Back to pixels so the colour scale reads like OpenCV's flow (the direction is unchanged).
    flow_px = batch["flow"][i] * np.array([(width - 1) / 2.0, (height - 1) / 2.0], np.float32)
    confidence = np.repeat(np.rint(255.0 * batch["flow_confidence"][i]).astype(np.uint8), 3, -1)
    rows.append([batch["source"][i], batch["driving"][i], batch["previous"][i],
                 np.asarray(visualize.flow_to_rgb(flow_px), np.uint8), confidence])
  return np.asarray(visualize.tile_images(rows, pad=2), np.uint8)


# --- Timing ------------------------------------------------------------------------------------

def _time_batches(iterator, num_batches: int) -> tuple[list[float], dict]:
  durations = []
  first = None
  for _ in range(num_batches):
    start = time.perf_counter()
    batch = next(iterator)
    durations.append(time.perf_counter() - start)
    if first is None:
      first = batch
  return durations, first


def _summary(durations: list[float], batch_size: int) -> dict:
  total = float(sum(durations))
  median = float(np.median(durations))
  return {
      "examples_per_s": len(durations) * batch_size / total,
      "batches_per_s": len(durations) / total,
      "median_batch_s": median,
      "examples_per_s_from_median": batch_size / median if median > 0 else float("inf"),
      "timed_batches": len(durations),
  }


def _batches_equal(a: dict, b: dict) -> bool:
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def run_benchmark(config, source, *, num_batches: int, warmup_batches: int, worker_count: int,
                  batch_size: int, seed: int) -> tuple[dict, dict]:
  """Runs the in-process and the multi-worker measurement; returns (report, first batch)."""
  data = config.data
  report = {
      "resolution": list(np.asarray(source.read_frame(0, 0)).shape[:2]),
      "batch_size": batch_size,
      "num_videos": len(source),
      "flow_preset": data.flow_preset,
      "num_batches": num_batches,
      "warmup_batches": warmup_batches,
  }

  # Stage times cover every example this process prepared, warm-up included: grain's read
  # threads prefetch, so the examples of the timed batches may be finished before the timing
  # starts (which left the shares empty on small runs).
  pipeline.STAGE_TIMES.reset()
  iterator = pipeline.create_train_iterator(data, source, batch_size_per_process=batch_size,
                                            seed=seed, worker_count=0)
  first_batch = next(iterator)  # batch 0 (contact sheet, cross-check with the workers' batch 0)
  for _ in range(max(warmup_batches - 1, 0)):
    next(iterator)
  cpu_start = time.process_time()
  durations, _ = _time_batches(iterator, num_batches)
  cpu_seconds = time.process_time() - cpu_start
  stats = pipeline.STAGE_TIMES.snapshot()
  in_process = _summary(durations, batch_size)
  examples = max(stats["examples"], 1)
  in_process.update({
      # CPU time of this process (all threads) per produced example: on a shared machine,
      # os.cpu_count() / this is the throughput the cores could give without other load.
      "cpu_ms_per_example": 1e3 * cpu_seconds / (num_batches * batch_size),
      "cpu_count": os.cpu_count(),
      "worker_count": 0,
      "note": "measured in the main process (worker_count=0); stage times summed over the "
              "grain read threads and over every example prepared, warm-up included",
      "stage_shares": stats["shares"],
      "stage_ms_per_example": {k: 1e3 * s / examples for k, s in stats["seconds"].items()},
  })
  report["in_process"] = in_process
  del iterator

  if worker_count > 0:
    start = time.perf_counter()
    iterator = pipeline.create_train_iterator(data, source, batch_size_per_process=batch_size,
                                              seed=seed, worker_count=worker_count)
    worker_first = next(iterator)
    startup = time.perf_counter() - start
    for _ in range(max(warmup_batches - 1, 0)):
      next(iterator)
    durations, _ = _time_batches(iterator, num_batches)
    multi = _summary(durations, batch_size)
    multi.update({"worker_count": worker_count, "first_batch_s": startup})
    report["multi_worker"] = multi
    report["multi_worker_matches_in_process"] = _batches_equal(first_batch, worker_first)
    del iterator
  return report, first_batch


def _get_source(config):
  data = config.data
  if _FAKE.value:
    logging.info("--fake: %d random moving-pattern videos of %d frames at %d px",
                 _FAKE_VIDEOS.value, _FAKE_FRAMES.value, data.resolution)
    return pipeline.make_moving_pattern_source(_FAKE_VIDEOS.value, _FAKE_FRAMES.value,
                                               int(data.resolution), seed=_SEED.value), "fake"
  return datasets.get_video_source(data, "train"), data.name


def main(argv):
  del argv  # stray words are refused by errors.flags_parser
  from internet_jax import cli  # pylint: disable=g-import-not-at-top
  cli.console_policy(_VERBOSE.value)
  with errors.user_errors(verbose=_VERBOSE.value), temporaries.stop_on_signals("the benchmark"):
    _run()


def _run():
  config = _CONFIG.value
  if config is None:
    from configs import default  # pylint: disable=g-import-not-at-top
    config = default.get_config()
    logging.info("no --config given: using configs/default.py")
  source, source_name = _get_source(config)
  worker_count = int(config.data.worker_count if _WORKER_COUNT.value is None
                     else _WORKER_COUNT.value)
  batch_size = int(config.batch_size if _BATCH_SIZE.value is None else _BATCH_SIZE.value)
  report, batch = run_benchmark(config, source, num_batches=_NUM_BATCHES.value,
                                warmup_batches=_WARMUP.value, worker_count=worker_count,
                                batch_size=batch_size, seed=_SEED.value)
  report["source"] = source_name
  report["cv2_threads"] = cv2.getNumThreads()
  output = _OUTPUT.value
  try:
    # The default ./workdirs/pipeline_benchmark/ does not exist in a fresh clone.
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with temporaries.replaced(output, suffix=".png") as partial:
      visualize.save_png(partial, contact_sheet(batch, _MAX_ROWS.value))
  except OSError as error:
    raise ValueError(f"--output={output}: cannot write the contact sheet ({error})") from error
  report["contact_sheet"] = output
  report_path = os.path.splitext(output)[0] + ".json"
  with errors.writing_to(report_path), temporaries.replaced(report_path) as partial, \
      open(partial, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main, flags_parser=errors.flags_parser("config"))  # resolves packaged config names
