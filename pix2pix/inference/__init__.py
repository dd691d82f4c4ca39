"""Using a trained generator: ``translate`` image files, ``export`` it to ONNX.

    from pix2pix.inference import TranslateConfig, translate
    translate("runs/facades", ["photos/"], "out/", TranslateConfig(eval_mode="eval"))

Models are loaded by :mod:`pix2pix.models.io` (ours and official ``.pth`` files).
"""

from pix2pix.inference.inputs import collect_inputs
from pix2pix.inference.translate import Engine, TranslateConfig, TranslateResult, translate

__all__ = ["Engine", "TranslateConfig", "TranslateResult", "collect_inputs", "translate"]
