"""The embedded default: the synthetic human-motion dataset, sized for a 2-core CPU.

  python -m internet_jax.main --config=configs/synthetic.py

Renders the dataset on first use (into a subfolder of data.manual_dir named by its settings,
`input_pipeline.datasets.synthetic_key`), then trains a small INTERnet (the paper's
structure, with 4x between output and base resolution as in 512/128) and writes checkpoints,
TensorBoard logs and sample_animation.mp4 under ./workdirs/synthetic. No VGG-19 weights are needed
(see the frame loss below); `configs/synthetic.py:paper_losses` trains with the paper's losses.
"""

from configs import default


def get_config(arg: str = ""):
  """`configs/synthetic.py`, `:tiny` (seconds-sized, for tests and notebooks), `:paper_losses`,
  or both comma-separated."""
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
  # No instance norm after the stem: it removes each image's mean colour from the features of the
  # top-level skip (measured at 600 steps: whole-frame L1 0.047 -> 0.041, figure L1 0.148 -> 0.143,
  # cross-identity figure L1 0.158 -> 0.147; the motion EPE unchanged).
  # The output blended with the warped source by the top confidence map (as TPSMM and DAM end
  # their generators): the decoder re-synthesised the static backdrop slightly off-colour
  # everywhere, which kept whole-frame L1 above copy-source (measured at 3000 steps, lr 6e-4:
  # L1 0.0368 -> 0.0247 against copy-source 0.0330; figure L1 0.129 -> 0.119; cross-identity
  # L1 0.0386 -> 0.0276).
  config.model.generator.update(dict(block_expansion=16, max_features=64, num_bottleneck_blocks=2,
                                     stem_norm=False, composite_source=True))
  config.model.discriminator.update(dict(num_scales=1, block_expansion=16, max_features=64,
                                         num_blocks=3))

  # The frame loss for CPU budgets without ImageNet VGG-19 weights (measured on this dataset at
  # 64^2, README "Results"): Eq. 9's image pyramid over the pixels themselves instead of random
  # VGG features (which paint colour noise), no adversarial / feature-matching terms (the
  # discriminator and the VGG made a step 4-5x slower and pay off only over far longer runs),
  # Adam as FOMM instead of RAdam (whose variance rectification damps the first ~2000 steps:
  # about 40 % of Adam's step size on average over 1000 steps), and the intrinsic temporal term
  # at weight 1 (at 10 it drives the confidence map towards 0, mean 0.04 after 400 steps, which
  # gates the warped skips off and blurs the output). `:paper_losses` restores the paper's terms.
  config.loss.update(dict(adversarial=0.0, feature_matching=0.0, perceptual=0.0, style=0.0,
                          reconstruction_l1=10.0, reconstruction_scales=(1.0, 0.5, 0.25)))
  # Anchors that ignore appearance: without this, driving with another person (cross-identity)
  # gave a motion EPE of 2.4 px against 1.5 px for zero motion; with it 1.3 px (800 steps).
  config.loss.equivariance_colour = 0.5
  config.optimizer.name = "adam"
  config.temporal.scheme = "intrinsic"
  config.temporal.weight = 1.0

  config.batch_size = 8
  # 24 epochs of 125 steps (the whole quickstart: ~15 min on 2 CPU cores). The rate drops x0.1
  # late, at epochs 21 and 23: at the paper's fractions (epochs 60 and 90 of 100, here 15 and 22)
  # the motion stopped improving at the first drop (same seed, step 3000, training-time
  # evaluation: figure motion EPE 0.942 -> 0.831 px, figure L1 0.112 -> 0.100, cross-identity
  # EPE 1.151 -> 1.050 px with the late drops).
  config.num_epochs = 24
  config.optimizer.lr_decay_epochs = (21, 23)
  config.log_every_steps = 50
  config.image_every_steps = 500
  config.checkpoint_every_steps = 500
  config.eval_every_steps = 500
  config.num_eval_videos = 4
  config.eval_frames_per_video = 16
  config.sample_animation_frames = 48
  for part in filter(None, arg.split(",")):
    if part == "tiny":
      shrink_to_tiny(config)
    elif part == "paper_losses":
      use_paper_losses(config)
    else:
      raise ValueError(f"configs/synthetic.py: unknown argument {part!r}; known: tiny, "
                       "paper_losses (comma-separated)")
  return config


def use_paper_losses(config):
  """The paper's frame loss (Eqs. 7-10: adversarial, feature matching, VGG-19 perceptual and
  style) and RAdam, as configs/default.py; pass --config.loss.vgg_weights=PATH (or
  --config.loss.allow_random_vgg=True for random features)."""
  paper = default.get_config()
  for name in ("adversarial", "feature_matching", "perceptual", "style", "reconstruction_l1",
               "equivariance_colour"):
    config.loss[name] = paper.loss[name]
  config.loss.pyramid_scales = (1.0, 0.5)  # VGG-19 features of a 16^2 level would be 1x1
  config.optimizer.name = paper.optimizer.name
  config.temporal.weight = paper.temporal.weight


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
