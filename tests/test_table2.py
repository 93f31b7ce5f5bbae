"""The Table 2 runner (internet_jax/experiments/table2.py): aggregation on constructed results
with known answers, and a two-row grid trained, evaluated, reported and then skipped."""

import json

import numpy as np
import pytest

from internet_jax import train
from internet_jax.experiments import table2


def _result(row, seed, videos):
  """A run's result with per-video scores {video: {key: value}} and their means."""
  keys = {key for scores in videos.values() for key in scores}
  mean = {key: float(np.mean([scores[key] for scores in videos.values()])) for key in keys}
  return {"row": row, "seed": seed, "steps": 10, "mean": mean, "videos": videos, "curves": {}}


def test_summary_is_mean_and_sample_std_over_seeds_and_marks_the_best():
  results = [_result("ss4x_a", 0, {"v": {"l1": 0.2, "psnr": 20.0}}),
             _result("ss4x_a", 1, {"v": {"l1": 0.4, "psnr": 22.0}}),
             _result("ss4x_c", 0, {"v": {"l1": 0.1, "psnr": 19.0}})]
  table = table2.summarize(results)
  assert table["ss4x_a"]["l1"] == pytest.approx([0.3, np.std([0.2, 0.4], ddof=1), 2])
  assert table["ss4x_c"]["psnr"] == [19.0, 0.0, 1]
  text = table2.markdown(results, {"machine": "m", "date": "d", "commit": "c"})
  row_c = next(line for line in text.splitlines() if line.startswith("| ss4x_c |"))
  row_a = next(line for line in text.splitlines() if line.startswith("| ss4x_a |"))
  assert "**0.1 ± 0**" in row_c  # lower L1 is better
  assert "**21 ± 1.414**" in row_a  # higher PSNR is better


def test_paired_differences_pair_seeds_and_videos_and_bound_the_mean():
  rng = np.random.default_rng(0)
  results = []
  for seed in range(3):
    base = {f"v{v}": {"psnr": 20.0 + rng.normal(), "l1": 0.2} for v in range(4)}
    results.append(_result("ms_a", seed, base))
    # c beats a by exactly 1 dB on every pair and has the same L1.
    results.append(_result("ms_c", seed, {v: {"psnr": s["psnr"] + 1.0, "l1": 0.2}
                                          for v, s in base.items()}))
  differences = {(d["comparison"], d["metric"]): d for d in table2.paired_differences(results)}
  psnr = differences[("ms_c - ms_a", "psnr")]
  assert psnr["pairs"] == 12 and psnr["mean"] == pytest.approx(1.0)
  assert psnr["low"] == pytest.approx(1.0) and psnr["high"] == pytest.approx(1.0)
  assert psnr["better"] and not psnr["worse"]
  l1 = differences[("ms_c - ms_a", "l1")]
  assert l1["mean"] == 0.0 and not l1["better"] and not l1["worse"]
  # Noisy differences: the interval contains their mean and is narrower than their range.
  noisy = [dict(r) for r in results]
  for r in noisy:
    if r["row"] == "ms_c":
      r["videos"] = {v: {"psnr": s["psnr"] + rng.normal(0.5, 1.0)} for v, s in r["videos"].items()}
  d = next(d for d in table2.paired_differences(noisy) if d["metric"] == "psnr")
  assert d["low"] < d["mean"] < d["high"] and d["high"] - d["low"] < 2.0
  assert not any(x["comparison"].endswith("_b") for x in table2.paired_differences(results))


def test_grid_trains_evaluates_reports_and_skips_finished_runs(tmp_path, monkeypatch):
  out = tmp_path / "table2"
  overrides = {"data.manual_dir": str(tmp_path / "data"), "data.data_dir": str(tmp_path / "tfds")}
  with pytest.raises(ValueError, match="--rows: unknown row"):
    table2.run_grid(out, ["ss4x_z"], 1, 1, "tiny", overrides)
  with pytest.raises(ValueError, match="--set: config has no field 'model.nope'"):
    table2.run_grid(out, ["ss4x_a"], 1, 1, "tiny", {"model.nope": 1})
  results = table2.run_grid(out, ["ss4x_a", "ss4x_c"], 1, 1, "tiny", overrides)
  assert [(r["row"], r["seed"]) for r in results] == [("ss4x_a", 0), ("ss4x_c", 0)]
  for r in results:
    assert r["steps"] == 1 and np.isfinite(r["mean"]["l1"]) and "cross/l1" in r["mean"]
    assert "eval/motion_epe" in r["curves"]
    assert 0.0 <= r["mean"]["anchor_motions_used"] <= 1.0  # evaluate's, per run
  report = json.loads((out / "table2.json").read_text())
  assert set(report["summary"]) == {"ss4x_a", "ss4x_c"}
  assert {d["comparison"] for d in report["differences"]} == {"ss4x_c - ss4x_a"}
  assert "| ss4x_c | 1 |" in (out / "table2.md").read_text()
  assert "anchor motions used ↑" in (out / "table2.md").read_text()
  assert (out / "table2.png").stat().st_size > 0
  # A second sitting trains nothing: every run has its result.
  monkeypatch.setattr(train, "train_and_evaluate",
                      lambda *a, **k: pytest.fail("a finished run was trained again"))
  again = table2.run_grid(out, ["ss4x_a", "ss4x_c"], 1, 1, "tiny", overrides)
  assert again == results
