"""Many independent NMF problems solved as one batched computation (the synergy task's 27 x 52 movements).

A batch of ``B`` problems ``X_b ~ W_b H_b``, each ``(m, n_b)`` with its own length ``n_b``, runs the same
multiplicative updates as :func:`vaenmf.nmf.nmf` on stacked tensors ``X (B, m, n)``, ``W (B, m, r)``,
``H (B, r, n)``, with one code path on CPU and GPU.

Different lengths are handled exactly, never by truncation: problems are sorted by length and cut into chunks
(so a chunk pads its problems only to its own longest one), and inside a chunk the padding columns hold zero
data and a zero column mask (:mod:`vaenmf.nmf.updates`): padded columns of ``H`` stay exactly zero, add
nothing to the dictionary update, and are not counted in the divergence. Each problem's factors are therefore
those of the unpadded problem fitted alone from the same initialisation, up to float rounding (a product over
``n`` columns sums in a different order when ``n`` differs). Chunks also keep the working set in cache on the
CPU (see :data:`BATCH_CHUNK_ELEMENTS`); on a GPU the whole batch is one chunk by default.

References:
    Lee and Seung, "Algorithms for non-negative matrix factorization", NIPS 2000; Fevotte and Idier, Neural
    Computation 2011 (the updates themselves, :mod:`vaenmf.nmf.updates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vaenmf.errors import ConfigError, DataError
from vaenmf.nmf.divergence import EPS, beta_divergence, check_beta
from vaenmf.nmf.fit import init_factors, normalize_dictionary
from vaenmf.nmf.updates import euclidean_workspace, fit_activations, nmf_iteration_
from vaenmf.validation import as_nonnegative_tensor, check_rank

__all__ = [
    "BATCH_CHUNK_ELEMENTS",
    "BatchedNMFResult",
    "as_problems",
    "fit_activations_batched",
    "nmf_batched",
    "pad_problems",
]

#: Default size of a CPU chunk, in data entries (``problems x m x padded n``): 1 Mi entries, a 4 MiB float32
#: data block plus its activations, which stays in the last-level cache for all the chunk's iterations.
#: Measured on a 2-core AMD EPYC (32 MiB L3), one thread, 10 x 2000 rank-4 Euclidean problems: 18.7-19.9
#: us per problem-iteration for chunks of 32-64 problems (0.6-1.3 Mi entries), 20-31 us for 8-16 (per-call
#: overhead) and 34-36 us for 128-256 (out of cache).
BATCH_CHUNK_ELEMENTS = 1 << 20

ProblemBatch = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


@dataclass
class BatchedNMFResult:
    """Factors of ``B`` problems ``X_b ~ W_b @ H_b``, in the order the problems were given.

    Attributes:
        W: Dictionaries, ``(B, m, r)``, unnormalised.
        H: Activations, ``(B, r, n_max)``; columns ``n_b`` and beyond are zero (padding).
        lengths: ``n_b`` of every problem, ``(B,)`` int64 on the CPU.
        losses: Final ``d_beta(X_b | W_b H_b)`` of every problem over its own columns, ``(B,)`` float64 on
            the CPU.
        n_iter: Iterations run (the same for every problem).
    """

    W: torch.Tensor
    H: torch.Tensor
    lengths: torch.Tensor
    losses: torch.Tensor
    n_iter: int

    def __len__(self) -> int:
        return int(self.W.shape[0])

    def activations(self, index: int) -> torch.Tensor:
        """Problem ``index``'s activations without padding, ``(r, n_b)`` (a view)."""
        return self.H[index, :, : int(self.lengths[index])]

    def dictionaries(self, norm: str = "l2") -> torch.Tensor:
        """Every dictionary with unit-norm columns (``"l2"`` or ``"l1"``; ``"none"`` for as fitted), ``(B, m, r)``."""
        if norm == "none":
            return self.W.clone()
        return normalize_dictionary(self.W, norm=norm)[0]


def as_problems(
    X: ProblemBatch,
    lengths: Sequence[int] | torch.Tensor | np.ndarray | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    name: str = "X",
) -> list[torch.Tensor]:
    """Validate a batch of problems and return them as a list of unpadded ``(m, n_b)`` tensors.

    Args:
        X: A sequence of ``(m, n_b)`` matrices (numpy or torch; lengths may differ), or one ``(B, m, n)`` tensor
            or array whose problem ``b`` is ``X[b, :, :lengths[b]]`` (all of ``n`` when ``lengths`` is None).
        lengths: Optional number of columns of every problem, each in ``[1, n_b]``; columns beyond it are
            never read.
        dtype: Floating dtype (default: the data's own, float32 for integers; all problems get the first's).
        device: Device of the returned tensors (default: the data's own).
        name: Name used in error messages.

    Raises:
        DataError: Empty batch, a problem that is not 2-D, negative/NaN/inf values, rows that differ between
            problems, or ``lengths`` of the wrong size or out of range (the message names the argument and
            the problem's index).

    Shape:
        X: ``[(m, n_b)] * B`` or ``(B, m, n)``; lengths: ``(B,)``; returns ``[(m, n_b)] * B``.
    """
    if isinstance(X, (torch.Tensor, np.ndarray)):
        if X.ndim != 3:
            raise DataError(
                f"{name} must be a (B, m, n) batch or a sequence of (m, n) matrices, got shape {tuple(X.shape)}"
            )
        items = list(torch.as_tensor(X).unbind(0))
    else:
        items = list(X)
    if not items:
        raise DataError(f"{name} is an empty batch; expected at least one (m, n) matrix")
    if lengths is not None:
        lengths = [int(v) for v in torch.as_tensor(lengths).reshape(-1).tolist()]
        if len(lengths) != len(items):
            raise DataError(f"lengths has {len(lengths)} entries for {len(items)} problems in {name}")
    problems: list[torch.Tensor] = []
    for b, item in enumerate(items):
        label = f"{name}[{b}]"
        t = torch.as_tensor(item)
        if t.ndim != 2:
            raise DataError(f"{label} must be a 2-D (m, n) matrix, got shape {tuple(t.shape)}")
        if lengths is not None:
            n_b = lengths[b]
            if not 1 <= n_b <= t.shape[1]:
                raise DataError(
                    f"lengths[{b}] = {n_b} is outside [1, {t.shape[1]}] (the columns of {label}); "
                    "lengths must not exceed the data"
                )
            t = t[:, :n_b]
        # Contiguous, so that reductions over a problem (the initialisation's data scale) sum in the same order
        # as for the same matrix given on its own.
        t = as_nonnegative_tensor(t, label, dtype=dtype, device=device).contiguous()
        if dtype is None:
            dtype = t.dtype
        if problems and t.shape[0] != problems[0].shape[0]:
            raise DataError(
                f"{label} has {t.shape[0]} rows but {name}[0] has {problems[0].shape[0]}; every problem of a "
                "batch needs the same number of features m"
            )
        problems.append(t)
    return problems


def pad_problems(
    problems: Sequence[torch.Tensor], width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack problems of different lengths with zero padding, and the column mask (None if none is padded).

    Shape:
        problems: ``[(m, n_b)] * B``; returns ``X (B, m, width)`` and mask ``(B, 1, width)`` (1 on the first
        ``n_b`` columns, 0 after), on the problems' device and dtype.
    """
    lengths = [int(p.shape[-1]) for p in problems]
    width = max(lengths) if width is None else int(width)
    first = problems[0]
    X = first.new_zeros((len(problems), *first.shape[:-1], width))
    for b, p in enumerate(problems):
        X[b, ..., : lengths[b]] = p
    if all(n == width for n in lengths):
        return X, None
    columns = torch.arange(width, device=first.device)
    mask = (columns < torch.tensor(lengths, device=first.device).unsqueeze(1)).to(first.dtype).unsqueeze(1)
    return X, mask


def _chunks(
    order: Sequence[int], widths: Sequence[int], rows: int, chunk_size: int | None
) -> list[list[int]]:
    """Consecutive chunks of ``order`` (problems sorted longest first): a fixed size, or a data-size budget."""
    chunks: list[list[int]] = []
    i = 0
    while i < len(order):
        if chunk_size is not None:
            count = chunk_size
        else:  # the chunk's first problem is its longest: it sets the padded width
            count = max(1, BATCH_CHUNK_ELEMENTS // max(1, rows * widths[order[i]]))
        chunks.append(list(order[i : i + count]))
        i += count
    return chunks


def _check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    return int(chunk_size)


def _default_chunk_size(device: torch.device, n_problems: int, chunk_size: int | None) -> int | None:
    # One chunk on an accelerator (the whole batch in one launch per product); a cache-sized budget on the CPU.
    if chunk_size is None and device.type != "cpu":
        return n_problems
    return chunk_size


def _per_problem(value: object, count: int, name: str) -> list:
    if value is None or isinstance(value, (int, np.integer)):
        return [value] * count
    values = list(value)  # type: ignore[call-overload]
    if len(values) != count:
        raise DataError(f"{name} has {len(values)} entries for {count} problems")
    return values


def _given_factor(value: object, shape: tuple[int, int], like: torch.Tensor, name: str) -> torch.Tensor:
    """A user's initial factor, checked and copied (``H0`` may be wider than its problem: cut to ``shape``)."""
    t = torch.as_tensor(value).to(like)
    if t.ndim == 2 and t.shape[0] == shape[0] and t.shape[1] >= shape[1]:
        t = t[:, : shape[1]]
    if tuple(t.shape) != shape:
        raise DataError(f"{name} has shape {tuple(t.shape)}; expected {shape}")
    if not bool(torch.isfinite(t).all()) or float(t.min()) < 0:
        raise DataError(f"{name} must be finite and nonnegative")
    return t.clone()


def nmf_batched(
    X: ProblemBatch,
    rank: int,
    beta: float = 2.0,
    n_iter: int = 200,
    seed: int | Sequence[int] | None = 0,
    device: str | torch.device | None = None,
    lengths: Sequence[int] | torch.Tensor | np.ndarray | None = None,
    dtype: torch.dtype | None = None,
    W0: Sequence[torch.Tensor] | torch.Tensor | None = None,
    H0: Sequence[torch.Tensor] | torch.Tensor | None = None,
    l1: float = 0.0,
    eps: float = EPS,
    chunk_size: int | None = None,
) -> BatchedNMFResult:
    """Lee-Seung NMF of ``B`` independent problems at once, each as :func:`vaenmf.nmf.nmf` would fit it.

    Problem ``b`` starts from ``init_factors(X_b, rank, seed=seed_b)``, exactly the initialisation that
    ``nmf(X_b, rank, seed=seed_b)`` uses, and runs ``n_iter`` alternating iterations (H, then W) of the
    multiplicative updates; its result equals that fit to float rounding.

    Args:
        X: The problems: a sequence of ``(m, n_b)`` matrices (lengths may differ), or a ``(B, m, n)`` tensor
            with optional ``lengths``. See :func:`as_problems`.
        rank: Number of atoms ``r <= min(m, n_b)`` for every problem.
        beta: 0 (Itakura-Saito), 1 (KL) or 2 (Euclidean, default: the synergy NMF); any real value works.
        n_iter: Iterations for every problem (no early stopping, so every problem runs the same updates).
        seed: Seed of every problem's initialisation, or one seed per problem.
        device: Where to run (default: the data's own device). The same code runs on CPU and CUDA.
        lengths: Columns of each problem of a padded ``(B, m, n)`` tensor (each in ``[1, n]``).
        dtype: Floating dtype (default: the data's own).
        W0, H0: Optional initial factors, one ``(m, r)`` / ``(r, n_b)`` per problem (sequences or stacked
            tensors; ``H0`` entries beyond ``n_b`` are ignored); both replace the seeded initialisation.
        l1: L1 weight on H.
        eps: Numerical floor.
        chunk_size: Problems per batched computation. Default: the whole batch on a GPU; on the CPU chunks of
            about :data:`BATCH_CHUNK_ELEMENTS` data entries, which stay in cache. Results do not depend on it.

    Returns:
        :class:`BatchedNMFResult` (factors stacked in input order, activations zero-padded).

    Raises:
        DataError: Bad data (see :func:`as_problems`), a rank larger than some ``min(m, n_b)`` (the message
            names the problem), or ``seed``/``W0``/``H0`` of the wrong size or shape.
        ConfigError: A bad ``beta`` or ``chunk_size``.

    Shape:
        X: ``[(m, n_b)] * B`` or ``(B, m, n)``; returns W ``(B, m, r)`` and H ``(B, r, max n_b)``.

    References:
        Lee and Seung 2000; Fevotte and Idier 2011 (eq. 25-26).
    """
    beta = check_beta(beta)
    chunk_size = _check_chunk_size(chunk_size)
    problems = as_problems(X, lengths=lengths, dtype=dtype, device=device)
    count = len(problems)
    m = int(problems[0].shape[0])
    widths = [int(p.shape[1]) for p in problems]
    for b, p in enumerate(problems):
        check_rank(rank, tuple(p.shape), name=f"X[{b}]")
    rank = int(rank)
    seeds = _per_problem(seed, count, "seed")
    if (W0 is None) != (H0 is None):
        raise DataError("give both W0 and H0 (one per problem) or neither")
    if W0 is not None and len(W0) != count:
        raise DataError(f"W0 has {len(W0)} entries for {count} problems")
    if H0 is not None and len(H0) != count:
        raise DataError(f"H0 has {len(H0)} entries for {count} problems")
    initial: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    if W0 is not None and H0 is not None:
        like0 = problems[0]
        initial = [
            (
                _given_factor(W0[b], (m, rank), like0, f"W0[{b}]"),
                _given_factor(H0[b], (rank, widths[b]), like0, f"H0[{b}]"),
            )
            for b in range(count)
        ]
    run_device = problems[0].device
    chunk_size = _default_chunk_size(run_device, count, chunk_size)

    n_max = max(widths)
    like = problems[0]
    W_out = like.new_empty((count, m, rank))
    H_out = like.new_zeros((count, rank, n_max))
    losses = torch.empty(count, dtype=torch.float64)
    # Longest first, ties in input order: a chunk pads only to its own longest problem.
    order = sorted(range(count), key=lambda b: -widths[b])
    for chunk in _chunks(order, widths, m, chunk_size):
        Xc, mask = pad_problems([problems[b] for b in chunk])
        width = Xc.shape[-1]
        Wc = like.new_empty((len(chunk), m, rank))
        Hc = like.new_zeros((len(chunk), rank, width))
        for i, b in enumerate(chunk):
            W_b, H_b = init_factors(problems[b], rank, seed=seeds[b]) if initial is None else initial[b]
            Wc[i] = W_b
            Hc[i, :, : widths[b]] = H_b  # padded columns stay exactly zero
        workspace = euclidean_workspace(Xc, Wc, Hc) if beta == 2 and not l1 else None
        for _ in range(int(n_iter)):
            nmf_iteration_(Xc, Wc, Hc, beta=beta, eps=eps, l1=l1, mask=mask, workspace=workspace)
        chunk_losses = beta_divergence(Xc, Wc @ Hc, beta, reduction="per_matrix", mask=mask)
        index = torch.tensor(chunk, device=run_device)
        W_out[index] = Wc
        H_out[index, :, :width] = Hc
        losses[torch.tensor(chunk)] = chunk_losses.detach().double().cpu()
    return BatchedNMFResult(
        W=W_out, H=H_out, lengths=torch.tensor(widths, dtype=torch.int64), losses=losses, n_iter=int(n_iter)
    )


def fit_activations_batched(
    X: ProblemBatch,
    W: torch.Tensor | Sequence[torch.Tensor],
    beta: float = 2.0,
    n_iter: int = 500,
    device: str | torch.device | None = None,
    lengths: Sequence[int] | torch.Tensor | np.ndarray | None = None,
    dtype: torch.dtype | None = None,
    l1: float = 0.0,
    eps: float = EPS,
    chunk_size: int | None = None,
) -> list[torch.Tensor]:
    """Activations of ``B`` problems, each with its own fixed dictionary, as :func:`fit_activations` gives them.

    Problem ``b`` gets ``fit_activations(X_b, W_b, beta, n_iter, l1=l1)`` (its default flat start at the
    scale of its own data), to float rounding, computed in padded, masked chunks.

    Args:
        X: The problems (see :func:`as_problems`).
        W: One nonnegative ``(m, r)`` dictionary per problem, ``(B, m, r)`` or a sequence.
        beta, n_iter, l1, eps: As :func:`vaenmf.nmf.fit_activations`.
        device, lengths, dtype, chunk_size: As :func:`nmf_batched`.

    Returns:
        One ``(r, n_b)`` activation matrix per problem, in input order.

    Raises:
        DataError: Bad data, or a dictionary of the wrong shape or sign.

    Shape:
        X: ``[(m, n_b)] * B`` or ``(B, m, n)``; W: ``(B, m, r)``; returns ``[(r, n_b)] * B``.
    """
    beta = check_beta(beta)
    chunk_size = _check_chunk_size(chunk_size)
    problems = as_problems(X, lengths=lengths, dtype=dtype, device=device)
    count = len(problems)
    like = problems[0]
    dictionaries = [
        as_nonnegative_tensor(w, f"W[{b}]", dtype=like.dtype, device=like.device) for b, w in enumerate(W)
    ]
    if len(dictionaries) != count:
        raise DataError(f"W has {len(dictionaries)} dictionaries for {count} problems")
    m = int(like.shape[0])
    rank = int(dictionaries[0].shape[-1]) if dictionaries[0].ndim == 2 else -1
    for b, w in enumerate(dictionaries):
        if w.ndim != 2 or tuple(w.shape) != (m, rank):
            raise DataError(f"W[{b}] has shape {tuple(w.shape)}; expected ({m}, {rank}) like W[0]")
    widths = [int(p.shape[1]) for p in problems]
    chunk_size = _default_chunk_size(like.device, count, chunk_size)
    out: list[torch.Tensor | None] = [None] * count
    order = sorted(range(count), key=lambda b: -widths[b])
    for chunk in _chunks(order, widths, m, chunk_size):
        Xc, mask = pad_problems([problems[b] for b in chunk])
        Wc = torch.stack([dictionaries[b] for b in chunk])
        Hc = fit_activations(Xc, Wc, beta=beta, n_iter=n_iter, eps=eps, l1=l1, mask=mask)
        for i, b in enumerate(chunk):
            out[b] = Hc[i, :, : widths[b]]
    return out  # type: ignore[return-value]
