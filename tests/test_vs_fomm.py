"""benchmarks/vs_fomm.py (the side-by-side with FOMM-PyTorch) and its FLOP count: what can be
checked without PyTorch. The timings themselves are measured, not tested."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import common, vs_fomm  # noqa: E402
from configs import fomm_matched  # noqa: E402
from internet_jax import sharding, train  # noqa: E402


def _conv(x, w, stride):
  return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _hlo(fn, *args):
  return jax.jit(fn).lower(*args).compile().as_text()


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_flops_match_the_multiply_add_count_forward_and_backward(stride):
  x, w = jnp.ones((2, 16, 16, 8)), jnp.ones((3, 3, 8, 16))
  # Each of the 2*(16/s)^2*16 outputs sums 3*3*8 products: 2 FLOPs per multiply-add.
  forward = 2 * 2 * (16 // stride) ** 2 * 16 * 9 * 8
  assert common.conv_matmul_flops(_hlo(lambda x, w: _conv(x, w, stride), x, w)) == forward
  # The input and the weight gradient each cost one forward (the input gradient of a strided
  # conv is an input-dilated conv whose inserted zeros are not counted).
  grads = jax.grad(lambda x, w: jnp.sum(_conv(x, w, stride) ** 2), argnums=(0, 1))
  assert common.conv_matmul_flops(_hlo(grads, x, w)) == 3 * forward


def test_dot_flops_are_two_m_n_k():
  a, b = jnp.ones((5, 7)), jnp.ones((7, 3))
  assert common.conv_matmul_flops(_hlo(lambda a, b: a @ b, a, b)) == 2 * 5 * 7 * 3


def test_peer_problem_names_the_missing_piece(tmp_path, monkeypatch):
  assert "--fomm_dir is required" in vs_fomm.peer_problem(None)
  missing = tmp_path / "nowhere"
  assert f"{missing} is not a directory" in vs_fomm.peer_problem(str(missing))
  assert "has no modules/keypoint_detector.py" in vs_fomm.peer_problem(str(tmp_path))
  for name in vs_fomm.FOMM_FILES:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
  assert vs_fomm.peer_problem(str(tmp_path)).startswith("vs_fomm: torch is not installed; pip")


def test_without_a_checkout_the_runner_says_so_in_one_line(tmp_path):
  result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_fomm.py"),
                           f"--fomm_dir={tmp_path}"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
  assert result.returncode == 2
  assert result.stdout == ""
  assert result.stderr.strip().splitlines() == [
      f"vs_fomm: --fomm_dir: {tmp_path} has no modules/keypoint_detector.py: not a checkout of "
      f"{vs_fomm.REPOSITORY}"]


def test_interleave_alternates_the_order_and_times_every_step():
  calls = []
  steppers = {"ours": lambda: calls.append("ours"), "fomm": lambda: calls.append("fomm")}
  timed = vs_fomm.interleave(steppers, rounds=3, steps=2)
  assert calls == ["ours"] * 2 + ["fomm"] * 4 + ["ours"] * 4 + ["fomm"] * 2
  assert timed["order"] == [["ours", "fomm"], ["fomm", "ours"], ["ours", "fomm"]]
  assert [len(timed["times"][name]) for name in steppers] == [6, 6]
  assert [len(timed["round_medians"][name]) for name in steppers] == [3, 3]


@pytest.mark.parametrize("generator", ["fomm", "paper"])
def test_matched_config_has_fomms_generator_size(generator):
  config = fomm_matched.get_config(generator)
  train.validate_config(config)
  training = train.create_training(config, sharding.create_mesh(), steps_per_epoch=10)
  params = jax.eval_shape(training.init).params
  counts = {group: common.count_params(tree) for group, tree in params.items()}
  if generator == "fomm":
    # Counted with PyTorch 2.13 on first-order-model's fashion-256 networks: generator (with
    # its dense-motion network) + keypoint detector, and its discriminator (whose 1x1 output
    # conv has 7,680 weights fewer than our 4x4 one).
    assert counts == {"g": 59_790_759, "d": 2_758_849 + 512 * 15}
  else:  # the multiscale skips widen the two up blocks' successors
    assert counts["g"] > 59_790_759 and counts["d"] == 2_758_849 + 512 * 15
