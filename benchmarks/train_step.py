r"""Speed, memory and FLOP utilisation of the INTERnet training step.

  python benchmarks/train_step.py --config=configs/synthetic.py [--global_batch=8] \
      [--dtype=float32|bfloat16] [--remat] [--steps=20] [--synthetic_data] [--compile_only] \
      [--vgg_dtype=float32|model] [--profile_dir=DIR] [--output=PATH.json]

Builds the method, its networks, optimisers, state and jitted step with train.py's own
`create_training` (any method: `config.method`), so the program measured is the program trained. Prints one JSON object (fields: benchmarks/README.md):

* compile: trace, lower and compile seconds of the jitted step (`.trace().lower().compile()`,
  persistent compilation cache off so a cache hit cannot hide the compile);
* step: median (and spread) of >= --steps steady-state steps after --warmup, each blocked on;
  samples/s = global batch / median;
* input: time in `next(iterator)` and in placing the batch on the devices, against the step time,
  blocked per step (the share if nothing overlapped) and in a loop shaped like train.py's
  (asynchronous dispatch, one step in flight, so input preparation overlaps the running step);
* memory: `device.memory_stats()` peak where the backend has it; on CPU the process RSS growth,
  labelled as an approximation; plus XLA's static buffer sizes of the compiled step;
* flops: XLA cost analysis of the compiled step (per device) and utilisation against the device's
  dense peak (benchmarks/common.py PEAK_FLOPS); on CPU only achieved GFLOP/s.

--synthetic_data feeds random batches of the method's batch shapes (speed does not depend on the
values) instead of the grain pipeline, which isolates the step from input preparation.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402
from internet_jax import sharding, train  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=False)
_GLOBAL_BATCH = flags.DEFINE_integer("global_batch", None, "Global batch (default: config).")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"],
                           "Compute dtype, config.model.dtype (default: config).")
_REMAT = flags.DEFINE_bool("remat", None, "config.model.remat (default: config).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (the median is over these).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_PIPELINED_STEPS = flags.DEFINE_integer(
    "pipelined_steps", None, "Steps of the train.py-shaped asynchronous loop (default: --steps; "
    "0 skips it).")
_SYNTHETIC_DATA = flags.DEFINE_bool("synthetic_data", False,
                                    "Random uint8 batches instead of the grain pipeline.")
_VGG_DTYPE = flags.DEFINE_enum(
    "vgg_dtype", None, ["float32", "model"],
    "config.loss.vgg_dtype, the compute dtype of INTERnet's frozen VGG-19 (default: config).")
_PROFILE_DIR = flags.DEFINE_string("profile_dir", None,
                                   "If set, a jax.profiler trace of 3 steps is written there.")
_COMPILE_ONLY = flags.DEFINE_bool(
    "compile_only", False, "Only compile: compile time, XLA memory and FLOPs, no steps (e.g. to "
    "check that a batch fits before running it).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def time_steps(compiled, state, vgg_params, next_batch, iterator, mesh, *, warmup: int,
               steps: int, pipelined_steps: int, global_batch: int):
  """Runs the compiled step: blocked per step, then in train.py's loop shape.

  Returns (state, metrics, step_times, next_times, put_times, pipelined report or None).
  """
  # Blocked per step: device time and input time separately.
  step_times, next_times, put_times = [], [], []
  metrics = None
  for i in range(warmup + steps):
    batch, next_s, put_s = next_batch()
    start = time.perf_counter()
    state, metrics = compiled(state, batch, vgg_params)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      step_times.append(time.perf_counter() - start)
      next_times.append(next_s)
      put_times.append(put_s)
  step_median = float(np.median(step_times))

  # The train.py loop shape: no per-step block, input preparation overlaps the step.
  pipelined = None
  if pipelined_steps > 0:
    loop_input = 0.0
    previous = None
    start = time.perf_counter()
    for _ in range(pipelined_steps):
      fetch_start = time.perf_counter()
      host = next(iterator)
      batch = sharding.put_batch(host, mesh)
      loop_input += time.perf_counter() - fetch_start
      state, metrics = compiled(state, batch, vgg_params)
      # train.py reads the previous step's metrics (its non-finite check) after dispatching the
      # next step: at most one step runs ahead of the host, as here.
      if previous is not None:
        jax.block_until_ready(previous)
      previous = metrics
    jax.block_until_ready((state, metrics))
    per_step = (time.perf_counter() - start) / pipelined_steps
    pipelined = {
        "steps": pipelined_steps, "wall_s_per_step": per_step,
        "input_s_per_step": loop_input / pipelined_steps,
        "samples_per_s": global_batch / per_step,
        # Wall time per step beyond the blocked step median: input and dispatch not hidden by
        # the asynchronous loop (plus load noise on a shared machine; compare with blocked_share).
        "excess_share": max(0.0, per_step - step_median) / per_step,
    }
  return state, metrics, step_times, next_times, put_times, pipelined


def main(argv):
  del argv
  common.configure_jax()
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required")
  if _GLOBAL_BATCH.value is not None:
    config.batch_size = _GLOBAL_BATCH.value
  if _DTYPE.value is not None:
    config.model.dtype = _DTYPE.value
  if _REMAT.value is not None:
    config.model.remat = _REMAT.value
  if _VGG_DTYPE.value is not None:
    config.loss.vgg_dtype = _VGG_DTYPE.value
  if _STEPS.value < 1:
    raise app.UsageError("--steps must be >= 1")
  notes = []
  # Speed does not depend on the VGG weights: without a weights file, time a random VGG-19.
  vgg_weights = config.loss.vgg_weights
  if not (vgg_weights and os.path.isfile(vgg_weights)):
    config.loss.vgg_weights = ""
    config.loss.allow_random_vgg = True
    notes.append("random VGG-19 weights (speed only)")
  train.validate_config(config)
  env = common.environment()
  common.log(f"train_step: {env['device_kind']} x{env['device_count']}, load {env['load_average']}")

  mesh = sharding.create_mesh()
  device = jax.devices()[0]
  global_batch = config.batch_size
  local_batch = sharding.check_batch_size(global_batch)
  resolution = config.data.resolution
  rss_baseline = common.rss_bytes()

  # --- Build exactly what train_and_evaluate builds. ---
  training = train.create_training(config, mesh, steps_per_epoch=1000)
  state = training.init()
  vgg_params = training.constants
  p_train_step = training.step

  # --- Input: the grain pipeline of train.py, or a cycle of synthetic host batches. ---
  if _SYNTHETIC_DATA.value:
    shapes = training.method.batch_shapes(config, local_batch)
    iterator = common.cycle(common.random_batches(shapes, count=4, seed=config.seed))
    input_source = "synthetic"
  else:
    from input_pipeline import datasets, pipeline  # noqa: PLC0415 (heavy: TF, grain, OpenCV)
    train_source = datasets.get_video_source(config.data, "train")
    iterator = pipeline.create_train_iterator(
        config.data, train_source, batch_size_per_process=local_batch, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        example_fn=training.method.example_fn(config))
    input_source = f"pipeline (worker_count={config.data.worker_count})"

  def next_batch():
    """(host batch, device batch, seconds in next(), seconds placing it on the devices)."""
    start = time.perf_counter()
    host = next(iterator)
    fetched = time.perf_counter()
    batch = jax.block_until_ready(sharding.put_batch(host, mesh))
    return batch, fetched - start, time.perf_counter() - fetched

  # --- Compile ahead of time, each phase timed. ---
  batch, _, _ = next_batch()
  start = time.perf_counter()
  traced = p_train_step.trace(state, batch, vgg_params)
  traced_at = time.perf_counter()
  lowered = traced.lower()
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  compiled_at = time.perf_counter()
  compile_report = {"trace_s": traced_at - start, "lower_s": lowered_at - traced_at,
                    "compile_s": compiled_at - lowered_at, "total_s": compiled_at - start}
  remat_count = common.count_primitives(traced.jaxpr, ("checkpoint", "remat", "remat2"))
  if config.model.get("remat", False) and remat_count == 0:
    notes.append("config.model.remat is set but the step has no remat: the model does not pass "
                 "it to its blocks (see benchmarks/README.md)")
  common.log(f"compiled in {compile_report['total_s']:.1f} s; {remat_count} remat regions")

  # --- Steady state (skipped with --compile_only). ---
  pipelined_steps = _STEPS.value if _PIPELINED_STEPS.value is None else _PIPELINED_STEPS.value
  step_times, next_times, put_times, pipelined, metrics = [], [], [], None, None
  if not _COMPILE_ONLY.value:
    state, metrics, step_times, next_times, put_times, pipelined = time_steps(
        compiled, state, vgg_params, next_batch, iterator, mesh, warmup=_WARMUP.value,
        steps=_STEPS.value, pipelined_steps=pipelined_steps, global_batch=global_batch)
    if _PROFILE_DIR.value:
      with jax.profiler.trace(_PROFILE_DIR.value):
        for _ in range(3):
          batch, _, _ = next_batch()
          state, metrics = compiled(state, batch, vgg_params)
        jax.block_until_ready((state, metrics))
  step = common.summarise(step_times)
  step_median = step["median_s"]
  input_median = (float(np.median([n + p for n, p in zip(next_times, put_times)]))
                  if step_times else None)

  scalars = ({name: float(value) for name, value in jax.device_get(metrics).items()}
             if metrics is not None else {})
  param_dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(state.params)})
  dtype = config.model.dtype
  flops = common.cost_flops(compiled)
  peak = common.peak_flops(device, dtype)
  if _COMPILE_ONLY.value:
    notes.append("--compile_only: no step was run")
  elif len(step_times) < 20:
    notes.append(f"only {len(step_times)} timed steps (< 20)")

  result = {
      "benchmark": "train_step",
      "environment": env,
      "config": {
          "config_file": config_flags.get_config_filename(flags.FLAGS["config"]),
          "resolution": resolution, "base_resolution": config.model.get("base_resolution"),
          "global_batch": global_batch, "per_device_batch": global_batch // len(jax.devices()),
          "dtype": dtype, "remat": bool(config.model.get("remat", False)),
          "vgg_dtype": (config.model.dtype if config.loss.get("vgg_dtype") == "model"
                        else "float32") if "loss" in config else None,
          "temporal_scheme": config.get("temporal", {}).get("scheme"),
          "input": input_source,
          **{f"{group}_params": common.count_params(params)
             for group, params in state.params.items()},
      },
      "compile": compile_report,
      "remat_regions_in_step": remat_count,
      "step": step,
      "samples_per_s": global_batch / step_median if step_median else None,
      "steps_per_s": 1.0 / step_median if step_median else None,
      "input": {
          "next_s": common.summarise(next_times),
          "device_put_s": common.summarise(put_times),
          # Blocked per step: the share of (input + step) spent on input if nothing overlapped.
          "blocked_share": (input_median / (input_median + step_median)
                            if step_median else None),
          "pipelined": pipelined,
      },
      "memory": {
          "device": common.device_memory(device, rss_baseline),
          "xla_compiled_step": common.compiled_memory(compiled),
      },
      "flops": {
          "per_step_per_device": flops,
          "source": "compiled.cost_analysis()['flops']",
          "peak": peak,
          **common.utilisation(flops, step_median or 0.0, peak),
      },
      "final_metrics_finite": (all(np.isfinite(v) for v in scalars.values())
                               if scalars else None),
      "param_dtypes": param_dtypes,
      "notes": notes,
  }
  common.emit(result, _OUTPUT.value)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
