"""convert_weights: PyTorch-layout weights -> the .safetensors files the loaders read, and the
default weights folder that the losses and evaluate look in."""

import os
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

from internet_jax import convert_weights, evaluate, weights
from internet_jax.metrics import lpips
from internet_jax.models import vgg
from test_network_metrics import lpips_state
from test_vgg import _torchvision_state


def _alexnet_and_heads(tmp_path):
  """torchvision's AlexNet (features + a classifier stand-in, as a DataParallel save names it)
  and the lpips package's heads, as two files."""
  state = lpips_state("alex", seed=3)
  backbone = {f"module.{k}": v for k, v in state.items() if k.startswith("features.")}
  backbone["module.classifier.1.weight"] = np.ones((4, 8), np.float32)
  heads = {k: v for k, v in state.items() if k.startswith("lin")}
  np.savez(tmp_path / "alexnet.npz", **backbone)
  safetensors.numpy.save_file(heads, str(tmp_path / "alex_heads.safetensors"))
  return state, [str(tmp_path / "alexnet.npz"), str(tmp_path / "alex_heads.safetensors")]


def test_lpips_sources_merge_into_exactly_the_tensors_the_metric_reads(tmp_path):
  state, sources = _alexnet_and_heads(tmp_path)
  out = convert_weights.convert("lpips", sources, str(tmp_path / "out" / "lpips.safetensors"))
  written = safetensors.numpy.load_file(out)
  assert set(written) == set(state)  # wrapper prefix gone, classifier dropped, heads kept
  for key, value in state.items():
    np.testing.assert_array_equal(written[key], value)
  ours, net = lpips.load_lpips_params(out)
  theirs, _ = lpips.load_lpips_params(",".join(sources))
  assert net == "alex"
  np.testing.assert_array_equal(ours["features.3"]["kernel"], theirs["features.3"]["kernel"])
  assert not list((tmp_path / "out").glob(".*partial*"))


def test_vgg19_keeps_the_features_in_torchvision_names(tmp_path):
  state = _torchvision_state(seed=1)
  timm_like = {f"module.{k}": v for k, v in state.items()}  # classifier stand-ins included
  np.savez(tmp_path / "vgg.npz", **timm_like)
  out = convert_weights.convert("vgg19", [str(tmp_path / "vgg.npz")],
                                str(tmp_path / "vgg19.safetensors"))
  written = safetensors.numpy.load_file(out)
  assert set(written) == {k for k in state if k.startswith("features.")}
  assert written["features.34.weight"].dtype == np.float32
  np.testing.assert_array_equal(written["features.34.weight"],
                                state["features.34.weight"].astype(np.float32))


def test_default_folder_is_written_and_found_by_evaluate_and_the_losses(tmp_path, monkeypatch):
  monkeypatch.setenv("INTERNET_JAX_WEIGHTS", str(tmp_path / "weights"))
  _, sources = _alexnet_and_heads(tmp_path)
  absent = evaluate.load_network_metrics(evaluate.Options())
  assert absent["lpips"] == ("not computed: no weights given (--lpips_weights) and none at "
                             f"{tmp_path / 'weights' / 'lpips_alex.safetensors'}")
  out = convert_weights.convert("lpips", sources)
  assert out == str(tmp_path / "weights" / "lpips_alex.safetensors")
  found = evaluate.load_network_metrics(evaluate.Options())
  assert not isinstance(found["lpips"], str)  # (module, metric): computed without a flag
  assert isinstance(found["fid"], str)  # nothing converted for FID

  np.savez(tmp_path / "vgg.npz", **_torchvision_state(seed=2))
  convert_weights.convert("vgg19", [str(tmp_path / "vgg.npz")])
  loss_config = {"vgg_weights": "", "allow_random_vgg": False}
  _, origin = vgg._params_from_config(loss_config)  # pylint: disable=protected-access
  assert origin == f"VGG-19 weights from {weights.default_path('vgg19')}"


def _cli(*args, env_folder):
  return subprocess.run([sys.executable, "-m", "internet_jax.convert_weights", *args],
                        capture_output=True, text=True, check=False,
                        env={**os.environ, "INTERNET_JAX_WEIGHTS": env_folder})


def test_bad_sources_are_one_line_errors_and_write_nothing(tmp_path):
  state, sources = _alexnet_and_heads(tmp_path)
  folder = str(tmp_path / "weights")
  # A backbone file without the backbone (only a classifier): its first convolution is missing.
  np.savez(tmp_path / "classifier.npz", **{"classifier.1.weight": np.ones((4, 8), np.float32)})
  result = _cli("lpips", str(tmp_path / "classifier.npz"), sources[1], env_folder=folder)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: LPIPS weights: "), result.stderr
  assert "features.0.weight" in lines[0]
  result = _cli("vgg19", str(tmp_path / "missing.pth"), env_folder=folder)
  assert result.returncode == 1
  assert result.stderr.strip() == f"error: VGG-19 weights: no file at {tmp_path / 'missing.pth'}"
  bad = dict(state, **{"lin2.model.1.weight": np.ones((1, 7, 1, 1), np.float32)})
  np.savez(tmp_path / "bad.npz", **bad)
  np.savez(tmp_path / "empty.npz", unrelated=np.zeros(1, np.float32))
  result = _cli("lpips", str(tmp_path / "bad.npz"), str(tmp_path / "empty.npz"),
                env_folder=folder)
  assert result.returncode == 1 and "lin2.model.1.weight" in result.stderr
  assert not (tmp_path / "weights").exists() or not list((tmp_path / "weights").iterdir())
  # Success: one line naming the file, which lands in the default folder.
  result = _cli("lpips", *sources, env_folder=folder)
  assert result.returncode == 0, result.stderr
  assert result.stderr.strip() == f"wrote {tmp_path / 'weights' / 'lpips_alex.safetensors'}"


def test_arguments_are_sources_then_an_optional_destination(capsys):
  args = convert_weights.parse_args(["lpips", "alexnet.safetensors", "heads.safetensors"])
  assert (args.paths, args.destination) == (["alexnet.safetensors", "heads.safetensors"], "")
  args = convert_weights.parse_args(["fid", "inception.pth", "out/fid.safetensors"])
  assert (args.paths, args.destination) == (["inception.pth"], "out/fid.safetensors")
  for bad in (["resnet", "x.pth"], ["lpips", "alexnet.pth"], ["vgg19", "a.pth", "b", "c"]):
    with pytest.raises(SystemExit) as exit_info:
      convert_weights.parse_args(bad)
    assert exit_info.value.code == 2
  assert "lpips takes 2 source file(s)" in capsys.readouterr().err
