"""benchmarks/run_all.py's plan and tables, on constructed benchmark results (the benchmarks
themselves are measured, not tested)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import run_all  # noqa: E402


def _d2g_result(ms_per_frame):
  return {"environment": {"device_kind": "cpu"},
          "config": {"config_file": "configs/d2g/person.py", "dtype": "float32"},
          "cases": [{"resolution": 256, "batch": 1, "texture_size": 100,
                     "ms_per_frame": ms_per_frame, "first_call_s": 30.0}]}


def test_plan_includes_d2g_and_bdmm_in_both_settings():
  for full in (False, True):
    runs = run_all.plan(full, False, 8)
    names = [name for name, _, _ in runs]
    assert {"d2g_inference", "bdmm_inference"} <= set(names) <= set(run_all.ROWS)
    # BDMM's train step runs one chunk without an INTERnet checkpoint.
    (bdmm_step,) = [args for name, label, args in runs
                    if name == "train_step" and label.startswith("bdmm") and "float32" in label]
    assert {"--config=configs/bdmm/fashion.py", "--config.bdmm.num_chunks=1",
            "--config.bdmm.warp_source=source_coords"} <= set(bdmm_step)


def test_bdmm_rows_are_medians_over_runs():
  def result(frames_per_s):
    return {"environment": {"device_kind": "cpu"},
            "config": {"config_file": "configs/bdmm/fashion.py", "dtype": "float32"},
            "cases": [{"resolution": 256, "chunk": 6, "frames_per_s": frames_per_s,
                       "ms_per_frame": 1e3 / frames_per_s, "start": {"call": {"median_s": 0.5}},
                       "first_call_s": 20.0}]}
  meta = {"full": False, "date": "d", "host": "h", "cpu_count": 2, "runs": 3,
          "load_start": [0], "load_end": [0]}
  text = run_all.markdown({"bdmm_inference": [result(v) for v in (2.0, 4.0, 2.5)]}, meta)
  assert "## BDMM inference" in text
  assert ("| configs/bdmm/fashion.py | cpu | float32 | 256² | 6 | 2.5 (2–4) | "
          "400 (250–500) | 0.5 | 20 |") in text


def test_d2g_rows_are_medians_over_runs_with_their_range():
  meta = {"full": False, "date": "d", "host": "h", "cpu_count": 2, "runs": 3,
          "load_start": [0], "load_end": [0]}
  text = run_all.markdown({"d2g_inference": [_d2g_result(v) for v in (3600.0, 3800.0, 3500.0)]},
                          meta)
  assert "## D2G-Net frame rendering" in text
  assert "| configs/d2g/person.py | cpu | float32 | 256² | 1 | 100² | 3600 (3500–3800) | 30 |" \
      in text


def _vs_fomm_result(tmp_path, name, ours_s, fomm_s):
  side = lambda s: {"step": {"median_s": s}, "samples_per_s": 1 / s,  # noqa: E731
                    "conv_matmul_gflops_per_s": 389.0 / s, "torch": "2.13.0+cpu"}
  result = {"environment": {"host": "vm", "cpu_count": 2, "cores_available": 2,
                            "date": "2026-12-07T14:00:00", "commit": "abc1234"},
            "config": {"skip_mode": "single"},
            "results": [{"batch": 1, "ours": side(ours_s), "fomm": side(fomm_s),
                         "speed_ratio": fomm_s / ours_s,
                         "speed_ratio_per_round": [0.9, 1.2, 1.1]}]}
  (tmp_path / "vs_fomm").mkdir(exist_ok=True)
  (tmp_path / "vs_fomm" / f"{name}.json").write_text(json.dumps(result))


def test_fomm_side_by_side_section_reads_the_saved_runs(tmp_path):
  assert run_all.side_by_side_section(str(tmp_path)) == ""
  _vs_fomm_result(tmp_path, "fomm", ours_s=4.0, fomm_s=4.4)
  text = run_all.side_by_side_section(str(tmp_path))
  assert "## Against FOMM-PyTorch" in text
  # ratio = FOMM's step / ours, with the range over rounds; GFLOP/s = 389 / step seconds.
  assert ("| single | 1 | 4.00 | 4.40 | 0.250 | 0.227 | 1.10 (0.90–1.20) | 97 | 88 | vm, 2 cores "
          "| 2026-12-07 | abc1234 | 2.13.0+cpu |") in text
