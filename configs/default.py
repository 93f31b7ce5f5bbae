"""Default configuration: every field the project reads, with its meaning and source.

Experiment configs (`dancefashion.py`, `synthetic.py`, the Table 2 ablations) import this file and
override fields. Values the INTERnet paper ("Intrinsic Temporal Regularization for
High-resolution Human Video Synthesis") does not give are marked with their source, mostly FOMM's
config (github.com/AliaksandrSiarohin/first-order-model, config/fashion-256.yaml).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.method = "internet"  # a package under internet_jax/methods/ (internet_jax.method.get)
  config.seed = 0

  # --- Data (input_pipeline/) -------------------------------------------------------------------
  config.data = data = ml_collections.ConfigDict()
  data.name = "dancefashion"  # dancefashion | synthetic | folder
  data.data_dir = "./data/tfds"  # where the prepared array_record dataset lives (TFDS data_dir)
  data.manual_dir = "./data/fashion"  # raw videos: train/ and test/ of .mp4 or PNG-frame folders
  data.resolution = 512  # frames are resized (and padded to square with white) to this size
  # Paper Sec. 3.3: D_t is at least 2 s from the start, t > 60 at 30 fps.
  data.min_driving_offset = 60
  # An epoch is num_repeats passes over the training videos (FOMM fashion-256: 50).
  data.num_repeats = 50
  data.horizontal_flip = True  # FOMM fashion-256: horizontal_flip True
  # FOMM fashion-256 jitters hue by 0.1 only; the other terms are off.
  data.color_jitter = ml_collections.ConfigDict(
      dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1))
  data.flow_preset = "medium"  # OpenCV DIS preset: ultrafast | fast | medium
  # Sundaram et al. [27] extrinsic confidence (temporal scheme b).
  data.fb_consistency_alpha = 0.01  # |f + b|^2 < alpha (|f|^2 + |b|^2) + beta
  data.fb_consistency_beta = 0.5  # in pixels^2
  data.motion_boundary_alpha = 0.01  # |grad f|^2 > alpha |f|^2 + beta marks a boundary (f: forward)
  data.motion_boundary_beta = 0.002
  data.worker_count = 2  # grain worker processes (0: in the main process)
  data.prepare_workers = 0  # processes encoding frames while preparing the dataset (0: in-process)
  data.prefetch_buffer_size = 2
  # Synthetic dataset rendering (input_pipeline/synthetic.py); used when data.name == synthetic.
  # person_seed >= 0: every video shows the person of that seed (single-person mode, for methods
  # trained per person such as D2G-Net); -1: off (each video its own person).
  data.synthetic = ml_collections.ConfigDict(dict(
      num_videos=40, num_test_videos=4, num_frames=96, background="studio", seed=0,
      person_seed=-1))

  # --- Model (internet_jax/models/) ---------------------------------------------------------------
  config.model = model = ml_collections.ConfigDict()
  model.num_anchors = 10  # paper Sec. 4.1: 10 motion anchors
  model.base_resolution = 128  # paper Sec. 4.1: base motion field at 128x128
  model.dtype = "float32"  # compute dtype; parameters stay float32 ("bfloat16" for speed)
  # Rematerialise the hourglass levels and generator down/res/up blocks (nn.remat): less activation
  # memory for about one extra forward pass; same parameters, outputs and gradients.
  model.remat = False
  model.motion = ml_collections.ConfigDict(dict(
      # Anchor (keypoint) detector U-Net, FOMM kp_detector: block_expansion 32, max 1024, 5 blocks.
      detector_block_expansion=32,
      detector_max_features=1024,
      detector_num_blocks=5,
      temperature=0.1,  # spatial-softmax temperature (FOMM)
      # Size of the image the anchors are detected on; 0 = base_resolution (the paper's Stage I,
      # FOMM's scale_factor). Small frames may need more: an arm 2 px wide at 64^2 is half a
      # pixel at a 16^2 base.
      detector_resolution=0,
      estimate_jacobian=True,
      # Where the anchors come from: "detector" (the paper), or "part_transforms", a diagnostic
      # on the synthetic set, whose annotations hold each part's affine map: anchor k sits at
      # part k's centre and its Jacobian is the part's map, so that T_k is the part's exact
      # motion (methods/internet/motion.py part_anchors); model.num_anchors must equal the
      # number of parts (11), and the equivariance terms idle.
      anchors="detector",
      # Dense-motion U-Net, FOMM dense_motion_params: 64, 1024, 5 blocks, kp_variance 0.01.
      block_expansion=64,
      max_features=1024,
      num_blocks=5,
      anchor_variance=0.01,
  ))
  model.generator = ml_collections.ConfigDict(dict(
      # pix2pixHD-style "3-stage resnet generator" (paper Sec. 4.1) on FOMM widths: 64 -> 512.
      block_expansion=64,
      max_features=512,
      num_bottleneck_blocks=6,  # FOMM fashion-256: num_bottleneck_blocks 6
      # "multiscale": warped skips at every scale (MS); "single": only the base scale (SS4x).
      skip_mode="multiscale",
      stem_norm=True,  # instance norm after the 7x7 stem (methods/internet/generator.py: why not)
      # Blend the output with the warped source image by the top confidence map, as TPSMM and
      # DAM do (methods/internet/generator.py composite_with_source); not in the paper.
      composite_source=False,
  ))
  model.discriminator = ml_collections.ConfigDict(dict(
      num_scales=2,  # N_D in Eq. 8; not given by the paper: D2G-Net/pix2pixHD use num_D 2
      block_expansion=64,  # pix2pixHD ndf 64
      max_features=512,
      num_blocks=4,  # pix2pixHD n_layers 3 + the final stride-1 block
  ))

  # --- Losses (internet_jax/losses.py) ------------------------------------------------------------
  config.loss = loss = ml_collections.ConfigDict()
  loss.gan_mode = "vanilla"  # Eq. 8 is the log loss; "lsgan" as in FOMM
  loss.adversarial = 1.0  # FOMM fashion-256: generator_gan 1
  loss.feature_matching = 10.0  # FOMM fashion-256: feature_matching [10, 10, 10, 10]
  loss.perceptual = 10.0  # lambda_per; FOMM fashion-256: perceptual [10] * 5
  loss.style = 250.0  # lambda_sty; not given by the paper (BDMM uses 500 for its Gram loss)
  loss.pyramid_scales = (1.0, 0.5, 0.25, 0.125)  # FOMM fashion-256: scales [1, 0.5, 0.25, 0.125]
  # Style (Gram) layers: not given by the paper; Johnson et al. [13] use one layer per VGG block.
  loss.style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  loss.equivariance_value = 10.0  # FOMM fashion-256
  loss.equivariance_jacobian = 10.0  # FOMM fashion-256
  loss.reconstruction_l1 = 0.0  # an optional L1 term over an image pyramid; not in the paper
  loss.reconstruction_scales = (1.0,)  # its pyramid (losses.pyramid_l1_loss)
  # An optional L1 weighted by |driving - source| (losses.change_weighted_l1_loss); not in the paper.
  loss.change_weighted_l1 = 0.0
  # An optional floor on each anchor motion's share of the composition (losses.
  # composition_floor_loss), against composition channels that die early; not in the paper.
  loss.composition_floor = 0.0
  loss.composition_floor_share = 0.005
  # An optional floor on each anchor motion's weight around its own anchor (losses.
  # anchor_composition_loss), the local form of the floor above; not in the paper.
  loss.anchor_composition = 0.0
  loss.anchor_composition_share = 0.5
  loss.tps_sigma_affine = 0.05  # FOMM transform_params
  loss.tps_sigma_tps = 0.005
  loss.tps_points = 5
  # > 0: the equivariance frame also gets a random colour change of this strength
  # (losses.random_colour_change), so anchors learn to ignore appearance; 0 is FOMM's.
  loss.equivariance_colour = 0.0
  loss.vgg_weights = ""  # .safetensors/.npz/.pth of VGG-19 (torchvision or timm layout)
  loss.allow_random_vgg = False  # True: a frozen, seeded random VGG-19 when no weights are given
  loss.vgg_dtype = "float32"  # compute dtype of the frozen VGG-19: float32 | model (model.dtype)

  # --- Temporal regularisation (paper Eqs. 2-4) ---------------------------------------------------
  config.temporal = temporal = ml_collections.ConfigDict()
  temporal.scheme = "intrinsic"  # none | plain (Eq. 2) | extrinsic (Eq. 3) | intrinsic (Eq. 4)
  temporal.weight = 10.0  # lambda_reg in Eq. 1; not given by the paper

  # --- Optimisation (paper Sec. 4.1) --------------------------------------------------------------
  config.optimizer = opt = ml_collections.ConfigDict()
  opt.name = "radam"  # RAdam (paper) | adam (FOMM); train.OPTIMIZERS
  opt.g_lr = 2e-4  # RAdam, lr 2e-4 (paper)
  opt.d_lr = 2e-4
  opt.b1 = 0.5  # not given by the paper: FOMM's Adam betas (0.5, 0.999)
  opt.b2 = 0.999
  opt.lr_decay_epochs = (60, 90)  # x0.1 at the end of epochs 60 and 90 (paper)
  opt.lr_decay_factor = 0.1
  opt.ema_decay = 0.0  # > 0 keeps an EMA of the generator parameters

  config.batch_size = 16  # global batch (paper: 16 over 8 V100)
  config.num_epochs = 100
  config.num_train_steps = -1  # -1: derived from num_epochs and the epoch length
  config.log_every_steps = 50
  config.image_every_steps = 1000
  # > 0: a profiler trace of this many steps (after the first 3) into the workdir, for
  # TensorBoard's Profile tab (pip install tensorboard-plugin-profile to view it).
  config.profile_steps = 0
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 3
  # Non-finite guard: a step with a NaN/inf loss or gradient is skipped (no update, counted in
  # train/skipped_steps); this many skipped steps in a row stop the run, naming the terms.
  config.max_consecutive_nonfinite = 10
  # Self-reconstruction L1 on this many test videos at start and end (0: no evaluation).
  config.num_eval_videos = 8
  config.eval_frames_per_video = 16  # evenly spaced frames per video
  # Also evaluate every this many steps (TensorBoard curves of eval/*; 0: only at start and end).
  config.eval_every_steps = 0
  config.eval_batch_size = 8
  config.sample_animation = True  # write a test-video animation into the workdir at the end
  config.sample_animation_frames = 96
  return config
