"""Every experiment config loads and passes the model/temporal validation; the Table 2 names map
to the paper's schemes; bad values give one-line errors naming the field."""
import pytest

from configs import ablations, dancefashion, default, synthetic
from internet_jax import losses, method, monitor, optimizers, train
from internet_jax.methods.internet import networks

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
  nets = method.get(config.method).build(config)
  assert nets.generator.resolution == config.data.resolution
  assert config.temporal.scheme in losses.TEMPORAL_SCHEMES


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
    ("method", "bdmm9", "config.method"),
    ("batch_size", 0, "config.batch_size"),
    ("batch_size", -4, "config.batch_size"),
    ("data.resolution", 48, "config.data.resolution"),  # not a power-of-two multiple of 16
    ("data.resolution", 0, "config.data.resolution"),
    ("data.name", "kinetics", "config.data.name"),
    ("data.min_driving_offset", -1, "config.data.min_driving_offset"),
    ("data.num_repeats", 0, "config.data.num_repeats"),
    ("data.flow_preset", "slow", "config.data.flow_preset"),
    ("model.num_anchors", 0, "config.model.num_anchors"),
    ("model.generator.skip_mode", "none", "config.model.generator.skip_mode"),
    ("loss.perceptual", -1.0, "config.loss.perceptual"),
    ("loss.adversarial", float("nan"), "config.loss.adversarial"),
    ("temporal.weight", -10.0, "config.temporal.weight"),
    ("loss.gan_mode", "wgan", "config.loss.gan_mode"),
    ("loss.pyramid_scales", (1.0, 2.0), "config.loss.pyramid_scales"),
    ("loss.reconstruction_scales", (0.0,), "config.loss.reconstruction_scales"),
    ("loss.equivariance_colour", -0.5, "config.loss.equivariance_colour"),
    ("optimizer.name", "sgd", "config.optimizer.name"),
    ("loss.style_layers", ("relu9_1",), "config.loss.style_layers"),
    ("optimizer.g_lr", 0.0, "config.optimizer.g_lr"),
    ("optimizer.ema_decay", 1.0, "config.optimizer.ema_decay"),
    ("num_train_steps", 0, "config.num_train_steps"),
    ("checkpoint_every_steps", 0, "config.checkpoint_every_steps"),
    ("keep_checkpoints", 0, "config.keep_checkpoints"),
    ("max_consecutive_nonfinite", 0, "config.max_consecutive_nonfinite"),
    ("num_eval_videos", -1, "config.num_eval_videos"),
])
def test_bad_values_are_named(field, value, message):
  config = synthetic.get_config("tiny")
  parent, _, leaf = field.rpartition(".")
  with config.unlocked():
    (config[parent] if parent else config)[leaf] = value
  with pytest.raises(ValueError, match=message.replace(".", r"\.")) as info:
    train.validate_config(config)
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, content, message", [
    ("missing.safetensors", None, "no file at"),
    ("weights.h5", b"x", "unsupported extension"),
])
def test_bad_vgg_weights_are_named(tmp_path, name, content, message):
  config = synthetic.get_config("tiny,paper_losses")
  config.loss.allow_random_vgg = True  # the file is checked even when random features may stand in
  path = tmp_path / name
  if content is not None:
    path.write_bytes(content)
  config.loss.vgg_weights = str(path)
  with pytest.raises((ValueError, FileNotFoundError), match=message) as info:
    train.validate_config(config)
  assert str(info.value).startswith("config.loss.vgg_weights: ")


def test_vgg_weights_are_needed_only_by_a_vgg_loss(tmp_path):
  config = synthetic.get_config("tiny")  # pixel-pyramid frame loss: no VGG term
  config.loss.allow_random_vgg = False
  train.validate_config(config)  # no weights, none needed
  assert not networks.uses_vgg(config.loss)
  weights = tmp_path / "vgg19.safetensors"
  weights.write_bytes(b"x")
  config.loss.vgg_weights = str(weights)
  with pytest.raises(ValueError, match="is given but no loss term uses VGG-19"):
    train.validate_config(config)  # weights that nothing would read
  paper = synthetic.get_config("tiny,paper_losses")
  assert networks.uses_vgg(paper.loss)
  assert (paper.optimizer.name, paper.loss.perceptual, paper.loss.adversarial) == (
      "radam", 10.0, 1.0)
  with pytest.raises(FileNotFoundError, match="VGG-19 weights not found"):
    train.validate_config(paper)  # the paper's losses need weights (or allow_random_vgg)


def test_unknown_ablation_is_named():
  with pytest.raises(ValueError, match="unknown ablation 'ms_a'"):
    ablations.get_config("ms_a")


def test_learning_rate_drops_tenfold_at_the_configured_epochs():
  config = dancefashion.get_config()
  schedule = optimizers.learning_rate_schedule(2e-4, config, steps_per_epoch=10)
  assert [float(schedule(s)) for s in (0, 599, 600, 899, 900)] == pytest.approx(
      [2e-4, 2e-4, 2e-5, 2e-5, 2e-6])


def test_non_finite_terms_are_named_loss_terms_first():
  nan, inf = float("nan"), float("inf")
  assert monitor.nonfinite_terms({"g/perceptual": 1.0, "d/total": 0.5, "nonfinite": 0}) == []
  metrics = {"g/grad_norm": nan, "g/total": nan, "g/temporal": inf, "g/perceptual": 1.0,
             "nonfinite": 1, "skipped_steps": 3, "consecutive_skipped_steps": 2}
  assert monitor.nonfinite_terms(metrics) == ["g/temporal", "g/total", "g/grad_norm"]


def test_monitor_stops_after_the_configured_number_of_skips():
  guard = monitor.NonFiniteMonitor(max_consecutive=2)
  finite = {"g/temporal": 0.5, "nonfinite": 0, "skipped_steps": 0, "consecutive_skipped_steps": 0}
  guard.check(1, finite)
  skipped = {"g/temporal": float("nan"), "nonfinite": 1, "skipped_steps": 1,
             "consecutive_skipped_steps": 1}
  guard.check(2, skipped)  # one skip: a warning, the run goes on
  with pytest.raises(FloatingPointError, match=r"step 3: 2 consecutive .*non-finite: g/temporal"):
    guard.check(3, dict(skipped, skipped_steps=2, consecutive_skipped_steps=2))


def test_default_workdir_names_the_config_and_its_method_folder():
  from internet_jax import main  # pylint: disable=g-import-not-at-top
  assert main.default_workdir("configs/synthetic.py") == "workdirs/synthetic"
  assert main.default_workdir("configs/ablations.py:ss4x_a") == "workdirs/ablations_ss4x_a"
  assert main.default_workdir("configs/bdmm/synthetic.py:tiny") == "workdirs/bdmm_synthetic_tiny"
  assert main.default_workdir("./configs/bdmm/synthetic.py") == "workdirs/bdmm_synthetic"
  assert main.default_workdir("synthetic.py") == "workdirs/synthetic"
