"""A video's sound as part of the conversation: speech as subtitles timed to the sampled frames."""

from .subtitles import SpeechSegment, format_subtitles, segment_frames

__all__ = ["SpeechSegment", "format_subtitles", "segment_frames"]
