"""A multilayer perceptron on standardized features, trained with PyTorch Lightning.

torch and lightning are imported when a model is fitted or loaded, never with this module. Each epoch's
training and validation loss (cross-entropy, or RMSE in the target's units) go to a ``RoundTracker``;
under early stopping the weights of the best epoch are kept. The model is stored as a state dict
(``model.pt``) next to the architecture and target scaling it needs (``mlp.json``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import pathlib
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from microlearn_grpc.core.estimators._base import CLASSIFICATION_TASKS, register_estimator
from microlearn_grpc.core.estimators._iterative import FitData, IterativeEstimator, RoundTracker
from microlearn_grpc.core.estimators.sklearn_models import _CLASSIFICATION, _REGRESSION, _cat, _float, _int, _space

__all__: list[str] = []  # the classes are reached through the registry

_CONFIG_FILE, _WEIGHTS_FILE = "mlp.json", "model.pt"
_EVAL_BATCH = 65_536  # rows per forward pass when predicting or scoring the validation rows


def _network(config: dict[str, Any]) -> Any:
    """The layers ``mlp.json`` describes: Linear, ReLU and Dropout per hidden layer, then a Linear output."""
    from torch import nn

    layers: list[Any] = []
    width = config["n_features"]
    for hidden in config["hidden"]:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config["dropout"])]
        width = hidden
    layers.append(nn.Linear(width, config["n_outputs"]))
    return nn.Sequential(*layers)


@functools.cache
def _lightning() -> SimpleNamespace:
    """The Lightning classes, defined on first use so that importing this module does not import Lightning."""
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    class Module(pl.LightningModule):
        """The network and its weighted loss; it sums the epoch's training loss for the report."""

        def __init__(self, net: Any, classify: bool, learning_rate: float, weight_decay: float):
            super().__init__()
            self.net, self.classify = net, classify
            self.learning_rate, self.weight_decay = learning_rate, weight_decay
            self.loss_sum = self.weight_sum = torch.zeros(())

        def weighted_loss(self, out: Any, y: Any, w: Any) -> tuple[Any, Any]:
            losses = F.cross_entropy(out, y, reduction="none") if self.classify else (out[:, 0] - y) ** 2
            return (losses * w).sum(), w.sum()

        def on_train_epoch_start(self) -> None:
            self.loss_sum = self.weight_sum = torch.zeros((), device=self.device)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y, w = batch
            total, weight = self.weighted_loss(self.net(x), y, w)
            self.loss_sum = self.loss_sum + total.detach()
            self.weight_sum = self.weight_sum + weight
            return total / weight

        def configure_optimizers(self) -> Any:
            return torch.optim.AdamW(self.net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)

    class Epochs(pl.Callback):
        """Reports every epoch to the tracker, stops the trainer when it says so, keeps the best weights."""

        def __init__(self, tracker: RoundTracker, validation: tuple | None, scale: float, shift: float,
                     keep_best: bool):
            self.tracker, self.validation, self.keep_best = tracker, validation, keep_best
            self.scale, self.shift = scale, shift  # regression: the target's standardization, 0 for classes
            self.best_state: dict[str, Any] | None = None

        def metric(self, mean_loss: float) -> float:
            # Mean squared error of the standardized target, as RMSE in the target's units.
            return mean_loss if self.scale == 0 else math.sqrt(mean_loss) * self.scale

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            metrics = {"train_loss": self.metric(float(module.loss_sum / module.weight_sum))}
            predictions = None
            if self.validation is not None:
                loss, outputs = self.validate(module)
                metrics["val_loss"] = self.metric(loss)
                if outputs is not None:
                    predictions = functools.partial(self.predictions, outputs)
            if self.tracker.update(trainer.current_epoch + 1, metrics, predictions):
                trainer.should_stop = True
            if self.keep_best and self.tracker.improved:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.net.state_dict().items()}

        def validate(self, module: Any) -> tuple[float, Any]:
            """The validation loss, and the network's outputs on the rows when the tracker may want them."""
            X, y, w = self.validation
            total = weight = 0.0
            outputs = [] if self.tracker.wants_predictions else None
            module.eval()
            with torch.no_grad():
                for start in range(0, len(X), _EVAL_BATCH):
                    x, target, row_weight = (t[start:start + _EVAL_BATCH].to(module.device) for t in (X, y, w))
                    out = module.net(x)
                    batch_total, batch_weight = module.weighted_loss(out, target, row_weight)
                    total, weight = total + float(batch_total), weight + float(batch_weight)
                    if outputs is not None:
                        outputs.append(out.detach().to("cpu"))
            module.train()
            return total / weight, None if outputs is None else torch.cat(outputs)

        def predictions(self, outputs: Any) -> Any:
            """What predict_proba (classes) or predict (regression) would give for these outputs."""
            if self.scale == 0:
                return torch.softmax(outputs.double(), dim=1).numpy()
            return outputs[:, 0].double().numpy() * self.scale + self.shift

    return SimpleNamespace(pl=pl, Module=Module, Epochs=Epochs)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning logs a device banner and "fit stopped" at INFO, and warns that a DataLoader without worker
    processes may be slow, which for in-memory tensors is the fastest choice; and Lightning 2.6 still uses
    torch's LeafSpec, which newer torch deprecates at every training step. All of it is noise here."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PossibleUserWarning)
        warnings.filterwarnings("ignore", r".*LeafSpec.* is deprecated", FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


@contextlib.contextmanager
def _torch_threads(n_jobs: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n_jobs if n_jobs > 0 else os.cpu_count() or 1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tensors(X: Any, y: Any, w: Any, classify: bool) -> tuple[Any, Any, Any]:
    import numpy as np
    import torch

    weights = np.ones(len(y)) if w is None else w
    target = torch.as_tensor(y, dtype=torch.long if classify else torch.float32)
    return torch.as_tensor(X, dtype=torch.float32), target, torch.as_tensor(weights, dtype=torch.float32)


class _LightningMLP(IterativeEstimator):
    """Fully connected ReLU layers of one width with dropout, AdamW, shuffled mini-batches. Classifiers
    minimize cross-entropy (class balancing weighs each row's loss) and give softmax probabilities;
    regressors fit the standardized target and report RMSE in its units."""

    display_name = "Neural network (MLP)"
    description = ("A multilayer perceptron trained with PyTorch Lightning; learns smooth interactions of many "
                   "numeric features, trains on a GPU, needs more data and tuning than boosted trees.")
    family = "neural_network"
    library = "lightning"
    requires = ("torch", "lightning")
    install_hint = "pip install torch lightning"
    model_format = "torch_state_dict"
    iterations_param = "max_epochs"
    relative_cost = 10.0
    relative_cost_gpu = 3.0
    supports_gpu = True
    needs_scaling = True

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        batch = 512 if n_rows is not None and n_rows >= 100_000 else 128  # fewer, larger steps on big tables
        return _space(
            _int("n_layers", 1, 4, 2, "Hidden layers."),
            _int("hidden_size", 16, 1024, 128, "Units in each hidden layer.", log=True),
            _float("dropout", 0.0, 0.5, 0.1, "Share of hidden units dropped at each training step."),
            _float("learning_rate", 1e-4, 1e-1, 1e-3, "AdamW step size.", log=True),
            _float("weight_decay", 1e-6, 1e-1, 1e-4, "AdamW decoupled weight decay.", log=True),
            _cat("batch_size", (32, 64, 128, 256, 512, 1024), batch, "Rows per gradient step."),
            # From 1: a job's max_iterations and a refit's best iteration set it too.
            _int("max_epochs", 1, 500, 50, "Passes over the training rows (upper bound with early stopping).",
                 log=True))

    def _build(self, params):
        """The untrained network for one input column (the fit builds it for the data's width)."""
        return _network(self._config(params, n_features=1, n_outputs=1))

    @staticmethod
    def _config(params: dict[str, Any], n_features: int, n_outputs: int, y_mean: float = 0.0,
                y_std: float = 1.0) -> dict[str, Any]:
        return {"n_features": n_features, "hidden": [params["hidden_size"]] * params["n_layers"],
                "dropout": params["dropout"], "n_outputs": n_outputs, "y_mean": y_mean, "y_std": y_std}

    def _train(self, params: dict[str, Any], data: FitData, tracker: RoundTracker) -> Any:
        import torch

        classify = self.task in CLASSIFICATION_TASKS
        y, y_val = data.y, data.y_val
        if classify:
            config = self._config(params, data.X.shape[1], data.n_classes)
        else:  # standardized, so the learning rate means the same whatever the target's units
            std = float(y.std()) or 1.0
            config = self._config(params, data.X.shape[1], 1, float(y.mean()), std)
            y = (y - config["y_mean"]) / std
            y_val = None if y_val is None else (y_val - config["y_mean"]) / std
        gpu = self.gpu_index
        lightning = _lightning()
        with _torch_threads(self.n_jobs), torch.random.fork_rng(devices=[] if gpu is None else [gpu]), \
                _quiet_lightning():
            torch.manual_seed(self.seed)
            net = _network(config)
            module = lightning.Module(net, classify, params["learning_rate"], params["weight_decay"])
            rows = torch.utils.data.TensorDataset(*_tensors(data.X, y, data.w, classify))
            loader = torch.utils.data.DataLoader(rows, batch_size=min(params["batch_size"], len(rows)), shuffle=True,
                                                 generator=torch.Generator().manual_seed(self.seed), num_workers=0)
            validation = None if data.X_val is None else _tensors(data.X_val, y_val, data.w_val, classify)
            scale, shift = (0.0, 0.0) if classify else (config["y_std"], config["y_mean"])
            epochs = lightning.Epochs(tracker, validation, scale, shift, keep_best=tracker.early_stopping is not None)
            trainer = lightning.pl.Trainer(
                max_epochs=params["max_epochs"], accelerator="cpu" if gpu is None else "gpu",
                devices=1 if gpu is None else [gpu], logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=[epochs])
            trainer.fit(module, loader)
        net = net.cpu().eval()
        if epochs.best_state is not None:
            net.load_state_dict(epochs.best_state)
        self._network_config = config
        return net

    def _raw_predict(self, X):
        import torch

        net, config = self._fitted(), self._network_config
        with torch.inference_mode():
            out = torch.cat([net(torch.as_tensor(X[start:start + _EVAL_BATCH], dtype=torch.float32))
                             for start in range(0, len(X), _EVAL_BATCH)] or [torch.zeros(0, config["n_outputs"])])
        if self.task in CLASSIFICATION_TASKS:
            return torch.softmax(out.double(), dim=1).numpy()
        return out[:, 0].double().numpy() * config["y_std"] + config["y_mean"]

    def _save(self, directory: pathlib.Path) -> list[str]:
        import torch

        torch.save(self._fitted().state_dict(), directory / _WEIGHTS_FILE)
        (directory / _CONFIG_FILE).write_text(json.dumps(self._network_config, indent=2) + "\n")
        return [_WEIGHTS_FILE, _CONFIG_FILE]

    @classmethod
    def _load(cls, directory, meta):
        import torch

        estimator = cls._restore(meta)
        config = json.loads((directory / _CONFIG_FILE).read_text())
        net = _network(config)
        net.load_state_dict(torch.load(directory / _WEIGHTS_FILE, weights_only=True, map_location="cpu"))
        estimator.model_, estimator._network_config = net.eval(), config
        if estimator.task in CLASSIFICATION_TASKS:
            estimator._n_classes = config["n_outputs"]
        return estimator


@register_estimator
class LightningMLPClassifierEstimator(_LightningMLP):
    name = "lightning_mlp_classifier"
    tasks = _CLASSIFICATION
    supports_class_weights = True


@register_estimator
class LightningMLPRegressorEstimator(_LightningMLP):
    name = "lightning_mlp_regressor"
    tasks = _REGRESSION
