r"""Where a training step's time goes: a profiler trace of the compiled step, per XLA op.

  python benchmarks/step_profile.py --config=configs/fomm_matched.py [--global_batch=1] \
      [--steps=3] [--top=25] [--trace_dir=DIR] [--output=PATH.json]

Runs train.py's jitted step (as benchmarks/train_step.py builds it, random batches) under
`jax.profiler.trace`, reads the trace back (`jax.profiler.ProfileData`) and sums the time of
every executed XLA op (the events that carry an `hlo_op`). Each op is named by the source of its
HLO metadata (`op_name`, e.g. `transpose(jvp(INTERnet))/INTERnet.generate/generator.decode/
bottleneck_0/Conv_0/conv_general_dilated`) and grouped by network part (the first Flax module
scope), pass (forward, or backward when the name holds `transpose(`) and primitive (the last
name component). Times are thread-seconds per step: XLA:CPU runs independent ops of a step on
several threads at once, so the groups add up to more than the wall time, which is reported
beside them. One JSON object on stdout, as every benchmark here.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

_OP_NAME = re.compile(r'^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=.*?metadata=\{[^}]*op_name="([^"]*)"')


def op_names(hlo_text: str) -> dict[str, str]:
  """{HLO instruction name: its metadata op_name} of a compiled module's text."""
  names = {}
  for line in hlo_text.splitlines():
    match = _OP_NAME.match(line)
    if match:
      names.setdefault(match.group(1), match.group(2))
  return names


def op_group(op_name: str) -> tuple[str, str, str]:
  """(part, pass, primitive) of one op's metadata name.

  part: the differentiated module (`jvp(INTERnet)` -> INTERnet) and its first two scopes, e.g.
  "INTERnet/INTERnet.generate/generator.decode"; "other" for ops outside every module (losses,
  optimiser, data conversion). pass: "backward" inside `transpose(...)`, else "forward".
  """
  parts = [p for p in op_name.split("/") if p]
  module = re.search(r"jvp\((\w+)\)", op_name)
  transforms = r"(transpose|jvp|vmap|jit|remat|checkpoint)\("
  scopes = [p for p in parts[1:-1] if not re.match(transforms, p)]
  part = "/".join(([module.group(1)] if module else []) + scopes[:2]) or "other"
  backward = "transpose(" in op_name
  primitive = re.sub(r"\[.*", "", parts[-1]) if parts else "?"
  return part, "backward" if backward else "forward", primitive


def summarise_trace(trace_dir: str, names: dict[str, str], steps: int) -> dict:
  """Thread-seconds per step by op and by (part, pass, primitive) from a trace folder."""
  from jax.profiler import ProfileData  # noqa: PLC0415

  paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
  if not paths:
    raise FileNotFoundError(f"step_profile: no *.xplane.pb under {trace_dir}")
  by_op = collections.Counter()
  for plane in ProfileData.from_file(paths[0]).planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if "hlo_op" in stats:
          by_op[stats["hlo_op"]] += event.duration_ns / 1e9 / steps
  by_group = collections.Counter()
  for op, seconds in by_op.items():
    by_group[op_group(names.get(op, op))] += seconds
  total = sum(by_op.values())
  return {
      "thread_s_per_step": total,
      "groups": [{"part": part, "pass": direction, "primitive": primitive, "s": seconds,
                  "share": seconds / total}
                 for (part, direction, primitive), seconds in by_group.most_common()],
      "ops": [{"op": op, "op_name": names.get(op, ""), "s": seconds, "share": seconds / total}
              for op, seconds in by_op.most_common()],
  }


def main(argv):
  del argv
  args = flags.FLAGS
  common.configure_jax()
  config = args.config
  if args.global_batch:
    config.batch_size = args.global_batch
  built = common.compiled_train_step(config)
  compiled, constants = built["compiled"], built["training"].constants
  state, batch = built["state"], built["batches"][0]
  for _ in range(2):  # warm up
    state, metrics = compiled(state, batch, constants)
  jax.block_until_ready((state, metrics))
  trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="step_profile_")
  start = time.perf_counter()
  with jax.profiler.trace(trace_dir):
    for _ in range(args.steps):
      state, metrics = compiled(state, batch, constants)
      jax.block_until_ready((state, metrics))
  wall = (time.perf_counter() - start) / args.steps
  summary = summarise_trace(trace_dir, op_names(compiled.as_text()), args.steps)
  if not args.trace_dir:
    shutil.rmtree(trace_dir, ignore_errors=True)
  summary["groups"] = summary["groups"][:args.top]
  summary["ops"] = summary["ops"][:args.top]
  common.emit({"benchmark": "step_profile", "environment": common.environment(),
               "config": {"config_file": config_flags.get_config_filename(args["config"]),
                          "global_batch": config.batch_size,
                          "xla_flags": os.environ.get("XLA_FLAGS", "")},
               "wall_s_per_step": wall, **summary}, args.output)


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", None, "Configuration file.", lock_config=False)
  flags.DEFINE_integer("global_batch", None, "Global batch (default: config).")
  flags.DEFINE_integer("steps", 3, "Profiled steps (after two warm-up steps).")
  flags.DEFINE_integer("top", 25, "Groups and ops listed.")
  flags.DEFINE_string("trace_dir", None, "Keep the trace here (default: a temporary folder).")
  flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")
  flags.mark_flag_as_required("config")
  app.run(main)
