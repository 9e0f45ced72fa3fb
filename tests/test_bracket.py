"""Tests of the bracketing search and the B_opt estimate (sgdcore.experiments._bracket)
on synthetic accuracy curves with a known peak: no training.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sgdcore.experiments import _bracket as K


def curve(b, peak=45.0, top=0.9, width=0.02, edge=4):
    """Accuracy against B: a parabola in log2 B with its maximum at ``peak``; batch
    sizes below ``edge`` fail to train (accuracy 0.1, chance).
    """
    b = np.asarray(b, dtype=np.float64)
    acc = top - width * (np.log2(b) - math.log2(peak)) ** 2
    return np.where(b < edge, 0.1, acc)


class Lab:
    """A fake experiment: ``seeds`` runs per (setting, B), accuracy = curve + noise."""

    def __init__(self, peaks, *, seeds=5, noise=0.003, n=1000, edge=4, rep=0, **kw):
        self.peaks, self.seeds, self.noise, self.n, self.edge = peaks, seeds, noise, n, edge
        self.rep, self.kw, self.rows, self.calls = rep, kw, [], []

    def evaluate(self, cells):
        self.calls.append(list(cells))
        for s, b in cells:
            rng = np.random.default_rng([self.rep, int(b), int(s * 1000)])
            acc = curve(b, self.peaks[s], edge=self.edge, **self.kw)
            for seed in range(self.seeds):
                a = float(acc + self.noise * rng.standard_normal()) if acc > 0.2 else np.nan
                self.rows.append({"s": s, "batch_size": int(b), "seed": seed,
                                  "test_accuracy": a, "diverged": not np.isfinite(a)})  # fmt: skip

    def stats(self, s):
        df = pd.DataFrame(self.rows)
        return K.batch_stats(df[df["s"] == s])

    def run(self, grid, max_runs=None, settings=None):
        settings = list(self.peaks) if settings is None else settings
        self.evaluate([(s, b) for s in settings for b in grid])
        done = len(self.rows)
        return K.search(self.evaluate, self.stats, settings, lambda s: self.n,
                        runs_per_cell=self.seeds, runs_done=done, max_runs=max_runs)  # fmt: skip


def test_failed_runs_are_nan_diverged_or_near_chance():
    acc = [np.nan, 0.1, 0.54, 0.56, 0.9, 0.9]
    div = [False, False, False, False, False, True]
    assert K.failed(acc, div).tolist() == [True, True, True, False, False, True]
    assert K.failed([0.74, 0.76], n_classes=2).tolist() == [True, False]


def test_noise_threshold_uses_each_sizes_own_standard_error():
    st = {
        b: K.BatchStats(b, np.array(v), 0)
        for b, v in {
            16: [0.916, 0.911, 0.902, 0.892, 0.879],
            32: [0.925, 0.927, 0.922, 0.922, 0.922],
            64: [0.916, 0.918, 0.92, 0.914, 0.914],
            128: [0.9, 0.9, 0.9, 0.9, 0.9],  # seeds that agree exactly: spread unknown
        }.items()
    }
    se = {b: np.std(s.values, ddof=1) / np.sqrt(5) for b, s in st.items()}
    assert K.noise_threshold(st, 32, 64) == pytest.approx(2 * np.hypot(se[32], se[64]))
    floor = np.median([se[16], se[32], se[64]])  # the others' median stands in for 0
    assert K.noise_threshold(st, 32, 128) == pytest.approx(2 * np.hypot(se[32], floor))
    assert K.bracket(st) == K.Bracket(32, 16, 64)


def test_search_brackets_a_known_peak_from_a_grid_far_to_its_right():
    lab = Lab({1: 45.0})
    log = lab.run([256, 512])
    st = lab.stats(1)
    opt = K.estimate(st, n_boot=100)
    assert opt.status == K.BRACKETED and opt.is_point
    assert opt.lo <= 45.0 <= opt.hi
    assert abs(math.log(opt.b_opt / 45.0)) < math.log(1.25)
    # the peak's sampled neighbours are at most about a factor sqrt(2) away
    bs = sorted(st)
    i = bs.index(opt.b_peak)
    assert bs[i + 1] / bs[i] <= 1.5 and bs[i] / bs[i - 1] <= 1.5
    # brackets are trained sizes that are worse by more than the noise
    for side in (opt.left, opt.right):
        assert st[side].trained and st[opt.b_peak].mean - st[side].mean > 2 * 0.003 / 2
    assert not log.stopped_by_budget and log.rounds
    # nothing is left to do: a rerun of the search on the same results trains nothing
    assert K.propose(st, 1000) == []


def test_failed_sizes_never_bracket_and_the_edge_is_located():
    # accuracy falls with B from the edge of trainability on: the peak is the
    # smallest size that trains, and the edge is bisected down to a factor sqrt(2)
    lab = Lab({1: 1.0}, edge=16, width=0.005)
    lab.run([8, 32, 128])
    st = lab.stats(1)
    opt = K.estimate(st, n_boot=50)
    assert opt.status == "edge" and opt.left is None and not opt.is_point
    assert opt.b_peak >= 16 and all(b < 16 for b in opt.failed_sizes)
    below = max(b for b in st if b < opt.b_peak)
    assert not st[below].trained and opt.b_peak / below <= 1.5
    assert opt.label().startswith(f"<= {opt.b_peak}") and "edge" in opt.label()


def test_a_peak_beyond_n_is_a_bound_and_is_left_out_of_slopes():
    lab = Lab({1: 5000.0, 2: 45.0}, n=1000)
    lab.run([64, 128])
    opts = [K.estimate(lab.stats(s), n_boot=50) for s in (1, 2)]
    assert opts[0].status == "above" and opts[0].label() == ">= 1000"
    assert max(lab.stats(1)) == 1000  # extended all the way to N
    keep, why = K.slope_points(opts)
    assert keep.tolist() == [False, True] and "lower bound" in why[0]


def test_the_budget_stops_the_search_and_leaves_bounds():
    lab = Lab({1: 45.0})
    log = lab.run([512, 1000], max_runs=15)
    assert log.stopped_by_budget and log.runs <= 15
    assert len(lab.rows) == 15
    assert K.estimate(lab.stats(1), n_boot=20).status != K.BRACKETED


def test_no_clear_bracket_within_noise_keeps_extending():
    # neighbours worse than the peak by less than the noise are not brackets: the
    # search goes on outwards on both sides (and bisects next to the peak)
    spread = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])
    st = {b: K.BatchStats(b, m + spread, 0) for b, m in ((16, 0.899), (32, 0.9), (64, 0.898))}
    assert K.bracket(st) == K.Bracket(32, None, None)
    assert K.propose(st, 1000) == [8, 23, 45, 128]
    # the same means with a tenth of the spread are bracketed on both sides
    st = {b: K.BatchStats(b, s.mean + spread / 100, 0) for b, s in st.items()}
    assert K.bracket(st) == K.Bracket(32, 16, 64)
    assert K.propose(st, 1000) == [23, 45]


def test_interval_covers_the_true_optimum_at_about_its_nominal_rate():
    # 60 replicate experiments at a fixed grid around a peak at B* = 45: the 90%
    # interval must cover B* in at least 48 (binomial sd at p = 0.9 is 2.3 runs)
    grid = [8, 11, 16, 23, 32, 45, 64, 91, 128, 256]
    hits = boot_hits = 0
    for rep in range(60):
        lab = Lab({1: 45.0}, noise=0.004, seeds=4, rep=rep, width=0.01)
        lab.evaluate([(1, b) for b in grid])
        opt = K.estimate(lab.stats(1), n_boot=50, seed=rep)
        assert opt.status == K.BRACKETED
        hits += opt.lo <= 45.0 <= opt.hi
        boot_hits += opt.boot_lo <= 45.0 <= opt.boot_hi
        assert opt.lo <= opt.boot_lo * (1 + 1e-9) and opt.hi >= opt.boot_hi * (1 - 1e-9)
    assert hits >= 48
    assert hits >= boot_hits  # the grid and fit terms only widen it


def test_estimate_reports_its_parts_and_none_trained():
    lab = Lab({1: 45.0})
    lab.evaluate([(1, b) for b in (16, 32, 64, 128)])
    opt = K.estimate(lab.stats(1), n_boot=50)
    d = opt.as_dict()
    assert d["sigma"] == pytest.approx(math.sqrt(d["sigma_seed"] ** 2 + d["sigma_fit"] ** 2
                                                 + d["sigma_grid"] ** 2))  # fmt: skip
    assert d["sigma_grid"] == pytest.approx(math.log(2) / math.sqrt(12))
    lab = Lab({1: 45.0}, edge=10_000)
    lab.evaluate([(1, b) for b in (16, 32)])
    opt = K.estimate(lab.stats(1), n_boot=10)
    assert opt.status == "failed" and opt.failed_sizes == (16, 32)
    assert K.propose(lab.stats(1), 1000) == [64]  # nothing trained: look at larger B
