"""INTERnet Table 2 ablations: temporal scheme a) plain, b) extrinsic, c) intrinsic x generator
SS4x (only the 128 feature warped) or MS (warped skips at 128/256/512).

  python -m internet_jax.main --config=configs/ablations.py:ss4x_a
  python -m internet_jax.main --config=configs/ablations.py:synthetic_ms_b

Names: ss4x_a, ss4x_b, ss4x_c, ms_b, ms_c (= dancefashion.py) at the paper's 512x512, and the
same five with a `synthetic_` prefix at the size of configs/synthetic.py. The default workdir is
./workdirs/ablations_<name>.
"""

from configs import dancefashion, synthetic

SCHEMES = {"a": "plain", "b": "extrinsic", "c": "intrinsic"}  # paper Fig. 4 a-c, Eqs. 2-4
GENERATORS = {"ss4x": "single", "ms": "multiscale"}
NAMES = ("ss4x_a", "ss4x_b", "ss4x_c", "ms_b", "ms_c")


def get_config(name: str = "ms_c"):
  base, _, variant = name.rpartition("synthetic_")
  if base or variant not in NAMES:
    known = ", ".join(NAMES + tuple(f"synthetic_{n}" for n in NAMES))
    raise ValueError(f"configs/ablations.py: unknown ablation {name!r}; known: {known}")
  config = (synthetic if name.startswith("synthetic_") else dancefashion).get_config()
  generator, scheme = variant.split("_")
  config.model.generator.skip_mode = GENERATORS[generator]
  config.temporal.scheme = SCHEMES[scheme]
  return config
