"""Many independent VAE-NMF models trained at once: stacked weights, batched products, one fused Adam.

Figure 2 fits one rank-4 VAE-NMF per subject and movement (27 x 52 on Ninapro DB1). Each model is tiny
(10 -> 400 -> 400 -> 8 encoder), so training them one at a time is dominated by per-operation overhead. Here
``K`` models keep their own parameters, stacked along a leading dimension (``(K, out, in)`` weights), and every
training step runs all of them in one batched computation (``torch.baddbmm``/``torch.bmm``), the same code on
CPU and GPU. Each model still has

* its own data ``X_k (m, n_k)`` and its own batches: every epoch a fresh permutation from its own generator,
  drawn exactly as ``MatrixDataModule``'s DataLoader draws it, so the batch order equals that of a separate
  ``VAENMFSystem`` fit with the same seed;
* its own initialisation: :class:`~vaenmf.models.vae_nmf.VAENMF` constructed after seeding with the model's
  seed, then ``reset_dictionary`` on its first batch, as ``VAENMFSystem`` does;
* its own Gamma draws (``rng="per_model"``): every random number of model ``k`` comes from model ``k``'s
  generator, in the order a separate training draws them, so model ``k`` gets the samples it would get alone;
* its own loss and Adam: the step minimises ``sum_k loss_k``, whose gradient with respect to model ``k``'s
  parameters is ``loss_k``'s own (the models share no parameter), and Adam is applied per model, with its own
  step count for the bias corrections (weight decay as torch's ``Adam``: L2 added to the gradient).

Models whose data are shorter have fewer batches per epoch; while they have no batch left in an epoch, they
are simply not part of the step (no forward, no gradient, no Adam update or step count). Models are sorted by
their number of batches, so the models that take part in a step are always a prefix of the stack.

Equivalence with separate trainings holds to float rounding: batched products sum in another order than
single ones, and the Adam update is torch's fused kernel (``torch._fused_adam_``, one pass over the state; 13x
faster than the unfused update on stacked tensors here), whose rounding differs from the default
``torch.optim.Adam`` by an ulp. The tests train K = 3 both ways and compare the dictionaries.

References:
    Xie et al., sec. 2: eq. 4-5 (loss and penalty), eq. 6 (prior), eq. 7 (sampler), eq. 8 (KL, corrected), and
    sec. 3 (Adam, lr 1e-3, weight decay 5e-4, batch 128). Kingma and Ba 2015 (Adam).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import RandomSampler

from vaenmf.errors import ConfigError, DataError
from vaenmf.memory import peak_rss_mb
from vaenmf.models.gamma import kl_gamma, marsaglia_tsang_accept, rsvi_boost, rsvi_log_h
from vaenmf.models.vae_nmf import VAENMF
from vaenmf.nmf.batched import as_problems
from vaenmf.nmf.fit import normalize_dictionary
from vaenmf.validation import check_rank

__all__ = [
    "EPOCH_METRICS",
    "RNG_MODES",
    "StackedVAENMFResult",
    "VAENMFStack",
    "default_chunk_size",
    "epoch_permutation",
    "fit_vae_nmf_stack",
    "new_vae_nmf",
    "retain_freed_memory",
]

log = logging.getLogger(__name__)

#: Per-epoch metrics of every model (frame-weighted means over the epoch's batches), as ``VAENMFSystem`` logs.
EPOCH_METRICS: tuple[str, ...] = ("loss", "recon", "kl", "penalty", "neg_fraction", "neg_mass", "elbo")

#: ``"per_model"``: every model draws from its own generator (results equal separate trainings);
#: ``"shared"``: one generator for the whole stack (the same distribution, faster on a GPU, where K small
#: draws per step cost K kernel launches; a model's result then depends on the other models of its stack).
RNG_MODES: tuple[str, ...] = ("per_model", "shared")

#: Models per stack on the CPU by default. Memory per model is about 2.7 MB of parameters, gradients and
#: Adam state plus ~1.6 MB of saved activations per 128-frame batch (m = 10, hidden 400, 400, r = 4), so a
#: stack of 64 holds about 0.3 GB. The size hardly matters once the per-operation overhead is shared: one
#: thread, CPU time per model-step 3.0 / 2.8 / 2.9 ms for stacks of 8 / 32 / 64 (before the allocator fix of
#: :func:`retain_freed_memory`; measured on a shared 2-core AMD EPYC).
CPU_CHUNK = 64


def default_chunk_size(models: int, workers: int = 1) -> int:
    """Models per stack on the CPU: at most :data:`CPU_CHUNK`; with ``workers`` processes, stacks of (nearly)
    equal size whose number is a multiple of ``workers`` where the models allow it, so that the processes get
    about the same number of models (324 models on 2 workers: six stacks of 54, where stacks of 64 gave one
    process 192 models and the other 132; 5 models on 4 workers: three stacks, one process idle). The pool hands
    the stacks, longest movements first, to whichever process is free.
    """
    if workers <= 1 or models <= 0:
        return CPU_CHUNK
    rounds = math.ceil(models / (workers * CPU_CHUNK))
    return math.ceil(models / (workers * rounds))


_CONFIG_FIELDS = (
    "n_features",
    "rank",
    "prior_shape",
    "likelihood",
    "sampler",
    "boost",
    "score_correction",
    "min_shape",
    "min_rate",
    "input_transform",
    "noise_var",
    "penalty_weight",
    "kl_weight",
    "likelihood_floor",
)


def retain_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it, for the rest of the process.

    A training step of a stack allocates its activations and gradients afresh (the CPU allocator does not cache),
    megabytes each; glibc serves such blocks with ``mmap`` and returns them with ``munmap`` or heap trimming, so
    every step faults the same pages in again. Measured for a 64-model stack (m = 10, hidden 400, 400, one
    thread): 2.65 ms per model-step with 0.40 ms of it in the kernel and 15,500 page faults per step, against
    2.15 ms and no faults with ``M_MMAP_THRESHOLD`` = 1 GiB and ``M_TRIM_THRESHOLD`` = 2 GiB (PyTorch's CPU
    tuning guide gives the same advice: a caching allocator). The price is that the process keeps its peak
    heap. Process-wide and not undone, so it is opt-in; :func:`fit_vae_nmf_stack`'s worker processes apply
    it to themselves.

    Returns:
        Whether the settings were applied (False off glibc).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
        libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    )


def epoch_permutation(generator: torch.Generator, n: int) -> Tensor:
    """The order in which a shuffling ``DataLoader(..., generator=generator)`` visits ``n`` items in an epoch.

    A DataLoader iterator first draws its workers' base seed from the loader's generator (one int64), then its
    ``RandomSampler``, run to exhaustion, draws from the same generator (in torch 2.x one ``randperm(n)`` for
    the order and one more for its empty tail). ``MatrixDataModule`` builds its loader once, so epoch ``e`` is
    the ``e``-th such round of draws. Calling this once per epoch on a generator seeded like the data module's
    reproduces its batches exactly (tested against ``MatrixDataModule``); the sampler itself is used, not a copy
    of its logic, so the draws follow torch's own.

    Shape:
        returns ``(n,)`` int64 on the CPU.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    return torch.tensor(list(RandomSampler(range(n), generator=generator)), dtype=torch.int64)


def new_vae_nmf(
    n_features: int, rank: int, seed: int, device: torch.device | str = "cpu", **model_kwargs: Any
) -> tuple[VAENMF, torch.Generator]:
    """A :class:`VAENMF` initialised as ``seed_everything(seed)`` followed by its construction would, and the
    generator that then continues the training's random stream on ``device``.

    The global CPU generator is seeded with ``seed`` inside ``fork_rng`` (so the caller's random state is left
    alone); the model's default initialisation draws from it. On the CPU the Gamma draws of a training then
    continue that stream (as ``VAENMFSystem``'s draws from the global generator do); on a GPU they come from
    the device's generator seeded with ``seed`` (which the CPU-side construction does not touch).

    Shape:
        the model's ``W``: ``(n_features, rank)``.
    """
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        model = VAENMF(n_features, rank, **model_kwargs)
        state = torch.get_rng_state()
    if device.type == "cpu":
        generator = torch.Generator()
        generator.set_state(state)
    else:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    return model, generator


_ACTIVATION_NAMES = {"ReLU": "relu", "Softplus": "softplus", "Tanh": "tanh"}


def _activation_of(model: VAENMF) -> nn.Module:
    acts = [layer for layer in model.encoder if not isinstance(layer, nn.Linear)]
    return acts[0] if acts else nn.Identity()


def _structure(model: VAENMF) -> dict[str, Any]:
    linears = [layer for layer in model.encoder if isinstance(layer, nn.Linear)]
    return {
        **{name: getattr(model, name) for name in _CONFIG_FIELDS},
        "layers": [tuple(layer.weight.shape) for layer in linears],
        "activation": type(_activation_of(model)).__name__,
        "dtype": str(model.W.dtype),
    }


class VAENMFStack(nn.Module):
    """``K`` VAE-NMF models with identical configuration, their parameters stacked along a leading dimension.

    Model ``k``'s parameters are slice ``k`` of every stacked parameter, so ``K`` models run as one: each
    encoder layer is one ``baddbmm``, the decoder one ``bmm``. The arithmetic per model is that of
    :class:`~vaenmf.models.vae_nmf.VAENMF` (eq. 4-8), see :meth:`losses`.

    Args:
        models: The ``K`` models (same ``n_features``, ``rank``, encoder sizes, activation, likelihood,
            sampler, prior, floors and weights; their parameters are copied).
        rng: One of :data:`RNG_MODES`.

    Shape:
        - frames ``x``: ``(K, batch, m)`` (model ``k`` sees ``x[k]``); alpha, beta, z: ``(K, batch, r)``;
        - stacked encoder weights ``(K, in, out)`` (``nn.Linear``'s weight transposed), biases ``(K, 1, out)``,
          decoder ``W``: ``(K, m, r)``.

    References:
        Xie et al., eq. 4-8; Naesseth et al. 2017 (RSVI).
    """

    def __init__(self, models: Sequence[VAENMF], rng: str = "per_model") -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ConfigError("VAENMFStack needs at least one model")
        if rng not in RNG_MODES:
            raise ConfigError(f"unknown rng {rng!r}; expected one of {list(RNG_MODES)}")
        first = _structure(models[0])
        for k, model in enumerate(models[1:], start=1):
            other = _structure(model)
            if other != first:
                diff = sorted(key for key in first if first[key] != other[key])
                raise ConfigError(f"model {k} differs from model 0 in {diff}; a stack needs identical models")
        if models[0].score_correction:
            raise ConfigError(
                "score_correction=True is not supported by VAENMFStack (train such models one at a time)"
            )
        ref = models[0]
        self.rng = rng
        self.config = {name: getattr(ref, name) for name in _CONFIG_FIELDS}
        self.n_features, self.rank = ref.n_features, ref.rank
        self.activation = _activation_of(ref)
        linears = [[layer for layer in m.encoder if isinstance(layer, nn.Linear)] for m in models]
        with torch.no_grad():
            # Weights stored transposed, (K, in, out): x @ weight is then a product of contiguous tensors and
            # its weight gradient (x^T @ grad) comes out contiguous in the parameter's own layout, which spares
            # autograd a copy of every weight gradient every step (16% of a step with (K, out, in) weights).
            self.weights = nn.ParameterList(
                [
                    nn.Parameter(torch.stack([ls[i].weight.T for ls in linears]).contiguous())
                    for i in range(len(linears[0]))
                ]
            )
            self.biases = nn.ParameterList(
                [
                    nn.Parameter(torch.stack([ls[i].bias for ls in linears]).unsqueeze(1).clone())
                    for i in range(len(linears[0]))
                ]
            )
            self.head_weight = nn.Parameter(torch.stack([m.head.weight.T for m in models]).contiguous())
            self.head_bias = nn.Parameter(torch.stack([m.head.bias for m in models]).unsqueeze(1).clone())
            self.W = nn.Parameter(torch.stack([m.W for m in models]).clone())
        # What model(k) needs to rebuild a VAENMF (a plain tuple, not the module: a module attribute would be
        # registered as a submodule and its parameters trained along).
        self.hidden = tuple(int(w.shape[2]) for w in self.weights)

    def __len__(self) -> int:
        return int(self.W.shape[0])

    # ------------------------------------------------------------------ per-model views
    def model(self, k: int) -> VAENMF:
        """A standalone :class:`VAENMF` with model ``k``'s parameters (a copy, on this stack's device)."""
        with torch.random.fork_rng(
            devices=[]
        ):  # the throwaway default initialisation must not move the caller's RNG
            model = VAENMF(
                self.n_features,
                self.rank,
                hidden=self.hidden,
                activation=_ACTIVATION_NAMES[type(self.activation).__name__],
                **{k_: v for k_, v in self.config.items() if k_ not in ("n_features", "rank")},
            ).to(device=self.W.device, dtype=self.W.dtype)
        with torch.no_grad():
            new_linears = [layer for layer in model.encoder if isinstance(layer, nn.Linear)]
            for layer, weight, bias in zip(new_linears, self.weights, self.biases, strict=True):
                layer.weight.copy_(weight[k].T)
                layer.bias.copy_(bias[k, 0])
            model.head.weight.copy_(self.head_weight[k].T)
            model.head.bias.copy_(self.head_bias[k, 0])
            model.W.copy_(self.W[k])
        return model

    def dictionary(self) -> Tensor:
        """Every model's nonnegative dictionary ``max(W_k, 0)``, detached, ``(K, m, r)``."""
        return self.W.detach().clamp_min(0.0)

    @torch.no_grad()
    def negative_weight_stats(self, active: int | None = None) -> tuple[Tensor, Tensor]:
        """Per model, the fraction of negative decoder weights and the share of ``sum |w|`` they carry, ``(K,)``."""
        w = self.W.detach()[:active]
        fraction = (w < 0).to(w.dtype).mean(dim=(-2, -1))
        mass = w.clamp_max(0.0).abs().sum(dim=(-2, -1)) / w.abs().sum(dim=(-2, -1)).clamp_min(
            torch.finfo(w.dtype).tiny
        )
        return fraction, mass

    # ------------------------------------------------------------------ the model
    def _first(self, param: Tensor, a: int) -> Tensor:
        """The first ``a`` models' slice of a stacked parameter; the parameter itself when all take part (a
        slice's backward would fill a zero gradient of the full size first)."""
        return param if a == param.shape[0] else param[:a]

    def encode(self, x: Tensor, active: int | None = None) -> tuple[Tensor, Tensor]:
        """Shape and rate of every model's ``q(z | x)`` for its own frames (no input checks: see
        :meth:`encode_checked`).

        Args:
            x: Nonnegative frames, ``x[k]`` for model ``k``.
            active: Only the first ``active`` models (default all).

        Shape:
            - x: ``(A, batch, m)``; alpha, beta: ``(A, batch, r)`` with ``A = active``.
        """
        a = x.shape[0] if active is None else int(active)
        h = torch.log1p(x) if self.config["input_transform"] == "log1p" else x
        for weight, bias in zip(self.weights, self.biases, strict=True):
            h = self.activation(torch.baddbmm(self._first(bias, a), h, self._first(weight, a)))
        raw = torch.baddbmm(self._first(self.head_bias, a), h, self._first(self.head_weight, a))
        raw_alpha, raw_beta = raw.chunk(2, dim=-1)
        return F.softplus(raw_alpha) + self.config["min_shape"], F.softplus(raw_beta) + self.config[
            "min_rate"
        ]

    def decode(self, z: Tensor, active: int | None = None) -> Tensor:
        """Every model's mean ``x_hat = z W^T`` (straight-through ``max(W, 0)`` for Poisson / exponential, as
        :meth:`VAENMF.decode`).

        Shape:
            - z: ``(A, batch, r)``; output ``(A, batch, m)``.
        """
        w = self._first(self.W, z.shape[0] if active is None else int(active))
        if self.config["likelihood"] != "gaussian":
            w = w + (w.clamp_min(0.0) - w).detach()
        return torch.bmm(z, w.transpose(1, 2))

    def neg_log_likelihood(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Per-frame ``-log p(x | z)`` with constants (as :meth:`VAENMF.neg_log_likelihood`).

        Shape:
            - x, x_hat: ``(A, batch, m)``; output: ``(A, batch)``.
        """
        likelihood = self.config["likelihood"]
        if likelihood == "gaussian":
            noise_var = self.config["noise_var"]
            const = 0.5 * self.n_features * math.log(2.0 * math.pi * noise_var)
            return 0.5 / noise_var * (x - x_hat).pow(2).sum(-1) + const
        mean = x_hat.clamp_min(0.0) + self.config["likelihood_floor"]
        if likelihood == "poisson":
            return (mean - x * torch.log(mean) + torch.lgamma(x + 1.0)).sum(-1)
        return (torch.log(mean) + x / mean).sum(-1)

    def losses(
        self,
        x: Tensor,
        counts: Sequence[int] | None = None,
        generators: Sequence[torch.Generator] | torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Every model's loss on its own batch (eq. 4-5), from one posterior sample per frame.

        Args:
            x: ``x[k, :counts[k]]`` is model ``k``'s batch; rows after it are padding (e.g. zeros) and count for
                nothing. Only the first ``A = x.shape[0]`` models take part.
            counts: Frames of each model's batch (default: all ``batch`` rows of every model).
            generators: One generator per model (``rng="per_model"``), or one for all (``"shared"``), or None
                for the default generator.

        Returns:
            Dict of ``(A,)`` tensors, each model's value of what :meth:`VAENMF.forward` returns: ``recon``,
            ``kl`` (means over the model's frames), ``penalty``, ``loss = recon + kl_weight * kl + penalty``,
            ``elbo = -(recon + kl)``.

        Shape:
            - x: ``(A, batch, m)``; outputs ``(A,)``.

        References:
            Xie et al., eq. 4-5 (loss, penalty), eq. 7 (sampler), eq. 8 (KL, corrected).
        """
        a, batch = x.shape[0], x.shape[1]
        counts = [batch] * a if counts is None else [int(c) for c in counts]
        alpha, beta = self.encode(x, active=a)
        z = sample_gamma_stacked(
            alpha,
            beta,
            sampler=self.config["sampler"],
            boost=self.config["boost"],
            counts=counts,
            generators=generators,
        )
        x_hat = self.decode(z, active=a)
        nll = self.neg_log_likelihood(x, x_hat)
        prior_shape = torch.full((), self.config["prior_shape"], dtype=alpha.dtype, device=alpha.device)
        prior_rate = torch.ones((), dtype=alpha.dtype, device=alpha.device)
        kl = kl_gamma(alpha, beta, prior_shape, prior_rate).sum(-1)
        if all(c == batch for c in counts):
            recon, kl_mean = nll.mean(-1), kl.mean(-1)
        else:
            # Padded frames are zeroed (not just down-weighted) so nothing they compute can leak.
            frames = torch.arange(batch, device=x.device)
            count_t = torch.tensor(counts, device=x.device)
            valid = frames.unsqueeze(0) < count_t.unsqueeze(1)
            zero = torch.zeros((), dtype=nll.dtype, device=nll.device)
            denom = count_t.to(nll.dtype)
            recon = torch.where(valid, nll, zero).sum(-1) / denom
            kl_mean = torch.where(valid, kl, zero).sum(-1) / denom
        penalty = (
            0.5
            * self.config["penalty_weight"]
            * self._first(self.W, a).clamp_max(0.0).pow(2).sum(dim=(-2, -1))
        )
        loss = recon + self.config["kl_weight"] * kl_mean + penalty
        return {"recon": recon, "kl": kl_mean, "penalty": penalty, "loss": loss, "elbo": -(recon + kl_mean)}


# ---------------------------------------------------------------------------------------------- sampling
def sample_gamma_stacked(
    alpha: Tensor,
    beta: Tensor,
    sampler: str = "rsvi",
    boost: int | None = None,
    counts: Sequence[int] | None = None,
    generators: Sequence[torch.Generator] | torch.Generator | None = None,
) -> Tensor:
    """Reparameterised Gamma draws for a stack of models, each from its own generator.

    With one generator per model, model ``k``'s draws are exactly those of
    ``sample_gamma(alpha[k, :counts[k]], beta[k, :counts[k]], sampler, boost, generator=generators[k])``:
    the same numbers drawn in the same order (the accept-reject rounds of RSVI draw, per model, for that model's
    still-rejected elements only), while all the arithmetic runs on the stacked tensors. Padded rows (after
    ``counts[k]``) draw nothing and get a finite dummy value.

    Args:
        alpha, beta: Shape and rate, > 0.
        sampler: ``"rsvi"`` (eq. 7, see :func:`vaenmf.models.gamma.sample_gamma_rsvi`) or ``"implicit"``.
        boost: RSVI shape augmentation (see :func:`vaenmf.models.gamma.rsvi_boost`).
        counts: Valid rows of every model (default all).
        generators: One per model, or a single generator for the whole stack, or None.

    Shape:
        - alpha, beta: ``(K, batch, r)``; output: ``(K, batch, r)``.

    References:
        Xie et al., eq. 7; Naesseth et al. 2017; Marsaglia and Tsang 2000.
    """
    K, batch, r = alpha.shape
    counts = [batch] * K if counts is None else [int(c) for c in counts]
    per_model = generators is not None and not isinstance(generators, torch.Generator)
    if per_model and len(generators) < K:  # type: ignore[arg-type]
        raise ConfigError(f"{len(generators)} generators for {K} models")  # type: ignore[arg-type]
    dtype, device = alpha.dtype, alpha.device
    if sampler == "implicit":
        if not per_model:
            return torch.distributions.Gamma(alpha, beta, validate_args=False).rsample(generator=generators)
        rows = []
        for k in range(K):
            c = counts[k]
            z_k = torch.distributions.Gamma(alpha[k, :c], beta[k, :c], validate_args=False).rsample(
                generator=generators[k]  # type: ignore[index]
            )
            if c < batch:
                z_k = torch.cat([z_k, torch.ones(batch - c, r, dtype=dtype, device=device)])
            rows.append(z_k)
        return torch.stack(rows)
    if sampler != "rsvi":
        raise ConfigError(f"unknown Gamma sampler {sampler!r}; expected 'rsvi' or 'implicit'")

    boost_b = rsvi_boost(alpha, boost)
    shape_a = alpha + boost_b
    per = batch * r
    d_flat = (shape_a.detach() - 1.0 / 3.0).reshape(-1)
    eps_flat = torch.zeros(K * per, dtype=dtype, device=device)
    sizes = [c * r for c in counts]
    if all(s == per for s in sizes):
        pending = torch.arange(K * per, device=device)
    else:
        pending = torch.cat([k * per + torch.arange(s, device=device) for k, s in enumerate(sizes)])
    tiny = torch.finfo(dtype).tiny
    for _ in range(1000):
        if pending.numel() == 0:
            break
        # One randn and then one rand per model and round, as sample_gamma_rsvi draws them; `pending` is sorted
        # by model, so concatenating the models' draws in model order lines them up with it.
        if per_model:
            eps_parts, u_parts = [], []
            for k, size in enumerate(sizes):
                if size:
                    g = generators[k]  # type: ignore[index]
                    eps_parts.append(torch.randn(size, generator=g, dtype=dtype, device=device))
                    u_parts.append(torch.rand(size, generator=g, dtype=dtype, device=device))
            eps, u = torch.cat(eps_parts), torch.cat(u_parts)
        else:
            eps = torch.randn(pending.numel(), generator=generators, dtype=dtype, device=device)
            u = torch.rand(pending.numel(), generator=generators, dtype=dtype, device=device)
        d = d_flat[pending]
        accept = marsaglia_tsang_accept(eps, u, d)
        eps_flat[pending[accept]] = eps[accept]
        pending = pending[~accept]
        if per_model:
            sizes = torch.bincount(pending // per, minlength=K).tolist() if pending.numel() else [0] * K
    else:  # pragma: no cover - only reachable with corrupted inputs
        raise RuntimeError("Gamma accept-reject did not finish after 1000 rounds")
    eps_acc = eps_flat.reshape(K, batch, r)

    log_z = rsvi_log_h(eps_acc, shape_a)
    if per_model:
        n_boosts = [int(boost_b[k, : counts[k]].max()) if counts[k] else 0 for k in range(K)]
    else:
        n_boosts = [int(boost_b.max())] if boost_b.numel() else [0]
    n_boost = max(n_boosts)
    if n_boost > 0:
        if per_model:
            # 1 where a model draws nothing (its unused steps, its padding): log 1 = 0 adds nothing.
            u_aug = torch.ones((n_boost, K, batch, r), dtype=dtype, device=device)
            for k, nb in enumerate(n_boosts):
                if nb and counts[k]:
                    u_aug[:nb, k, : counts[k]] = torch.rand(
                        (nb, counts[k], r),
                        generator=generators[k],  # type: ignore[index]
                        dtype=dtype,
                        device=device,
                    ).clamp_min(tiny)
        else:
            u_aug = torch.rand(
                (n_boost, K, batch, r), generator=generators, dtype=dtype, device=device
            ).clamp_min(tiny)
        steps = torch.arange(n_boost, dtype=dtype, device=device).reshape(n_boost, 1, 1, 1)
        used = steps < boost_b.unsqueeze(0)
        log_z = log_z + (torch.where(used, torch.log(u_aug), 0.0) / (alpha.unsqueeze(0) + steps)).sum(0)
    return torch.exp(log_z - torch.log(beta))


# ---------------------------------------------------------------------------------------------- training
@dataclass
class StackedVAENMFResult:
    """``K`` trained VAE-NMF models, in the order their data were given.

    Attributes:
        dictionaries: ``max(W_k, 0)`` with columns normalised as asked (what ``VAENMFSystem.dictionary()``
            hands on), ``(K, m, r)`` on the CPU.
        stack: The trained :class:`VAENMFStack` (on the CPU, eval mode); ``stack.model(k)`` is model ``k``
            as a standalone :class:`VAENMF`.
        history: Per-epoch frame-weighted means of :data:`EPOCH_METRICS` for every model, ``(K, epochs, 7)``.
        epochs: Epochs trained.
        steps: Adam steps each model took, ``(K,)``.
        timings: Per stack (chunk of models), its set-up and per-epoch wall and CPU seconds and the process
            that trained it (``pid``), for logs and benchmarks; :meth:`training_time` sums them per process.
    """

    dictionaries: Tensor
    stack: VAENMFStack
    history: Tensor
    epochs: int
    steps: Tensor
    timings: list[dict[str, Any]] = field(default_factory=list)
    metric_names: tuple[str, ...] = EPOCH_METRICS

    def __len__(self) -> int:
        return int(self.dictionaries.shape[0])

    def decoders(self) -> Tensor:
        """``max(W_k, 0)`` unnormalised: the decoders the posterior activations go with, ``(K, m, r)``."""
        return self.stack.dictionary()

    def model(self, k: int) -> VAENMF:
        """Model ``k`` as a standalone :class:`VAENMF` (a copy)."""
        return self.stack.model(k)

    def training_time(self) -> dict[str, Any]:
        """The wall time the epochs took: per process, the sum over the stacks it trained one after the other;
        over processes (``workers > 1`` trains stacks side by side), the longest.

        Returns:
            ``epochs``: the most epochs a stack trained in this call; ``seconds``: the slowest process's time in
            epochs (set-up excluded); ``per_epoch_seconds``: that process's sum over its stacks of each stack's
            median epoch after the first (the cost of one more epoch of every stack, also after a resume, where
            stacks may have trained different numbers of epochs); ``processes``: how many trained stacks;
            ``worker_cpu_seconds`` and ``worker_peak_rss_mb``: the worker processes' CPU time (all of it) and
            largest peak resident memory (0 without workers).
        """
        per_process: dict[Any, dict[str, float]] = {}
        for t in self.timings:
            epochs = list(t["epoch_seconds"])
            entry = per_process.setdefault(t.get("pid"), {"seconds": 0.0, "per_epoch_seconds": 0.0})
            entry["seconds"] += float(sum(epochs))
            steady = epochs[1:] or epochs
            entry["per_epoch_seconds"] += float(np.median(steady)) if steady else 0.0
        slowest = max(per_process.values(), key=lambda e: e["seconds"], default=None)
        workers = [t for t in self.timings if t.get("worker")]
        return {
            "epochs": max((int(t["epochs_trained"]) for t in self.timings), default=0),
            "seconds": 0.0 if slowest is None else slowest["seconds"],
            "per_epoch_seconds": 0.0 if slowest is None else slowest["per_epoch_seconds"],
            "processes": len(per_process),
            # What the caller's own clock cannot see: the worker processes' CPU time and peak memory.
            "worker_cpu_seconds": float(sum(float(t.get("cpu_seconds", 0.0)) for t in workers)),
            "worker_peak_rss_mb": max((float(t.get("peak_rss_mb", 0.0)) for t in workers), default=0.0),
        }

    @torch.no_grad()
    def posterior(
        self, X: Sequence[Tensor | np.ndarray], batch_frames: int = 4096
    ) -> list[tuple[Tensor, Tensor]]:
        """Every model's ``q(z | x)`` (shape, rate) for the columns of its own matrix, in one batched pass.

        The posterior mean reconstruction of problem ``k`` is ``decoders()[k] @ (alpha / beta)``; a posterior
        sample is ``decoders()[k] @ z`` with ``z ~ Gamma(alpha, beta)``.

        Args:
            X: One nonnegative ``(m, n_k)`` matrix per model (e.g. its training or held-out repetitions).
            batch_frames: Frames per model per pass (bounds the memory of the hidden activations).

        Returns:
            ``[(alpha_k, beta_k)]``, each ``(r, n_k)`` on the CPU.

        Shape:
            X: ``[(m, n_k)] * K``; returns ``[((r, n_k), (r, n_k))] * K``.
        """
        problems = as_problems(X, dtype=self.stack.W.dtype, device=self.stack.W.device)
        if len(problems) != len(self):
            raise DataError(f"posterior got {len(problems)} matrices for {len(self)} models")
        if problems[0].shape[0] != self.stack.n_features:
            raise DataError(f"X[0] has {problems[0].shape[0]} rows; the models take {self.stack.n_features}")
        lengths = [int(p.shape[1]) for p in problems]
        n_max = max(lengths)
        frames = torch.zeros(len(self), n_max, self.stack.n_features, dtype=self.stack.W.dtype)
        for k, p in enumerate(problems):
            frames[k, : lengths[k]] = p.T
        alphas, betas = [], []
        for start in range(0, n_max, batch_frames):
            alpha, beta = self.stack.encode(frames[:, start : start + batch_frames])
            alphas.append(alpha)
            betas.append(beta)
        alpha, beta = torch.cat(alphas, 1), torch.cat(betas, 1)
        return [
            (alpha[k, : lengths[k]].T.contiguous(), beta[k, : lengths[k]].T.contiguous())
            for k in range(len(self))
        ]


@dataclass
class _Chunk:
    """The training state of one stack of models (a chunk of the problems), everything a resume needs."""

    index: list[int]  # input positions of the chunk's models, most batches first
    stack: VAENMFStack
    exp_avg: list[Tensor]
    exp_avg_sq: list[Tensor]
    steps: list[Tensor]  # one 0-d float32 step count per model (the fused Adam's state_steps)
    data_generators: list[torch.Generator]
    sample_generators: list[torch.Generator] | torch.Generator
    epoch: int = 0
    history: list[Tensor] = field(default_factory=list)


def _fingerprint(problems: Sequence[Tensor], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in problems:
        digest.update(str(tuple(p.shape)).encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


_LAYOUT = "stacks.json"


def _stack_layout(checkpoint_dir: Path, fingerprint: str, default: int) -> int:
    """The models per stack of the fit that wrote ``checkpoint_dir`` (same data and settings), else ``default``,
    which is then recorded there for the next attempt."""
    path = checkpoint_dir / _LAYOUT
    try:
        recorded = json.loads(path.read_text())
        if recorded.get("fingerprint") == fingerprint and int(recorded["chunk_size"]) >= 1:
            return int(recorded["chunk_size"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{_LAYOUT}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "chunk_size": int(default)}))
    os.replace(tmp, path)
    return int(default)


def _generator_states(generators: Sequence[torch.Generator] | torch.Generator) -> list[Tensor]:
    if isinstance(generators, torch.Generator):
        return [generators.get_state()]
    return [g.get_state() for g in generators]


def _save_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _chunk_payload(chunk: _Chunk, fingerprint: str, done: bool) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "index": chunk.index,
        "epoch": chunk.epoch,
        "done": done,
        "stack": {k: v.detach().cpu() for k, v in chunk.stack.state_dict().items()},
        "exp_avg": [t.cpu() for t in chunk.exp_avg],
        "exp_avg_sq": [t.cpu() for t in chunk.exp_avg_sq],
        "steps": [t.cpu() for t in chunk.steps],
        "data_generators": _generator_states(chunk.data_generators),
        "sample_generators": _generator_states(chunk.sample_generators),
        "history": [h.cpu() for h in chunk.history],
    }


def _restore(chunk: _Chunk, payload: dict[str, Any]) -> None:
    device = chunk.stack.W.device
    chunk.stack.load_state_dict(payload["stack"])
    for dst, src in zip(
        chunk.exp_avg + chunk.exp_avg_sq, payload["exp_avg"] + payload["exp_avg_sq"], strict=True
    ):
        dst.copy_(src.to(device))
    for dst, src in zip(chunk.steps, payload["steps"], strict=True):
        dst.copy_(src)
    for g, state in zip(chunk.data_generators, payload["data_generators"], strict=True):
        g.set_state(state)
    gens = chunk.sample_generators
    for g, state in zip(
        [gens] if isinstance(gens, torch.Generator) else gens, payload["sample_generators"], strict=True
    ):
        g.set_state(state)
    chunk.epoch = int(payload["epoch"])
    chunk.history = list(payload["history"])


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def fit_vae_nmf_stack(
    X: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray,
    rank: int,
    max_epochs: int = 150,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 5e-4,
    betas: tuple[float, float] = (0.9, 0.999),
    adam_eps: float = 1e-8,
    seeds: int | Sequence[int] = 0,
    init_from_data: bool = True,
    normalize: str = "l2",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    rng: str = "per_model",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = False,
    epoch_callback: Callable[[int, int, Tensor], None] | None = None,
    workers: int = 1,
    **model_kwargs: Any,
) -> StackedVAENMFResult:
    """Train one VAE-NMF per data matrix, all at once; each as a separate ``VAENMFSystem`` fit would train it.

    Model ``k`` is :func:`new_vae_nmf` with ``seeds[k]`` (construction after seeding), its dictionary reset to
    the scale of its first batch (``init_from_data``, generator seeded with ``seeds[k]``), and trained for
    ``max_epochs`` epochs of shuffled mini-batches of its own frames (batch order from a generator seeded with
    ``seeds[k]``, as ``MatrixDataModule``), by Adam with the paper's settings on its own loss (eq. 4-5).

    Args:
        X: One nonnegative ``(m, n_k)`` matrix per model (lengths may differ), or a ``(K, m, n)`` tensor.
        rank: ``r``, the number of atoms of every model (``r <= min(m, n_k)``).
        max_epochs: Epochs (every model sees all its frames once per epoch).
        batch_size: Frames per batch (the paper: 128); the last batch of an epoch may be smaller.
        lr, weight_decay, betas, adam_eps: Adam (the paper: lr 1e-3, weight decay 5e-4; L2 weight decay added
            to the gradient, as ``torch.optim.Adam``).
        seeds: One seed for every model, or one per model.
        init_from_data: Rescale each initial ``W`` to its first batch (``VAENMF.reset_dictionary``).
        normalize: Column norm of the dictionaries returned (``"l2"``, ``"l1"`` or ``"none"``).
        device: Where to train (default CPU). The same code runs on CUDA.
        dtype: Parameter dtype (float32; float64 for exactness tests).
        chunk_size: Models per stack; stacks are trained one after the other. Default: all on a GPU,
            :func:`default_chunk_size` on the CPU (:data:`CPU_CHUNK`, balanced over ``workers``; a resumed fit
            keeps the size its checkpoints were written with). With ``rng="per_model"`` results do not depend
            on it.
        rng: :data:`RNG_MODES`.
        checkpoint_dir: If given, each stack's state is saved there every ``checkpoint_every`` epochs and when it
            is done (``stack_<i>.pt``, written atomically), and a call with the same data and settings resumes
            from what it finds (a file from other data or settings is ignored, with a warning).
        checkpoint_every: Epochs between checkpoints.
        progress: Show a progress bar over epochs.
        epoch_callback: Called after every epoch as ``f(stack_index, epoch, means)`` with ``means`` the
            ``(K_stack, 7)`` epoch metrics (for logging; only with ``workers=1``).
        workers: CPU processes that train stacks in parallel, one torch thread each (spawned; results are
            identical to ``workers=1``, every stack being independent). On a machine whose cores are shared
            with other jobs, processes degrade gracefully where a multi-threaded stack does not: a thread
            pool spin-waits at every product for siblings that are descheduled (measured with 2 threads on a
            loaded 2-core machine: 14.9 ms per model-step against 3.2 ms with one thread).
        **model_kwargs: :class:`VAENMF` options (``hidden``, ``likelihood``, ``noise_var``, ``sampler``,
            ``boost``, ``prior_shape``, ``penalty_weight``, ...), the same for every model.

    Returns:
        :class:`StackedVAENMFResult`.

    Raises:
        DataError: Bad data (see :func:`vaenmf.nmf.batched.as_problems`), a rank too large for some problem.
        ConfigError: Bad settings or model options.

    Shape:
        X: ``[(m, n_k)] * K``; returns dictionaries ``(K, m, r)``.

    References:
        Xie et al., eq. 4-8 and sec. 3 (Adam settings); Kingma and Ba 2015.
    """
    problems = as_problems(X, dtype=dtype)
    K = len(problems)
    for k, p in enumerate(problems):
        check_rank(rank, tuple(p.shape), name=f"X[{k}]")
    max_epochs = _positive_int(max_epochs, "max_epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
    if chunk_size is not None:
        chunk_size = _positive_int(chunk_size, "chunk_size")
    if rng not in RNG_MODES:
        raise ConfigError(f"unknown rng {rng!r}; expected one of {list(RNG_MODES)}")
    if normalize not in ("l2", "l1", "none"):
        raise ConfigError(f"normalize must be 'l2', 'l1' or 'none', got {normalize!r}")
    if not (math.isfinite(lr) and lr > 0) or not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ConfigError(
            f"lr must be > 0 and weight_decay >= 0, got lr={lr!r}, weight_decay={weight_decay!r}"
        )
    seed_list = [int(seeds)] * K if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if len(seed_list) != K:
        raise DataError(f"seeds has {len(seed_list)} entries for {K} problems")
    if "hidden" in model_kwargs:
        model_kwargs["hidden"] = tuple(int(h) for h in model_kwargs["hidden"])
    device = torch.device("cpu" if device is None else device)
    workers = _positive_int(workers, "workers")
    lengths = [int(p.shape[1]) for p in problems]
    n_batches = [math.ceil(n / batch_size) for n in lengths]
    settings = {
        "rank": int(rank),
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "betas": list(betas),
        "adam_eps": adam_eps,
        "seeds": seed_list,
        "init_from_data": init_from_data,
        "dtype": str(dtype),
        "rng": rng,
        "model": model_kwargs,
    }
    # The data and settings hashed once; each stack's checkpoint is keyed by them and the stack size.
    data_key = _fingerprint(problems, settings) if checkpoint_dir is not None else ""
    if chunk_size is None:
        chunk_size = K if device.type != "cpu" else default_chunk_size(K, workers)
        if checkpoint_dir is not None:
            # A resumed fit keeps the stacks its checkpoints were written for, whatever the worker count now
            # (the default size follows the workers, and the job's CPUs may differ between attempts).
            chunk_size = _stack_layout(Path(checkpoint_dir), data_key, chunk_size)
    fingerprint = (
        hashlib.sha256(f"{data_key}:{chunk_size}".encode()).hexdigest()[:24]
        if checkpoint_dir is not None
        else ""
    )
    # Most batches first (ties in input order): the models that take part in a step are then a prefix.
    order = sorted(range(K), key=lambda k: -n_batches[k])
    chunks = [order[i : i + chunk_size] for i in range(0, K, chunk_size)]

    if workers > 1 and device.type != "cpu":
        raise ConfigError(f"workers > 1 runs CPU processes; on {device} use workers=1 (one stack per device)")
    if workers > 1 and epoch_callback is not None:
        raise ConfigError("epoch_callback needs workers=1 (a callback cannot run in the worker processes)")
    tasks = [
        {
            "problems": [problems[k] for k in index],
            "index": index,
            "stack_index": ci,
            "stacks": len(chunks),
            "rank": int(rank),
            "seeds": [seed_list[k] for k in index],
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "adam": (lr, weight_decay, tuple(betas), adam_eps),
            "device": device,
            "dtype": dtype,
            "rng": rng,
            "init_from_data": init_from_data,
            "model_kwargs": model_kwargs,
            "checkpoint": None
            if checkpoint_dir is None
            else (Path(checkpoint_dir) / f"stack_{ci:04d}.pt", fingerprint, checkpoint_every),
        }
        for ci, index in enumerate(chunks)
    ]
    if workers > 1 and len(tasks) > 1:
        results = _fit_in_processes(tasks, workers, progress)
    else:
        results = [
            _fit_chunk(
                task,
                progress=progress,
                callback=None
                if epoch_callback is None
                else (lambda e, means, ci=task["stack_index"]: epoch_callback(ci, e, means)),
            )
            for task in tasks
        ]

    slots: list[tuple[int, int]] = [(0, 0)] * K
    histories: list[Tensor] = [torch.empty(0)] * K
    steps_out = torch.zeros(K, dtype=torch.int64)
    for ci, (index, result) in enumerate(zip(chunks, results, strict=True)):
        for j, k in enumerate(index):
            slots[k] = (ci, j)
            histories[k] = result["history"][j]
            steps_out[k] = int(result["steps"][j])
    template, _ = new_vae_nmf(int(problems[0].shape[0]), int(rank), 0, **model_kwargs)
    final = _merge(template.to(dtype), [r["state"] for r in results], slots, rng)
    W = final.dictionary()
    dictionaries = W.clone() if normalize == "none" else normalize_dictionary(W, norm=normalize)[0]
    return StackedVAENMFResult(
        dictionaries=dictionaries,
        stack=final,
        history=torch.stack(histories),
        epochs=max_epochs,
        steps=steps_out,
        timings=[r["timing"] for r in results],
    )


def _fit_chunk(
    task: dict[str, Any],
    progress: bool = False,
    callback: Callable[[int, Tensor], None] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one stack (a chunk of the problems) from scratch or from its checkpoint; returns its final state
    (CPU), per-model history and step counts, and its timings. A top-level function, so that worker processes
    can run it."""
    if threads:  # a worker process of its own: tune it for training
        torch.set_num_threads(int(threads))
        retain_freed_memory()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    path, fingerprint, every = task["checkpoint"] or (None, "", 1)
    payload = _load(path, fingerprint) if path is not None and path.is_file() else None
    chunk = _new_chunk(
        task["problems"],
        task["index"],
        task["rank"],
        task["seeds"],
        task["batch_size"],
        task["device"],
        task["dtype"],
        task["rng"],
        task["init_from_data"] and payload is None,
        task["model_kwargs"],
    )
    if payload is not None:
        _restore(chunk, payload)
        if threads and _EPOCHS_DONE is not None:
            # A worker's logging goes nowhere: the parent says it now, and counts the checkpoint's epochs as done.
            _EPOCHS_DONE.put(("resumed", int(task["stack_index"]), int(chunk.epoch), str(path)))
        else:
            log.info(_RESUMING, task["stack_index"], chunk.epoch, path)
    lr, weight_decay, betas, adam_eps = task["adam"]
    timing = {
        "setup_seconds": time.perf_counter() - start_wall,
        "setup_cpu_seconds": time.process_time() - start_cpu,
    }
    epoch_wall: list[float] = []
    epoch_cpu: list[float] = []
    marks = [time.perf_counter(), time.process_time()]

    def timed_callback(epoch: int, means: Tensor) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        epoch_wall.append(wall - marks[0])
        epoch_cpu.append(cpu - marks[1])
        marks[0], marks[1] = wall, cpu
        if callback is not None:
            callback(epoch, means)
        if threads and _EPOCHS_DONE is not None:  # a worker process: the parent's bar
            _EPOCHS_DONE.put(("epochs", 1))

    _train_chunk(
        chunk,
        task["problems"],
        task["max_epochs"],
        task["batch_size"],
        lr,
        weight_decay,
        betas,
        adam_eps,
        progress=progress,
        description=f"vae_nmf stack {task['stack_index'] + 1}/{task['stacks']}",
        checkpoint=None if path is None else (path, fingerprint, every),
        callback=timed_callback,
    )
    stack = chunk.stack.cpu()
    history = (
        torch.stack(chunk.history, dim=1)
        if chunk.history
        else torch.empty(len(task["index"]), 0, len(EPOCH_METRICS))
    )
    timing.update(
        epochs_trained=len(epoch_wall),
        epoch_seconds=epoch_wall,
        epoch_cpu_seconds=epoch_cpu,
        seconds=time.perf_counter() - start_wall,
        cpu_seconds=time.process_time() - start_cpu,
        models=len(task["index"]),
        pid=os.getpid(),
        worker=bool(threads),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    return {
        "state": {k: v.detach().clone() for k, v in stack.state_dict().items()},
        "history": history,
        "steps": [int(s.item()) for s in chunk.steps],
        "timing": timing,
    }


_RESUMING = "VAE-NMF stack %d: resuming at epoch %d from %s"


#: In a stack worker process: where it reports to the parent (each finished epoch for the one progress bar,
#: a resume for the log).
_EPOCHS_DONE: Any = None


def _init_worker(parent: int, epochs_done: Any = None) -> None:
    """A stack worker dies with the job that spawned it, so a killed or requeued job leaves no orphan that goes
    on writing the checkpoints its next attempt resumes from: on Linux by a parent-death signal (at once), on
    every platform by a thread that exits the worker within a second of its parent's death. Ctrl-C is the
    parent's to handle (it stops the workers), not every worker's to print. ``epochs_done``: the queue the
    worker reports its epochs and resumes on."""
    global _EPOCHS_DONE
    _EPOCHS_DONE = epochs_done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    import threading

    threading.Thread(target=watch, name="vaenmf-parent-watch", daemon=True).start()


def _fit_in_processes(tasks: Sequence[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Run :func:`_fit_chunk` for every task in ``workers`` spawned processes, one torch thread each.

    If anything goes wrong in the parent (Ctrl-C, a worker's error, a crashed worker), the other workers are
    stopped at once rather than waited for; their stacks resume from their last checkpoint next time.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # One bar over every stack's epochs (the workers report each epoch), not one tick per finished stack:
        # on Ninapro DB1 a stack takes many minutes.
        total = sum(int(task["max_epochs"]) for task in tasks)
        bar = tqdm(total=total, desc=f"vae_nmf {len(tasks)} stacks", unit="epoch", leave=False)
    epochs_done = ctx.SimpleQueue()
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(), epochs_done),
    )

    def drain() -> None:
        done = 0
        while not epochs_done.empty():
            message = epochs_done.get()
            if message[0] == "resumed":
                _, stack_index, epoch, path = message
                log.info(_RESUMING, stack_index, epoch, path)
                done += int(epoch)
            else:
                done += int(message[1])
        if done and bar is not None:
            bar.update(done)

    try:
        futures = {pool.submit(_fit_chunk, task, False, None, 1): i for i, task in enumerate(tasks)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            drain()
            for future in finished:
                results[futures[future]] = future.result()
        drain()
    except BaseException:
        # shutdown() alone would wait for the running stacks (minutes); stop their processes instead.
        kill_workers = getattr(pool, "kill_workers", None)  # Python >= 3.14
        if kill_workers is not None:
            kill_workers()
        else:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        epochs_done.close()
        if bar is not None:
            bar.close()
    return results  # type: ignore[return-value]


@torch.no_grad()
def _merge(
    template: VAENMF, states: Sequence[dict[str, Tensor]], slots: Sequence[tuple[int, int]], rng: str
) -> VAENMFStack:
    """One stack, in input order: model ``k`` is model ``slots[k][1]`` of the stack whose state is
    ``states[slots[k][0]]`` (parameters copied)."""
    merged = VAENMFStack([template] * len(slots), rng=rng)
    for name, param in merged.named_parameters():
        param.copy_(torch.stack([states[s][name][j] for s, j in slots]))
    return merged.eval()


def _load(path: Path, fingerprint: str, quiet: bool = False) -> dict[str, Any] | None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a corrupt checkpoint is refitted, not fatal
        if not quiet:
            log.warning("ignoring unreadable VAE-NMF stack checkpoint %s (%s)", path, err)
        return None
    if payload.get("fingerprint") != fingerprint:
        if not quiet:
            log.warning("ignoring %s: it was written for other data or settings", path)
        return None
    return payload


def _new_chunk(
    problems: Sequence[Tensor],
    index: list[int],
    rank: int,
    seeds: Sequence[int],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
    rng: str,
    init_from_data: bool,
    model_kwargs: dict[str, Any],
) -> _Chunk:
    m = int(problems[0].shape[0])
    models, sample_generators, data_generators = [], [], []
    first_perms = []
    for p, seed in zip(problems, seeds, strict=True):
        try:
            model, sample_gen = new_vae_nmf(m, rank, seed, device=device, **model_kwargs)
        except TypeError as err:
            raise ConfigError(f"fit_vae_nmf_stack got an unknown model option: {err}") from None
        model = model.to(device=device, dtype=dtype)
        data_gen = torch.Generator().manual_seed(int(seed))
        first_perms.append(epoch_permutation(data_gen, int(p.shape[1])))
        if init_from_data:
            # VAENMFSystem's first training step: the dictionary at the scale of the model's first batch.
            batch = p.T[first_perms[-1][:batch_size]].to(device=device, dtype=dtype)
            model.reset_dictionary(batch, generator=torch.Generator(device=device).manual_seed(int(seed)))
        models.append(model)
        sample_generators.append(sample_gen)
        data_generators.append(data_gen)
    stack = VAENMFStack(models, rng=rng).to(device)
    shared = torch.Generator(device=device).manual_seed(int(seeds[0]))
    params = list(stack.parameters())
    chunk = _Chunk(
        index=index,
        stack=stack,
        exp_avg=[torch.zeros_like(p) for p in params],
        exp_avg_sq=[torch.zeros_like(p) for p in params],
        steps=[torch.zeros((), dtype=torch.float32, device=device) for _ in problems],
        data_generators=data_generators,
        sample_generators=sample_generators if rng == "per_model" else shared,
    )
    chunk._first_perms = first_perms  # type: ignore[attr-defined]
    return chunk


def _train_chunk(
    chunk: _Chunk,
    problems: Sequence[Tensor],
    max_epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    adam_eps: float,
    progress: bool,
    description: str,
    checkpoint: tuple[Path, str, int] | None,
    callback: Callable[[int, Tensor], None] | None,
) -> None:
    stack = chunk.stack
    device, dtype = stack.W.device, stack.W.dtype
    K = len(problems)
    m = int(problems[0].shape[0])
    lengths = [int(p.shape[1]) for p in problems]
    n_max = max(lengths)
    n_batches = [math.ceil(n / batch_size) for n in lengths]
    steps_per_epoch = max(n_batches)
    # Frames of every model with one zero frame at index n_max for the padding of short batches.
    frames = torch.zeros(K, n_max + 1, m, dtype=dtype, device=device)
    for k, p in enumerate(problems):
        frames[k, : lengths[k]] = p.T.to(device=device, dtype=dtype)
    params = list(stack.parameters())
    # Per-model views of the parameters and of the Adam state, built once per number `a` of models taking
    # part: the fused Adam takes one tensor per model and parameter, each with its model's step count.
    # Gradients are left to autograd every step (set to None, not zeroed: a zero fill of every gradient was a
    # quarter of a step's time), so their views are taken per step.
    views: dict[int, tuple[list[Tensor], ...]] = {}

    def adam_lists(a: int) -> tuple[list[Tensor], ...]:
        if a not in views:
            views[a] = (
                [p[k] for p in params for k in range(a)],
                [e[k] for e in chunk.exp_avg for k in range(a)],
                [e[k] for e in chunk.exp_avg_sq for k in range(a)],
                [chunk.steps[k] for _ in params for k in range(a)],
            )
        return views[a]

    first_perms: list[Tensor] | None = getattr(chunk, "_first_perms", None)
    epochs = range(chunk.epoch, max_epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, initial=chunk.epoch, desc=description, unit="epoch", leave=False)
    sample_generators = chunk.sample_generators
    for epoch in epochs:
        if epoch == 0 and first_perms is not None:
            perms = first_perms
        else:
            perms = [epoch_permutation(g, n) for g, n in zip(chunk.data_generators, lengths, strict=True)]
        index = torch.full((K, steps_per_epoch * batch_size), n_max, dtype=torch.int64)
        for k, perm in enumerate(perms):
            index[k, : lengths[k]] = perm
        index = index.to(device)
        sums = torch.zeros(K, len(EPOCH_METRICS), dtype=torch.float64, device=device)
        for j in range(steps_per_epoch):
            a = sum(1 for nb in n_batches if nb > j)
            counts = [min(batch_size, lengths[k] - j * batch_size) for k in range(a)]
            idx = index[:a, j * batch_size : (j + 1) * batch_size]
            x = torch.gather(frames[:a], 1, idx.unsqueeze(-1).expand(a, idx.shape[1], m))
            for p in params:
                p.grad = None
            out = stack.losses(x, counts, sample_generators)
            out["loss"].sum().backward()
            with torch.no_grad():
                # Recorded as VAENMFSystem logs them: the step's loss terms and the weights before the step.
                fraction, mass = stack.negative_weight_stats(a)
                values = torch.stack(
                    [out["loss"], out["recon"], out["kl"], out["penalty"], fraction, mass, out["elbo"]], dim=1
                ).detach()
                weight = torch.tensor(counts, dtype=torch.float64, device=device).unsqueeze(1)
                sums[:a] += values.double() * weight
            ps, ms, vs, st = adam_lists(a)
            gs = [p.grad[k] for p in params for k in range(a)]
            torch._foreach_add_(chunk.steps[:a], 1.0)
            # Adam per model slice: each slice has its model's own step count (bias corrections), and models
            # without a batch in this step (after the first `a`) are left alone, state and step count included.
            torch._fused_adam_(
                ps,
                gs,
                ms,
                vs,
                [],
                st,
                lr=lr,
                beta1=betas[0],
                beta2=betas[1],
                weight_decay=weight_decay,
                eps=adam_eps,
                amsgrad=False,
                maximize=False,
            )
        means = (sums / torch.tensor(lengths, dtype=torch.float64, device=device).unsqueeze(1)).cpu()
        if not bool(torch.isfinite(means[:, 0]).all()):
            bad = [chunk.index[k] for k in range(K) if not math.isfinite(float(means[k, 0]))]
            raise DataError(
                f"VAE-NMF training diverged (non-finite loss) at epoch {epoch} for problems {bad}"
            )
        chunk.history.append(means)
        chunk.epoch = epoch + 1
        if callback is not None:
            callback(epoch, means)
        if bar is not None:
            bar.update(1)
        if checkpoint is not None:
            path, fingerprint, every = checkpoint
            done = chunk.epoch >= max_epochs
            if done or chunk.epoch % every == 0:
                _save_atomic(path, _chunk_payload(chunk, fingerprint, done))
    if bar is not None:
        bar.close()
    for p in params:
        p.grad = None
    chunk._first_perms = None  # type: ignore[attr-defined]
