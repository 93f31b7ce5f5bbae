"""BDMM on the synthetic human-motion dataset, sized for a 2-core CPU (about 50 min).

  python -m internet_jax.main --config=configs/bdmm/synthetic.py

Inputs come from the exact ground truth stored with the videos (input_pipeline/annotations.py):
joints -> skeleton heatmaps, part labels and transforms -> the frame -> reference warp. No VGG-19
weights are needed: the content, style and contextual terms are off (set loss.vgg_weights and
their weights to train with them). `:tiny` trains in seconds (tests)."""

from configs import synthetic as internet_synthetic
from configs.bdmm import common


def get_config(arg: str = ""):
  config = common.get_config()
  config.data = internet_synthetic.get_config().data
  config.data.min_driving_offset = 0
  config.data.horizontal_flip = False  # BDMM does not augment
  config.model.update(dict(base_features=16, max_features=64, style_blocks=4))
  config.model.discriminator.update(dict(base_features=16, max_features=64, num_blocks=3))
  config.bdmm.update(dict(chunk_frames=6, num_chunks=2, reference_frames=20))
  config.loss.update(dict(content=0.0, style=0.0, contextual=0.0))
  config.optimizer.g_lr = 5e-4
  config.optimizer.d_lr = 5e-5
  # 300 clips of 2 x 6 frames at batch 2: about 50 min on a 2-core CPU (about 8 s per step; the
  # README's three-method table was trained so, on the synthetic person). A GPU trains longer.
  config.batch_size = 2
  config.num_train_steps = 300
  config.log_every_steps = 10
  config.image_every_steps = 100
  config.checkpoint_every_steps = 100
  # Scored on every frame of each test video (consecutive frames: BDMM is recurrent), in chunks
  # of eval_batch_size (6) with the state carried.
  config.eval_every_steps = 100
  config.num_eval_videos = 4
  config.eval_frames_per_video = config.data.synthetic.num_frames
  config.sample_animation_frames = config.data.synthetic.num_frames
  if arg == "tiny":
    tiny = internet_synthetic.get_config("tiny")
    config.data = tiny.data
    config.data.min_driving_offset = 0
    config.data.horizontal_flip = False
    config.model.update(dict(base_features=4, max_features=16, style_blocks=3))
    config.model.discriminator.update(dict(base_features=4, max_features=8, num_blocks=2))
    config.bdmm.update(dict(chunk_frames=5, num_chunks=2, reference_frames=2))
    config.batch_size = 2
    config.num_train_steps = 3
    config.log_every_steps = 1
    config.image_every_steps = 3
    config.checkpoint_every_steps = 2
    config.eval_every_steps = 0
    config.num_eval_videos = 1
    config.eval_frames_per_video = config.data.synthetic.num_frames
    config.eval_batch_size = 5
    config.sample_animation_frames = config.data.synthetic.num_frames
  elif arg:
    raise ValueError(f"configs/bdmm/synthetic.py: unknown variant {arg!r}; known: tiny")
  return config
