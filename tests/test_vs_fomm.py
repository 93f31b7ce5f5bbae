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


def test_op_names_and_groups_read_the_hlo_metadata():
  from benchmarks import step_profile  # noqa: PLC0415
  text = ('%fusion.3 = f32[2,8]{1,0} fusion(%p), kind=kLoop, metadata={op_name='
          '"jit(train_step)/transpose(jvp(INTERnet))/INTERnet.generate/generator.decode/'
          'bottleneck_0/Conv_0/conv_general_dilated" source_file="x.py"}\n'
          '  ROOT %add.1 = f32[2]{0} add(%a, %b), metadata={op_name="jit(train_step)/add"}\n'
          '%param_0 = f32[2]{0} parameter(0)\n')
  names = step_profile.op_names(text)
  assert names == {
      "fusion.3": "jit(train_step)/transpose(jvp(INTERnet))/INTERnet.generate/generator.decode/"
                  "bottleneck_0/Conv_0/conv_general_dilated",
      "add.1": "jit(train_step)/add"}
  assert step_profile.op_group(names["fusion.3"]) == (
      "INTERnet/INTERnet.generate/generator.decode", "backward", "conv_general_dilated")
  assert step_profile.op_group(names["add.1"]) == ("other", "forward", "add")


def test_a_traced_step_is_summed_per_op(tmp_path):
  from benchmarks import step_profile  # noqa: PLC0415
  x, w = jnp.ones((1, 32, 32, 16)), jnp.ones((3, 3, 16, 16))
  step = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.tanh(_conv(x, w, 1))), argnums=1))
  compiled = step.lower(x, w).compile()
  jax.block_until_ready(compiled(x, w))
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(2):
      jax.block_until_ready(compiled(x, w))
  summary = step_profile.summarise_trace(str(tmp_path), step_profile.op_names(compiled.as_text()),
                                         steps=2)
  assert summary["thread_s_per_step"] > 0
  assert abs(sum(op["s"] for op in summary["ops"]) - summary["thread_s_per_step"]) < 1e-9
  directions = {(g["pass"], g["primitive"]) for g in summary["groups"]}
  # The weight gradient of the conv is the backward pass's convolution.
  assert ("backward", "conv_general_dilated") in directions
