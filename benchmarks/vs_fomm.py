r"""Our training step against FOMM-PyTorch's at matched sizes, timed interleaved in one process.

  git clone https://github.com/AliaksandrSiarohin/first-order-model /path/to/fomm
  pip install torch pyyaml            # CPU: --index-url https://download.pytorch.org/whl/cpu
  python benchmarks/vs_fomm.py --fomm_dir=/path/to/fomm [--batch=1,4] \
      [--config=configs/fomm_matched.py[:paper]] [--rounds=5] [--steps=3] [--output=PATH.json]

FOMM's networks (`modules/keypoint_detector.py`, `modules/generator.py`,
`modules/discriminator.py` of the user's checkout) are built from its `config/fashion-256.yaml`
and trained with the loop of its `train.py` (Adam for the generator, the keypoint detector and
the discriminator; G step, then D step on the detached prediction) with the matched losses:
L1 reconstruction and LSGAN (FOMM's `GeneratorFullModel`/`DiscriminatorFullModel` terms
`gen_gan` and `disc_gan`). Nothing of FOMM's code is in this repository; it is imported from
--fomm_dir. Ours is train.py's jitted step for `configs/fomm_matched.py` (what still differs: its
docstring and benchmarks/README.md).

Per batch size: both steps are built and warmed up, then `--rounds` rounds each time `--steps`
steps of one framework and then of the other (the order alternates every round, so a drift in
the machine's load falls on both). Reported per framework: the median step time, samples/s and
conv/matmul FLOP/s (both counted the same way: `common.conv_matmul_flops` on our compiled step,
`torch.utils.flop_counter.FlopCounterMode` on one FOMM step), and the ratio of our samples/s to
FOMM's, overall and per round. PyTorch runs on --threads threads; XLA:CPU on the cores the
process may use, so pin the process (`taskset -c 0-1 ...`) to compare on fewer cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

REPOSITORY = "https://github.com/AliaksandrSiarohin/first-order-model"
FOMM_FILES = ("modules/keypoint_detector.py", "modules/generator.py",
              "modules/discriminator.py", "config/fashion-256.yaml")
INSTALL_TORCH = ("pip install torch pyyaml (CPU-only build: pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu)")


def peer_problem(fomm_dir: str | None) -> str | None:
  """One line saying what is missing for the FOMM side, or None when it can run."""
  if not fomm_dir:
    return f"vs_fomm: --fomm_dir is required: a checkout of {REPOSITORY}"
  if not os.path.isdir(fomm_dir):
    return f"vs_fomm: --fomm_dir: {fomm_dir} is not a directory; git clone {REPOSITORY} there"
  missing = [name for name in FOMM_FILES if not os.path.isfile(os.path.join(fomm_dir, name))]
  if missing:
    return (f"vs_fomm: --fomm_dir: {fomm_dir} has no {missing[0]}: not a checkout of "
            f"{REPOSITORY}")
  for module in ("torch", "yaml"):
    try:
      __import__(module)
    except ImportError:
      return f"vs_fomm: {module} is not installed; {INSTALL_TORCH}"
  return None


def interleave(steppers: dict[str, Callable[[], Any]], rounds: int,
               steps: int) -> dict[str, Any]:
  """Times `steps` calls of each stepper per round, alternating which goes first.

  Each stepper runs one complete, synchronised training step. Returns {"times": {name: [s]},
  "round_medians": {name: [median per round]}, "order": [[names in round order]]}.
  """
  names = list(steppers)
  times = {name: [] for name in names}
  round_medians = {name: [] for name in names}
  order = []
  for index in range(rounds):
    round_order = names if index % 2 == 0 else names[::-1]
    order.append(list(round_order))
    for name in round_order:
      taken = []
      for _ in range(steps):
        start = time.perf_counter()
        steppers[name]()
        taken.append(time.perf_counter() - start)
      times[name].extend(taken)
      round_medians[name].append(float(np.median(taken)))
  return {"times": times, "round_medians": round_medians, "order": order}


def build_ours(config, batch_size: int) -> dict[str, Any]:
  """train.py's step for `config` at `batch_size`: a stepper, conv/matmul FLOPs, parameters."""
  config.batch_size = batch_size
  built = common.compiled_train_step(config, batches=2)
  compiled, constants, batches = built["compiled"], built["training"].constants, built["batches"]
  holder = {"state": built["state"], "i": 0}

  def step():
    holder["state"], metrics = compiled(holder["state"], batches[holder["i"] % 2], constants)
    holder["i"] += 1
    jax.block_until_ready((holder["state"], metrics))

  return {"step": step, "compile_s": built["compile_s"],
          "conv_matmul_flops": common.conv_matmul_flops(compiled.as_text()),
          "xla_flops": common.cost_flops(compiled),
          "params": {group: common.count_params(params)
                     for group, params in built["state"].params.items()}}


def build_fomm(fomm_dir: str, batch_size: int, resolution: int, seed: int) -> dict[str, Any]:
  """FOMM's fashion-256 networks and its train.py step with the matched losses (L1 + LSGAN)."""
  import torch  # noqa: PLC0415 (optional dependency)
  import yaml  # noqa: PLC0415
  from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

  if fomm_dir not in sys.path:
    sys.path.insert(0, fomm_dir)
  from modules.discriminator import MultiScaleDiscriminator  # noqa: PLC0415
  from modules.generator import OcclusionAwareGenerator  # noqa: PLC0415
  from modules.keypoint_detector import KPDetector  # noqa: PLC0415

  with open(os.path.join(fomm_dir, "config", "fashion-256.yaml")) as f:
    fomm_config = yaml.safe_load(f)
  model, train_params = fomm_config["model_params"], fomm_config["train_params"]
  torch.manual_seed(seed)
  kp_detector = KPDetector(**model["kp_detector_params"], **model["common_params"])
  generator = OcclusionAwareGenerator(**model["generator_params"], **model["common_params"])
  discriminator = MultiScaleDiscriminator(**model["discriminator_params"],
                                          **model["common_params"])
  for net in (kp_detector, generator, discriminator):
    net.train()
  betas = (0.5, 0.999)  # FOMM train.py
  optimizer_g = torch.optim.Adam(generator.parameters(), lr=train_params["lr_generator"],
                                 betas=betas)
  optimizer_kp = torch.optim.Adam(kp_detector.parameters(), lr=train_params["lr_kp_detector"],
                                  betas=betas)
  optimizer_d = torch.optim.Adam(discriminator.parameters(),
                                 lr=train_params["lr_discriminator"], betas=betas)
  scale_key = str(model["discriminator_params"]["scales"][0])  # [1]: the full-size frame only
  source = torch.rand(batch_size, 3, resolution, resolution)
  driving = torch.rand(batch_size, 3, resolution, resolution)

  def step():
    # G step (FOMM train.py): keypoints, generator, losses, one backward, G and KP updates.
    kp_source, kp_driving = kp_detector(source), kp_detector(driving)
    prediction = generator(source, kp_source=kp_source, kp_driving=kp_driving)["prediction"]
    fake_map = discriminator({f"prediction_{scale_key}": prediction})[
        f"prediction_map_{scale_key}"]
    loss_g = torch.abs(prediction - driving).mean() + ((1 - fake_map) ** 2).mean()
    loss_g.backward()
    optimizer_g.step()
    optimizer_g.zero_grad()
    optimizer_kp.step()
    optimizer_kp.zero_grad()
    # D step on the detached prediction (FOMM DiscriminatorFullModel, LSGAN).
    optimizer_d.zero_grad()
    real_map = discriminator({f"prediction_{scale_key}": driving})[f"prediction_map_{scale_key}"]
    fake_map = discriminator({f"prediction_{scale_key}": prediction.detach()})[
        f"prediction_map_{scale_key}"]
    loss_d = ((1 - real_map) ** 2 + fake_map ** 2).mean()
    loss_d.backward()
    optimizer_d.step()
    optimizer_d.zero_grad()
    if not (torch.isfinite(loss_g) and torch.isfinite(loss_d)):
      raise FloatingPointError("vs_fomm: FOMM's step produced a non-finite loss")

  counter = FlopCounterMode(display=False)
  with counter:
    step()
  count = lambda net: int(sum(p.numel() for p in net.parameters()))  # noqa: E731
  return {"step": step, "conv_matmul_flops": float(counter.get_total_flops()),
          "params": {"g": count(generator) + count(kp_detector), "d": count(discriminator)},
          "torch": torch.__version__, "threads": torch.get_num_threads()}


def side_report(times: list[float], batch_size: int, flops: float | None) -> dict[str, Any]:
  """Step-time summary, samples/s and achieved FLOP/s of one framework."""
  summary = common.summarise(times)
  median = summary["median_s"]
  return {"step": summary, "samples_per_s": batch_size / median,
          "conv_matmul_gflop_per_step": flops / 1e9 if flops else None,
          "conv_matmul_gflops_per_s": flops / median / 1e9 if flops else None}


def compare(config, fomm_dir: str, batch_size: int, *, rounds: int, steps: int,
            warmup: int) -> dict[str, Any]:
  """Both steps at one batch size, interleaved; the report of `main`'s `results` list."""
  common.log(f"vs_fomm: batch {batch_size}: building and compiling ours")
  ours = build_ours(config, batch_size)
  common.log(f"vs_fomm: batch {batch_size}: building FOMM's")
  fomm = build_fomm(fomm_dir, batch_size, config.data.resolution, config.seed)
  for _ in range(warmup):
    ours["step"]()
    fomm["step"]()
  common.log(f"vs_fomm: batch {batch_size}: {rounds} rounds x {steps} steps each")
  timed = interleave({"ours": ours["step"], "fomm": fomm["step"]}, rounds, steps)
  report = {"batch": batch_size,
            "ours": side_report(timed["times"]["ours"], batch_size, ours["conv_matmul_flops"]),
            "fomm": side_report(timed["times"]["fomm"], batch_size, fomm["conv_matmul_flops"])}
  report["ours"].update(compile_s=ours["compile_s"], params=ours["params"],
                        xla_cost_analysis_gflop_per_step=(ours["xla_flops"] or 0) / 1e9)
  report["fomm"].update(params=fomm["params"], torch=fomm["torch"], threads=fomm["threads"])
  # FOMM's median step / ours = our samples/s over FOMM's.
  report["speed_ratio"] = (report["fomm"]["step"]["median_s"]
                           / report["ours"]["step"]["median_s"])
  report["speed_ratio_per_round"] = [
      f / o for f, o in zip(timed["round_medians"]["fomm"], timed["round_medians"]["ours"])]
  report["order"] = timed["order"]
  common.log(f"vs_fomm: batch {batch_size}: ours {report['ours']['samples_per_s']:.3f} "
             f"samples/s, FOMM {report['fomm']['samples_per_s']:.3f}, ratio "
             f"{report['speed_ratio']:.2f}")
  return report


def git_commit() -> str | None:
  """The repository's commit (short hash, "+changes" when the tree differs), or None."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                            capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           text=True, capture_output=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None
  return commit + ("+changes" if dirty else "")


def define_flags() -> None:
  """The command line (defined only when run as a script, so that importing this module next to
  other absl programs, as the tests do, defines no flag twice)."""
  flags.DEFINE_string("fomm_dir", None, f"A checkout of {REPOSITORY}.")
  config_flags.DEFINE_config_file(
      "config", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "configs", "fomm_matched.py"),
      "Our side's configuration (default: configs/fomm_matched.py).", lock_config=False)
  flags.DEFINE_string("batch", "1,4", "Comma-separated batch sizes.")
  flags.DEFINE_integer("rounds", 5, "Interleaved rounds per batch size.")
  flags.DEFINE_integer("steps", 3, "Timed steps per framework and round.")
  flags.DEFINE_integer("warmup", 2, "Untimed steps of each framework before round 1.")
  flags.DEFINE_integer("threads", None, "PyTorch's intra-op threads (default: the cores this "
                       "process may use, which XLA:CPU uses too).")
  flags.DEFINE_string("output", None, "Also write the JSON (indented) to this path.")


def main(argv):
  del argv
  args = flags.FLAGS
  problem = peer_problem(args.fomm_dir)
  if problem:
    print(problem, file=sys.stderr)
    sys.exit(2)
  try:
    batches = common.parse_ints(args.batch, "batch")
  except ValueError as error:
    print(f"vs_fomm: {error}", file=sys.stderr)
    sys.exit(2)
  for name, value in (("rounds", args.rounds), ("steps", args.steps)):
    if value < 1:
      print(f"vs_fomm: --{name} must be >= 1, got {value}", file=sys.stderr)
      sys.exit(2)
  import torch  # noqa: PLC0415 (checked by peer_problem)

  threads = args.threads or len(os.sched_getaffinity(0))
  torch.set_num_threads(threads)
  common.configure_jax()
  config = args.config
  env = common.environment()
  env["cores_available"] = len(os.sched_getaffinity(0))
  env["commit"] = git_commit()
  results = [compare(config, os.path.abspath(args.fomm_dir), batch, rounds=args.rounds,
                     steps=args.steps, warmup=args.warmup) for batch in batches]
  common.emit({
      "benchmark": "vs_fomm",
      "environment": env,
      "config": {"config_file": config_flags.get_config_filename(flags.FLAGS["config"]),
                 "skip_mode": config.model.generator.skip_mode,
                 "resolution": config.data.resolution, "fomm_dir": args.fomm_dir,
                 "torch_threads": threads, "rounds": args.rounds, "steps": args.steps},
      "results": results,
  }, args.output)


if __name__ == "__main__":
  define_flags()
  app.run(main)
