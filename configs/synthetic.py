"""The embedded default: the synthetic human-motion dataset, sized for a 2-core CPU.

  python -m internet_jax.main --config=configs/synthetic.py

Renders the dataset into data.manual_dir on first use, then trains a small INTERnet (the paper's
structure, with 4x between output and base resolution as in 512/128) and writes checkpoints,
TensorBoard logs and sample_animation.mp4 under ./workdirs/synthetic. No VGG-19 weights are needed:
a frozen, seeded random VGG-19 stands in (and is logged as such).
"""

from configs import default


def get_config(arg: str = ""):
  """`configs/synthetic.py` or `configs/synthetic.py:tiny` (seconds-sized, for tests and notebooks)."""
  config = default.get_config()
  config.data.name = "synthetic"
  config.data.manual_dir = "./data/synthetic"
  config.data.data_dir = "./data/tfds"
  config.data.resolution = 64
  config.data.min_driving_offset = 8
  config.data.num_repeats = 25
  config.data.worker_count = 0
  config.data.flow_preset = "fast"
  config.data.synthetic.update(dict(num_videos=40, num_test_videos=4, num_frames=48,
                                    background="studio", seed=0))

  config.model.num_anchors = 10
  config.model.base_resolution = 16
  config.model.motion.update(dict(detector_block_expansion=16, detector_max_features=64,
                                  detector_num_blocks=3, block_expansion=16, max_features=64,
                                  num_blocks=3))
  config.model.generator.update(dict(block_expansion=16, max_features=64, num_bottleneck_blocks=2))
  config.model.discriminator.update(dict(num_scales=1, block_expansion=16, max_features=64,
                                         num_blocks=3))

  config.loss.allow_random_vgg = True  # no downloadable weights here; logged at start
  config.loss.pyramid_scales = (1.0, 0.5)
  config.loss.style = 0.0  # Gram statistics of random VGG features carry little signal
  config.loss.reconstruction_l1 = 10.0  # helps a random-VGG perceptual loss on CPU budgets
  config.temporal.scheme = "intrinsic"

  config.batch_size = 8
  # 8 epochs of 125 steps: ~12 min at the measured ~1.45 steps/s on 2 CPU cores; the learning
  # rate drops x0.1 at the same fractions of training as the paper's epochs 60 and 90 of 100.
  config.num_epochs = 8
  config.optimizer.lr_decay_epochs = (5, 7)
  config.log_every_steps = 20
  config.image_every_steps = 200
  config.checkpoint_every_steps = 200
  config.num_eval_videos = 4
  config.eval_frames_per_video = 16
  config.sample_animation_frames = 48
  if arg == "tiny":
    shrink_to_tiny(config)
  elif arg:
    raise ValueError(f"configs/synthetic.py: unknown argument {arg!r}; known: tiny")
  return config


def shrink_to_tiny(config):
  """A model and dataset small enough to compile and run a few steps in seconds on a CPU."""
  config.data.resolution = 32
  config.data.min_driving_offset = 4
  config.data.num_repeats = 2
  config.data.synthetic.update(dict(num_videos=5, num_test_videos=1, num_frames=12))
  config.model.num_anchors = 4
  config.model.base_resolution = 16
  config.model.motion.update(dict(detector_block_expansion=8, detector_max_features=16,
                                  detector_num_blocks=2, block_expansion=8, max_features=16,
                                  num_blocks=2))
  config.model.generator.update(dict(block_expansion=8, max_features=16, num_bottleneck_blocks=1))
  config.model.discriminator.update(dict(num_scales=1, block_expansion=8, max_features=16,
                                         num_blocks=2))
  config.loss.pyramid_scales = (1.0,)
  config.batch_size = 4
  config.num_train_steps = 2
  config.log_every_steps = 1
  config.image_every_steps = 2
  config.checkpoint_every_steps = 2
  config.num_eval_videos = 1
  config.eval_frames_per_video = 4
  config.eval_batch_size = 4
  config.sample_animation_frames = 8
