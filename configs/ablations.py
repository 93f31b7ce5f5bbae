"""INTERnet Table 2 ablations: temporal scheme a) plain, b) extrinsic, c) intrinsic x generator
SS4x (only the 128 feature warped) or MS (warped skips at 128/256/512).

  python -m internet_jax.main --config=configs/ablations.py:ss4x_a
  python -m internet_jax.main --config=configs/ablations.py:synthetic_ms_b

Names: ss4x_a, ss4x_b, ss4x_c, ms_a, ms_b, ms_c (ms_c = dancefashion.py) at the paper's
512x512, and the same six with a `synthetic_` prefix at the size of configs/synthetic.py (the
paper's Table 2 has no MS a; it completes the grid). The default workdir is
./workdirs/ablations_<name>. `apply(config, name)` sets one row's switches on any config.
"""

from configs import dancefashion, synthetic

SCHEMES = {"a": "plain", "b": "extrinsic", "c": "intrinsic"}  # paper Fig. 4 a-c, Eqs. 2-4
GENERATORS = {"ss4x": "single", "ms": "multiscale"}
NAMES = ("ss4x_a", "ss4x_b", "ss4x_c", "ms_a", "ms_b", "ms_c")


def apply(config, name: str):
  """`config` with the generator and temporal scheme of the row `name` (one of NAMES)."""
  if name not in NAMES:
    raise ValueError(f"configs/ablations.py: unknown row {name!r}; known: {', '.join(NAMES)}")
  generator, scheme = name.split("_")
  config.model.generator.skip_mode = GENERATORS[generator]
  config.temporal.scheme = SCHEMES[scheme]
  return config


def get_config(name: str = "ms_c"):
  base, _, variant = name.rpartition("synthetic_")
  if base or variant not in NAMES:
    known = ", ".join(NAMES + tuple(f"synthetic_{n}" for n in NAMES))
    raise ValueError(f"configs/ablations.py: unknown ablation {name!r}; known: {known}")
  config = (synthetic if name.startswith("synthetic_") else dancefashion).get_config()
  return apply(config, variant)
