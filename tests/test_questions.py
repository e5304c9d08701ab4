"""Questions: the contract every registered question meets, and their verdicts."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from gangrad import cli, questions
from gangrad.questions import AbstractQuestion

NAMES = questions.available()


def test_registry_holds_the_builtin_questions():
    assert NAMES[:10] == ["smoothing-limit", "learned-variance", "differentiable-d",
                          "discrete-outputs", "separate-batches", "saturating-loss",
                          "linear-gan", "z-prior", "update-schedule", "frozen-d"]
    with pytest.raises(KeyError, match="available"):
        questions.create("no-such-question")


@pytest.mark.parametrize("name", NAMES)
def test_each_question_declares_the_contract(name):
    q = questions.create(name)
    assert isinstance(q, AbstractQuestion) and q.name == name
    assert "?" in q.question and q.origin
    assert set(q.quick) == set(q.full), "quick and full size the same experiment"


@pytest.mark.parametrize("name", ["smoothing-limit"])
def test_fast_questions_give_data_driven_verdicts(name, tmp_path):
    answer = questions.ask(name)
    paths = questions.save(answer, tmp_path)
    assert answer.verdict and all(p.exists() for p in paths.values())
    assert re.findall(r"\d+\.\d+", answer.verdict), "a verdict states its numbers"
    record = json.loads(paths["json"].read_text())
    assert {"name", "question", "origin", "answer", "verdict", "outcome", "numbers",
            "convergence", "settings", "runtime_s", "provenance"} <= set(record)
    assert {"commit", "torch", "threads"} <= set(record["provenance"])
    assert record["answer"] and record["answer"] in paths["md"].read_text()
    assert record["origin"] == questions.create(name).origin
    assert len(pd.read_csv(paths["csv"])) == len(answer.table)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["learned-variance", "discrete-outputs", "saturating-loss",
                                  "separate-batches", "frozen-d", "differentiable-d"])
def test_training_questions(name, tmp_path):
    answer = questions.ask(name)
    questions.save(answer, tmp_path)
    assert re.findall(r"\d+\.\d+", answer.verdict)


def test_a_question_plugs_in_with_one_class(tmp_path):
    class Coin(AbstractQuestion):
        name = "coin"
        question = "Is the mean of these numbers above 1?"
        origin = "a test"
        quick = {"n": 3}
        full = {"n": 30}

        def experiment(self, settings, seed):
            return pd.DataFrame({"x": [1.0 + seed + i for i in range(settings["n"])]})

        def analyse(self, data, settings):
            from gangrad.questions import Verdict

            mean = float(data["x"].mean())
            return Verdict(f"{'yes' if mean > 1 else 'no'}: mean {mean:.2f}", {"mean": mean})

        def figure(self, data, settings):
            from gangrad.plotting import new_figure

            fig, ax = new_figure()
            ax.plot(data["x"])
            return fig, "the numbers"

    questions.REGISTRY.register("coin", Coin)
    try:
        assert "coin" in questions.available()
        answer = questions.ask("coin", seed=1)
        assert answer.verdict == "yes: mean 3.00" and answer.settings["n"] == 3
        assert questions.save(answer, tmp_path)["png"].stat().st_size > 0
    finally:
        questions.REGISTRY._registered.pop("coin")


def test_cli_ask_list_and_unknown(capsys):
    assert cli.main(["ask", "--list"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert cli.main(["ask", "no-such-question"]) == 2
    assert "no-such-question" in capsys.readouterr().err
