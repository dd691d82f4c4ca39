"""pix2pix training: config, data, losses, the loop, checkpoints, callbacks, DDP.

    from pix2pix.training import TrainConfig, train
    cfg = TrainConfig.from_dict({"n_epochs": 5}, preset="small")
    result = train(cfg, "data/facades", "runs/facades", resume=True)

Importing this package imports torch but starts nothing: seeds, device and backend flags are
set by ``setup_runtime`` when ``train`` runs.
"""

from pix2pix.models.weights import CheckpointError, load_generator
from pix2pix.training.callbacks import Callback, CallbackList, TrainCallback
from pix2pix.training.checkpoint import ResumeMismatchError, load_checkpoint, set_inference_mode
from pix2pix.training.config import PRESETS, RUNTIME_KEYS, TrainConfig, load_train_config
from pix2pix.training.data import (
    DatasetError,
    PairDataset,
    dataset_fingerprint,
    from_model_range,
    to_model_range,
)
from pix2pix.training.loop import (
    TrainingDivergedError,
    TrainResult,
    lr_factor,
    setup_runtime,
    train,
)

__all__ = [
    "PRESETS",
    "RUNTIME_KEYS",
    "Callback",
    "CallbackList",
    "CheckpointError",
    "DatasetError",
    "PairDataset",
    "ResumeMismatchError",
    "TrainCallback",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "dataset_fingerprint",
    "from_model_range",
    "load_checkpoint",
    "load_generator",
    "load_train_config",
    "lr_factor",
    "set_inference_mode",
    "setup_runtime",
    "to_model_range",
    "train",
]
