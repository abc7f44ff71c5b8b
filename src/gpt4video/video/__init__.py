"""Video files ⇄ frames: probe, sample T frames uniformly (by seeking), write videos (and PNG stills) atomically."""

from gpt4video.video.decode import VideoInfo, probe
from gpt4video.video.sampling import VideoClip, load_video, uniform_timestamps
from gpt4video.video.writing import write_gif, write_image, write_video

__all__ = [
    "VideoClip",
    "VideoInfo",
    "load_video",
    "probe",
    "uniform_timestamps",
    "write_gif",
    "write_image",
    "write_video",
]
