"""BDMM's FashionVideo setting (UBC Fashion at 256^2, rocketappslab/BDMM: the README's training
command, options/train_options.py, model/dance_model.py).

  python -m internet_jax.main --config=configs/bdmm/fashion.py \
      --config.data.manual_dir=DIR --config.bdmm.warp_source=internet:WORKDIR

As the code: Adam betas (0, 0.999), lr G 1e-4 / D 1e-5, batch 1, clips of 5 chunks of 6 frames
with the reference from a video's first 20 frames, the code's loss weights (configs/bdmm/common.py),
and 100k clips (its --niter 50000 --niter_decay 50000 counted in clips, i.e. 500k G and D updates;
the paper says 50,000 iterations at lr 1e-4). The code's learning-rate decay never triggers (its
LambdaLR compares epochs with iterations), so the rate stays constant here too.

Inputs. BDMM reads per frame the OpenPose BODY_25 joints (bdmm.num_joints 25) and the warp of the
frame into the reference. The code renders those warps from fitted SMPL meshes, which cannot be
obtained here; this setting takes them from a trained INTERnet at 256^2 instead
(bdmm.warp_source, internet_jax/motion_sources.py), e.g.

  python -m internet_jax.main --config=configs/dancefashion.py --config.data.resolution=256 \
      --config.model.base_resolution=64 --workdir=workdirs/dancefashion_256

DIR holds train/ and test/ of the videos at 256^2 with the joints beside them, as
`python -m input_pipeline.annotate --video=V --output_dir=DIR/train --resolution=256
--openpose_dir=J --flows=false` writes them. The content, style and contextual terms need ImageNet
VGG-19 weights at loss.vgg_weights (README "Supplying pretrained weights").
"""

from configs import dancefashion
from configs.bdmm import common


def get_config():
  config = common.get_config()
  config.data = dancefashion.get_config().data
  config.data.name = "folder"
  config.data.manual_dir = "./data/fashion_bdmm"
  config.data.resolution = 256
  config.data.min_driving_offset = 0
  config.data.horizontal_flip = False  # the code does not augment
  config.data.color_jitter.update(dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0))
  config.data.num_repeats = 1
  config.bdmm.num_joints = 25  # OpenPose BODY_25
  config.bdmm.warp_source = "internet:./workdirs/dancefashion_256"
  config.loss.vgg_weights = "./weights/vgg19.safetensors"
  config.batch_size = 1
  config.num_train_steps = 100_000  # clips (5 chunk updates each)
  config.log_every_steps = 100
  config.image_every_steps = 2000
  config.checkpoint_every_steps = 5000
  config.eval_every_steps = 10_000
  config.num_eval_videos = 4
  config.eval_batch_size = 6  # chunks of 6, as the code tests
  return config
