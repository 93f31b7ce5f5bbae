"""Shared test setup: quiet TensorFlow and a persistent JAX compilation cache (CI speed)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache"))

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
