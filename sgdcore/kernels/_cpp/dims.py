"""The model description the compiled kernels take: ``(kind, D, H, C)``."""

from __future__ import annotations

KIND_IDS = {"logistic_binary": 0, "logistic_softmax": 1, "mlp": 2}


def dims(model) -> tuple[int, int, int, int]:
    """``(kind id, n_features, n_hidden or 0, n_classes)`` as in ``csrc/common/model.h``."""
    return (
        KIND_IDS[model.kind],
        model.n_features,
        getattr(model, "n_hidden", 0),
        model.n_classes,
    )
