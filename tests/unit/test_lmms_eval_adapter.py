"""The lmms-eval adapter, where lmms-eval imports (it is not a dependency; `pip install lmms-eval`): requests as
lmms-eval makes them answered by a tiny model, with the task's decoding settings."""

import numpy as np
import pytest

pytest.importorskip("lmms_eval")


class Request:
    def __init__(self, *args):
        self.args = args


def test_generate_until_answers_each_request(tiny_saved_model_dir, tmp_path):
    from PIL import Image

    from gpt4video.evaluation.lmms_eval_adapter import GPT4VideoLMM, manifest
    from gpt4video.video import write_video

    lmm = GPT4VideoLMM(model=str(tiny_saved_model_dir), max_new_tokens="5")
    clip = write_video(tmp_path / "c.mp4", np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    docs = [{"video": str(clip)}, {"image": Image.new("RGB", (40, 30), (200, 10, 10))}]
    lmm.task_dict = {"t": {"test": docs}}
    asked = []
    lmm.assistant.ask = (lambda ask: lambda text, videos, params: asked.append((text, videos, params))
                         or ask(text, videos, params))(lmm.assistant.ask)
    requests = [Request("What happens?", {"max_new_tokens": 3, "until": ["\n\n"]}, lambda d: [d["video"]], 0, "t",
                        "test"),
                Request("What color?", {"temperature": 0}, lambda d: d["image"], 1, "t", "test")]
    answers = lmm.generate_until(requests)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert asked[0][1] == [str(clip)] and asked[1][1][0].endswith(".png")
    assert asked[0][2].max_new_tokens == 3 and "\n\n" in asked[0][2].stop and "###" in asked[0][2].stop
    assert asked[1][2].max_new_tokens == 5
    assert manifest().model_id == "gpt4video" and manifest().simple_class_path.endswith("GPT4VideoLMM")
    with pytest.raises(NotImplementedError, match="generation tasks only"):
        lmm.loglikelihood(requests)
