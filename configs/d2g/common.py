"""D2G-Net's config sections ("Robust Pose Transfer with Dynamic Details using Neural Video
Rendering"), as the public PyTorch code sets them (SunYangtian/Neural-Human-Video-Rendering:
options/base_options.py, options/train_options.py, train_start/pretrain_start.sh,
models/pix2pixHD_Avatar.py), on top of the shared fields of configs/default.py.
`configs/d2g/synthetic.py`, `configs/d2g/pretrain_synthetic.py` and `configs/d2g/person.py` build
on this."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.method = "d2g"  # internet_jax/methods/d2g/

  config.model = ml_collections.ConfigDict(dict(
      # TransG: pix2pixHD's global generator (ngf_translate 64, 4 downsamplings, 9 blocks).
      uv_base_features=64,
      uv_max_features=1024,
      uv_num_downsamples=4,
      uv_num_blocks=9,
      # The hybrid texture: a 200^2 tile per part at 512^2, 3 RGB + 15 feature channels.
      texture_size=200,
      feature_channels=15,  # 0: the paper's "3 channels" ablation
      # The translation net (FgFeature2RGB: 64 -> 512, 4 downsamplings, 2 blocks).
      translation_base_features=64,
      translation_max_features=512,
      translation_num_downsamples=4,
      translation_num_blocks=2,
      use_translation=True,  # False: the paper's "w/o translation" ablation
      # True: the pose label is concatenated at the translation net's input (paper Eq. 2, the
      # Jittor code); False: the PyTorch code's FgFeature2RGB without pose. The paper's
      # "w/o condition" ablation is False.
      pose_condition=False,
      discriminator=ml_collections.ConfigDict(dict(
          num_scales=2, num_layers=3, base_features=64, max_features=512)),
      dtype="float32",
  ))
  config.d2g = ml_collections.ConfigDict(dict(
      stage="person",  # person | pretrain (UV pretraining, pre_train.py)
      pretrained="",  # the pretraining run's workdir; TransG is loaded from it ("": none)
      pretrain_config="configs/d2g/pretrain_synthetic.py",  # named in the error when it is missing
      num_parts=24,  # DensePose's 24 parts (the synthetic figure: 11)
      # True: DensePose part labels and UV supervise TransG (uv and part terms); False: a real
      # video without them (the code's use_densepose_loss=False): person mask from "mask".
      densepose=True,
      num_joints=25,  # OpenPose BODY_25 (the synthetic skeleton: 15)
      pose_thickness=0.0,  # pose-label line width in pixels; 0: scaled with the resolution
      static_epochs=3,  # StaticEpoch: the translated image's terms and the GAN start after
      lr_decay_per_epoch=0.9,  # lr * 0.9^epoch (init_optimizer_G)
      texture_init="unfold",  # unfold (the training frames by their UV) | zeros
      background_init="median",  # median of the background pixels | zeros
      init_frames=5000,  # frames read for the texture and background (unfold_texture.py: 5000)
      # Eq. 5's confidence: forward_backward (cal_conf on the flows) | exact (the synthetic
      # ground truth's visibility, valid_backward).
      temporal_confidence="forward_backward",
  ))
  config.loss = ml_collections.ConfigDict(dict(
      l2=500.0,  # lambda_L2
      vgg=10.0,  # lambda_feat
      uv=1000.0,  # lambda_UV
      part=10.0,  # lambda_Prob
      mask=0.1,  # lambda_mask / 10
      mask_on_probability=True,  # the code's BCEWithLogits on 1 - P0 (False: plain BCE)
      human_mask=500.0,  # lambda_L2
      temporal=500.0,  # lambda_Temp (the paper says 100)
      adversarial=1.0,
      vgg_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
      vgg_layer_weights=(1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0),  # pix2pixHD VGGLoss
      vgg_weights="",
      allow_random_vgg=False,
      random_vgg_seed=0,
  ))
  opt = config.optimizer
  opt.name = "adam"
  opt.g_lr = 2e-4  # the code (the paper says 0.002)
  opt.d_lr = 2e-4
  opt.b1 = 0.5
  opt.b2 = 0.999
  opt.lr_decay_epochs = ()  # D: constant until the code's niter (100 epochs)
  opt.lr_decay_factor = 1.0
  config.batch_size = 2  # pairs (t - 1, t): 4 images per step
  config.num_epochs = 30  # the paper's 30 epochs (the test script loads epoch 30)
  config.eval_batch_size = 8
  return config
