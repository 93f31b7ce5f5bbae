"""benchmarks/run_all.py's plan and tables, on constructed benchmark results (the benchmarks
themselves are measured, not tested)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import run_all  # noqa: E402


def _d2g_result(ms_per_frame):
  return {"environment": {"device_kind": "cpu"},
          "config": {"config_file": "configs/d2g/person.py", "dtype": "float32"},
          "cases": [{"resolution": 256, "batch": 1, "texture_size": 100,
                     "ms_per_frame": ms_per_frame, "first_call_s": 30.0}]}


def test_plan_includes_d2g_inference_in_both_settings():
  for full in (False, True):
    names = [name for name, _, _ in run_all.plan(full, False, 8)]
    assert "d2g_inference" in names and set(names) <= set(run_all.ROWS)


def test_d2g_rows_are_medians_over_runs_with_their_range():
  meta = {"full": False, "date": "d", "host": "h", "cpu_count": 2, "runs": 3,
          "load_start": [0], "load_end": [0]}
  text = run_all.markdown({"d2g_inference": [_d2g_result(v) for v in (3600.0, 3800.0, 3500.0)]},
                          meta)
  assert "## D2G-Net frame rendering" in text
  assert "| configs/d2g/person.py | cpu | float32 | 256² | 1 | 100² | 3600 (3500–3800) | 30 |" \
      in text
