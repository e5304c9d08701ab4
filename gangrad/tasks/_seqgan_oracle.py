"""SeqGAN's released oracle: reading ``save/target_params_py3.pkl`` safely.

SeqGAN's code (Yu et al., 2017, github.com/LantaoYu/SeqGAN, ``target_lstm.py``) pickles its
oracle as a list of 15 numpy arrays, in this order (``e`` the embedding width, ``H`` the
hidden width, ``V`` the vocabulary)::

    0 g_embeddings (V, e)
    1 Wi (e, H)   2 Ui (H, H)   3 bi (H,)       input gate
    4 Wf (e, H)   5 Uf (H, H)   6 bf (H,)       forget gate
    7 Wog (e, H)  8 Uog (H, H)  9 bog (H,)      output gate
    10 Wc (e, H)  11 Uc (H, H)  12 bc (H,)      new memory cell
    13 Wo (H, V)  14 bo (V,)                    output layer

and runs, from ``h_0 = c_0 = 0`` and the start token ``x_0 = 0`` (an ordinary symbol,
``START_TOKEN = 0`` in ``sequence_gan.py``), with ``e_t`` the embedding of ``x_{t-1}``::

    i = σ(e_t Wi + h Ui + bi)    f = σ(e_t Wf + h Uf + bf)    o = σ(e_t Wog + h Uog + bog)
    c = f ⊙ c + i ⊙ tanh(e_t Wc + h Uc + bc)    h = o ⊙ tanh(c)
    p(x_t | x_<t) = softmax(h Wo + bo)          (temperature 1; no other scaling)

These are exactly the equations of :class:`gangrad.tasks.oracle_seq.OracleLSTM` (gates
``i, f, g, o`` stacked along the rows of ``w_ih``, ``w_hh`` and ``bias``, one bias per gate,
logits ``h @ w_out.T + b_out``) once the arrays are transposed and stacked
(:func:`oracle_weights`); its begin-of-sequence row is a copy of symbol 0's embedding.

The file carries no licence to redistribute, so gangrad does not ship it: a user who has it
passes its path. It is read with :class:`NumpyUnpickler`, which builds numpy arrays and
nothing else: a pickle naming any other global (``os.system``, ...) is refused before that
global is looked up, so reading an untrusted file runs no code of its choosing.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

__all__ = ["SEQGAN_ORDER", "NumpyUnpickler", "RefusedPickle", "load_arrays", "oracle_weights"]

SEQGAN_ORDER = ("g_embeddings", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog",
                "Wc", "Uc", "bc", "Wo", "bo")

def _latin1(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocols 0–2 of Python 3 use it for an array's raw bytes,
    for the latin-1 codec only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise RefusedPickle(f"refused _codecs.encode with encoding {encoding!r}: an array's "
                            "bytes are pickled as latin-1 text")
    return text.encode("latin1", errors)


# numpy's array reconstructors, wherever this numpy version keeps them (numpy.core in 1.x,
# numpy._core in 2.x); a pickle names them by the module path of the numpy that wrote it.
# ``_reconstruct`` serves protocols 0-4, ``_frombuffer`` protocol 5.
_RECONSTRUCT = np.zeros(1).__reduce_ex__(4)[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class RefusedPickle(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global outside :class:`NumpyUnpickler`'s allow-list."""


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers only.

    ``find_class`` answers the globals an ndarray's pickle needs (numpy's ``_reconstruct``
    or ``_frombuffer``, ``ndarray``, ``dtype``, and ``_codecs.encode`` for latin-1 text) and
    refuses every other one with :class:`RefusedPickle`, so no other callable can be
    reached from the file.
    """

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED)
            raise RefusedPickle(
                f"refused to load global {module}.{name}: a SeqGAN oracle file holds numpy "
                f"arrays only (allowed globals: {allowed})") from None


def load_arrays(path: str | Path) -> list[np.ndarray]:
    """The arrays of a SeqGAN oracle file, read with :class:`NumpyUnpickler` (Python 3
    pickles, and Python 2 ones through ``encoding="latin1"``); checks that it is a list of
    15 floating-point arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"oracle_file {str(path)!r} is not a file (SeqGAN's oracle is "
                                "save/target_params_py3.pkl in github.com/LantaoYu/SeqGAN)")
    with path.open("rb") as fh:
        try:
            arrays = NumpyUnpickler(fh, encoding="latin1").load()
        except RefusedPickle as exc:
            raise RefusedPickle(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a SeqGAN oracle pickle ({exc})") from exc
    if not isinstance(arrays, list | tuple) or len(arrays) != len(SEQGAN_ORDER):
        raise ValueError(f"{path}: a SeqGAN oracle file holds a list of "
                         f"{len(SEQGAN_ORDER)} arrays ({', '.join(SEQGAN_ORDER)}), got "
                         f"{type(arrays).__name__}"
                         + (f" of length {len(arrays)}" if hasattr(arrays, "__len__") else ""))
    for name, a in zip(SEQGAN_ORDER, arrays, strict=True):
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            raise ValueError(f"{path}: {name} must be a floating-point numpy array, got "
                             f"{getattr(a, 'dtype', type(a).__name__)}")
    return list(arrays)


def oracle_weights(arrays: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """SeqGAN's 15 arrays as :class:`~gangrad.tasks.oracle_seq.OracleLSTM`'s float32
    tensors ``embed (V+1, e)``, ``w_ih (4H, e)``, ``w_hh (4H, H)``, ``bias (4H,)``,
    ``w_out (V, H)``, ``b_out (V,)`` (gate order ``i, f, g, o``; BOS row = symbol 0's
    embedding). Shapes are checked against each other."""
    t = {name: torch.from_numpy(np.asarray(a, dtype=np.float32))
         for name, a in zip(SEQGAN_ORDER, arrays, strict=True)}
    if t["g_embeddings"].dim() != 2 or t["Wo"].dim() != 2:
        raise ValueError("g_embeddings and Wo must be matrices, got shapes "
                         f"{tuple(t['g_embeddings'].shape)} and {tuple(t['Wo'].shape)}")
    V, e = t["g_embeddings"].shape
    H = t["Wo"].shape[0]
    expected = {"g_embeddings": (V, e), "Wo": (H, V), "bo": (V,)}
    for gate in ("i", "f", "og", "c"):
        expected |= {f"W{gate}": (e, H), f"U{gate}": (H, H), f"b{gate}": (H,)}
    wrong = [f"{name} {tuple(t[name].shape)} (expected {shape})"
             for name, shape in expected.items() if tuple(t[name].shape) != shape]
    if wrong or V < 2:
        raise ValueError("inconsistent SeqGAN oracle arrays (vocabulary V = "
                         f"{V}, embedding e = {e}, hidden H = {H}): " + "; ".join(wrong or
                                                                          ["V must be >= 2"]))
    gates = ("i", "f", "c", "og")  # OracleLSTM's order i, f, g (the new memory), o
    return {
        "embed": torch.cat([t["g_embeddings"], t["g_embeddings"][:1]]),
        "w_ih": torch.cat([t[f"W{g}"].T for g in gates]).contiguous(),
        "w_hh": torch.cat([t[f"U{g}"].T for g in gates]).contiguous(),
        "bias": torch.cat([t[f"b{g}"] for g in gates]),
        "w_out": t["Wo"].T.contiguous(),
        "b_out": t["bo"].clone(),
    }
