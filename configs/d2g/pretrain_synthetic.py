"""D2G-Net's UV pretraining on the synthetic human-motion dataset (many people), sized for a
2-core CPU: TransG alone learns the pose label -> per-part UV and parts
(SunYangtian/Neural-Human-Video-Rendering, pre_train.py: 500 |UV - UV_gt| + CE + BCE).

  python -m internet_jax.main --config=configs/d2g/pretrain_synthetic.py

configs/d2g/synthetic.py (per person) loads the TransG of this run's workdir."""

from configs.d2g import common
from configs.d2g import synthetic as d2g_synthetic


def get_config(arg: str = ""):
  if arg not in ("", "tiny"):
    raise ValueError(f"configs/d2g/pretrain_synthetic.py: unknown variant {arg!r}; known: tiny")
  config = common.get_config()
  d2g_synthetic.synthetic_data(config, arg, person_seed=-1)  # many people
  d2g_synthetic.shrink_networks(config)
  config.d2g.stage = "pretrain"
  config.d2g.texture_init = "zeros"
  config.d2g.background_init = "zeros"
  config.loss.update(dict(uv=500.0, part=1.0, mask=1.0, mask_on_probability=False, vgg=0.0))
  config.batch_size = 4
  config.data.num_repeats = 24
  config.num_epochs = 5  # the paper: 5 epochs
  config.log_every_steps = 50
  config.image_every_steps = 500
  config.checkpoint_every_steps = 500
  config.eval_every_steps = 0
  config.num_eval_videos = 0
  config.sample_animation = False
  if arg == "tiny":
    d2g_synthetic.shrink_to_tiny(config)
    config.num_eval_videos = 0
  return config
