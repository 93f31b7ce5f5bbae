"""Shared helpers of the benchmarks: timing, device facts, FLOP and memory accounting, JSON output.

Every benchmark prints exactly one JSON object on stdout (logs go to stderr), so that
`benchmarks/run_all.py` and shell pipelines can parse it. Timings are medians over repeated calls,
each ended with `jax.block_until_ready`, because XLA dispatch is asynchronous.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import resource
import socket
import sys
import time
from typing import Any, Callable

import jax
import numpy as np

# Dense peak FLOP/s per device by (device-kind pattern, compute dtype), from the vendors' data
# sheets. Patterns are matched case-insensitively against `device.device_kind`, first match wins.
# TPUs run float32 matmuls/convolutions as bfloat16 passes at JAX's default precision, so both
# dtypes use the bfloat16 peak there. GPUs: JAX's default precision lets XLA use TF32 tensor cores
# for float32 convolutions, so a float32 run is also compared with the TF32 peak ("tf32").
PEAK_FLOPS = (
    # (pattern, excluded pattern, {dtype: FLOP/s}, label)
    ("h100", "pcie", {"bfloat16": 989e12, "float32": 67e12, "tf32": 494.7e12}, "H100 SXM"),
    ("h200", None, {"bfloat16": 989e12, "float32": 67e12, "tf32": 494.7e12}, "H200"),
    ("tpu v4", None, {"bfloat16": 275e12, "float32": 275e12}, "TPU v4"),
    ("tpu v5 lite", None, {"bfloat16": 197e12, "float32": 197e12}, "TPU v5e"),
    ("tpu v5e", None, {"bfloat16": 197e12, "float32": 197e12}, "TPU v5e"),
    ("tpu v5p", None, {"bfloat16": 459e12, "float32": 459e12}, "TPU v5p"),
    ("tpu v5", None, {"bfloat16": 459e12, "float32": 459e12}, "TPU v5p"),
)


def configure_jax() -> None:
  """No persistent compilation cache: a cache hit would report a near-zero compile time."""
  jax.config.update("jax_enable_compilation_cache", False)


def peak_flops(device: jax.Device, dtype: str) -> dict[str, Any]:
  """{"device_kind", "label", "peak_flops", "peak_tf32_flops", "reason"} for one device and dtype.

  `peak_flops` is None (with a reason) where no peak is known, e.g. on CPU.
  """
  kind = device.device_kind
  for pattern, excluded, peaks, label in PEAK_FLOPS:
    lowered = kind.lower()
    if pattern in lowered and not (excluded and excluded in lowered):
      return {"device_kind": kind, "label": label, "peak_flops": peaks.get(dtype),
              "peak_tf32_flops": peaks.get("tf32") if dtype == "float32" else None,
              "reason": None}
  reason = ("no peak FLOP/s is known for CPUs; only achieved FLOP/s is reported"
            if device.platform == "cpu" else f"device kind {kind!r} is not in the peak table")
  return {"device_kind": kind, "label": None, "peak_flops": None, "peak_tf32_flops": None,
          "reason": reason}


def utilisation(flops: float | None, seconds: float, peak: dict[str, Any]) -> dict[str, Any]:
  """Achieved FLOP/s of one device and its fraction of the device peak (None where unknown)."""
  if not flops or seconds <= 0:
    return {"achieved_flops_per_s": None, "utilisation": None, "utilisation_vs_tf32": None}
  achieved = flops / seconds
  return {
      "achieved_flops_per_s": achieved,
      "achieved_gflops_per_s": achieved / 1e9,
      "utilisation": achieved / peak["peak_flops"] if peak["peak_flops"] else None,
      "utilisation_vs_tf32": (achieved / peak["peak_tf32_flops"]
                              if peak.get("peak_tf32_flops") else None),
  }


def cost_flops(compiled: Any) -> float | None:
  """FLOPs of one call of a compiled program, per device, from XLA's cost analysis."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # not every backend implements it
    return None
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per partition
    analysis = analysis[0] if analysis else None
  if not analysis or "flops" not in analysis:
    return None
  return float(analysis["flops"])


def compiled_memory(compiled: Any) -> dict[str, Any] | None:
  """XLA's static buffer sizes of a compiled program (bytes, per device), on every backend.

  `estimated_peak_bytes` = arguments + outputs + temporaries - donated (aliased) bytes: what the
  program needs while it runs, not counting other live arrays of the process.
  """
  try:
    stats = compiled.memory_analysis()
  except Exception:
    return None
  if stats is None:
    return None
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
            "temp_size_in_bytes", "generated_code_size_in_bytes")
  out = {name: int(getattr(stats, name, 0) or 0) for name in fields}
  out["estimated_peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                                 + out["temp_size_in_bytes"] - out["alias_size_in_bytes"])
  return out


def rss_bytes() -> int:
  """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return 0


def peak_rss_bytes() -> int:
  """High-water mark of the resident set size of this process (ru_maxrss is KiB on Linux)."""
  return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def device_memory(device: jax.Device, rss_baseline: int) -> dict[str, Any]:
  """Peak device memory from `memory_stats()`, or on CPU the process RSS growth, labelled.

  Args:
    device: the device that ran the program.
    rss_baseline: `rss_bytes()` taken before the measured arrays were created.
  """
  stats = None
  try:
    stats = device.memory_stats()
  except Exception:
    pass
  if stats and "peak_bytes_in_use" in stats:
    return {"peak_bytes": int(stats["peak_bytes_in_use"]), "bytes_limit": stats.get("bytes_limit"),
            "source": "device.memory_stats()['peak_bytes_in_use'] (process lifetime peak)"}
  result = {"peak_bytes": None,
            "reason": f"device.memory_stats() gives no peak on {device.platform}"}
  if device.platform == "cpu":
    result.update({
        "approx_peak_rss_delta_bytes": max(0, peak_rss_bytes() - rss_baseline),
        "source": "APPROXIMATION: process peak RSS minus RSS before building the state "
                  "(includes host-side buffers and compiler memory)"})
  return result


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
  """Wall seconds of `repeats` calls of fn() after `warmup` untimed ones, each one blocked on."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return times


def time_case(call: Callable[[], Any], repeats: int, warmup: int) -> dict[str, Any]:
  """First call (compile + run) time, then the summary of `repeats` timed calls."""
  start = time.perf_counter()
  call()
  first = time.perf_counter() - start
  times = time_calls(call, repeats=repeats, warmup=warmup)
  return {"first_call_s": first, "call": summarise(times)}


def summarise(times: list[float]) -> dict[str, Any]:
  """Median (the number to quote on a shared machine), spread and count of a list of seconds."""
  if not times:
    return {"n": 0, "median_s": None}
  values = np.asarray(times, np.float64)
  return {"n": len(times), "median_s": float(np.median(values)),
          "p10_s": float(np.percentile(values, 10)), "p90_s": float(np.percentile(values, 90)),
          "min_s": float(values.min()), "mean_s": float(values.mean())}


def environment() -> dict[str, Any]:
  """Where and when a number was taken: host, load, JAX and device facts."""
  devices = jax.devices()
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  return {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "host": socket.gethostname(),
      "platform": platform.platform(),
      "python": sys.version.split()[0],
      "cpu_count": os.cpu_count(),
      # 1/5/15-min load averages at the start: on a shared machine they explain the noise.
      "load_average": list(load) if load else None,
      "jax": jax.__version__,
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": len(devices),
      "process_count": jax.process_count(),
  }


def emit(result: dict[str, Any], output: str | None = None) -> None:
  """Prints `result` as one JSON line on stdout and, if asked, writes it (indented) to `output`."""
  if result.get("environment") is not None:
    try:
      result["environment"]["load_average_end"] = list(os.getloadavg())
    except OSError:
      pass
  text = json.dumps(result, default=_json_default)
  if output:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
      json.dump(json.loads(text), f, indent=2)
  print(text, flush=True)


def _json_default(value: Any) -> Any:
  """numpy scalars and arrays, dtypes and anything else printable."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  return str(value)


def parse_ints(text: str, field: str) -> list[int]:
  """"256,512" -> [256, 512]; a one-line ValueError naming the flag otherwise."""
  try:
    values = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise ValueError(f"--{field}: expected comma-separated integers, got {text!r}") from None
  if not values or any(v <= 0 for v in values):
    raise ValueError(f"--{field}: expected positive integers, got {text!r}")
  return values


def log(message: str) -> None:
  """Progress on stderr (stdout carries only the JSON)."""
  print(message, file=sys.stderr, flush=True)


def random_batches(shapes: dict[str, jax.ShapeDtypeStruct], count: int,
                   seed: int = 0) -> list[dict[str, np.ndarray]]:
  """`count` host batches of the method's batch shapes (`Method.batch_shapes`), any method.

  uint8 arrays (frames) are uniform noise; floating arrays (flows, confidences, coordinates) are
  small, uniform in [0, 0.05), so flows move a fraction of a pixel and nothing leaves the frame;
  other integers (labels) are 0 and booleans True, valid for any label set or mask. The step's
  speed does not depend on the values, only their shapes.
  """
  rng = np.random.default_rng(seed)

  def fill(shape: jax.ShapeDtypeStruct) -> np.ndarray:
    dtype = np.dtype(shape.dtype)
    if dtype == np.uint8:
      return rng.integers(0, 256, shape.shape, dtype=np.uint8)
    if np.issubdtype(dtype, np.floating):
      return rng.uniform(0.0, 0.05, shape.shape).astype(dtype)
    return np.full(shape.shape, dtype.type(1) if dtype == np.bool_ else 0, dtype)

  return [jax.tree.map(fill, shapes) for _ in range(count)]


def cycle(items):
  """Endless iterator over a list (the synthetic 'pipeline')."""
  while True:
    yield from items


def compiled_train_step(config, batches: int = 1, steps_per_epoch: int = 1000) -> dict[str, Any]:
  """train.py's step for `config` (its `batch_size`), built, initialised and compiled ahead of
  time, with `batches` random device batches of the method's shapes: dict(training, state,
  batches, compiled, compile_s)."""
  from internet_jax import sharding, train  # noqa: PLC0415 (heavy; not every benchmark trains)

  train.validate_config(config)
  mesh = sharding.create_mesh()
  training = train.create_training(config, mesh, steps_per_epoch=steps_per_epoch)
  state = training.init()
  shapes = training.method.batch_shapes(config, sharding.check_batch_size(config.batch_size))
  device_batches = [sharding.put_batch(host, mesh)
                    for host in random_batches(shapes, count=batches, seed=config.seed)]
  start = time.perf_counter()
  compiled = training.step.lower(state, device_batches[0], training.constants).compile()
  return {"training": training, "state": state, "batches": device_batches, "compiled": compiled,
          "compile_s": time.perf_counter() - start}


def _subjaxprs(eqn):
  """Every sub-program of one equation (pjit, remat, custom_vjp, scan, cond branches ...)."""
  for value in eqn.params.values():
    for item in value if isinstance(value, (list, tuple)) else (value,):
      inner = getattr(item, "jaxpr", item)
      if hasattr(inner, "eqns"):
        yield inner


# "%name = f32[1,64,64,256]{3,2,1,0} opcode(%a, %b), attributes..." (ROOT optional).
_HLO_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*\w+\[([\d,]*)\]\S*\s+([\w\-]+)\((.*)$")


def _dims(text: str) -> list[int]:
  return [int(d) for d in text.split(",") if d]


def conv_matmul_flops(hlo_text: str) -> float:
  """FLOPs (2 per multiply-add) of the convolutions and dots of a compiled XLA program.

  Counted on `compiled.as_text()`, the optimised HLO, i.e. what runs (after XLA dropped what no
  output needs), and the same way as PyTorch's `torch.utils.flop_counter.FlopCounterMode`, which
  also counts only convolutions and matrix products, forward and backward; so two frameworks'
  steps compare like with like (XLA's `cost_analysis` adds elementwise work). A convolution costs
  2 * (output elements) * (kernel elements per output feature), divided by its input dilation
  (the input gradient of a strided convolution: the inserted zeros are no work); a dot
  2 * (output elements) * (product of the contracted dimensions). The body of a loop counts once.
  """
  total = 0.0
  shapes: dict[str, list[int]] = {}  # per computation: instruction name -> dims
  for line in hlo_text.splitlines():
    if line.rstrip().endswith("{") and "=" not in line.split("(")[0]:
      shapes = {}  # a new computation: its instruction names are its own
      continue
    match = _HLO_INSTRUCTION.match(line)
    if not match:
      continue
    name, dims, opcode, rest = match.groups()
    shapes[name] = out = _dims(dims)
    operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
    if opcode == "convolution":
      kernel = shapes[operands[1]]
      labels = re.search(r"dim_labels=\w+_(\w+)->", rest).group(1)
      dilation = re.search(r"lhs_dilate=([\dx]+)", rest)
      dilated = np.prod(_dims(dilation.group(1).replace("x", ","))) if dilation else 1
      per_output = np.prod(kernel) / kernel[labels.index("o")]
      total += 2.0 * np.prod(out) * per_output / dilated
    elif opcode == "dot":
      contracted = _dims(re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest).group(1))
      lhs = shapes[operands[0]]
      total += 2.0 * np.prod(out) * np.prod([lhs[d] for d in contracted])
  return float(total)


def count_primitives(jaxpr, names: tuple[str, ...]) -> int:
  """Number of equations whose primitive is in `names`, in a jaxpr and all its sub-jaxprs."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)  # ClosedJaxpr -> Jaxpr
  total = 0
  for eqn in jaxpr.eqns:
    total += eqn.primitive.name in names
    total += sum(count_primitives(inner, names) for inner in _subjaxprs(eqn))
  return total


def random_generator(config) -> tuple[Any, Any, Any]:
  """(method, networks, generator parameters) of `config`'s method, randomly initialised: the
  inference benchmarks time the renderers, whose speed does not depend on training."""
  from internet_jax import method as method_lib  # noqa: PLC0415 (as compiled_train_step)
  method = method_lib.get(config.method)
  networks = method.build(config)
  init = jax.jit(lambda key: method.init_params(networks, key, config)["g"])
  return method, networks, init(jax.random.key(0))


def inference_report(benchmark: str, env: dict[str, Any], config, config_file: str | None,
                     cases: list[dict[str, Any]]) -> dict[str, Any]:
  """The JSON object an inference benchmark of randomly initialised networks prints."""
  return {"benchmark": benchmark, "environment": env,
          "config": {"config_file": config_file, "dtype": config.model.dtype,
                     "params": "random init (speed does not depend on training)"},
          "cases": cases}


def count_params(tree) -> int:
  """Number of scalars in a pytree of arrays."""
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
