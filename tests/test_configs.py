"""Every experiment config loads and passes the model/temporal validation; the Table 2 names map
to the paper's schemes; bad values give one-line errors naming the field."""
import pytest

from configs import ablations, dancefashion, default, synthetic
from internet_jax import models, train

ALL_CONFIGS = {
    "default": default.get_config,
    "dancefashion": dancefashion.get_config,
    "synthetic": synthetic.get_config,
    "synthetic_tiny": lambda: synthetic.get_config("tiny"),
    **{f"ablations_{name}": (lambda n=name: ablations.get_config(n))
       for name in ablations.NAMES + tuple(f"synthetic_{n}" for n in ablations.NAMES)},
}


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_config_builds_models(name):
  config = ALL_CONFIGS[name]()
  generator, discriminator = models.create_models(config)
  assert generator.resolution == config.data.resolution
  assert config.temporal.scheme in train.TEMPORAL_SCHEMES


def test_table2_ablations_follow_the_paper():
  # Paper Fig. 4: a) plain flow warp loss (Eq. 2), b) extrinsic mask (Eq. 3), c) intrinsic (Eq. 4).
  expected = {"ss4x_a": ("single", "plain"), "ss4x_b": ("single", "extrinsic"),
              "ss4x_c": ("single", "intrinsic"), "ms_b": ("multiscale", "extrinsic"),
              "ms_c": ("multiscale", "intrinsic")}
  for name, (skip_mode, scheme) in expected.items():
    for prefix, resolution in (("", 512), ("synthetic_", synthetic.get_config().data.resolution)):
      config = ablations.get_config(prefix + name)
      assert (config.model.generator.skip_mode, config.temporal.scheme) == (skip_mode, scheme)
      assert config.data.resolution == resolution
  assert ablations.get_config("ms_c").to_dict() == dancefashion.get_config().to_dict()


def test_paper_values_in_dancefashion():
  config = dancefashion.get_config()
  assert (config.data.resolution, config.model.base_resolution, config.model.num_anchors) == (512, 128, 10)
  assert (config.batch_size, config.num_epochs, config.optimizer.g_lr) == (16, 100, 2e-4)
  assert tuple(config.optimizer.lr_decay_epochs) == (60, 90) and config.optimizer.lr_decay_factor == 0.1
  assert config.data.min_driving_offset == 60


@pytest.mark.parametrize("field, value, message", [
    ("temporal.scheme", "sometimes", "config.temporal.scheme"),
    ("model_name", "bdmm9", "config.model_name"),
    ("batch_size", 0, "config.batch_size"),
    ("data.resolution", 48, "config.data.resolution"),
])
def test_bad_values_are_named(field, value, message):
  config = synthetic.get_config("tiny")
  parent, _, leaf = field.rpartition(".")
  (config[parent] if parent else config)[leaf] = value
  with pytest.raises(ValueError, match=message.replace(".", r"\.")):
    train.validate_config(config)


def test_unknown_ablation_is_named():
  with pytest.raises(ValueError, match="unknown ablation 'ms_a'"):
    ablations.get_config("ms_a")


def test_learning_rate_drops_tenfold_at_the_configured_epochs():
  config = dancefashion.get_config()
  schedule = train.create_learning_rate_fn(2e-4, config, steps_per_epoch=10)
  assert [float(schedule(s)) for s in (0, 599, 600, 899, 900)] == pytest.approx(
      [2e-4, 2e-4, 2e-5, 2e-5, 2e-6])


def test_non_finite_loss_stops_with_the_term_named():
  train.check_finite({"g/perceptual": 1.0, "d/total": 0.5}, step=3)
  with pytest.raises(FloatingPointError, match="g/temporal"):
    train.check_finite({"g/perceptual": 1.0, "g/temporal": float("nan")}, step=7)
