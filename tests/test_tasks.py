"""Tasks: the shared contract over the whole registry, then each task's metrics and maths.

Randomised tests are seeded: data with ``torch.Generator().manual_seed(...)``, networks with
``torch.manual_seed``; statistical thresholds are derived from the sample size in a comment
beside each one. The digits classifiers are trained once for this module into a temporary
``GANGRAD_CACHE``, never into the user's cache folder.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from gangrad import tasks
from gangrad._registry import hyperparameters
from gangrad.exact import outcomes
from gangrad.spaces import Continuous, Discrete
from gangrad.tasks import _digits
from gangrad.tasks.oracle_seq import OracleLSTM

KEYS = tasks.available()


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANGRAD_CACHE", str(tmp_path_factory.mktemp("gangrad-cache")))
        yield


@pytest.fixture(scope="module", params=KEYS)
def task(request):
    return tasks.create(request.param)


def soft(task, n: int, seed: int = 0) -> torch.Tensor:
    """Relaxed samples: softmax vectors for discrete spaces, Gaussian noise otherwise."""
    x = torch.randn(n, *task.space.shape, generator=rng(seed))
    return x.softmax(-1) if isinstance(task.space, Discrete) else x


# --- contract -------------------------------------------------------------------------------


def test_registry_has_the_design_tasks():
    assert {"gaussian1d", "ring8", "grid25", "categorical", "binary_digits", "digits",
            "oracle_seq"} <= set(KEYS)


def test_unknown_key_lists_available_keys():
    with pytest.raises(KeyError) as info:
        tasks.create("nope")
    assert all(key in str(info.value) for key in KEYS)


def test_class_attributes(task):
    cls = type(task)
    assert task.name in KEYS and tasks.REGISTRY.get(task.name) is cls
    assert isinstance(cls.description, str) and cls.description
    assert cls.metrics and all(isinstance(v, tasks.Metric) for v in cls.metrics.values())
    for name in [*cls.metrics, *cls.generator_metrics]:  # a practical margin for comparisons
        spec = cls.metric(name)
        assert spec.margin > 0 and spec.low < spec.high
    assert cls.exact_reference is None or isinstance(cls.exact_reference, str)
    assert set(cls.training_defaults) == {"batch_size", "lr_g", "lr_d", "steps", "d_steps"}
    assert isinstance(task.space, Continuous | Discrete)
    assert isinstance(task.latent_dim, int) and task.latent_dim >= 1


def test_hyperparameters_stored_unchanged(task):
    hyper = {h.name: getattr(task, h.name) for h in hyperparameters(type(task))}
    assert hyper == {h.name: h.default for h in hyperparameters(type(task))}
    assert repr(tasks.create(task.name, **hyper)) == repr(task)


def test_sample_real(task):
    x = task.sample_real(64)
    assert x.shape == (64, *task.space.shape) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    if isinstance(task.space, Discrete):
        assert ((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all()


def test_sample_real_seeded(task):
    assert torch.equal(task.sample_real(32, rng(1)), task.sample_real(32, rng(1)))
    assert not torch.equal(task.sample_real(32, rng(1)), task.sample_real(32, rng(2)))


def test_generator(task):
    z = task.sample_latent(5, rng())
    for shape in (task.space.shape, (2, *task.space.shape), (3,)):
        torch.manual_seed(0)
        G = task.make_generator(shape)
        out = G(z)
        assert out.shape == (5, *shape) and torch.isfinite(out).all()
        torch.manual_seed(0)
        assert torch.equal(task.make_generator(shape)(z), out)
        out.square().sum().backward()
        assert all(p.grad is not None for p in G.parameters())


@pytest.mark.parametrize("shape", [(), (0,), (2, -1), "ab"])
def test_generator_rejects_bad_param_shape(task, shape):
    with pytest.raises(ValueError, match="param_shape"):
        task.make_generator(shape)


def test_discriminator(task):
    torch.manual_seed(0)
    D = task.make_discriminator()
    assert D(task.sample_real(7, rng())).shape == (7,)
    x = soft(task, 7).requires_grad_(True)
    logits = D(x)
    assert logits.shape == (7,) and torch.isfinite(logits).all()
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.abs().sum() > 0  # relaxed inputs are differentiated through, not indexed
    torch.manual_seed(0)
    assert torch.equal(task.make_discriminator()(x), logits)


def test_evaluate(task):
    for x in (task.sample_real(256, rng()), soft(task, 256)):
        metrics = task.evaluate(x)
        assert set(metrics) == set(task.metrics)
        assert all(type(v) is float and math.isfinite(v) for v in metrics.values())


def test_evaluate_rejects_wrong_shape(task):
    with pytest.raises(ValueError, match="shape"):
        task.evaluate(torch.zeros(4, *task.space.shape, 3))


def test_render(task, tmp_path):
    path = task.render(task.sample_real(100, rng()), tmp_path / "sub" / "samples.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("key", "hyper", "name"), [
    ("gaussian1d", {"scale": 0.0}, "scale"),
    ("gaussian1d", {"loc": float("nan")}, "loc"),
    ("ring8", {"radius": -1.0}, "radius"),
    ("ring8", {"std": 0.0}, "std"),
    ("ring8", {"depth": 0}, "depth"),
    ("grid25", {"latent_dim": 0}, "latent_dim"),
    ("grid25", {"hidden": 2.5}, "hidden"),
    ("categorical", {"classes": 1}, "classes"),
    ("digits", {"latent_dim": 0}, "latent_dim"),
    ("binary_digits", {"latent_dim": True}, "latent_dim"),
    ("binary_digits", {"hidden": 0}, "hidden"),
    ("oracle_seq", {"vocab": 1}, "vocab"),
    ("oracle_seq", {"length": 0}, "length"),
    ("oracle_seq", {"hidden": 0}, "hidden"),
    ("oracle_seq", {"oracle_seed": -1}, "oracle_seed"),
    ("ring8", {"raduis": 1.0}, "raduis"),
])
def test_bad_hyperparameters(key, hyper, name):
    with pytest.raises(ValueError, match=name):
        tasks.create(key, **hyper)


def test_digits_width_sizes_both_nets():
    task = tasks.create("binary_digits", hidden=64)
    widths = {m.out_features for net in (task.make_generator((64, 2)), task.make_discriminator())
              for m in net.modules() if isinstance(m, torch.nn.Linear)}
    assert 64 in widths and 256 not in widths


# --- gaussian1d -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gauss():
    return tasks.create("gaussian1d")


def test_gaussian1d_metrics(gauss):
    real = gauss.evaluate(gauss.sample_real(10_000, rng()))
    # E[W1] ≈ 0.6·scale/√n ≈ 0.008 and P(√n·KS > 1.95) ≈ 1e-3 at n = 10,000.
    assert real["w1"] < 0.05 and real["ks"] < 0.025
    point = gauss.evaluate(torch.full((1000, 1), gauss.loc))
    # A point mass at the mean: W1 = E|X - loc| = scale·√(2/π); KS = F(loc) = 1/2.
    assert point["w1"] == pytest.approx(gauss.scale * math.sqrt(2 / math.pi), rel=1e-9)
    assert point["ks"] == pytest.approx(0.5)


def test_gaussian1d_w1_against_quantile_grid(gauss):
    x = 3.0 + 2.0 * torch.rand(300, 1, generator=rng())
    u = (np.arange(1_000_000) + 0.5) / 1_000_000
    reference = stats.wasserstein_distance(x[:, 0].numpy(), stats.norm.ppf(u, 4.0, 1.25))
    assert gauss.evaluate(x)["w1"] == pytest.approx(reference, abs=1e-4)


def _linear_g(gauss, w: float, b: float):
    G = gauss.make_generator((1,))
    with torch.no_grad():
        G.head.linear.weight.fill_(w)
        G.head.linear.bias.fill_(b)
    return G


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_gaussian1d_expected_loss_closed_forms(gauss, sigma):
    G = _linear_g(gauss, 0.7, -0.4)
    w, b = G.head.linear.weight.item(), G.head.linear.bias.item()  # the float32 values
    # f(x) = x²: E = w² + b² + σ², ∇ = (2w, 2b).
    loss = gauss.expected_loss(G, lambda x: x[:, 0] ** 2, sigma=sigma)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(w * w + b * b + sigma**2, rel=1e-12)
    gw, gb = torch.autograd.grad(loss, list(G.parameters()))
    assert gw.item() == pytest.approx(2 * w, rel=1e-6) and gb.item() == pytest.approx(2 * b)
    # f(x) = exp(x): E = exp(b + (w² + σ²)/2), ∂/∂w = w·E, ∂/∂b = E.
    loss = gauss.expected_loss(G, lambda x: x[:, 0].exp(), sigma=sigma)
    expected = math.exp(b + (w * w + sigma**2) / 2)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    gw, gb = torch.autograd.grad(loss, list(G.parameters()))
    assert gw.item() == pytest.approx(w * expected, rel=1e-6)
    assert gb.item() == pytest.approx(expected, rel=1e-6)


def test_gaussian1d_expected_loss_against_monte_carlo(gauss):
    torch.manual_seed(0)
    G = _linear_g(gauss, 1.3, 2.5)
    D = gauss.make_discriminator()
    D64 = copy.deepcopy(D).double()

    def f(x):
        return F.softplus(-D64(x))

    sigma, n = 0.5, 200_000
    loss = gauss.expected_loss(G, f, sigma=sigma)
    exact_grad = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(G.parameters()))])
    z, eps = torch.randn(2, n, generator=rng(), dtype=torch.float64)
    x = (1.3 * z + 2.5 + sigma * eps).requires_grad_(True)
    fx = f(x[:, None])
    (dfdx,) = torch.autograd.grad(fx.sum(), x)
    per_sample = torch.stack([dfdx * z, dfdx], 1)  # n x 2: pathwise ∂f/∂w, ∂f/∂b
    # Five standard errors of the n-sample Monte Carlo means.
    assert abs(loss.item() - fx.mean().item()) < 5 * fx.std().item() / math.sqrt(n)
    se = per_sample.std(0) / math.sqrt(n)
    assert ((exact_grad.double() - per_sample.mean(0)).abs() < 5 * se).all()


def test_gaussian1d_expected_loss_arguments(gauss):
    with pytest.raises(ValueError, match="param_shape"):
        gauss.expected_loss(gauss.make_generator((2, 1)), lambda x: x[:, 0])
    G = gauss.make_generator((1,))
    with pytest.raises(ValueError, match="sigma"):
        gauss.expected_loss(G, lambda x: x[:, 0], sigma=-1.0)
    with pytest.raises(ValueError, match="f must map"):
        gauss.expected_loss(G, lambda x: x)


# --- ring8 / grid25 -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ring8", "grid25"])
def test_mixture_metrics(key):
    task = tasks.create(key)
    k = task.centres.shape[0]
    real = task.evaluate(task.sample_real(2500, rng()))
    # P(‖ε‖ < 3σ) = 1 - e^{-4.5} = 0.989 in 2-D, standard error 0.002 at n = 2,500;
    # E[reverse KL] of a multinomial histogram ≈ (K - 1)/(2n) ≤ 0.005.
    assert real["modes"] == k and real["high_quality"] > 0.98 and real["reverse_kl"] < 0.02
    collapsed = task.evaluate(task.centres[:1].expand(2500, 2))
    assert collapsed == pytest.approx({"modes": 1, "high_quality": 1, "reverse_kl": math.log(k)})
    two = task.evaluate(task.centres[[0, 1]].repeat(100, 1))
    assert two == pytest.approx({"modes": 2, "high_quality": 1, "reverse_kl": math.log(k / 2)})
    lo, hi = task.centres.min() - 1, task.centres.max() + 1
    noise = lo + (hi - lo) * torch.rand(2500, 2, generator=rng())
    # The 3σ discs cover < 2% of the box, so uniform noise is almost never high-quality.
    assert task.evaluate(noise)["high_quality"] < 0.05
    far = task.evaluate(torch.full((10, 2), 100.0))
    assert far == pytest.approx({"modes": 0, "high_quality": 0, "reverse_kl": math.log(k)})


def test_mixture_threshold_is_three_std():
    task = tasks.create("ring8")
    offsets = torch.tensor([[2.99, 0.0], [0.0, 3.01]]) * task.std
    metrics = task.evaluate(task.centres[[0, 4]] + offsets)
    assert metrics["high_quality"] == 0.5 and metrics["modes"] == 1


def test_mixture_hyperparameters_move_the_modes():
    ring = tasks.create("ring8", radius=2.0)
    assert torch.allclose(ring.centres.norm(dim=1), torch.full((8,), 2.0))
    assert tasks.create("grid25").centres.unique(dim=0).shape == (25, 2)


@pytest.mark.slow
def test_ring8_trains_with_backprop():
    """A plain non-saturating GAN with the task's defaults covers at least 7 of 8 modes."""
    task = tasks.create("ring8")
    cfg = task.training_defaults
    torch.manual_seed(0)
    G, D = task.make_generator(task.space.shape), task.make_discriminator()
    opt_g = torch.optim.Adam(G.parameters(), cfg["lr_g"], betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), cfg["lr_d"], betas=(0.5, 0.999))
    g, bs = rng(), cfg["batch_size"]
    for _ in range(cfg["steps"]):
        for _ in range(cfg["d_steps"]):
            fake = G(task.sample_latent(bs, g)).detach()
            loss_d = F.softplus(-D(task.sample_real(bs, g))).mean() + F.softplus(D(fake)).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        loss_g = F.softplus(-D(G(task.sample_latent(bs, g)))).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    with torch.no_grad():
        metrics = task.evaluate(G(task.sample_latent(2500, g)))
    assert metrics["modes"] >= 7


# --- categorical ----------------------------------------------------------------------------


def test_categorical_probs_and_metrics():
    task = tasks.create("categorical", classes=5)
    p = 1 / torch.arange(1.0, 6.0)
    assert torch.allclose(task.probs, p / p.sum())
    real = task.evaluate(task.sample_real(20_000, rng()))
    # E[KL(q‖p)] ≈ (K - 1)/(2n) = 1e-4 and E[TV] ≈ 0.005 at n = 20,000.
    assert real["kl"] < 0.005 and real["tv"] < 0.03
    probs = task.probs.double()
    collapsed = task.evaluate(F.one_hot(torch.zeros(100, 1, dtype=torch.long), 5).float())
    assert collapsed["kl"] == pytest.approx(-math.log(probs[0]))
    assert collapsed["tv"] == pytest.approx(1 - probs[0].item())
    uniform = task.evaluate(torch.eye(5).repeat(3, 1)[:, None, :])
    assert uniform["kl"] == pytest.approx(float((0.2 * (0.2 / probs).log()).sum()))
    assert uniform["tv"] == pytest.approx(float(0.5 * (0.2 - probs).abs().sum()))


def test_categorical_soft_samples_count_as_their_argmax():
    task = tasks.create("categorical")
    x = soft(task, 500)
    hard = F.one_hot(x.argmax(-1), task.classes).float()
    assert task.evaluate(x) == task.evaluate(hard)


def test_categorical_generator_is_constant_and_uniform():
    task = tasks.create("categorical")
    G = task.make_generator((1, task.classes))
    out = G(task.sample_latent(4, rng()))
    assert torch.equal(out, torch.zeros(4, 1, task.classes))
    assert sum(p.numel() for p in G.parameters()) == task.classes


# --- digits / binary_digits -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["digits", "binary_digits"])
def test_digits_metrics(key):
    task = tasks.create(key)
    real = task.evaluate(task.sample_real(1000, rng()))
    # Real images score FD ≈ 0.3 at n = 1,000 (the small-sample bias of a 128-d Gaussian fit),
    # uniform pixel noise ≈ 30-60 and a single repeated image ≈ 170.
    assert real["fd"] < 2 and real["class_kl"] < 0.05 and real["confidence"] > 0.95
    pixels = torch.rand(1000, 64, generator=rng())
    noise = pixels if key == "digits" else torch.stack([1 - pixels, pixels], -1)
    assert task.evaluate(noise)["fd"] > 20
    collapsed = task.evaluate(task.sample_real(1, rng()).expand(1000, *task.space.shape))
    assert collapsed["fd"] > 50 and collapsed["class_kl"] == pytest.approx(math.log(10))


def test_binary_digits_reads_the_on_probability():
    task = tasks.create("binary_digits")
    x = task.sample_real(8, rng())
    assert torch.equal(task.intensities(x), x[..., 1])
    relaxed = 0.9 * x + 0.05
    assert torch.equal(task.intensities(relaxed), relaxed[..., 1])


def test_digits_classifier_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANGRAD_CACHE", str(tmp_path))
    calls = []
    train = _digits.train_classifier

    def counted(representation):
        calls.append(representation)
        return train(representation)

    monkeypatch.setattr(_digits, "train_classifier", counted)
    x = tasks.create("digits").sample_real(300, rng())
    first = tasks.create("digits").evaluate(x)
    path = tmp_path / f"digits_classifier_continuous_{_digits.VERSION}.pt"
    assert calls == ["continuous"] and path.exists()
    assert torch.load(path, weights_only=True)["held_out_accuracy"] >= 0.95
    assert tasks.create("digits").evaluate(x) == first and len(calls) == 1  # loaded, not trained

    def untrained(representation):  # the retraining path only; its quality is checked above
        calls.append(representation)
        return _digits.DigitsClassifier(), 0.0

    monkeypatch.setattr(_digits, "train_classifier", untrained)
    path.write_bytes(b"not a state dict")
    tasks.create("digits").evaluate(x)
    assert len(calls) == 2 and torch.load(path, weights_only=True)["held_out_accuracy"] == 0.0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_digits_classifier_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GANGRAD_CACHE", str(blocker))
    monkeypatch.setattr(_digits, "train_classifier",
                        lambda representation: (_digits.DigitsClassifier(), 0.0))
    with pytest.warns(UserWarning, match="could not cache"):
        metrics = tasks.create("digits").evaluate(torch.zeros(4, 64))
    assert all(math.isfinite(v) for v in metrics.values())


def test_binary_classifier_accuracy():
    tasks.create("binary_digits").evaluate(torch.zeros(2, 64, 2))
    path = _digits.cache_dir() / f"digits_classifier_binary_{_digits.VERSION}.pt"
    assert torch.load(path, weights_only=True)["held_out_accuracy"] >= 0.95


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("GANGRAD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _digits.cache_dir() == tmp_path / "gangrad"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _digits.cache_dir() == tmp_path / ".cache" / "gangrad"


# --- oracle_seq -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle_task():
    return tasks.create("oracle_seq")


def test_oracle_log_prob_is_normalised():
    oracle = OracleLSTM(vocab=3, hidden=8, seed=0)
    every = outcomes(Discrete(4, 3)).argmax(-1)  # 81 x 4
    assert oracle.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_oracle_samples_follow_log_prob():
    oracle = OracleLSTM(vocab=3, hidden=8, seed=0)
    n = 50_000
    symbols = oracle.sample(n, 2, rng())
    counts = torch.bincount(symbols[:, 0] * 3 + symbols[:, 1], minlength=9).double()
    p = oracle.log_prob(outcomes(Discrete(2, 3)).argmax(-1)).exp().double()
    # Each cell's frequency within five binomial standard errors.
    assert ((counts / n - p).abs() < 5 * (p * (1 - p) / n).sqrt() + 1e-12).all()


def test_oracle_seq_metrics(oracle_task):
    real = oracle_task.evaluate(oracle_task.sample_real(2000, rng()))["nll_oracle"]
    tokens = torch.randint(oracle_task.vocab, (2000, oracle_task.length), generator=rng())
    noise = oracle_task.evaluate(F.one_hot(tokens, oracle_task.vocab).float())["nll_oracle"]
    # The oracle's entropy is ≈ 55 nats per sequence, uniform tokens score ≈ 140; the
    # standard error of either mean over 2,000 sequences is < 0.5.
    assert real < noise - 50


def test_oracle_seq_nll_test(oracle_task):
    L, V = oracle_task.length, oracle_task.vocab
    torch.manual_seed(0)
    G = oracle_task.make_generator((L, V))
    theta = torch.randn(L, V, generator=rng())
    with torch.no_grad():
        G.head.linear.weight.zero_()
        G.head.linear.bias.copy_(theta.flatten())
    # A z-independent G: p_G(x) = Π_t softmax(θ_t)[x_t] exactly, whatever the z draws.
    log_p = theta.double().log_softmax(-1)
    exact = -log_p[torch.arange(L), oracle_task.test_symbols].sum(-1).mean()
    got = oracle_task.evaluate_generator(G, "logits", rng())["nll_test"]
    assert got == pytest.approx(exact.item(), rel=1e-9)
    with torch.no_grad():
        G.head.linear.bias.zero_()
    uniform = oracle_task.evaluate_generator(G, "logits", rng())["nll_test"]
    assert uniform == pytest.approx(L * math.log(V), rel=1e-9)


def test_oracle_seq_nll_test_sees_collapse(oracle_task):
    """Emitting one likely sequence beats real data on nll_oracle; only nll_test sees it."""
    L, V = oracle_task.length, oracle_task.vocab
    real = oracle_task.sample_real(2000, rng())
    best = real[oracle_task.oracle.log_prob(real.argmax(-1)).argmax()]
    G = oracle_task.make_generator((L, V))
    with torch.no_grad():
        G.head.linear.weight.zero_()
        G.head.linear.bias.copy_(20 * best.flatten())
        samples = G(oracle_task.sample_latent(100, rng())).softmax(-1)
    assert oracle_task.evaluate(samples)["nll_oracle"] < oracle_task.evaluate(real)["nll_oracle"]
    assert oracle_task.evaluate_generator(G, "logits")["nll_test"] > L * math.log(V)


def test_oracle_seq_nll_test_needs_logits(oracle_task):
    G = oracle_task.make_generator(oracle_task.space.shape)
    with pytest.raises(ValueError, match="logits"):
        oracle_task.evaluate_generator(G, "mean")
    with pytest.raises(ValueError, match="shape"):
        oracle_task.evaluate_generator(oracle_task.make_generator((3,)), "logits")


def test_oracle_seq_decode_and_seed():
    task = tasks.create("oracle_seq", vocab=7, length=5)
    x = task.sample_real(3, rng())
    words = [s.split() for s in task.decode(x)]
    assert [len(w) for w in words] == [5, 5, 5]
    assert all(w.startswith("t") and 0 <= int(w[1:]) < 7 for row in words for w in row)
    other = tasks.create("oracle_seq", vocab=7, length=5, oracle_seed=1)
    assert not torch.equal(other.test_symbols, task.test_symbols)
