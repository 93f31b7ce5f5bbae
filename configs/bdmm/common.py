"""BDMM's config sections ("Bidirectionally Deformable Motion Modulation for Video-based Human Pose
Transfer"), as the official code sets them (rocketappslab/BDMM: model/dance_model.py,
options/train_options.py, data/dance_dataset.py), on top of the shared fields of
configs/default.py. `configs/bdmm/synthetic.py` and `configs/bdmm/fashion.py` build on this."""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.method = "bdmm"  # internet_jax/methods/bdmm/

  config.model = ml_collections.ConfigDict(dict(
      base_features=64,  # ngf
      max_features=512,  # img_f
      style_blocks=6,  # the style encoder's layers + 3
      encoder_blocks=3,  # opt.layers (dance_model.py: 3)
      dtype="float32",
      orthogonal_init=True,  # init_weights('orthogonal', gain=0.02), as create_network applies
      # The paper's Table 2 ablations.
      use_dmm=True,  # False: "w/o DMM"
      forward_propagation=True,  # False: "w/o forward propagation"
      backward_propagation=True,  # False: "w/o backward propagation"
      recurrent_structure=True,  # False: "w/o recurrent structural flow"
      discriminator=ml_collections.ConfigDict(dict(
          base_features=32, max_features=128, num_blocks=4)),  # ndf 32, img_f 128, layers 4
  ))
  config.bdmm = ml_collections.ConfigDict(dict(
      chunk_frames=6,  # max_frames_per_gpu: frames per update (truncated BPTT)
      num_chunks=5,  # n_frames_total 30 = 5 chunks of 6
      reference_frames=20,  # the reference is drawn from a video's first 20 frames
      num_joints=15,  # the synthetic skeleton (BDMM: OpenPose BODY_25)
      heatmap_sigma=6.0,  # Gaussian sigma of the skeleton heatmaps in pixels at 256^2
      warp_visibility=False,  # True: reference points hidden in the reference are left out
      # Where the reference -> frame warps come from: "annotation" (the synthetic figure's part
      # maps) | "source_coords" (stored per-frame correspondences into the first frame, e.g.
      # `input_pipeline.annotate --warp_dir` from an SMPL renderer's warps; the reference is then
      # the first frame) | "<method>:<workdir>", a trained checkpoint's motion estimator, e.g.
      # "internet:workdirs/synthetic" (no 3D body model, any video; our addition).
      warp_source="annotation",
  ))
  config.loss = ml_collections.ConfigDict(dict(
      l1=5.0,  # lambda_rec
      content=0.5,  # lambda_content: relu1_1 .. relu5_1
      style=500.0,  # lambda_style (Gram)
      contextual=0.1,  # lambda_cx
      spatial_adversarial=2.0,  # lambda_g, LSGAN
      temporal_adversarial=2.0,
      content_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
      style_layers=("relu2_2", "relu3_4", "relu4_4", "relu5_2"),
      # BDMM's "relu3_2" is relu3_3 (its VGG wrapper's slice bug); relu3_2 is the paper's.
      contextual_layers=("relu3_3", "relu4_2", "relu5_2"),
      vgg_weights="",
      allow_random_vgg=False,
      random_vgg_seed=0,
  ))
  opt = config.optimizer
  opt.name = "adam"
  opt.g_lr = 1e-4
  opt.d_lr = 1e-5  # ratio_g2d 0.1
  opt.b1 = 0.0  # the code's betas (0, 0.999); the paper says beta1 0.5
  opt.b2 = 0.999
  opt.lr_decay_epochs = ()  # the code's 'lambda' policy never decays in practice
  opt.lr_decay_factor = 1.0
  config.batch_size = 1
  config.eval_batch_size = 6  # inference in chunks of 6 frames, the state carried between them
  return config
