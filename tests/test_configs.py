"""Every experiment config loads and passes the model/temporal validation; the Table 2 names map
to the paper's schemes; bad values give one-line errors naming the field."""
import math
import re

import ml_collections
import pytest

from configs import ablations, dancefashion, default, synthetic
from configs.bdmm import common as bdmm_common
from configs.bdmm import fashion as bdmm_fashion
from configs.bdmm import synthetic as bdmm_synthetic
from configs.d2g import person as d2g_person
from configs.d2g import pretrain_synthetic as d2g_pretrain_synthetic
from configs.d2g import synthetic as d2g_synthetic
from internet_jax import config_checks, losses, method, monitor, optimizers, train
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
              "ss4x_c": ("single", "intrinsic"), "ms_a": ("multiscale", "plain"),
              "ms_b": ("multiscale", "extrinsic"), "ms_c": ("multiscale", "intrinsic")}
  for name, (skip_mode, scheme) in expected.items():
    for prefix, resolution in (("", 512), ("synthetic_", synthetic.get_config().data.resolution)):
      config = ablations.get_config(prefix + name)
      assert (config.model.generator.skip_mode, config.temporal.scheme) == (skip_mode, scheme)
      assert config.data.resolution == resolution
  assert ablations.get_config("ms_c").to_dict() == dancefashion.get_config().to_dict()


def test_bdmm_fashion_has_the_codes_values_and_needs_its_warp_source(tmp_path):
  # rocketappslab/BDMM: betas (0, 0.999), lr 1e-4 / 1e-5, batch 1, 5 chunks of 6, the reference
  # from the first 20 frames, 256^2, BODY_25, 100k clips.
  config = bdmm_fashion.get_config()
  opt = config.optimizer
  assert (opt.b1, opt.b2, opt.g_lr, opt.d_lr) == (0.0, 0.999, 1e-4, 1e-5)
  assert (config.batch_size, config.bdmm.chunk_frames, config.bdmm.num_chunks,
          config.bdmm.reference_frames) == (1, 6, 5, 20)
  assert (config.data.resolution, config.bdmm.num_joints, config.num_train_steps) == (
      256, 25, 100_000)
  config.loss.update(dict(vgg_weights="", allow_random_vgg=True))
  config.bdmm.warp_source = f"internet:{tmp_path}"
  with pytest.raises(ValueError, match=r"^config.bdmm.warp_source: "):
    train.validate_config(config)


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



# Every config file's numeric fields, each set to values no rule accepts: NaN and inf for floats,
# a negative number for all (num_train_steps: -2, as -1 means "from num_epochs";
# data.synthetic.person_seed: -2, as -1 means off).
NUMERIC_CONFIGS = {**ALL_CONFIGS, "bdmm_common": bdmm_common.get_config,
                   "bdmm_synthetic": bdmm_synthetic.get_config,
                   "bdmm_fashion": bdmm_fashion.get_config,
                   "bdmm_synthetic_tiny": lambda: bdmm_synthetic.get_config("tiny"),
                   "d2g_synthetic": d2g_synthetic.get_config,
                   "d2g_pretrain_synthetic": d2g_pretrain_synthetic.get_config,
                   "d2g_person": d2g_person.get_config}


def _bad_numeric_values():
  """(config name, dotted field, bad value) for every numeric field of every config."""
  cases = {}
  for name, get_config in NUMERIC_CONFIGS.items():
    for field, value in config_checks._numeric_fields(get_config()):
      first = value[0] if isinstance(value, (tuple, list)) else value
      bad = [-2 if field in ("num_train_steps", "data.synthetic.person_seed") else -1]
      if isinstance(first, float):
        bad += [math.nan, math.inf, -math.inf]
      for bad_value in bad:
        cases.setdefault((field, repr(bad_value)), (name, field, bad_value))
  return sorted(cases.values(), key=lambda case: (case[1], repr(case[2])))


def _with(config, field: str, value):
  """A copy of `config` with `field` set to `value` (a tuple field: its last element), past
  ConfigDict's type checks as a value from a config file would be."""
  tree = config.to_dict()
  *parents, leaf = field.split(".")
  node = tree
  for parent in parents:
    node = node[parent]
  old = node[leaf]
  node[leaf] = (*old[:-1], value) if isinstance(old, (tuple, list)) else value
  return ml_collections.ConfigDict(tree)


@pytest.mark.parametrize("name, field, value", _bad_numeric_values(),
                         ids=lambda v: v if isinstance(v, str) else repr(v))
def test_every_numeric_field_refuses_non_finite_and_negative_values(name, field, value):
  config = _with(NUMERIC_CONFIGS[name](), field, value)
  with pytest.raises(ValueError) as info:
    train.validate_config(config)
  assert str(info.value).startswith(f"config.{field}: ") and "\n" not in str(info.value)
  assert repr(value) in str(info.value)


@pytest.mark.parametrize("field, value, accepted", [
    ("model.motion.detector_resolution", 0, True),  # 0 = the base resolution
    ("profile_steps", 0, True),  # off
    ("image_every_steps", 0, True),
    ("num_eval_videos", 0, True),
    ("num_train_steps", -1, True),  # from num_epochs
    ("data.worker_count", 0, True),
    ("optimizer.b2", 1.0, False),  # a decay of 1 never forgets
    ("optimizer.b1", 0.0, True),
    ("data.color_jitter.hue", 0.6, False),  # beyond half the hue circle
    ("data.synthetic.num_frames", 1, False),  # flows need two frames
    ("model.motion.temperature", 0.0, False),
    ("loss.tps_points", 0, False),
    ("loss.pyramid_scales", 1.5, False),
    ("num_epochs", 0, False),
    ("sample_animation_frames", 0, False),
    ("data.prefetch_buffer_size", 0, False),
])
def test_numeric_rules_at_their_edges(field, value, accepted):
  config = _with(synthetic.get_config("tiny"), field, value)
  if accepted:
    train.validate_config(config)
  else:
    with pytest.raises(ValueError, match=rf"^config\.{re.escape(field)}: "):
      train.validate_config(config)


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
  with pytest.raises(ValueError, match="unknown ablation 'ms_d'"):
    ablations.get_config("ms_d")
  with pytest.raises(ValueError, match="unknown row 'ms_d'"):
    ablations.apply(synthetic.get_config(), "ms_d")


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
