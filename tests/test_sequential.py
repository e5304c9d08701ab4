"""Sequential allocation: seeds added look by look while a comparison is undetermined, with
every decision at level α/K (Bonferroni over the K looks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import TINY, write_suite

from gangrad import cli
from gangrad.report import build_report
from gangrad.runner import Sequential, Store, SuiteError, load_suite, parse_suite, run_suite
from gangrad.runner.suite import ALPHA
from gangrad.stats import compare_to_best, undetermined_tasks


def _first_decision(d: np.ndarray, looks: list[int], level: float, margin: float) -> str:
    """The outcome of one comparison (values ``d`` against 0) at the first look that
    decides it, or ``undetermined``."""
    outcome = "undetermined"
    for n in looks:
        values = {"a": {s: float(d[s]) for s in range(n)}, "b": dict.fromkeys(range(n), 0.0)}
        outcome = compare_to_best(values, "b", True, margin, level)[0].outcome
        if outcome != "undetermined":
            break
    return outcome


@pytest.mark.parametrize(("shift", "false"), [(0.0, {"better", "worse"}), (0.25, {"equivalent"})],
                         ids=["no-difference", "difference-at-the-margin"])
def test_looks_at_level_alpha_over_k_keep_false_decisions_below_alpha(shift, false):
    """Four looks (8, 16, 24, 32 seeds) with a true difference of 0 (any better/worse is
    false) or exactly the margin (equivalence is false): deciding at α/K keeps the false
    decisions at or below α; deciding each look at α does not."""
    rng, sims, margin = np.random.default_rng(7), 2000, 0.25
    seq = Sequential(first=8, max_seeds=32, batch=8)
    looks = [seq.seeds_at(k) for k in range(seq.looks)]
    assert looks == [8, 16, 24, 32] and seq.level == pytest.approx(1 - ALPHA / 4)
    corrected = naive = 0
    for _ in range(sims):
        d = shift + rng.normal(size=32)
        corrected += _first_decision(d, looks, seq.level, margin) in false
        naive += _first_decision(d, looks, 1 - ALPHA, margin) in false
    se = math.sqrt(ALPHA * (1 - ALPHA) / sims)
    assert corrected / sims <= ALPHA + 5 * se, corrected / sims
    if shift == 0.0:  # repeated looks at α inflate the false differences
        assert naive / sims > ALPHA + 5 * se, naive / sims


def test_a_sequential_table_is_checked_with_every_other_problem(tmp_path):
    bad = TINY + "\n[sequential]\nmax_seeds = 2\nbatch = 0\nlooks = 3\n"
    with pytest.raises(SuiteError) as err:
        load_suite(write_suite(tmp_path, bad))
    text = str(err.value)
    for needle in ("max_seeds must be an integer above the 2 seeds", "batch must be an integer",
                   "unknown key 'looks'"):
        assert needle in text, text
    with pytest.raises(SuiteError, match="needs max_seeds"):
        load_suite(write_suite(tmp_path, TINY + "\n[sequential]\nbatch = 2\n"))
    suite = load_suite(write_suite(tmp_path)).with_sequential(7, batch=2)
    assert suite.sequential == Sequential(first=2, max_seeds=7, batch=2)
    assert suite.sequential.looks == 4 and [suite.sequential.seeds_at(k) for k in range(4)] \
        == [2, 4, 6, 7]
    again = parse_suite(suite.text, "tiny").with_sequential(5)  # replaces, never repeats
    assert again.sequential == Sequential(first=2, max_seeds=5, batch=2)
    assert again.text.count("[sequential]") == 1
    assert load_suite(write_suite(tmp_path)).level == 0.95


SEQ = """
name = "seq"
seeds = [0, 1]
[train]
eval_samples = 200
[grad_stats]
at_steps = [0]
replicates = 8
batch_size = 8
timing_repeats = 1
reference_replicates = 16
[[tasks]]
key = "gaussian1d"
train = { steps = 4, eval_every = 2 }
estimators = ["pathwise"]
[[tasks]]
key = "categorical"
train = { steps = 30, eval_every = 15, lr_g = 0.05 }
estimators = ["straight_through", "score_function"]
[sequential]
max_seeds = 4
batch = 1
"""


def test_a_sequential_run_adds_seeds_only_while_undetermined(tmp_path, capsys):
    """A task with nothing to compare is decided at once and keeps its seeds; a task whose
    comparison stays undetermined takes a seed per look, up to max_seeds. Running the
    suite again adds nothing, and the report counts against the plan."""
    path = write_suite(tmp_path, SEQ, "seq")
    suite = load_suite(path)
    store = tmp_path / "s.sqlite"
    summary = run_suite(suite, store=store, progress=False)
    with Store(store, readonly=True) as db:
        cells, metrics = db.cells("seq"), db.metrics("seq")
    seeds = cells.groupby("task")["seed"].apply(lambda s: sorted(set(s))).to_dict()
    assert seeds["gaussian1d"] == [0, 1]
    n = len(seeds["categorical"])
    assert seeds["categorical"] == list(range(n)) and n >= 3
    assert summary.ok == summary.total == len(cells) == 2 + 2 * n
    level = suite.level
    for k in range(2, n):  # every look before the last was undetermined
        ids = cells[(cells["task"] == "categorical") & (cells["seed"] < k)]["cell_id"]
        assert "categorical" in undetermined_tasks(metrics[metrics.cell_id.isin(ids)],
                                                   cells[cells.cell_id.isin(ids)], level)
    last = cells[cells["task"] == "categorical"]["cell_id"]
    assert n == 4 or "categorical" not in undetermined_tasks(
        metrics[metrics.cell_id.isin(last)], cells[cells.cell_id.isin(last)], level)
    again = run_suite(suite, store=store, progress=False)
    assert (again.ok, again.skipped, again.total) == (0, len(cells), len(cells))
    report = build_report("seq", store, tmp_path / "reports")
    assert (report.stored, report.expected, report.missing) == (len(cells), len(cells), [])
    text = report.markdown.read_text()
    assert "Sequential allocation" in text and f"categorical {n}" in text
    # the same suite without its sequential table: the run was extended beyond it, so it
    # continues as stored, every cell kept
    plain = tmp_path / "plain.toml"
    plain.write_text(SEQ.split("[sequential]")[0])
    assert cli.main(["run", str(plain), "--store", str(store), "-q"]) == 0
    out = capsys.readouterr().out
    assert "0 ok" in out and "continues as stored, up to 4 seeds per task" in out, out
    assert cli.main(["run", str(plain), "--store", str(store), "-q", "--until-decided",
                     "4", "--run", "seq"]) == 0
    out = capsys.readouterr().out  # batches of the suite's 2 seeds: 2 looks
    assert "decisions at level 0.025 over 2 looks" in out and "0 ok" in out, out
