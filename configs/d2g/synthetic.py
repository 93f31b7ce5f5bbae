"""D2G-Net per person on the synthetic human-motion dataset, sized for a 2-core CPU.

  python -m internet_jax.main --config=configs/d2g/pretrain_synthetic.py  # once: TransG's UV
  python -m internet_jax.main --config=configs/d2g/synthetic.py

The data is one person (data.synthetic.person_seed): every training video shows the same figure
in the same studio with its own motion, so together they are one long video of one person, and
the test videos are held-out poses of that person. Inputs come from the exact ground truth stored
with the videos (input_pipeline/annotations.py): joints -> pose label, part labels and UV, the
flows between consecutive frames. No VGG-19 weights are needed: the VGG term is off (set
loss.vgg_weights and loss.vgg to train with it). `:tiny` trains in seconds (tests); `:scratch`
starts TransG from its initialisation instead of the pretraining run."""

from configs import synthetic as internet_synthetic
from configs.d2g import common

PRETRAINED = "./workdirs/d2g_pretrain_synthetic"


def shrink_networks(config):
  """The CPU-sized networks (64^2): TransG 16 -> 128 channels, 3 downsamplings, 3 blocks; the
  texture scaled with the resolution (200 * 64 / 512 = 25); the translation net 16 -> 64."""
  config.model.update(dict(
      uv_base_features=16, uv_max_features=128, uv_num_downsamples=3, uv_num_blocks=3,
      texture_size=25, translation_base_features=16, translation_max_features=64,
      translation_num_downsamples=3, translation_num_blocks=2))
  config.model.discriminator.update(dict(num_scales=2, num_layers=3, base_features=16,
                                         max_features=64))


def synthetic_data(config, arg: str, person_seed: int):
  """The synthetic dataset of configs/synthetic.py (`:tiny` when arg is tiny) with D2G-Net's
  inputs: 11 parts, 15 joints; no augmentation (the code's dataset loader has none)."""
  data = internet_synthetic.get_config("tiny" if arg == "tiny" else "").data
  data.horizontal_flip = False
  data.color_jitter.update(dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0))
  data.min_driving_offset = 0
  data.synthetic.person_seed = person_seed
  config.data = data
  config.d2g.num_parts = 11  # input_pipeline/synthetic.py PART_NAMES
  config.d2g.num_joints = 15  # JOINT_NAMES


def get_config(arg: str = ""):
  config = common.get_config()
  parts = [part for part in arg.split(",") if part]
  unknown = [part for part in parts if part not in ("tiny", "scratch")]
  if unknown:
    raise ValueError(f"configs/d2g/synthetic.py: unknown variant {unknown[0]!r}; known: tiny, "
                     "scratch (comma-separated)")
  tiny = "tiny" in parts
  synthetic_data(config, "tiny" if tiny else "", person_seed=1000)
  shrink_networks(config)
  config.loss.vgg = 0.0
  config.d2g.pretrained = "" if "scratch" in parts else PRETRAINED
  config.d2g.temporal_confidence = "exact"
  config.d2g.static_epochs = 1
  config.batch_size = 4
  # An epoch is one pair per training video per repeat: 40 videos x 24 / 4 = 240 steps.
  config.data.num_repeats = 24
  config.num_epochs = 12
  config.log_every_steps = 50
  config.image_every_steps = 500
  config.checkpoint_every_steps = 500
  config.eval_every_steps = 500
  config.num_eval_videos = 4
  config.eval_frames_per_video = 16
  config.sample_animation_frames = 48
  if tiny:
    shrink_to_tiny(config)
  return config


def shrink_to_tiny(config):
  """Seconds-sized (tests): 32^2, tiny widths, 3 steps, the statics turned off after 1 step."""
  config.model.update(dict(
      uv_base_features=4, uv_max_features=8, uv_num_downsamples=2, uv_num_blocks=1,
      texture_size=8, feature_channels=3, translation_base_features=4,
      translation_max_features=8, translation_num_downsamples=2, translation_num_blocks=1))
  config.model.discriminator.update(dict(num_scales=2, num_layers=2, base_features=4,
                                         max_features=8))
  config.d2g.pretrained = ""
  config.d2g.init_frames = 24
  config.d2g.static_epochs = 1
  config.batch_size = 2
  config.data.num_repeats = 1
  config.num_train_steps = 3
  config.log_every_steps = 1
  config.image_every_steps = 3
  config.checkpoint_every_steps = 2
  config.eval_every_steps = 0
  config.num_eval_videos = 1
  config.eval_frames_per_video = 4
  config.eval_batch_size = 4
  config.sample_animation_frames = 8
