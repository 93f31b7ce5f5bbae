r"""Runs the benchmarks and writes one Markdown table of results plus the raw JSON.

  python benchmarks/run_all.py [--full] [--runs=3] [--with_pipeline] [--output_dir=benchmarks]

Default: the small CPU settings (the synthetic config's train step at 64^2, batch 8; animation at
256^2, batch 1 and 16, with and without the source cache; warps at one 128^2 generator level and
the dense-motion warps, batch 1). --full: the GPU/TPU settings (the paper's 512^2 DanceFashion
model: train step in float32 and bfloat16, with and without remat; animation at 256^2 and 512^2;
every warp of a training step; D2G-Net's renderer at 512^2 as well). D2G-Net's frame renderer
(d2g_inference) runs at the paper's widths, 256^2 by default. Each benchmark runs in its own process (clean memory peaks, no
shared compilation state) --runs times; the table shows the median over runs of each run's
median, and the spread over runs of the main time. Writes <output_dir>/results.md and
<output_dir>/results.json; the stderr of every run goes to --run_logs (default <output_dir>/logs/).
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, "benchmarks")

_FULL = flags.DEFINE_bool("full", False, "GPU/TPU settings (512^2 paper model).")
_RUNS = flags.DEFINE_integer("runs", 1, "Processes per benchmark (medians over runs).")
_WITH_PIPELINE = flags.DEFINE_bool(
    "with_pipeline", False, "Also time the train step fed by the grain pipeline of the synthetic "
    "config (renders the synthetic dataset on first use).")
_DATA_ROOT = flags.DEFINE_string(
    "data_root", None, "--with_pipeline: render/prepare the synthetic dataset under this folder "
    "(default: the config's ./data paths).")
_ONLY = flags.DEFINE_list("only", [], "Run only these benchmarks (train_step, inference, warp, "
                         "d2g_inference, bdmm_inference).")
_FULL_BATCH = flags.DEFINE_integer("full_batch", 8, "--full: global batch of the train step.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", BENCHMARKS, "Where results.md/json go.")
_LOG_DIR = flags.DEFINE_string("run_logs", None, "Where each run's stderr goes (default: "
                               "<output_dir>/logs).")
_TIMEOUT = flags.DEFINE_integer("timeout", 3600, "Seconds before one benchmark run is stopped.")


# BDMM's train step on one 6-frame chunk (fwd + bwd of G, both Ds) at the FashionVideo setting,
# its warps read as stored correspondences so that no INTERnet checkpoint is needed.
BDMM_ONE_CHUNK = ["--config=configs/bdmm/fashion.py", "--config.bdmm.num_chunks=1",
                  "--config.bdmm.warp_source=source_coords", "--synthetic_data"]


def plan(full: bool, with_pipeline: bool, full_batch: int,
         data_root: str | None = None) -> list[tuple[str, str, list[str]]]:
  """[(benchmark, label, arguments)] of the settings to run."""
  runs = []
  if full:
    for dtype in ("float32", "bfloat16"):
      for remat in (False, True):
        runs.append(("train_step", f"dancefashion {dtype}{' remat' if remat else ''}",
                     ["--config=configs/dancefashion.py", f"--global_batch={full_batch}",
                      f"--dtype={dtype}", f"--remat={remat}", "--synthetic_data", "--steps=20"]))
    for dtype in ("float32", "bfloat16"):
      runs.append(("inference", f"dancefashion {dtype}",
                   ["--config=configs/dancefashion.py", "--resolution=256,512", "--batch=1,16",
                    f"--dtype={dtype}", "--repeats=20"]))
      runs.append(("warp", f"default {dtype}",
                   ["--config=configs/default.py", "--batch=8", f"--dtype={dtype}",
                    "--repeats=20"]))
      runs.append(("d2g_inference", f"d2g person {dtype}",
                   ["--config=configs/d2g/person.py", "--resolution=256,512", "--batch=1,8",
                    f"--dtype={dtype}", "--repeats=20"]))
      runs.append(("train_step", f"bdmm fashion one chunk {dtype}",
                   [*BDMM_ONE_CHUNK, f"--dtype={dtype}", "--steps=20"]))
      runs.append(("bdmm_inference", f"bdmm fashion {dtype}",
                   ["--config=configs/bdmm/fashion.py", "--resolution=256,512",
                    f"--dtype={dtype}", "--repeats=20"]))
  else:
    runs.append(("train_step", "synthetic float32",
                 ["--config=configs/synthetic.py", "--global_batch=8", "--dtype=float32",
                  "--synthetic_data", "--steps=20"]))
    runs.append(("inference", "synthetic float32",
                 ["--config=configs/synthetic.py", "--resolution=256", "--batch=1,16",
                  "--dtype=float32", "--repeats=10"]))
    runs.append(("warp", "default float32",
                 ["--config=configs/default.py", "--batch=1",
                  "--cases=generator_128,dense_motion,dense_motion_shared",
                  "--dtype=float32", "--repeats=10"]))
    runs.append(("d2g_inference", "d2g person float32",
                 ["--config=configs/d2g/person.py", "--resolution=256", "--batch=1",
                  "--dtype=float32", "--repeats=3"]))
    runs.append(("train_step", "bdmm fashion one chunk float32",
                 [*BDMM_ONE_CHUNK, "--dtype=float32", "--steps=3", "--warmup=1",
                  "--pipelined_steps=0"]))
    runs.append(("bdmm_inference", "bdmm fashion float32",
                 ["--config=configs/bdmm/fashion.py", "--resolution=256", "--dtype=float32",
                  "--repeats=3"]))
  if with_pipeline:
    data = []
    if data_root:
      data = [f"--config.data.manual_dir={os.path.join(data_root, 'synthetic')}",
              f"--config.data.data_dir={os.path.join(data_root, 'tfds')}"]
    runs.append(("train_step", "synthetic float32, grain pipeline",
                 ["--config=configs/synthetic.py", "--global_batch=8", "--dtype=float32",
                  "--steps=20", *data]))
  return runs


def run_one(benchmark: str, args: list[str], log_path: str, timeout: int) -> dict[str, Any]:
  """Runs benchmarks/<benchmark>.py in a fresh process; its JSON, or {"error": ...}."""
  command = [sys.executable, os.path.join(BENCHMARKS, f"{benchmark}.py"), *args]
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  start = time.perf_counter()
  try:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
  except subprocess.TimeoutExpired as error:
    return {"error": f"timed out after {timeout} s", "command": command,
            "stderr_tail": (error.stderr or b"")[-2000:].decode(errors="replace")
            if isinstance(error.stderr, bytes) else str(error.stderr)[-2000:]}
  with open(log_path, "w") as f:
    f.write(" ".join(command) + "\n\n" + done.stderr)
  lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
  if done.returncode != 0 or not lines:
    return {"error": f"exit status {done.returncode}", "command": command,
            "stderr_tail": done.stderr[-2000:]}
  result = json.loads(lines[-1])
  result["wall_s"] = time.perf_counter() - start
  return result


# --- Rows of the tables: (key fields, numeric fields) per result ----------------------------------


def _mib(value):
  return None if value is None else value / 2 ** 20


def train_rows(result: dict) -> list[dict]:
  config, memory, flops = result["config"], result["memory"], result["flops"]
  device_memory = memory["device"]
  peak = device_memory.get("peak_bytes")
  peak_label = "device peak"
  if peak is None and device_memory.get("approx_peak_rss_delta_bytes") is not None:
    peak, peak_label = device_memory["approx_peak_rss_delta_bytes"], "RSS delta (approx.)"
  pipelined = result["input"]["pipelined"] or {}
  return [{
      "key": (config["config_file"], result["environment"]["device_kind"],
              result["environment"]["device_count"], config["dtype"], config["remat"],
              config["global_batch"], config["resolution"], config["input"], peak_label),
      "compile_s": result["compile"]["total_s"],
      "step_ms": 1e3 * result["step"]["median_s"],
      "samples_per_s": result["samples_per_s"],
      "input_share_blocked": result["input"]["blocked_share"],
      "excess_share_pipelined": pipelined.get("excess_share"),
      "peak_mib": _mib(peak),
      "xla_estimated_peak_mib": _mib((memory["xla_compiled_step"] or {}).get(
          "estimated_peak_bytes")),
      "gflop_per_step": (flops["per_step_per_device"] or 0) / 1e9 or None,
      "achieved_tflops": (flops["achieved_flops_per_s"] or 0) / 1e12 or None,
      "utilisation": flops["utilisation"],
      "remat_regions": result["remat_regions_in_step"],
      "finite": result["final_metrics_finite"],
  }]


def inference_rows(result: dict) -> list[dict]:
  speedups = {(s["resolution"], s["batch"]): s["cache_speedup"] for s in result["cache_speedup"]}
  rows = []
  for case in result["cases"]:
    rows.append({
        "key": (result["config"]["config_file"], result["environment"]["device_kind"],
                result["config"]["dtype"], case["resolution"], case["base_resolution"],
                case["batch"], case["mode"]),
        "frames_per_s": case["frames_per_s"], "latency_ms": case["latency_ms"],
        "first_call_s": case["first_call_s"],
        "cache_speedup": (speedups.get((case["resolution"], case["batch"]))
                          if case["mode"] == "cache" else None),
    })
  return rows


def warp_rows(result: dict) -> list[dict]:
  rows = []
  for name, case in result["cases"].items():
    rows.append({
        "key": (name, "x".join(map(str, case["shape"])),
                "x".join(map(str, case.get("coords_shape", [])[:3])), result["config"]["dtype"],
                result["environment"]["device_kind"]),
        "ours_fwd_ms": 1e3 * case["ours"]["forward"]["median_s"],
        "mc_fwd_ms": 1e3 * case["map_coordinates"]["forward"]["median_s"],
        "ratio_fwd": case["ratio_forward"],
        "ours_fwdbwd_ms": 1e3 * case["ours"]["forward_backward"]["median_s"],
        "mc_fwdbwd_ms": 1e3 * case["map_coordinates"]["forward_backward"]["median_s"],
        "ratio_fwdbwd": case["ratio_forward_backward"],
        "ours_fwdbwd_coords_ms": 1e3 * case["ours"]["forward_backward_coords"]["median_s"],
        "mc_fwdbwd_coords_ms": 1e3 * case["map_coordinates"]["forward_backward_coords"]["median_s"],
        "ratio_fwdbwd_coords": case["ratio_forward_backward_coords"],
        "max_rel_diff": max(case["relative_max_diff"].values()),
        "agree": case["agree"],
    })
  return rows


def d2g_rows(result: dict) -> list[dict]:
  return [{"key": (result["config"]["config_file"], result["environment"]["device_kind"],
                   result["config"]["dtype"], case["resolution"], case["batch"],
                   case["texture_size"]),
           "ms_per_frame": case["ms_per_frame"], "first_call_s": case["first_call_s"]}
          for case in result["cases"]]


def bdmm_rows(result: dict) -> list[dict]:
  return [{"key": (result["config"]["config_file"], result["environment"]["device_kind"],
                   result["config"]["dtype"], case["resolution"], case["chunk"]),
           "frames_per_s": case["frames_per_s"], "ms_per_frame": case["ms_per_frame"],
           "start_s": case["start"]["call"]["median_s"], "first_call_s": case["first_call_s"]}
          for case in result["cases"]]


ROWS = {"train_step": train_rows, "inference": inference_rows, "warp": warp_rows,
        "d2g_inference": d2g_rows, "bdmm_inference": bdmm_rows}


def aggregate(rows: list[dict]) -> list[dict]:
  """Rows with the same key (repeated runs) -> one row: medians, plus min/max of each number."""
  grouped: dict[tuple, list[dict]] = {}
  for row in rows:
    grouped.setdefault(row["key"], []).append(row)
  merged = []
  for key, group in grouped.items():
    row = {"key": key, "runs": len(group)}
    for name in group[0]:
      if name == "key":
        continue
      values = [r[name] for r in group if r[name] is not None]
      if values and all(isinstance(v, bool) for v in values):
        row[name] = all(values)
      elif values:
        row[name] = statistics.median(values)
        row[name + "_range"] = (min(values), max(values))
      else:
        row[name] = None
    merged.append(row)
  return merged


def fmt(value, digits: int = 3) -> str:
  if value is None:
    return "–"
  if isinstance(value, bool):
    return "yes" if value else "NO"
  if isinstance(value, float):
    if abs(value) >= 10 ** digits:
      return f"{value:.0f}"
    return f"{value:.{digits}g}"
  return str(value)


def spread(row: dict, name: str) -> str:
  """"median (min–max)" when there were several runs."""
  low, high = row.get(name + "_range", (None, None))
  if row["runs"] > 1 and low is not None:
    return f"{fmt(row[name])} ({fmt(low)}–{fmt(high)})"
  return fmt(row[name])


def markdown(results: dict[str, list[dict]], meta: dict) -> str:
  """The results.md text: one table per benchmark."""
  out = ["# Benchmark results", "",
         f"Written by `benchmarks/run_all.py{' --full' if meta['full'] else ''}` on "
         f"{meta['date']} ({meta['host']}, {meta['cpu_count']} CPUs, load average "
         f"{meta['load_start']} at the start, {meta['load_end']} at the end). "
         f"{meta['runs']} process(es) per benchmark; numbers are medians over runs of each "
         "run's median (range over runs in brackets). Raw JSON: `results.json`. Fields: "
         "`README.md`.", ""]
  rows = aggregate([r for result in results.get("train_step", []) if "error" not in result
                    for r in train_rows(result)])
  if rows:
    out += ["## Train step", "",
            "| config | device | dtype | remat | batch | res | input | compile s | step ms | "
            "samples/s | input share (blocked) | peak MiB | XLA est. MiB | GFLOP/step/dev | "
            "TFLOP/s | util. | finite |",
            "|" + "---|" * 17]
    for row in rows:
      config, device, count, dtype, remat, batch, res, source, peak_label = row["key"]
      out.append(
          f"| {config} | {device} x{count} | {dtype} | {'yes' if remat else 'no'}"
          f"{'' if not remat or row['remat_regions'] else ' (not wired)'} | {batch} | {res}² | "
          f"{source} | {fmt(row['compile_s'])} | {spread(row, 'step_ms')} | "
          f"{fmt(row['samples_per_s'])} | {fmt(row['input_share_blocked'])} | "
          f"{fmt(row['peak_mib'])} ({peak_label}) | {fmt(row['xla_estimated_peak_mib'])} | "
          f"{fmt(row['gflop_per_step'])} | {fmt(row['achieved_tflops'])} | "
          f"{fmt(row['utilisation'])} | {fmt(row['finite'])} |")
    out.append("")
  rows = aggregate([r for result in results.get("inference", []) if "error" not in result
                    for r in inference_rows(result)])
  if rows:
    out += ["## Animation (inference)", "",
            "| config | device | dtype | res | base | batch | mode | frames/s | latency ms | "
            "cache speed-up |", "|" + "---|" * 10]
    for row in rows:
      config, device, dtype, res, base, batch, mode = row["key"]
      out.append(f"| {config} | {device} | {dtype} | {res}² | {base}² | {batch} | {mode} | "
                 f"{spread(row, 'frames_per_s')} | {fmt(row['latency_ms'])} | "
                 f"{fmt(row['cache_speedup'])} |")
    out.append("")
  rows = aggregate([r for result in results.get("warp", []) if "error" not in result
                    for r in warp_rows(result)])
  if rows:
    out += ["## Warp: `geometry.warp` (ours) vs `map_coordinates(order=1)` (mc)", "",
            "ratio = mc / ours (> 1: ours faster). fwd+bwd: gradients w.r.t. image and "
            "coordinates; (coords): w.r.t. the coordinates only.", "",
            "| case | image | coords | dtype | device | ours fwd ms | mc fwd ms | ratio fwd | "
            "ours fwd+bwd ms | mc fwd+bwd ms | ratio fwd+bwd | ours (coords) ms | "
            "mc (coords) ms | ratio (coords) | max rel. diff | agree |",
            "|" + "---|" * 16]
    for row in rows:
      name, shape, coords, dtype, device = row["key"]
      out.append(f"| {name} | {shape} | {coords} | {dtype} | {device} | "
                 f"{fmt(row['ours_fwd_ms'])} | {fmt(row['mc_fwd_ms'])} | "
                 f"{spread(row, 'ratio_fwd')} | {fmt(row['ours_fwdbwd_ms'])} | "
                 f"{fmt(row['mc_fwdbwd_ms'])} | {spread(row, 'ratio_fwdbwd')} | "
                 f"{fmt(row['ours_fwdbwd_coords_ms'])} | {fmt(row['mc_fwdbwd_coords_ms'])} | "
                 f"{spread(row, 'ratio_fwdbwd_coords')} | {fmt(row['max_rel_diff'])} | "
                 f"{fmt(row['agree'])} |")
    out.append("")
  rows = aggregate([r for result in results.get("d2g_inference", []) if "error" not in result
                    for r in d2g_rows(result)])
  if rows:
    out += ["## D2G-Net frame rendering (paper: 90 ms per 512² frame on a P40)", "",
            "| config | device | dtype | res | batch | texture | ms/frame | first call s |",
            "|" + "---|" * 8]
    for row in rows:
      config, device, dtype, res, batch, texture = row["key"]
      out.append(f"| {config} | {device} | {dtype} | {res}² | {batch} | {texture}² | "
                 f"{spread(row, 'ms_per_frame')} | {fmt(row['first_call_s'])} |")
    out.append("")
  rows = aggregate([r for result in results.get("bdmm_inference", []) if "error" not in result
                    for r in bdmm_rows(result)])
  if rows:
    out += ["## BDMM inference (chunks with the state carried)", "",
            "| config | device | dtype | res | chunk | frames/s | ms/frame | start s | "
            "first call s |", "|" + "---|" * 9]
    for row in rows:
      config, device, dtype, res, chunk = row["key"]
      out.append(f"| {config} | {device} | {dtype} | {res}² | {chunk} | "
                 f"{spread(row, 'frames_per_s')} | {spread(row, 'ms_per_frame')} | "
                 f"{fmt(row['start_s'])} | {fmt(row['first_call_s'])} |")
    out.append("")
  errors = [(name, result) for name, group in results.items() for result in group
            if "error" in result]
  if errors:
    out += ["## Failed runs", ""]
    for name, result in errors:
      out.append(f"- {name}: {result['error']} — `{' '.join(result['command'][1:])}`")
    out.append("")
  return "\n".join(out)


def vs_fomm_markdown(results: list[dict[str, Any]]) -> str:
  """results.md's section for a list of `vs_fomm.py` JSON outputs."""
  out = ["## Against FOMM-PyTorch (`vs_fomm.py`)", "",
         "Matched setting: `configs/fomm_matched.py` (benchmarks/README.md). ratio = FOMM's "
         "median step / ours (> 1: ours faster), range over the interleaved rounds in brackets. "
         "GFLOP/s: convolutions and matrix products, counted alike on both sides.", "",
         "| generator | batch | ours s/step | FOMM s/step | ours samples/s | FOMM samples/s | "
         "ratio | ours GFLOP/s | FOMM GFLOP/s | machine | date | commit | torch |",
         "|" + "---|" * 13]
  for result in results:
    env, config = result["environment"], result["config"]
    machine = f"{env['host']}, {env.get('cores_available', env['cpu_count'])} cores"
    for row in result["results"]:
      ours, fomm = row["ours"], row["fomm"]
      rounds = row["speed_ratio_per_round"]
      out.append(
          f"| {config['skip_mode']} | {row['batch']} | {ours['step']['median_s']:.2f} | "
          f"{fomm['step']['median_s']:.2f} | {ours['samples_per_s']:.3f} | "
          f"{fomm['samples_per_s']:.3f} | {row['speed_ratio']:.2f} "
          f"({min(rounds):.2f}–{max(rounds):.2f}) | {ours['conv_matmul_gflops_per_s']:.0f} | "
          f"{fomm['conv_matmul_gflops_per_s']:.0f} | {machine} | {env['date'][:10]} | "
          f"{env.get('commit') or '–'} | {fomm['torch']} |")
  return "\n".join(out + [""])


def side_by_side_section(output_dir: str) -> str:
  """The FOMM side-by-side (`vs_fomm.py` JSON files under <output_dir>/vs_fomm/, run by hand:
  they need PyTorch and a checkout of FOMM) as a results.md section; "" when there are none."""
  paths = sorted(glob.glob(os.path.join(output_dir, "vs_fomm", "*.json")))
  results = []
  for path in paths:
    with open(path) as f:
      results.append(json.load(f))
  return "\n" + vs_fomm_markdown(results) if results else ""


def main(argv):
  del argv
  output_dir = os.path.abspath(_OUTPUT_DIR.value)
  log_dir = _LOG_DIR.value or os.path.join(output_dir, "logs")
  os.makedirs(log_dir, exist_ok=True)
  meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
          "host": os.uname().nodename, "cpu_count": os.cpu_count(), "full": _FULL.value,
          "runs": _RUNS.value, "load_start": [round(x, 2) for x in os.getloadavg()]}
  results: dict[str, list[dict]] = {}
  for index, (benchmark, label, args) in enumerate(
      plan(_FULL.value, _WITH_PIPELINE.value, _FULL_BATCH.value, _DATA_ROOT.value)):
    if _ONLY.value and benchmark not in _ONLY.value:
      continue
    for run in range(_RUNS.value):
      print(f"[{benchmark}] {label}, run {run + 1}/{_RUNS.value}", file=sys.stderr, flush=True)
      log_path = os.path.join(log_dir, f"{index:02d}_{benchmark}_{run}.log")
      result = run_one(benchmark, args, log_path, _TIMEOUT.value)
      result["label"] = label
      if "error" in result:
        print(f"  FAILED: {result['error']}\n{result['stderr_tail']}", file=sys.stderr)
      results.setdefault(benchmark, []).append(result)
  meta["load_end"] = [round(x, 2) for x in os.getloadavg()]
  with open(os.path.join(output_dir, "results.json"), "w") as f:
    json.dump({"meta": meta, "results": results}, f, indent=2)
  with open(os.path.join(output_dir, "results.md"), "w") as f:
    f.write(markdown(results, meta) + side_by_side_section(output_dir))
  print(json.dumps({"results_md": os.path.join(output_dir, "results.md"),
                    "results_json": os.path.join(output_dir, "results.json"),
                    "failed": sum("error" in r for group in results.values() for r in group)}))


if __name__ == "__main__":
  app.run(main)
