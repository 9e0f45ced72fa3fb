"""Splitting a sweep into groups: runs trained together by one :func:`sgdcore.train` call.

The engine trains K models at once when they share the batch size, the number of steps
and the evaluation steps; learning rate, momentum, L2, training-set size, seed and label
seed may differ per model. So runs are keyed by ``(batch_size, steps)`` (the evaluation
steps follow from ``steps``), and each key's runs are cut into as few groups as the
memory limit allows (:meth:`SweepSpec.group_size_limit`), of near-equal size. A group's
identity is a digest of everything it trains, so a store can tell a finished group from
one of another sweep.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .spec import RUN_KEYS, SweepSpec, _canonical

__all__ = ["Group", "make_groups"]


@dataclass(frozen=True)
class Group:
    """Runs trained together.

    Attributes
    ----------
    index : int
        Position in the sweep's group list.
    id : str
        ``g<index>-<digest>``: also the stem of the group's file in a store.
    batch_size, steps : int
        Shared by every run.
    eval_steps : tuple of int
        Steps evaluated (shared).
    runs : tuple of dict
        The runs (over :data:`~sgdcore.sweep.spec.RUN_KEYS`, plus ``run``, the index
        in :meth:`SweepSpec.expand`).
    """

    index: int
    id: str
    batch_size: int
    steps: int
    eval_steps: tuple
    runs: tuple

    @property
    def size(self) -> int:
        return len(self.runs)

    @property
    def n_rows(self) -> int:
        """Rows the engine returns: one per run and evaluation step."""
        return len(self.runs) * len(self.eval_steps)

    def describe(self) -> str:
        return f"B={self.batch_size} K={self.size} steps={self.steps}"


def make_groups(spec: SweepSpec, n_features: int, n_classes: int) -> list[Group]:
    """Cut the spec's runs into groups (see the module docstring).

    Parameters
    ----------
    spec : SweepSpec
    n_features, n_classes : int
        Shape of the data, which sets the model's size and so the group size limit.

    Returns
    -------
    list of Group
        Ordered by batch size, then steps; within a group runs are ordered by
        ``(n_train, lr, momentum, l2, label_seed, seed)``.
    """
    runs = [dict(r, run=i) for i, r in enumerate(spec.expand())]
    keyed: dict[tuple[int, int], list[dict]] = {}
    for r in runs:
        keyed.setdefault((r["batch_size"], r["steps"]), []).append(r)
    pool = spec.data["n_train"]

    def order(r):
        n = pool if r["n_train"] is None else r["n_train"]
        return (n, r["lr"], r["momentum"], r["l2"], r["label_seed"], r["seed"])

    groups = []
    for (B, steps), members in sorted(keyed.items()):
        members.sort(key=order)
        limit = spec.group_size_limit(B, n_features, n_classes)
        n_chunks = -(-len(members) // limit)
        base, extra = divmod(len(members), n_chunks)
        eval_steps = tuple(spec.eval_steps(steps))
        start = 0
        for c in range(n_chunks):
            size = base + (c < extra)
            chunk = tuple(members[start : start + size])
            start += size
            digest = hashlib.sha256(
                _canonical(
                    {
                        "spec": spec.sha256,
                        "eval_steps": eval_steps,
                        "runs": [{k: r[k] for k in (*RUN_KEYS, "run")} for r in chunk],
                    }
                ).encode()
            ).hexdigest()
            index = len(groups)
            groups.append(
                Group(
                    index=index,
                    id=f"g{index:04d}-{digest[:12]}",
                    batch_size=B,
                    steps=steps,
                    eval_steps=eval_steps,
                    runs=chunk,
                )
            )
    return groups
