"""TFDS builders storing videos one PNG record per frame: DanceFashion, VideoFolder."""

from input_pipeline.dance_fashion.dance_fashion import DanceFashion
from input_pipeline.dance_fashion.dance_fashion import VideoFolder
from input_pipeline.dance_fashion.dance_fashion import VideoFramesConfig
from input_pipeline.dance_fashion.dance_fashion import encode_video
from input_pipeline.dance_fashion.dance_fashion import find_split_videos
from input_pipeline.dance_fashion.dance_fashion import frames_config

__all__ = ["DanceFashion", "VideoFolder", "VideoFramesConfig", "encode_video",
           "find_split_videos", "frames_config"]
