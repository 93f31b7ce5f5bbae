"""The paper's setting (INTERnet Sec. 4.1): 512x512 DanceFashion (UBC Fashion), Table 2 "Ours (MS c)".

  python -m internet_jax.main --config=configs/dancefashion.py [--workdir=DIR]

Needs the UBC Fashion videos in data.manual_dir (input_pipeline/dance_fashion/README.md) and
ImageNet VGG-19 weights at loss.vgg_weights (README "Supplying pretrained weights").
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = "dancefashion"
  config.data.manual_dir = "./data/fashion"
  config.data.resolution = 512  # paper: all frames resized to 512x512
  config.data.min_driving_offset = 60  # paper: t > 60 (2 s at 30 fps)
  config.data.num_repeats = 50  # not given by the paper: FOMM fashion-256 num_repeats 50
  # DIS "medium" costs ~75 ms of CPU per 512^2 example (input_pipeline/benchmark.py): 8 workers
  # feed ~100 examples/s on a 16-core GPU host.
  config.data.worker_count = 8
  config.model.num_anchors = 10
  config.model.base_resolution = 128  # base motion field at 128x128; warped features at 128/256/512
  config.model.generator.skip_mode = "multiscale"
  config.temporal.scheme = "intrinsic"
  config.loss.vgg_weights = "./weights/vgg19.safetensors"
  config.loss.allow_random_vgg = False
  config.batch_size = 16
  config.num_epochs = 100
  config.optimizer.g_lr = config.optimizer.d_lr = 2e-4
  config.optimizer.lr_decay_epochs = (60, 90)
  return config
