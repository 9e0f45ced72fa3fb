"""Writing results: tidy tables, their manifests and figures, atomically.

Every experiment and sweep writes through these helpers, so a killed run never leaves a
half-written file: each file is written to a temporary name in the same folder and moved
into place with ``os.replace``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "environment", "save_figure", "write_table"]


def atomic_write(path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; results are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def environment(backend: str | None = None, dataset=None) -> dict:
    """What a manifest records about the run: version, backend, device, data."""
    import numpy as np

    from . import __version__

    env = {
        "sgdcore_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    if backend is not None:
        env["backend"] = backend
        if backend == "cuda":
            env["device"] = "cuda"
    if dataset is not None:
        env["data"] = {
            "name": dataset.name,
            "split": dataset.split,
            "source": dataset.source,
            "location": str(dataset.location),
            "sha256": dataset.sha256,
            "n": int(dataset.X.shape[0]),
        }
    return env


def write_table(df, path, manifest: dict | None = None) -> Path:
    """Write ``df`` as Parquet (``.parquet``) or CSV (``.csv``) with a JSON manifest
    beside it (``<path>.manifest.json``); both atomically. Returns the table's path.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        atomic_write(path, lambda p: df.to_parquet(p, index=False))
    elif path.suffix == ".csv":
        atomic_write(path, lambda p: df.to_csv(p, index=False))
    else:
        raise ValueError(f"unsupported table format {path.suffix!r}: use .parquet or .csv")
    if manifest is not None:
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
        atomic_write(Path(f"{path}.manifest.json"), lambda p: p.write_text(text + "\n"))
    return path


def save_figure(fig, path, dpi: int = 130) -> Path:
    """Save a Matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    try:
        return atomic_write(
            path, lambda p: fig.savefig(p, dpi=dpi, format="png", bbox_inches="tight")
        )
    finally:
        plt.close(fig)
