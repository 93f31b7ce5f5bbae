"""D2G-Net's paper setting: one person at 512^2 (SunYangtian/Neural-Human-Video-Rendering,
train_start/train_start.sh; the paper Sec. 4: 30 epochs, about a day on one V100).

  python -m internet_jax.main --config=configs/d2g/person.py \
      --config.data.manual_dir=DIR --config.d2g.pretrained=PRETRAIN_WORKDIR

DIR holds the person's video(s) in train/ and held-out poses in test/ (mp4 files or folders of
PNG frames), each with its per-frame annotations in the .npz beside it
(input_pipeline/annotations.py): joints (T, 25, 2) in OpenPose BODY_25 order, part_labels
(T, H, W) with DensePose's 24 parts and uv (T, H, W, 2) in [0, 1], flow_forward / flow_backward
(T - 1, H, W, 2) in pixels and valid_backward (T - 1, H, W) (set
d2g.temporal_confidence=forward_backward to check the flows instead). The code's dataset is one
video split 9:1 on contiguous frames (the last tenth is the validation set); put those frames in
test/ to reproduce it. Needs ImageNet VGG-19 weights at loss.vgg_weights (README "Supplying
pretrained weights")."""

from configs.d2g import common


def get_config():
  config = common.get_config()
  config.data.name = "folder"
  config.data.manual_dir = "./data/person"
  config.data.resolution = 512  # loadSize 512
  config.data.min_driving_offset = 0
  config.data.horizontal_flip = False  # the code's dataset does not augment
  config.data.color_jitter.update(dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0))
  # An epoch here is num_repeats pairs from each training video; the code's epoch is every frame
  # of its one video once (3-minute videos at 25 fps: about 4500 frames).
  config.data.num_repeats = 4500
  config.d2g.pretrained = "./workdirs/d2g_pretrain"
  config.d2g.pretrain_config = "configs/d2g/pretrain_synthetic.py"
  config.loss.vgg_weights = "./weights/vgg19.safetensors"
  config.batch_size = 2
  config.num_epochs = 30
  return config
