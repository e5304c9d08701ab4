"""The check that committed results equal what the code computes (``gangrad check``): it
passes on freshly written results, fails on a stale one naming the difference, and passes
again once the file is regenerated."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from gangrad import checks, cli, questions
from gangrad.questions import AbstractQuestion, Verdict


class Draws(AbstractQuestion):
    """A question whose numbers come from seeded torch draws: repeatable from its seed."""

    name = "draws"
    question = "Is the mean of these draws above 0?"
    origin = "a test"
    quick = {"n": 64}
    full = {"n": 640}

    def experiment(self, settings, seed):
        g = torch.Generator().manual_seed(seed)
        return pd.DataFrame({"x": torch.randn(settings["n"], generator=g).tolist()})

    def analyse(self, data, settings):
        mean = float(data["x"].mean())
        return Verdict(f"mean {mean:.4f}", {"mean": mean, "n": len(data), "elapsed_s": 1.0},
                       "agrees" if mean > 0 else "disagrees",
                       answer=f"{'Yes' if mean > 0 else 'No'}: the mean is {mean:.3f}.",
                       convergence={"rule": "not training-based: seeded draws"})

    def figure(self, data, settings):
        from gangrad.plotting import new_figure

        fig, ax = new_figure()
        ax.hist(data["x"])
        return fig, "the draws"


@pytest.fixture
def draws(tmp_path):
    questions.REGISTRY.register("draws", Draws)
    questions.save(questions.ask("draws", seed=3), tmp_path)
    try:
        yield tmp_path
    finally:
        questions.REGISTRY._registered.pop("draws")


def _edit(path, change):
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=2))


def test_fresh_results_match_and_volatile_fields_are_left_out(draws):
    _edit(draws / "draws.json", lambda r: r.update(runtime_s=999.0, provenance={
        **r["provenance"], "commit": "0" * 40}))
    [result] = checks.check_questions(["draws"], draws, say=lambda _: None)
    assert result.ok, result.differences


def test_a_stale_file_fails_naming_each_difference_and_passes_once_regenerated(draws, capsys):
    path = draws / "draws.json"

    def stale(r):
        r["numbers"]["mean"] += 1e-3
        r["answer"] = "Yes: an answer the code no longer gives."

    _edit(path, stale)
    [result] = checks.check_questions(["draws"], draws, say=lambda _: None)
    assert not result.ok
    assert any(d.startswith("numbers.mean: committed") for d in result.differences)
    assert any(d.startswith("answer: committed") for d in result.differences)
    assert len(result.differences) == 2, "the seed and budget come from the committed file"
    assert cli.main(["check", "questions", "--only", "draws", "--questions-dir",
                     str(draws)]) == 1
    err = capsys.readouterr().err
    assert "stale" in err and "gangrad ask NAME" in err
    questions.save(questions.ask("draws", seed=3), draws)  # regenerate
    assert cli.main(["check", "questions", "--only", "draws", "--questions-dir",
                     str(draws)]) == 0


def test_a_check_on_another_thread_count_is_refused(draws, monkeypatch):
    monkeypatch.setenv("GANGRAD_THREADS", "1")
    [result] = checks.check_questions(["draws"], draws, say=lambda _: None)
    assert not result.ok and "GANGRAD_THREADS=2" in result.differences[0]


def test_records_compare_numbers_within_tolerance_and_texts_exactly():
    assert checks.diff_records({"a": 1.0, "b": [1, "x"]}, {"a": 1.0 + 1e-9, "b": [1, "x"]}) == []
    assert checks.diff_records({"a": 1.0}, {"a": 1.001}) == ["a: committed 1.0 != computed 1.001"]
    assert checks.diff_records({"a": [1, 2]}, {"a": [1]}) == [
        "a: 2 items committed, 1 computed"]
    assert checks.diff_records({"a": float("nan"), "time_ms": 1}, {"a": float("nan"),
                                                                  "time_ms": 5}) == []
    assert checks.diff_records({"settings": {"wall_seconds": 1.0, "steps": 3}},
                               {"settings": {"wall_seconds": 9.0, "steps": 3}}) == []
    assert checks.diff_records({"t": "x"}, {"t": "y", "new": 1}) == [
        "new: not committed, computed 1", "t: committed 'x' != computed 'y'"]
    # a long text that differs late is shown from just before the difference
    head = "a" * 300
    [line] = checks.diff_records({"t": head + "yes."}, {"t": head + "no."})
    assert line == "t (from character 260): committed '" + "a" * 40 + "yes.' != computed '" \
        + "a" * 40 + "no.'"


def test_report_tables_leave_out_times_and_compare_the_rest():
    a = pd.DataFrame({"task": ["t"], "mean": [0.5], "time_ms": [3.0], "wall_s": [1.0]})
    b = a.assign(time_ms=9.0, wall_s=2.0)
    assert checks.diff_tables(a, b, "summary.csv") == []
    assert checks.diff_tables(a, b.assign(mean=0.6), "summary.csv") == [
        "summary.csv[0].mean: committed 0.5 != computed 0.6"]


def test_unknown_targets_and_names_are_refused_before_work(capsys):
    assert cli.main(["check", "nonsense"]) == 2
    assert "unknown check target" in capsys.readouterr().err
    assert cli.main(["check", "questions", "--only", "no-such-question"]) == 2
    assert "unknown name" in capsys.readouterr().err


def test_a_suite_report_check_reruns_the_suite_with_the_default_workers(tiny_run, tmp_path):
    """`gangrad check SUITE` (no --workers) reruns the suite into a temporary store and
    finds the committed tables equal; one changed number makes them stale."""
    from gangrad.report import build_report

    folder, store = tiny_run
    committed = build_report("tiny", store, tmp_path).directory
    [result] = [checks.check_report(str(folder / "tiny.toml"), committed, say=lambda _: None)]
    assert result.ok, result.differences
    summary = committed / "tables" / "summary.csv"
    table = pd.read_csv(summary)
    table.loc[0, "mean"] += 1.0
    table.to_csv(summary, index=False)
    result = checks.check_report(str(folder / "tiny.toml"), committed, say=lambda _: None)
    assert [d.split(":")[0] for d in result.differences] == ["summary.csv[0].mean"]
