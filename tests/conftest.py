"""Shared test setup: quiet TensorFlow, fast XLA compiles and a persistent JAX compilation cache
(CI speed), and an empty default weights folder (weights a user converted must not change what
the tests see)."""
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA:CPU's back end at optimisation level 0 (the tests and the subprocesses they start inherit
# it): the suite's time is mostly compiling small programs, and this halves it (a BDMM renderer
# test: 44 s -> 23 s on 2 cores; the whole suite 19 -> 13 min). Results differ from the optimised
# build by float rounding only (XLA:CPU's fast math is off at every level), e.g. ~6e-8 between
# two equal batch rows; speed is measured in benchmarks/, not here.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_backend_optimization_level=0").strip()
_CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))

os.environ["INTERNET_JAX_WEIGHTS"] = tempfile.mkdtemp(prefix="internet_jax_weights_")

import jax  # noqa: E402
import pytest  # noqa: E402

from configs import synthetic  # noqa: E402
from input_pipeline import datasets  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  """The tiny synthetic config with its dataset rendered and prepared once for this module."""
  root = tmp_path_factory.mktemp("data")
  config = synthetic.get_config("tiny")
  config.data.manual_dir = str(root / "synthetic")
  config.data.data_dir = str(root / "tfds")
  datasets.get_video_source(config.data, "train")
  datasets.get_video_source(config.data, "test")
  return config
