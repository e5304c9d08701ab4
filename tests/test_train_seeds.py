"""Many seeds as one batched model: each seed's run is bit for bit its run alone (CPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gangrad import estimators, tasks
from gangrad._provenance import pinned_threads
from gangrad.train import seed_batching, train, train_seeds
from gangrad.train.seeds import per_seed_estimators
from gangrad.train.stacked import Stack

SEEDS = [0, 3, 5]

CASES = [  # (task, task params, estimator, hyper-parameters, steps)
    ("ring8", {}, "pathwise", {}, 30),
    ("ring8", {"hidden": 32}, "smoothing", {"sigma": 0.1}, 30),
    ("gaussian1d", {}, "reparam", {}, 40),
    ("grid25", {"hidden": 32}, "pathwise", {}, 20),
    ("categorical", {}, "score_function", {"baseline": "mean", "samples": 2}, 40),
    ("categorical", {}, "gumbel_softmax", {"temperature": 0.5}, 40),
    ("binary_digits", {}, "disarm", {}, 8),
    ("digits", {}, "pathwise", {}, 8),
    ("oracle_seq", {}, "straight_through", {}, 4),
    ("grid25", {"arch": "pacgan", "pack": 2, "batch_norm": "pacgan"}, "pathwise", {}, 4),
    ("ring8", {"arch": "pacgan"}, "smoothing", {"sigma": 0.05}, 4),
]


def _same(a, b) -> bool:
    return a.drop(columns="elapsed_s").equals(b.drop(columns="elapsed_s"))


@pytest.mark.parametrize(("task", "params", "key", "hyper", "steps"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_each_seed_is_its_lone_run(task, params, key, hyper, steps):
    t = tasks.create(task, **params)
    est = estimators.create(key, **hyper)
    assert seed_batching(t, est) is None
    kwargs = {"steps": steps, "eval_every": max(1, steps // 4), "eval_samples": 300,
              "device": "cpu"}
    # batch norm is bit for bit on one thread (gangrad.train.seeds); the rest on any count
    threads = 1 if params.get("batch_norm") else torch.get_num_threads()
    with pinned_threads(threads):
        batched = train_seeds(t, est, SEEDS, **kwargs)
        alones = [train(t, estimators.create(key, **hyper), seed=seed, **kwargs)
                  for seed in SEEDS]
    for seed, history, alone in zip(SEEDS, batched, alones, strict=True):
        assert history.attrs["status"] == alone.attrs["status"] == "ok"
        if Stack([t.make_generator(est.param_shape(t.space))]).grouped and \
                Stack([t.make_discriminator()]).grouped:
            assert _same(history, alone), (seed, history.tail(2), alone.tail(2))
            assert torch.equal(history.attrs["samples"], alone.attrs["samples"])
        else:  # vmap over a network without a grouped form: equal up to rounding
            cols = [c for c in alone.columns if c != "elapsed_s"]
            a, b = history[cols].to_numpy(), alone[cols].to_numpy()
            assert np.allclose(a, b, rtol=1e-3, atol=1e-6, equal_nan=True), (a, b)
        assert history.attrs["config"]["seed"] == seed


def test_checkpoints_see_each_seeds_networks():
    seen: dict[tuple[int, int], torch.Tensor] = {}

    def keep(seed, step, state):
        seen[seed, step] = torch.cat([p.detach().flatten() for p in
                                      copy.deepcopy(state.G).parameters()])

    train_seeds("ring8", "pathwise", SEEDS, steps=6, eval_every=3, eval_samples=200,
                device="cpu", checkpoint_steps=[0, 4, 6], on_checkpoint=keep)
    assert sorted(seen) == sorted((s, k) for s in SEEDS for k in (0, 4, 6))
    for seed in SEEDS:
        alone: dict[int, torch.Tensor] = {}
        train("ring8", "pathwise", seed=seed, steps=6, eval_every=3, eval_samples=200,
              device="cpu", checkpoint_steps=[0, 4, 6],
              on_checkpoint=lambda step, state, alone=alone: alone.__setitem__(
                  step, torch.cat([p.detach().flatten() for p in state.G.parameters()])))
        for step in (0, 4, 6):
            assert torch.equal(seen[seed, step], alone[step])


STATEFUL = [("binary_digits", "rebar", {}), ("categorical", "relax", {"hidden": 8}),
            ("categorical", "score_function", {"baseline": "mean"}),
            ("categorical", "score_function", {"baseline": "ema"})]


@pytest.mark.parametrize(("task", "key", "hyper"), STATEFUL,
                         ids=[f"{t}-{k}-{h.get('baseline', '')}" for t, k, h in STATEFUL])
def test_stateful_estimators_batch_with_a_copy_per_seed(task, key, hyper):
    """Control variates, EMA and batch-mean baselines keep one state and one batch per
    seed: each seed's run is still its run alone, and the estimator given is untouched."""
    est = estimators.create(key, **hyper)
    t = tasks.create(task)
    assert seed_batching(t, est) is None and per_seed_estimators(est)
    kwargs = {"steps": 6, "eval_every": 3, "eval_samples": 200, "device": "cpu"}
    before = copy.deepcopy(vars(est))
    batched = train_seeds(t, est, [1, 2, 4], **kwargs)
    for seed, history in zip([1, 2, 4], batched, strict=True):
        alone = train(t, estimators.create(key, **hyper), seed=seed, **kwargs)
        assert _same(history, alone), (key, seed)
    assert repr(vars(est)) == repr(before)


def test_batch_norm_with_running_statistics_batches_through_vmap(monkeypatch):
    """A D with torch's BatchNorm1d (running statistics, no grouped form) batches through
    vmap with stacked buffers: after one step each seed's losses and running statistics
    are its lone run's to float32 rounding (rtol 1e-5). One step, because Adam's update
    is about ±lr per coordinate whatever the gradient's size, so rounding noise in a
    near-zero gradient can flip an update and later steps differ by up to 2·lr."""
    t = tasks.create("ring8", hidden=16)
    real = t.make_discriminator

    def with_batch_norm():
        return torch.nn.Sequential(torch.nn.BatchNorm1d(2), real())

    monkeypatch.setattr(t, "make_discriminator", with_batch_norm)
    assert seed_batching(t, estimators.create("pathwise")) is None
    stats: dict[tuple[int, str], torch.Tensor] = {}

    def keep(seed, state, tag):
        stats[seed, tag] = torch.cat([state.D[0].running_mean, state.D[0].running_var])

    kwargs = {"steps": 1, "eval_every": 1, "eval_samples": 200, "device": "cpu",
              "checkpoint_steps": [1]}
    batched = train_seeds(t, "pathwise", [1, 2], batched=True,
                          on_checkpoint=lambda seed, step, st: keep(seed, st, "batch"),
                          **kwargs)
    for seed, history in zip([1, 2], batched, strict=True):
        alone = train(t, "pathwise", seed=seed, **kwargs,
                      on_checkpoint=lambda step, st, seed=seed: keep(seed, st, "alone"))
        cols = [c for c in alone.columns if c != "elapsed_s"]
        assert np.allclose(history[cols].to_numpy(), alone[cols].to_numpy(), rtol=1e-5,
                           atol=1e-7, equal_nan=True)
        assert torch.allclose(stats[seed, "batch"], stats[seed, "alone"], rtol=1e-5,
                              atol=1e-7)
        assert not torch.equal(stats[seed, "alone"][:2], torch.zeros(2))  # it did move


def test_networks_with_dropout_train_seed_by_seed(monkeypatch):
    t = tasks.create("ring8")
    real = t.make_discriminator
    monkeypatch.setattr(t, "make_discriminator",
                        lambda: torch.nn.Sequential(torch.nn.Dropout(0.1), real()))
    assert "dropout" in seed_batching(t, estimators.create("pathwise"))
    with pytest.raises(ValueError, match="cannot batch"):
        train_seeds(t, "pathwise", [1, 2], steps=2, device="cpu", batched=True)


def test_a_diverging_batch_reports_each_seed():
    histories = train_seeds("ring8", "pathwise", [0, 1], steps=4, eval_every=2,
                            eval_samples=200, lr_g=1e30, lr_d=1e30, device="cpu")
    for seed, history in zip([0, 1], histories, strict=True):
        alone = train("ring8", "pathwise", seed=seed, steps=4, eval_every=2,
                      eval_samples=200, lr_g=1e30, lr_d=1e30, device="cpu")
        assert history.attrs["status"] == alone.attrs["status"]
        assert history.attrs["diverged_at"] == alone.attrs["diverged_at"]
        assert len(history) == len(alone)


@pytest.mark.parametrize(("seeds", "extra", "message"), [
    ([], {}, "non-negative integers"),
    ([0, 0], {}, "distinct"),
    ([0, -1], {}, "non-negative"),
    ([0, 1], {"seed": 3}, "seeds="),
    ([0, 1], {"steps": 0}, "steps"),
])
def test_bad_arguments_are_refused_before_work(seeds, extra, message):
    with pytest.raises(ValueError, match=message):
        train_seeds("ring8", "pathwise", seeds, **extra)


def test_progress_rows_name_their_seed():
    rows = []
    train_seeds("categorical", "straight_through", [4, 7], steps=4, eval_every=2,
                eval_samples=200, device="cpu", progress=rows.append)
    assert {r["seed"] for r in rows} == {4, 7}
    assert sorted(r["step"] for r in rows if r["seed"] == 7) == [0, 2, 4]


def test_annealed_hyperparameters_follow_the_schedule_in_every_seed():
    from gangrad.schedules import Schedule
    from gangrad.train import TrainConfig

    cfg = TrainConfig(schedules={"sigma": Schedule(1.0, 0.01, 10)})
    kwargs = {"steps": 10, "eval_every": 5, "eval_samples": 200, "device": "cpu"}
    batched = train_seeds("ring8", "smoothing", [0, 2], config=cfg, **kwargs)
    alone = train("ring8", "smoothing", config=cfg, seed=2, **kwargs)
    assert _same(batched[1], alone)
    assert batched[1].attrs["config"]["schedules"]["sigma"]["end"] == 0.01


def _learned(estimator) -> dict[str, torch.Tensor] | None:
    """A control variate's tensors and its Adam state, as copies (None before learning)."""
    if estimator.control_ is None:
        return None
    out = {k: v.detach().clone() for k, v in estimator.control_.items()}
    for k, v in estimator.control_.items():
        for name, value in estimator._optimizer.state.get(v, {}).items():
            out[f"{k}.{name}"] = value.clone()
    return out


def _same_learned(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.keys() == b.keys()
                                         and all(torch.equal(a[k], b[k]) for k in a))


CONTROL_VARIATES = [("binary_digits", "rebar", {}), ("binary_digits", "relax", {}),
                    ("categorical", "relax", {}), ("categorical", "rebar", {"cv_lr": 1e-2})]


@pytest.mark.parametrize(("task", "key", "hyper"), CONTROL_VARIATES,
                         ids=[f"{t}-{k}" for t, k, _ in CONTROL_VARIATES])
def test_stacked_control_variates_learn_what_each_seed_learns_alone(task, key, hyper):
    """REBAR and RELAX learn every seed's control variate in one stacked step: at every
    step each seed's tensors and Adam state are bit for bit those of its run alone (the
    discrete tasks' histories alone would not show a small difference: their metrics
    are read from discrete samples)."""
    steps, seeds = 12, [0, 5]
    kwargs = {"steps": steps, "eval_every": 6, "eval_samples": 200, "device": "cpu",
              "checkpoint_steps": list(range(steps + 1))}
    batched: dict[tuple[int, int], dict | None] = {}
    histories = train_seeds(task, estimators.create(key, **hyper), seeds,
                            on_checkpoint=lambda seed, step, state: batched.__setitem__(
                                (seed, step), _learned(state.estimator)), **kwargs)
    for seed, history in zip(seeds, histories, strict=True):
        alone: dict[int, dict | None] = {}
        lone = train(task, estimators.create(key, **hyper), seed=seed,
                     on_checkpoint=lambda step, state, alone=alone: alone.__setitem__(
                         step, _learned(state.estimator)), **kwargs)
        assert _same(history, lone)
        assert alone[0] is None and alone[1] is not None
        for step in range(steps + 1):
            assert _same_learned(batched[seed, step], alone[step]), (seed, step)


def test_stacked_control_variates_start_from_the_state_given():
    """A control variate that has learned already (with its Adam state) is each seed's
    starting point, as it is for the seed's run alone; a schedule replacing the estimator
    every step keeps the learned state in both."""
    from gangrad.schedules import Schedule
    from gangrad.train import TrainConfig

    t = tasks.create("categorical")
    warm = estimators.create("relax", hidden=8)
    train(t, warm, seed=11, steps=5, eval_every=5, eval_samples=200, device="cpu")
    assert warm.control_ is not None
    cfg = TrainConfig(schedules={"temperature": Schedule(1.0, 0.2, 6)})
    kwargs = {"steps": 6, "eval_every": 3, "eval_samples": 200, "device": "cpu",
              "config": cfg, "checkpoint_steps": [6]}
    batched: dict[int, dict | None] = {}
    before = _learned(warm)
    train_seeds(t, warm, [1, 2], on_checkpoint=lambda seed, step, state:
                batched.__setitem__(seed, _learned(state.estimator)), **kwargs)
    assert _same_learned(_learned(warm), before)  # the estimator given is untouched
    for seed in (1, 2):
        alone: dict[int, dict | None] = {}
        train(t, copy.deepcopy(warm), seed=seed,
              on_checkpoint=lambda step, state, alone=alone: alone.__setitem__(
                  step, _learned(state.estimator)), **kwargs)
        assert _same_learned(batched[seed], alone[6])
        assert not _same_learned(batched[seed], before)


def test_a_seed_stack_refuses_copies_at_different_steps():
    from gangrad.estimators._control_variate import SeedStack

    a, b = estimators.create("rebar"), estimators.create("rebar")
    train("categorical", a, seed=0, steps=2, eval_every=2, eval_samples=200, device="cpu")
    train("categorical", b, seed=0, steps=3, eval_every=3, eval_samples=200, device="cpu")
    with pytest.raises(ValueError, match="different steps"):
        SeedStack([a, b])
    with pytest.raises(ValueError, match="one unfrozen estimator type"):
        SeedStack([a, b.frozen()])


def test_a_plug_in_control_variate_without_seed_stacking_batches_seed_by_seed():
    """A control variate whose c_φ knows nothing of a seed dimension (it does not set
    ``stacks_seeds``) keeps the per-seed path, and each seed is still its run alone."""
    from gangrad.estimators.rebar import REBAR

    class Plain(REBAR):
        key = "plain_rebar"
        stacks_seeds = False

        def _control(self, control, z, f):
            assert z.dim() == 3, "called with a seed dimension"
            return super()._control(control, z, f)

    kwargs = {"steps": 5, "eval_every": 5, "eval_samples": 200, "device": "cpu",
              "checkpoint_steps": [5]}
    batched: dict[int, dict | None] = {}
    train_seeds("categorical", Plain(), [0, 3], on_checkpoint=lambda seed, step, state:
                batched.__setitem__(seed, _learned(state.estimator)), **kwargs)
    for seed in (0, 3):
        alone: dict[int, dict | None] = {}
        train("categorical", Plain(), seed=seed, on_checkpoint=lambda step, state, alone=alone:
              alone.__setitem__(step, _learned(state.estimator)), **kwargs)
        assert _same_learned(batched[seed], alone[5])


BATCH_MEAN = [("binary_digits", {}), ("gaussian1d", {"sigma": 0.1}), ("ring8", {"sigma": 0.02})]


@pytest.mark.parametrize(("task", "hyper"), BATCH_MEAN, ids=[t for t, _ in BATCH_MEAN])
def test_the_batch_mean_baseline_computes_every_seed_in_one_call(task, hyper):
    """The score function's batch leave-one-out baseline runs every seed's batch in one
    call (``seeds_surrogate``); at every step each seed's G is bit for bit its lone run's."""
    est = estimators.create("score_function", baseline="mean", **hyper)
    assert est.stacks_seeds and not estimators.create("score_function", baseline="ema").stacks_seeds
    steps, seeds = 8, [0, 4]
    kwargs = {"steps": steps, "eval_every": 4, "eval_samples": 200, "device": "cpu",
              "checkpoint_steps": list(range(steps + 1))}

    def params(state):
        return torch.cat([p.detach().flatten().clone() for p in state.G.parameters()])

    batched: dict[tuple[int, int], torch.Tensor] = {}
    histories = train_seeds(task, est, seeds, on_checkpoint=lambda seed, step, state:
                            batched.__setitem__((seed, step), params(state)), **kwargs)
    for seed, history in zip(seeds, histories, strict=True):
        alone: dict[int, torch.Tensor] = {}
        lone = train(task, copy.deepcopy(est), seed=seed,
                     on_checkpoint=lambda step, state, alone=alone: alone.__setitem__(
                         step, params(state)), **kwargs)
        assert _same(history, lone)
        for step in range(steps + 1):
            assert torch.equal(batched[seed, step], alone[step]), (seed, step)
