"""SeqGAN's synthetic-data experiment (Yu et al., 2017, §5, Table 1), reproduced.

Protocol (the paper and its released code, github.com/LantaoYu/SeqGAN):

- Oracle: an LSTM language model, vocabulary 5,000, embedding and hidden width 32, every
  parameter ``~ N(0, 1)``; real data: 10,000 sequences of length 20 sampled from it
  (gangrad: ``tasks.create("oracle_seq", vocab=5000, embed=32, train_size=10000)``).
- Generator: an LSTM, embedding and hidden width 32, weights ``~ N(0, 0.1²)``
  (:class:`~gangrad.tasks.oracle_seq.SeqGenerator`). MLE pre-training: Adam, learning rate
  0.01, gradients clipped to norm 5, batch 64, 120 epochs over the 10,000 sequences
  (:func:`~gangrad.train.pretrain_mle`).
- Metric: NLL-oracle per token, ``-(1/20) log p_oracle(x)`` averaged over 10,000 sequences
  the generator samples.

Published (Table 1): random generator 10.310, MLE 9.038, SeqGAN 8.736. This reproduction
measures the first two. SeqGAN's own row needs Monte Carlo roll-outs, which gangrad does
not implement; in its place, gangrad's estimators train the MLE generator adversarially
(:func:`~gangrad.train.train_autoregressive`, the task's convolutional discriminator):
REINFORCE per sequence with a leave-one-out baseline, Gumbel-softmax and straight-through.
They are comparison rows beside SeqGAN's 8.736, as is the oracle's own NLL on its samples
(its entropy rate, the floor no generator beats on average).

Whether agreement is expected. The published oracle is one random draw of N(0, 1) weights;
gangrad's is another (``oracle_seed``). NLL-oracle depends on the oracle instance: a
random generator emits nearly uniform symbols, whose NLL is the oracle's cross-entropy from
the uniform distribution, and the MLE value sits above the oracle's entropy rate. Both
vary from one random oracle to another, by more than the evaluation sample's interval.
So the random and MLE rows can disagree with no error on either side; the oracle-free
comparison is the *gap* each training closes between the random generator and the floor.

Modes. Quick (2 CPU cores, ≈ 5 minutes): SeqGAN's sizes (vocabulary 5,000, length 20,
widths 32, 10,000 training sequences) with 4 MLE epochs instead of 120, NLL on 5,000
generated sequences instead of 10,000, 40 adversarial steps and one seed. Full: 120 MLE
epochs, 10,000 evaluation sequences, 800 adversarial steps with 5 D steps each, three seeds;
about an hour on one H200 (extrapolated from a scaled run there). Each row's ``note`` says
what was scaled. gangrad's rows also report NLL-test, each generator's exact NLL of held-out
oracle sequences, which NLL-oracle alone misses (a generator that drops modes lowers
NLL-oracle; Lu et al., 2018, "Texygen").

Intervals: with one training seed, 95% normal intervals over the evaluation sample
(per-sequence NLL-oracle, 10,000 sequences, one oracle instance): they hold the evaluation's
sampling error only, not the training's seed-to-seed spread. With several seeds, Student-t
intervals over the seeds' means (:func:`gangrad.stats.mean_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from gangrad import tasks
from gangrad.reproductions._base import AbstractReproduction, Row, agrees
from gangrad.stats import mean_ci
from gangrad.tasks.oracle_seq import SeqGenerator
from gangrad.train import pretrain_mle, train_autoregressive

__all__ = ["SeqGANOracle"]

Z95 = 1.959963984540054
PUBLISHED = {"random": 10.310, "mle": 9.038, "seqgan": 8.736}
ESTIMATORS = {  # setting label -> (estimator key, hyper-parameters)
    "REINFORCE per sequence, leave-one-out baseline": ("score_function", {"baseline": "mean"}),
    "Gumbel-softmax (temperature 0.5)": ("gumbel_softmax", {"temperature": 0.5}),
    "straight-through": ("straight_through", {}),
}
QUANTITY = "NLL-oracle per token"
TEST_QUANTITY = "NLL-test per token (held-out oracle sequences, exact)"


class SeqGANOracle(AbstractReproduction):
    """Table 1 of SeqGAN: random and MLE generators; gangrad's estimators for comparison."""

    name = "seqgan-oracle"
    title = "SeqGAN's synthetic-data experiment: NLL-oracle of an LSTM generator"
    source = ("Yu, Zhang, Wang & Yu (2017), \"SeqGAN: Sequence Generative Adversarial Nets "
              "with Policy Gradient\", AAAI, §5 and Table 1 (synthetic data); released code "
              "github.com/LantaoYu/SeqGAN")
    error_kind = "none stated (one run per row; Table 1 gives t-test p-values only)"
    full = {"vocab": 5000, "length": 20, "hidden": 32, "train_size": 10000,
            "eval_samples": 10000, "mle_epochs": 120, "mle_batch": 64, "mle_lr": 0.01,
            "adv_steps": 800, "adv_batch": 64, "lr_g": 1e-3, "lr_d": 1e-3, "d_steps": 5,
            "d_warmup": 2000, "curve_samples": 2000, "seeds": 3, "oracle_seed": 0}
    quick = {**full, "mle_epochs": 4, "adv_steps": 40, "d_steps": 1, "d_warmup": 50,
             "eval_samples": 5000, "curve_samples": 500, "seeds": 1}

    def measure(self, settings: dict[str, Any], seed: int,
                progress: Callable[[str], None]) -> tuple[list[Row], pd.DataFrame]:
        s = settings
        task = tasks.create("oracle_seq", vocab=s["vocab"], length=s["length"],
                            hidden=s["hidden"], embed=s["hidden"],
                            train_size=s["train_size"], oracle_seed=s["oracle_seed"])
        length = s["length"]
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        def per_token(symbols: torch.Tensor) -> np.ndarray:  # n NLLs, nats per symbol
            return (task.nll_oracle(symbols) / length).numpy()

        def curve_score(symbols: torch.Tensor) -> dict[str, float]:
            return {"nll_oracle": float(per_token(symbols).mean())}

        held_out = task.test_symbols.to(device)

        def nll_test(G: SeqGenerator) -> np.ndarray:  # exact, per held-out sequence and token
            with torch.no_grad():
                return (-G.log_prob(held_out) / length).cpu().numpy()

        final: dict[str, list[np.ndarray]] = {}
        tests: dict[str, list[np.ndarray]] = {}
        curves = []
        floor = per_token(task.train_symbols[:s["eval_samples"]])
        for k in range(s["seeds"]):
            run_seed = seed + k
            eval_rng = torch.Generator(device).manual_seed(run_seed + 7)
            torch.manual_seed(run_seed)
            G = SeqGenerator(s["vocab"], length, s["hidden"], s["hidden"]).to(device)
            final.setdefault("random", []).append(per_token(G.sample(s["eval_samples"],
                                                                     eval_rng)))
            tests.setdefault("random", []).append(nll_test(G))
            progress(f"seed {run_seed}: random generator "
                     f"{final['random'][-1].mean():.3f} nats/token")

            def epoch_done(epoch: int, loss: float, G=G, run_seed=run_seed) -> None:
                nll = curve_score(G.sample(s["curve_samples"],
                                           torch.Generator(device).manual_seed(run_seed + 11)))
                curves.append({"seed": run_seed, "setting": "MLE", "phase": "mle",
                               "step": epoch, "train_nll": loss, **nll})
                progress(f"seed {run_seed}: MLE epoch {epoch}/{s['mle_epochs']}: train "
                         f"{loss:.3f}, NLL-oracle {nll['nll_oracle']:.3f}")

            pretrain_mle(G, task.train_symbols, epochs=s["mle_epochs"],
                         batch_size=s["mle_batch"], lr=s["mle_lr"], seed=run_seed,
                         progress=epoch_done)
            final.setdefault("mle", []).append(per_token(G.sample(s["eval_samples"],
                                                                  eval_rng)))
            tests.setdefault("mle", []).append(nll_test(G))
            progress(f"seed {run_seed}: MLE {final['mle'][-1].mean():.3f} nats/token")
            for label, (key, hyper) in ESTIMATORS.items():
                history, trained = train_autoregressive(
                    task, key, G, estimator_hyper=hyper, steps=s["adv_steps"],
                    batch_size=s["adv_batch"], lr_g=s["lr_g"], lr_d=s["lr_d"],
                    d_steps=s["d_steps"], d_warmup=s["d_warmup"], seed=run_seed,
                    eval_every=max(1, s["adv_steps"] // 5), eval_samples=s["curve_samples"],
                    evaluate=curve_score, device=str(device))
                for row in history.to_dict("records"):
                    curves.append({"seed": run_seed, "setting": label, "phase": "adversarial",
                                   **row})
                nll = (per_token(trained.sample(s["eval_samples"], eval_rng))
                       if history.attrs["status"] == "ok"
                       else np.full(s["eval_samples"], math.nan))
                final.setdefault(label, []).append(nll)
                tests.setdefault(label, []).append(nll_test(trained))
                progress(f"seed {run_seed}: {label}: {np.mean(nll):.3f} nats/token "
                         f"({history.attrs['status']})")
        rows = self._rows(final, floor, s) + self._test_rows(tests, s)
        return rows, pd.DataFrame(curves)

    def _rows(self, final: dict[str, list[np.ndarray]], floor: np.ndarray,
              s: dict[str, Any]) -> list[Row]:
        scaled = self._scaled(s)
        rows = []

        def interval(samples: list[np.ndarray]) -> tuple[float, float, float]:
            if len(samples) > 1:
                return mean_ci(np.array([v.mean() for v in samples]), low=0.0)
            return _normal_ci(samples[0])

        for key, setting in (("random", "random generator (SeqGAN's N(0, 0.1²) initialisation)"),
                             ("mle", "MLE")):
            m, lo, hi = interval(final[key])
            note = scaled["mle"] if key == "mle" else scaled["eval"]
            rows.append(Row(QUANTITY, setting, PUBLISHED[key], None, m, lo, hi,
                            agrees(PUBLISHED[key], None, lo, hi), note))
        for label in ESTIMATORS:
            m, lo, hi = interval(final[label])
            rows.append(Row(QUANTITY, f"{label}, adversarial from MLE "
                            f"(cf. SeqGAN {PUBLISHED['seqgan']})", None, None, m, lo, hi,
                            None, scaled["adv"]))
        m, lo, hi = _normal_ci(floor)
        rows.append(Row(QUANTITY, "oracle's own samples (the floor: its entropy rate)",
                        None, None, m, lo, hi, None,
                        f"the first {len(floor)} of the {s['train_size']} training "
                        "sequences"))
        return rows

    def _test_rows(self, tests: dict[str, list[np.ndarray]], s: dict[str, Any]) -> list[Row]:
        """NLL-test: each generator's exact NLL of held-out oracle sequences. Not in Table 1;
        it shows whether a lower NLL-oracle came from dropping modes (Lu et al., 2018,
        "Texygen")."""
        scaled = self._scaled(s)
        labels = {"random": "random generator", "mle": "MLE",
                  **{label: f"{label}, adversarial from MLE" for label in ESTIMATORS}}
        rows = []
        for key, setting in labels.items():
            values = tests[key]
            m, lo, hi = (mean_ci(np.array([v.mean() for v in values]), low=0.0)
                         if len(values) > 1 else _normal_ci(values[0]))
            note = scaled["adv"] if key in ESTIMATORS else (
                scaled["mle"] if key == "mle" else "")
            rows.append(Row(TEST_QUANTITY, setting, None, None, m, lo, hi, None,
                            note.split("; NLL on")[0]))
        return rows

    def _scaled(self, s: dict[str, Any]) -> dict[str, str]:
        full = self.full
        seeds = (f"{s['seeds']} training seed, interval over the evaluation sample"
                 if s["seeds"] == 1 else f"{s['seeds']} training seeds")
        evaluation = ("" if s["eval_samples"] == 10000 else
                      f"NLL on {s['eval_samples']} generated sequences (published 10,000); ")
        mle = ("" if s["mle_epochs"] == 120 else
               f"MLE {s['mle_epochs']} epochs (published 120); ")
        adv = (f"{s['adv_steps']} G steps (batch {s['adv_batch']}, Adam {s['lr_g']}, "
               f"β1 0.5), {s['d_steps']} D step(s) per G step after {s['d_warmup']} D "
               f"warm-up steps, the task's two-layer CNN discriminator; SeqGAN: 800 G "
               f"steps with roll-out rewards, 15 D epochs each, a 12-width highway CNN")
        scaled = {"eval": evaluation + seeds, "mle": mle + evaluation + seeds,
                  "adv": mle + adv + "; " + evaluation + seeds}
        if s == full:
            scaled["eval"] = scaled["mle"] = seeds
        return scaled

    def summary(self, rows: list[Row], settings: dict[str, Any]) -> str:
        oracle_rows = [r for r in rows if r.quantity == QUANTITY]
        test = {r.setting.split(",")[0]: r.measured for r in rows
                if r.quantity == TEST_QUANTITY}
        random_row, mle_row = oracle_rows[0], oracle_rows[1]
        floor = oracle_rows[-1].measured
        adversarial = oracle_rows[2:-1]
        best = min(adversarial, key=lambda r: r.measured if math.isfinite(r.measured)
                   else math.inf)
        gap = random_row.measured - floor

        def closed(value: float) -> str:
            return f"{100 * (random_row.measured - value) / gap:.0f}%"

        pub_gap = PUBLISHED["random"] - PUBLISHED["mle"]
        return (f"NLL-oracle per token: random generator {random_row.measured:.3f} "
                f"(published {PUBLISHED['random']}), MLE {mle_row.measured:.3f} (published "
                f"{PUBLISHED['mle']}) on a different random oracle, whose floor is "
                f"{floor:.3f}; MLE lowers NLL by {random_row.measured - mle_row.measured:.3f} "
                f"(published {pub_gap:.3f}), closing {closed(mle_row.measured)} of the gap "
                f"to the floor; best adversarial estimator: {best.setting.split(',')[0]} "
                f"{best.measured:.3f} (SeqGAN {PUBLISHED['seqgan']}, MLE start "
                f"{mle_row.measured:.3f}), NLL-test {test[best.setting.split(',')[0]]:.3f} "
                f"(MLE {test['MLE']:.3f}).")

    def figure(self, rows: list[Row], data: pd.DataFrame, settings: dict[str, Any]):
        from gangrad.plotting import new_figure, palette

        rows = [r for r in rows if r.quantity == QUANTITY]
        fig, (ax_mle, ax_adv) = new_figure(1, 2, width=10.0, height=3.8)
        colors = palette(["MLE", *ESTIMATORS])
        mle = data[data["phase"] == "mle"]
        for seed, part in mle.groupby("seed"):
            ax_mle.plot(part["step"], part["nll_oracle"], "o-", color=colors["MLE"],
                        label=f"gangrad MLE (seed {seed})")
        for value, text in ((rows[0].measured, "gangrad random G"),
                            (PUBLISHED["random"], "published random"),
                            (PUBLISHED["mle"], "published MLE"),
                            (rows[-1].measured, "gangrad oracle floor")):
            ax_mle.axhline(value, ls=":" if text.startswith("published") else "--",
                           color="0.4" if text.startswith("published") else "0.7")
            ax_mle.annotate(text, (0.02, value), xycoords=("axes fraction", "data"),
                            fontsize=7, va="bottom")
        ax_mle.set(xlabel="MLE epoch", ylabel="NLL-oracle per token (nats)",
                   title="(a) MLE pre-training")
        adv = data[data["phase"] == "adversarial"]
        for label in ESTIMATORS:
            part = adv[adv["setting"] == label].groupby("step")["nll_oracle"].mean()
            ax_adv.plot(part.index, part.values, "o-", color=colors[label], label=label)
        ax_adv.axhline(PUBLISHED["seqgan"], ls=":", color="0.4")
        ax_adv.annotate("published SeqGAN (roll-outs)", (0.02, PUBLISHED["seqgan"]),
                        xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        ax_adv.set(xlabel="adversarial G step", ylabel="NLL-oracle per token (nats)",
                   title="(b) adversarial training from the MLE generator")
        ax_adv.legend(fontsize=7)
        fig.tight_layout()
        caption = ("NLL-oracle per token (lower is better) on "
                   f"{settings['curve_samples']} generated sequences per point: (a) during "
                   "MLE pre-training, beside the published random and MLE values (a different "
                   "random oracle: offsets are expected); (b) during adversarial training from "
                   "the MLE generator with gangrad's estimators, beside SeqGAN's published "
                   "8.736, which uses Monte Carlo roll-out rewards.")
        return fig, caption


def _normal_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% normal interval over a large sample (``nan`` if any value is)."""
    m = float(np.mean(values))
    half = Z95 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return m, m - half, m + half
