r"""INTERnet's Table 2 on the synthetic data: the temporal-loss scheme (a plain, b extrinsic,
c intrinsic; "Intrinsic Temporal Regularization for High-resolution Human Video Synthesis",
Sec. 4.3, Fig. 4, Eqs. 2-4) x the generator (SS4x: one warped skip; MS: warped skips at every
scale), over seeds, trained and scored by one harness against the exact ground truth.

  python -m internet_jax.experiments.table2 --out=experiments/results/table2 --seeds=3 \
      [--rows=ss4x_a,ss4x_b,ss4x_c,ms_a,ms_b,ms_c] [--steps=500] [--variant=] \
      [--set=optimizer.g_lr=1e-4 --set=...]

Each run (row, seed) is `configs/synthetic.py[:variant]` with the row's switches
(configs/ablations.py `apply`), `config.seed` = the seed (the data stay the same), trained for
--steps into OUT/runs/<row>_seed<seed>/ and scored by `python -m internet_jax.evaluate`'s
`evaluate_workdir` (self- and cross-identity, with the synthetic ground truth). A finished run
(its result.json) is skipped and an interrupted one resumes from its checkpoint, so the grid can
be spread over several sittings; the aggregate is rewritten after every run:

  OUT/table2.json  every run's scores (mean and per test video), the per-row summary, the paired
                   differences and the machine, date and commit
  OUT/table2.md    mean ± std over seeds per row (best per column in bold), the paired
                   differences c - a and c - b (per generator) with 95 % bootstrap intervals
                   over seeds x test videos
  OUT/table2.png   per metric each row's mean with its std over seeds as an error bar (the
                   axis spans the data, so that small differences show), and the training curves
                   of the temporal loss and the motion EPE (needs matplotlib: pip install
                   "internet_jax[experiments]")
"""

from __future__ import annotations

import ast
import datetime
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

from absl import app
from absl import flags
import numpy as np

ROWS = ("ss4x_a", "ss4x_b", "ss4x_c", "ms_a", "ms_b", "ms_c")
# (evaluate key, label, higher is better). Self-imitation keys; cross-identity ones get "cross/".
METRICS = (
    ("l1", "L1", False),
    ("l1_figure", "L1 figure", False),
    ("psnr", "PSNR", True),
    ("ssim", "SSIM", True),
    ("ssim_figure", "SSIM figure", True),
    ("epe", "motion EPE", False),
    ("epe_figure", "EPE figure", False),
    ("temporal_error_gt", "temporal error (GT flow)", False),
    ("e_temp", "E_temp", False),
    ("interp_psnr_flow", "Interp-PSNR (flow)", True),
    ("anchors_on_figure", "anchors on figure", True),
    ("anchor_boundary_distance", "anchor-boundary distance", False),
    ("anchor_motions_used", "anchor motions used", True),
    ("confidence_auc", "confidence AUC", True),
    ("confidence_iou", "confidence IoU", True),
    ("confidence_auc_figure", "confidence AUC figure", True),
)
CROSS_METRICS = (("l1", "cross L1", False), ("l1_figure", "cross L1 figure", False),
                 ("epe", "cross EPE", False))
# The trivial baselines shown beside the table (copy-source, zero motion), from any run.
BASELINES = (("l1_copy_source", "L1 copy-source"), ("l1_figure_copy_source", "L1 figure copy-source"),
             ("epe_zero_motion", "EPE zero motion"), ("epe_figure_zero_motion",
                                                      "EPE figure zero motion"),
             ("anchors_on_figure_chance", "anchors on figure by chance"),
             ("anchor_boundary_distance_chance", "anchor-boundary distance by chance"),
             ("confidence_iou_all_visible", "confidence IoU of M = 1"))
COMPARISONS = (("c", "a"), ("c", "b"))
CURVES = (("train/g/temporal", "temporal loss (train)"), ("eval/motion_epe", "motion EPE (eval)"))
RESULT = "result.json"


def all_metrics() -> list[tuple[str, str, bool]]:
  return list(METRICS) + [(f"cross/{key}", label, up) for key, label, up in CROSS_METRICS]


# --- One run ---------------------------------------------------------------------------------------


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
  """["a.b=1e-4", "c=name"] -> {"a.b": 1e-4, "c": "name"} (Python literals, else strings)."""
  parsed = {}
  for item in overrides:
    key, separator, text = item.partition("=")
    if not separator or not key:
      raise ValueError(f"--set: expected FIELD=VALUE, got {item!r}")
    try:
      parsed[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      parsed[key] = text
  return parsed


def run_config(row: str, seed: int, steps: int, variant: str = "",
               overrides: dict[str, Any] | None = None):
  """The config of one run (see the module docstring)."""
  from configs import ablations, synthetic  # pylint: disable=g-import-not-at-top
  config = ablations.apply(synthetic.get_config(variant), row)
  config.seed = int(seed)
  config.num_train_steps = int(steps)
  config.eval_every_steps = max(int(steps) // 4, 1)  # five points on the training curves
  config.checkpoint_every_steps = max(int(steps) // 4, 1)
  config.sample_animation = False
  for key, value in (overrides or {}).items():
    node = config
    *parents, leaf = key.split(".")
    for parent in parents:
      node = node[parent]
    if leaf not in node:
      raise ValueError(f"--set: config has no field {key!r}")
    node[leaf] = value
  return config


def _scores(results: dict) -> tuple[dict, dict]:
  """(mean, per-video) numbers of one evaluate result (strings, i.e. not-computed, left out)."""
  numeric = lambda d: {k: float(v) for k, v in d.items()  # noqa: E731
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
  return numeric(results["mean"]), {name: numeric(v) for name, v in results["videos"].items()}


def run_one(out: Path, row: str, seed: int, steps: int, variant: str = "",
            overrides: dict[str, Any] | None = None) -> dict:
  """Trains (resuming) and evaluates one run unless its result.json exists; returns the result."""
  workdir = out / "runs" / f"{row}_seed{seed}"
  result_path = workdir / RESULT
  if result_path.is_file():
    return json.loads(result_path.read_text())
  from internet_jax import evaluate, notebook, train  # pylint: disable=g-import-not-at-top
  config = run_config(row, seed, steps, variant, overrides)
  started = time.perf_counter()
  train.train_and_evaluate(config, str(workdir))
  train_seconds = time.perf_counter() - started
  results = evaluate.evaluate_workdir(str(workdir), output_dir=workdir / "eval")
  mean, videos = _scores(results)
  cross = results.get("cross_identity")
  if isinstance(cross, dict):
    cross_mean, cross_videos = _scores(cross)
    mean.update({f"cross/{k}": v for k, v in cross_mean.items()})
    for name, values in cross_videos.items():
      videos.setdefault(name, {}).update({f"cross/{k}": v for k, v in values.items()})
  scalars = notebook.read_scalars(str(workdir))
  curves = {tag: [[int(s), float(v)] for s, v in zip(*scalars[tag])]
            for tag, _ in CURVES if tag in scalars}
  result = {"row": row, "seed": int(seed), "steps": int(steps), "variant": variant,
            "overrides": {k: repr(v) for k, v in (overrides or {}).items()},
            "train_seconds": round(train_seconds, 1), "mean": mean, "videos": videos,
            "curves": curves}
  temporary = result_path.with_suffix(".json.tmp")
  temporary.write_text(json.dumps(result, indent=1))
  os.replace(temporary, result_path)  # a run counts as finished only with its whole result
  return result


# --- Aggregation -----------------------------------------------------------------------------------


def summarize(results: Sequence[dict]) -> dict[str, dict[str, list[float]]]:
  """{row: {metric: [mean, std over seeds, number of seeds]}} (std 0 for one seed)."""
  table: dict[str, dict[str, list[float]]] = {}
  for row in dict.fromkeys(r["row"] for r in results):
    runs = [r for r in results if r["row"] == row]
    table[row] = {}
    for key, _, _ in all_metrics():
      values = np.array([r["mean"][key] for r in runs if np.isfinite(r["mean"].get(key, np.nan))])
      if len(values):
        table[row][key] = [float(values.mean()), float(values.std(ddof=1) if len(values) > 1
                                                       else 0.0), int(len(values))]
  return table


def paired_differences(results: Sequence[dict], confidence: float = 0.95,
                       resamples: int = 10000) -> list[dict]:
  """For each generator and each comparison (c - a, c - b) and metric: the mean of the
  differences over the pairs (seed, test video) both rows have, and its bootstrap interval
  (scipy.stats.bootstrap, percentile method, fixed random state)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  by_run = {(r["row"], r["seed"]): r for r in results}
  differences = []
  for generator in ("ss4x", "ms"):
    for better, worse in COMPARISONS:
      first, second = f"{generator}_{better}", f"{generator}_{worse}"
      seeds = sorted(s for row, s in by_run if row == first and (second, s) in by_run)
      if not seeds:
        continue
      for key, label, higher in all_metrics():
        pairs = [by_run[(first, s)]["videos"][v].get(key, np.nan)
                 - by_run[(second, s)]["videos"][v].get(key, np.nan)
                 for s in seeds for v in by_run[(first, s)]["videos"]
                 if v in by_run[(second, s)]["videos"]]
        pairs = np.array([d for d in pairs if np.isfinite(d)])
        if not len(pairs):
          continue
        mean = float(pairs.mean())
        if len(pairs) > 1 and np.ptp(pairs) > 0:
          interval = stats.bootstrap((pairs,), np.mean, confidence_level=confidence,
                                     n_resamples=resamples, method="percentile",
                                     random_state=0).confidence_interval
          low, high = float(interval.low), float(interval.high)
        else:  # one pair, or all equal: no spread to resample
          low = high = mean
        differences.append({"comparison": f"{first} - {second}", "metric": key, "label": label,
                            "higher_is_better": higher, "mean": mean, "low": low, "high": high,
                            "pairs": int(len(pairs)),
                            "better": bool(low > 0 if higher else high < 0),
                            "worse": bool(high < 0 if higher else low > 0)})
  return differences


def _fmt(value: float) -> str:
  return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def markdown(results: Sequence[dict], provenance: dict) -> str:
  """The table (mean ± std, best per column in bold), the baselines and the differences."""
  table = summarize(results)
  columns = [(k, label, up) for k, label, up in all_metrics()
             if any(k in values for values in table.values())]
  steps = sorted({r["steps"] for r in results})
  lines = [f"# Table 2 on the synthetic data ({len(results)} runs, {steps} steps each)", "",
           f"Machine: {provenance['machine']}; date {provenance['date']}; commit "
           f"{provenance['commit']}. Mean ± std over seeds (n = seeds per row); best per column "
           "in bold; ↑ higher is better, ↓ lower.", ""]
  lines.append("| row | n | " + " | ".join(f"{label} {'↑' if up else '↓'}"
                                           for _, label, up in columns) + " |")
  lines.append("|---|---|" + "---|" * len(columns))
  best = {}
  for key, _, up in columns:
    values = {row: v[key][0] for row, v in table.items() if key in v}
    best[key] = (max if up else min)(values, key=values.get) if values else None
  for row, values in table.items():
    n = max((v[2] for v in values.values()), default=0)
    cells = []
    for key, _, _ in columns:
      if key not in values:
        cells.append("—")
        continue
      mean, std, _ = values[key]
      text = f"{_fmt(mean)} ± {_fmt(std)}"
      cells.append(f"**{text}**" if best[key] == row else text)
    lines.append(f"| {row} | {n} | " + " | ".join(cells) + " |")
  baselines = {label: np.mean([r["mean"][key] for r in results if key in r["mean"]])
               for key, label in BASELINES if any(key in r["mean"] for r in results)}
  if baselines:
    lines += ["", "Trivial baselines on the same test frames: "
              + "; ".join(f"{label} {_fmt(value)}" for label, value in baselines.items()) + "."]
  differences = paired_differences(results)
  if differences:
    lines += ["", "## Paired differences (95 % bootstrap interval over seeds × test videos)", "",
              "| comparison | metric | mean | interval | pairs | verdict |", "|---|---|---|---|---|---|"]
    for d in differences:
      verdict = ("first better" if d["better"] else "first worse" if d["worse"]
                 else "no difference resolved")
      lines.append(f"| {d['comparison']} | {d['label']} {'↑' if d['higher_is_better'] else '↓'} "
                   f"| {_fmt(d['mean'])} | [{_fmt(d['low'])}, {_fmt(d['high'])}] | {d['pairs']} "
                   f"| {verdict} |")
  return "\n".join(lines) + "\n"


def plot(results: Sequence[dict], path: Path) -> bool:
  """Means with error bars (std over seeds) per metric and the training curves; False when
  matplotlib is not installed."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  table = summarize(results)
  rows = list(table)
  keys = [(k, label, up) for k, label, up in all_metrics() if any(k in table[r] for r in rows)]
  count = len(keys) + len(CURVES)
  width = 4
  height = -(-count // width)
  figure, axes = plt.subplots(height, width, figsize=(4 * width, 3 * height), squeeze=False)
  colours = plt.get_cmap("tab10")
  for axis, (key, label, up) in zip(axes.flat, keys):
    means = [table[r].get(key, [np.nan, 0, 0])[0] for r in rows]
    stds = [table[r].get(key, [np.nan, 0, 0])[1] for r in rows]
    for index, (mean, std) in enumerate(zip(means, stds)):
      axis.errorbar(index, mean, yerr=std, fmt="o", capsize=3, color=colours(index))
    axis.set_xticks(range(len(rows)), rows, rotation=45, fontsize=7)
    axis.set_title(f"{label} {'↑' if up else '↓'}", fontsize=9)
  for axis, (tag, label) in zip(axes.flat[len(keys):], CURVES):
    for index, row in enumerate(rows):
      for r in results:
        if r["row"] == row and tag in r["curves"]:
          steps, values = zip(*r["curves"][tag])
          axis.plot(steps, values, color=colours(index), alpha=0.7,
                    label=row if r["seed"] == min(x["seed"] for x in results if x["row"] == row)
                    else None)
    axis.set_title(label, fontsize=9)
    axis.set_xlabel("step", fontsize=7)
    if axis.get_legend_handles_labels()[0]:
      axis.legend(fontsize=6)
  for axis in axes.flat[count:]:
    axis.axis("off")
  figure.tight_layout()
  temporary = path.with_suffix(".tmp.png")
  figure.savefig(temporary, dpi=90)
  plt.close(figure)
  os.replace(temporary, path)
  return True


def provenance() -> dict[str, str]:
  """Machine, date and commit, for the results."""
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True, cwd=Path(__file__).resolve().parent
                            ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  return {"machine": f"{platform.machine()} {os.cpu_count()} CPU cores, jax {jax.__version__} "
                     f"on {device.platform} ({device.device_kind})",
          "date": datetime.date.today().isoformat(), "commit": commit}


def write_reports(out: Path, results: Sequence[dict]) -> None:
  """OUT/table2.json, table2.md and (with matplotlib) table2.png."""
  info = provenance()
  report = {"provenance": info, "runs": list(results), "summary": summarize(results),
            "differences": paired_differences(results)}
  for name, text in (("table2.json", json.dumps(report, indent=1)),
                     ("table2.md", markdown(results, info))):
    temporary = out / f"{name}.tmp"
    temporary.write_text(text)
    os.replace(temporary, out / name)
  if not plot(results, out / "table2.png"):
    print("table2: no plot (pip install matplotlib, or internet_jax[experiments])",
          file=sys.stderr)


def run_grid(out: str | os.PathLike, rows: Sequence[str], seeds: int, steps: int,
             variant: str = "", overrides: dict[str, Any] | None = None) -> list[dict]:
  """Every (row, seed) in order, skipping finished runs; the reports after each run."""
  out = Path(out)
  unknown = [row for row in rows if row not in ROWS]
  if unknown:
    raise ValueError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
  if seeds < 1 or steps < 1:
    raise ValueError(f"--seeds and --steps must be >= 1, got {seeds} and {steps}")
  run_config(rows[0], 0, steps, variant, overrides)  # a bad --set fails before any training
  (out / "runs").mkdir(parents=True, exist_ok=True)
  results = []
  for seed in range(seeds):  # seeds outermost: a partial grid has every row at seed 0 first
    for row in rows:
      print(f"table2: {row} seed {seed} ({len(results) + 1}/{len(rows) * seeds})",
            file=sys.stderr)
      results.append(run_one(out, row, seed, steps, variant, overrides))
      write_reports(out, results)
  return results


_OUT = flags.DEFINE_string("out", "experiments/results/table2", "Output folder (runs and reports).")
_ROWS = flags.DEFINE_list("rows", list(ROWS), "Rows of the grid.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per row (0 .. seeds - 1).")
_STEPS = flags.DEFINE_integer("steps", 500, "Training steps per run.")
_VARIANT = flags.DEFINE_string("variant", "", "configs/synthetic.py variant (e.g. tiny).")
_SET = flags.DEFINE_multi_string("set", [], "Config overrides FIELD=VALUE for every run.")


def main(argv):
  del argv  # stray words are refused by errors.flags_parser
  from internet_jax import cli, errors  # pylint: disable=g-import-not-at-top
  cli.start(verbose=False)
  with errors.user_errors(prefix="table2"):
    run_grid(_OUT.value, _ROWS.value, _SEEDS.value, _STEPS.value, _VARIANT.value,
             parse_overrides(_SET.value))


if __name__ == "__main__":
  from internet_jax import errors as _errors  # pylint: disable=g-import-not-at-top
  app.run(main, flags_parser=_errors.flags_parser())
