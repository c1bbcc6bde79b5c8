"""VAE-NMF: a variational autoencoder whose decoder is a nonnegative dictionary (Xie et al.).

Generative model, for one frame ``x`` (``m`` features) and ``r`` latent activations:

* prior ``p(z) = prod_k Gamma(z_k | alpha0, 1)`` (eq. 6, with the power ``z^(alpha0 - 1)`` the paper drops);
* likelihood ``p(x | z)`` with mean ``W z`` (Gaussian, Poisson or exponential, see :data:`LIKELIHOODS`);
* encoder ``q(z | x) = prod_k Gamma(z_k | alpha_k(x), beta_k(x))`` (shape, *rate*), an MLP;

trained on the loss of eq. 4-5, ``-E_q[log p(x|z)] + KL(q || p) + gamma/2 sum_ij min(w_ij, 0)^2``, with
``z`` drawn by the reparameterised Gamma sampler of eq. 7 (:mod:`vaenmf.models.gamma`).

The loss is assembled from small pure functions (:func:`nonnegativity_penalty`, :func:`negative_weight_stats`)
so that another trainer (e.g. one that fits many models at once) computes exactly the same loss and statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaenmf.errors import ConfigError, DataError
from vaenmf.models.gamma import SAMPLERS, kl_gamma, rsvi_boost, sample_gamma, sample_gamma_rsvi
from vaenmf.validation import as_nonnegative_tensor, check_choice, check_int, check_number, check_rank

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_PENALTY_WEIGHT",
    "INPUT_TRANSFORMS",
    "LIKELIHOODS",
    "VAENMF",
    "negative_weight_stats",
    "nonnegativity_penalty",
]

#: Observation models ``p(x | z)`` with mean ``x_hat = W z``.
LIKELIHOODS: tuple[str, ...] = ("gaussian", "poisson", "exponential")
#: Transforms applied to the encoder's input only (the likelihood always sees the raw data).
INPUT_TRANSFORMS: tuple[str, ...] = ("log1p", "none")
#: Hidden-layer activations of the encoder MLP.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}
#: ``gamma`` of eq. 4 at the per-frame scale of :func:`nonnegativity_penalty` (chosen on held-out data, README
#: "Choices measured"; ``conf/dictionary/vae_nmf.yaml`` sets the same value).
DEFAULT_PENALTY_WEIGHT: float = 1.0e4


def nonnegativity_penalty(W: Tensor, weight: float) -> Tensor:
    """The nonnegativity penalty of eq. 4-5, ``gamma / 2 * sum_ij min(w_ij, 0)^2``, at the per-frame scale.

    Scale against the data term. Eq. 4 is the loss of one data point ``x``:
    ``L(x) = -g(x) + gamma/2 sum_ij f(w_ij)`` with ``g`` the ELBO of eq. 3. Over a data set of ``N`` frames the
    objective is ``sum_n L(x_n) = N * [ (1/N) sum_n -g(x_n) + gamma/2 sum_ij f(w_ij) ]``, so the quantity to
    minimise, per frame, is

        ``J = (1/N) sum_n -g(x_n) + gamma/2 sum_ij min(w_ij, 0)^2``,

    and a mini-batch ``B`` estimates it without bias by ``(1/|B|) sum_{b in B} -g(x_b) + gamma/2 sum_ij
    min(w_ij, 0)^2``: the ELBO is a **mean over the batch's frames** and this penalty is added **once per step,
    unscaled** (not times ``|B|/N``). ``gamma`` therefore weighs the penalty against the loss of one frame
    (about 200-500 nats for a 257-bin magnitude spectrum under the Gaussian likelihood), whatever the batch size
    and the number of frames. This is the paper's eq. 4 taken literally, and the convention of the loss it cites
    (Hosseini-Asl et al. 2016: mean reconstruction error over samples plus ``alpha/2 sum f(w)``).

    The alternative reading, the penalty as a prior ``p(W) ~ exp(-gamma/2 sum f(w))`` counted once per pass
    over the data (``sum_n -g(x_n) + gamma/2 sum f(w)``; per step ``gamma |B| / (2N) sum f(w)`` against the
    batch's *sum* of ELBOs, or ``gamma / (2N) sum f(w)`` against their mean), was rejected: at a stationary point a negative weight sits where the penalty's pull ``gamma_eff |w|``
    balances the data term's gradient, and with ``gamma_eff = gamma / N`` that equilibrium ``|w|`` grows in
    proportion to the number of frames, so one ``gamma`` could not keep the clipped mass small both for a
    1000-frame synergy fit and a 10000-frame speech dictionary. At the per-frame scale it does not depend on
    ``N``. Measured on held-out data (README, "Choices measured"): at ``gamma = 1`` (the earlier default) the
    negative weights of a demo or TIMIT speech dictionary carried 29-30% of ``sum |w_ij|``; 1.7-2.4% at
    ``gamma = 1e3``, 0.2-0.3% at ``gamma = 1e4`` (synergies: 4-15% at 1, at most 0.05% at 1e4), with the penalty
    itself under 1 nat per frame. Held-out VAF is as good or better at 1e4 (much better on the demo EMG, whose
    clipped ``gamma = 1`` synergies lost up to 28% of their mass); held-out SDR is the same on the demo corpus
    but 0.35-1.3 dB lower on the TIMIT sample.

    Args:
        W: The decoder weight (any shape; entries below zero are penalised).
        weight: ``gamma >= 0``.

    Returns:
        A 0-d tensor on ``W``'s device, differentiable in ``W``.

    Shape:
        - W: ``(m, r)`` (or ``(..., m, r)`` for stacked models: the sum runs over every entry; sum the stack's
          own penalties instead when each model has its own loss).

    References:
        Xie et al., eq. 4-5; Hosseini-Asl, Zurada, Nasraoui, "Deep learning of part-based representation of data
        using sparse autoencoders with nonnegativity constraints", IEEE TNNLS 27(12), 2016 (the quadratic
        ``f``).
    """
    return 0.5 * weight * W.clamp_max(0.0).pow(2).sum()


@torch.no_grad()
def negative_weight_stats(W: Tensor) -> tuple[Tensor, Tensor]:
    """What ``max(W, 0)`` clips away: the fraction of negative entries and the share of ``sum |w_ij|`` they carry.

    Args:
        W: A decoder weight.

    Returns:
        ``(fraction, mass)``, 0-d tensors in [0, 1] on ``W``'s device (no host sync): ``fraction = #{w_ij < 0} /
        #W`` and ``mass = sum_ij max(-w_ij, 0) / sum_ij |w_ij|`` (0 for an all-zero ``W``).

    Shape:
        - W: ``(m, r)``.

    References:
        Xie et al., eq. 5 (the entries the penalty acts on).
    """
    w = W.detach()
    fraction = (w < 0).to(w.dtype).mean()
    mass = w.clamp_max(0.0).abs().sum() / w.abs().sum().clamp_min(torch.finfo(w.dtype).tiny)
    return fraction, mass


class VAENMF(nn.Module):
    """Variational autoencoder with Gamma latents and a linear nonnegative decoder ``x_hat = W z``.

    Encoder: ``input_transform(x)`` -> ``Linear(m, 400)`` -> activation -> ``Linear(400, 400)`` -> activation
    -> ``Linear(400, 2 r)``, split into the shape and rate heads, each ``softplus(.) + floor`` (``min_shape``,
    ``min_rate``) so both stay strictly positive and finite. The default activation is ReLU (the paper does not
    say; ReLU is the usual choice for such an MLP; ``activation`` selects another). The default input transform
    ``log1p`` compresses the dynamic range of magnitude spectra so the encoder sees comparable inputs at every
    level; it is applied to the encoder input only.

    Likelihood default: ``gaussian``, from measurement on the test's synthetic data (X = Z W^T + small additive
    noise, m = 10, r = 4, ``noise_var=0.01``, 800 Adam steps of 512 frames, 10 seeds): mean matched cosine
    between the fitted and true atoms 0.91-0.995 for Gaussian, 0.84-0.96 for Poisson, 0.73-0.91 for
    exponential. The best choice follows the data's noise (Poisson/KL and IS are the usual ones for
    magnitude spectra), so it is configuration. ``noise_var`` sets the Gaussian's recon/KL balance and
    should match the data's scale: on the same data 0.01 and 0.1 both worked, 0.001 was worse (0.82-0.89).

    Decoder: an unconstrained ``(m, r)`` weight ``W``, as in the paper: nonnegativity is encouraged by the
    quadratic penalty of eq. 5 on negative entries, and the dictionary handed on is ``max(W, 0)``
    (:meth:`dictionary`); :meth:`negative_weight_stats` reports how much is clipped.

    Loss, as returned by :meth:`forward` (every term a mean over the batch of per-frame sums, so it does not
    depend on the batch size):

    * ``recon = mean_b -log p(x_b | z_b)`` for one posterior sample ``z_b`` per frame, with constants, so that
      ``elbo = -(recon + kl)`` is a true per-frame lower bound on ``log p(x)`` (up to ``lgamma(x + 1)`` being
      the Poisson normaliser only for integer counts):

      - ``gaussian``: ``||x - W z||^2 / (2 sigma^2) + m/2 log(2 pi sigma^2)``, ``sigma^2 = noise_var`` fixed;
      - ``poisson``: ``sum(W z - x log(W z) + lgamma(x + 1))`` (generalised KL divergence up to a constant);
      - ``exponential``: ``sum(log(W z) + x / (W z))`` (Itakura-Saito divergence up to a constant).

      The Poisson and exponential likelihoods need a positive mean: they decode with ``max(W, 0)``
      (straight-through gradient, see :meth:`decode`) and use ``W z + likelihood_floor`` (the usual ``eps``
      of NMF divergences). Adding the floor rather than clamping at it keeps the gradient alive for tiny
      ``W z`` (small-shape Gamma samples are often ~1e-30).
    * ``kl = mean_b sum_k KL(Gamma(alpha_bk, beta_bk) || Gamma(alpha0, 1))`` in closed form (eq. 8, corrected),
      times ``kl_weight`` in the loss (1 is the paper's ELBO; < 1 for annealing).
    * ``penalty = penalty_weight / 2 * sum_ij min(w_ij, 0)^2`` (eq. 4-5, :func:`nonnegativity_penalty`), added
      **once per batch**, unscaled: since the other terms are per-frame means, ``penalty_weight`` weighs the
      penalty against the loss of a single frame, which is eq. 4 summed over the data set and divided by the
      number of frames (derivation in :func:`nonnegativity_penalty`). The default ``1e4`` keeps the negative
      weights under 1% of ``sum |w_ij|`` at the end of training (measured on held-out data; ``1``, the earlier
      default, left 47-60% of the entries negative with 21-29% of the mass).

    Args:
        n_features: Number of features ``m`` per frame (frequency bins, EMG channels).
        rank: Number of dictionary atoms ``r`` (latent dimensions), ``1 <= r <= m``.
        hidden: Widths of the encoder's hidden layers (the paper: two layers of 400).
        prior_shape: ``alpha0`` of the Gamma(alpha0, 1) prior.
        likelihood: One of :data:`LIKELIHOODS`.
        sampler: ``"rsvi"`` (eq. 7, accept-reject reparameterisation) or ``"implicit"`` (torch's).
        boost: Shape augmentation of the RSVI sampler; ``None`` boosts every element to shape >= 8, which
            keeps the reparameterisation-only gradient's bias below 0.06% (see
            :func:`vaenmf.models.gamma.sample_gamma_rsvi`); an integer gives plain RSVI with that boost.
        score_correction: Add RSVI's score-function correction term (with a leave-one-out batch-mean
            baseline) so the gradient is unbiased for any ``boost``. Only for ``sampler="rsvi"``. It does not
            change the loss value, only its gradient, and adds variance; with the default ``boost`` it is not
            needed.
        min_shape: Floor added to the softplus of the shape head.
        min_rate: Floor added to the softplus of the rate head.
        input_transform: One of :data:`INPUT_TRANSFORMS`.
        activation: Encoder hidden activation, a key of :data:`ACTIVATIONS`.
        noise_var: Observation variance ``sigma^2`` of the Gaussian likelihood (fixed, not learnt).
        penalty_weight: ``gamma`` of eq. 4 (>= 0), at the per-frame scale of :func:`nonnegativity_penalty`.
        kl_weight: Multiplier of the KL term in ``loss`` (the ELBO always uses 1).
        likelihood_floor: Added to ``W z`` in the Poisson and exponential likelihoods.
        init_dictionary: Optional ``(m, r)`` starting dictionary (e.g. from NMF). Otherwise ``W`` starts at
            ``U(0, 1) / r``; call :meth:`reset_dictionary` with data to rescale it to the data.

    Shape:
        - x: ``(batch, m)`` nonnegative frames (the transpose of the paper's ``(m, n)`` data matrix).
        - z, alpha, beta: ``(batch, r)``; x_hat: ``(batch, m)``; W: ``(m, r)``.

    References:
        Xie et al., sec. 2: eq. 3 (ELBO), eq. 4-5 (loss and penalty), eq. 6 (prior), eq. 7 (sampler),
        eq. 8 (KL). Naesseth et al. 2017 (RSVI). Kingma and Welling 2014 (VAE).
    """

    def __init__(
        self,
        n_features: int,
        rank: int,
        hidden: Sequence[int] = (400, 400),
        prior_shape: float = 1.0,
        likelihood: str = "gaussian",
        sampler: str = "rsvi",
        boost: int | None = None,
        score_correction: bool = False,
        min_shape: float = 1e-3,
        min_rate: float = 1e-3,
        input_transform: str = "log1p",
        activation: str = "relu",
        noise_var: float = 1.0,
        penalty_weight: float = DEFAULT_PENALTY_WEIGHT,
        kl_weight: float = 1.0,
        likelihood_floor: float = 1e-6,
        init_dictionary: Tensor | None = None,
    ) -> None:
        super().__init__()
        check_int(n_features, "n_features", minimum=1)
        # The decoder is (m, r): the rank can be at most the number of features.
        self.rank = check_rank(rank, (n_features, n_features), name=f"a decoder with n_features={n_features}")
        self.n_features = n_features
        hidden = tuple(hidden)
        for i, h in enumerate(hidden):
            check_int(h, f"hidden[{i}]", minimum=1)
        self.prior_shape = check_number(prior_shape, "prior_shape", above=0)
        self.likelihood = check_choice(likelihood, LIKELIHOODS, "likelihood")
        self.sampler = check_choice(sampler, SAMPLERS, "sampler")
        rsvi_boost(torch.ones(1), boost)  # validates boost (raises DataError on a bad value)
        self.boost = boost
        if score_correction and sampler != "rsvi":
            raise ConfigError("score_correction=True needs sampler='rsvi' (the implicit sampler is exact)")
        self.score_correction = bool(score_correction)
        self.min_shape = check_number(min_shape, "min_shape", above=0)
        self.min_rate = check_number(min_rate, "min_rate", above=0)
        self.input_transform = check_choice(input_transform, INPUT_TRANSFORMS, "input_transform")
        act = ACTIVATIONS[check_choice(activation, tuple(ACTIVATIONS), "activation")]
        self.noise_var = check_number(noise_var, "noise_var", above=0)
        self.penalty_weight = check_number(penalty_weight, "penalty_weight", at_least=0)
        self.kl_weight = check_number(kl_weight, "kl_weight", at_least=0)
        self.likelihood_floor = check_number(likelihood_floor, "likelihood_floor", above=0)

        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), act()]
            width = h
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * self.rank)
        self.W = nn.Parameter(torch.empty(n_features, self.rank))
        with torch.no_grad():
            if init_dictionary is not None:
                init = torch.as_tensor(init_dictionary, dtype=self.W.dtype)
                if tuple(init.shape) != (n_features, self.rank):
                    raise DataError(
                        f"init_dictionary has shape {tuple(init.shape)}; expected ({n_features}, {self.rank})"
                    )
                if not bool(torch.isfinite(init).all()):
                    raise DataError("init_dictionary contains NaN or infinite values")
                self.W.copy_(init)
            else:
                self.W.uniform_(0.0, 1.0 / self.rank)

    # ------------------------------------------------------------------ input checks
    def _check_x(self, x: Tensor) -> Tensor:
        x = as_nonnegative_tensor(x, "x", dtype=self.W.dtype, device=self.W.device)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise DataError(
                f"x must be a (batch, {self.n_features}) batch of frames, got shape {tuple(x.shape)}"
            )
        return x

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def reset_dictionary(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Re-draw ``W`` at the scale of the data: ``w_ij ~ U(0, 2) * mean_b(x_bi) / (r * alpha0)``.

        With ``E[z] = alpha0`` under the prior, ``E[W z]`` then matches the per-feature mean of ``x``, so the
        first reconstructions are neither vanishing nor exploding whatever the data's units; the random
        factor breaks the symmetry between atoms.

        Args:
            x: Frames used to measure the scale.
            generator: Optional generator on ``W``'s device.

        Shape:
            - x: ``(batch, m)``.
        """
        x = self._check_x(x)
        scale = x.mean(0, keepdim=True).T / (self.rank * self.prior_shape)  # (m, 1)
        noise = torch.rand(self.W.shape, generator=generator, dtype=self.W.dtype, device=self.W.device)
        self.W.copy_(2.0 * noise * scale.clamp_min(torch.finfo(self.W.dtype).tiny))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Shape and rate of ``q(z | x)``.

        Args:
            x: Nonnegative frames.

        Returns:
            ``(alpha, beta)``, both strictly positive.

        Shape:
            - x: ``(batch, m)``; alpha, beta: ``(batch, r)``.

        Raises:
            DataError: If ``x`` is negative, NaN/inf or of the wrong width.
        """
        x = self._check_x(x)
        return self._encode(x)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.log1p(x) if self.input_transform == "log1p" else x
        raw_alpha, raw_beta = self.head(self.encoder(h)).chunk(2, dim=-1)
        return F.softplus(raw_alpha) + self.min_shape, F.softplus(raw_beta) + self.min_rate

    def decode(self, z: Tensor) -> Tensor:
        """Mean of ``p(x | z)``: ``x_hat = z W^T``.

        The Gaussian likelihood uses the raw, possibly negative, ``W`` as in eq. 4. The Poisson and exponential
        likelihoods need ``x_hat >= 0``, so they decode with ``max(W, 0)`` and pass the gradient straight
        through the clipping: a weight an optimiser step pushed below zero still feels the likelihood's pull
        back up (besides the penalty's), instead of a whole feature's mean getting stuck at ``W z <= 0``.

        Shape:
            - z: ``(batch, r)``; output: ``(batch, m)``.
        """
        w = self.W
        if self.likelihood != "gaussian":
            w = w + (w.clamp_min(0.0) - w).detach()
        return z @ w.T

    def neg_log_likelihood(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Per-frame ``-log p(x | z)`` with constants, summed over features.

        Shape:
            - x, x_hat: ``(batch, m)``; output: ``(batch,)``.
        """
        if self.likelihood == "gaussian":
            const = 0.5 * self.n_features * math.log(2.0 * math.pi * self.noise_var)
            return 0.5 / self.noise_var * (x - x_hat).pow(2).sum(-1) + const
        mean = x_hat.clamp_min(0.0) + self.likelihood_floor  # x_hat >= 0 already unless called directly
        if self.likelihood == "poisson":
            return (mean - x * torch.log(mean) + torch.lgamma(x + 1.0)).sum(-1)
        return (torch.log(mean) + x / mean).sum(-1)  # exponential

    def kl(self, alpha: Tensor, beta: Tensor) -> Tensor:
        """Per-frame ``KL(q(z|x) || p(z))``, summed over the ``r`` latents.

        Shape:
            - alpha, beta: ``(batch, r)``; output: ``(batch,)``.
        """
        prior_shape = torch.full((), self.prior_shape, dtype=alpha.dtype, device=alpha.device)
        prior_rate = torch.ones((), dtype=alpha.dtype, device=alpha.device)
        return kl_gamma(alpha, beta, prior_shape, prior_rate).sum(-1)

    def penalty(self) -> Tensor:
        """``gamma / 2 * sum_ij min(w_ij, 0)^2`` (eq. 4-5, :func:`nonnegativity_penalty`), a scalar."""
        return nonnegativity_penalty(self.W, self.penalty_weight)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Encode, draw one posterior sample per frame, decode, and compute the loss.

        Args:
            x: Nonnegative frames.
            generator: Optional generator (on the model's device) for the posterior sample.

        Returns:
            Dict with ``x_hat`` (batch, m), ``z``, ``alpha``, ``beta`` (batch, r) and the scalars ``recon``,
            ``kl`` (per-frame batch means), ``penalty`` (once per batch), ``loss = recon + kl_weight * kl +
            penalty`` (what to minimise) and ``elbo = -(recon + kl)`` (per-frame bound, no penalty).

        Shape:
            - x: ``(batch, m)``.

        Raises:
            DataError: If ``x`` is negative, NaN/inf or of the wrong width.
        """
        x = self._check_x(x)
        alpha, beta = self._encode(x)
        log_pi = None
        if self.score_correction:
            z, log_pi = sample_gamma_rsvi(
                alpha, beta, boost=self.boost, generator=generator, return_log_pi=True
            )
        else:
            z = sample_gamma(alpha, beta, sampler=self.sampler, boost=self.boost, generator=generator)
        x_hat = self.decode(z)
        nll = self.neg_log_likelihood(x, x_hat)
        kl = self.kl(alpha, beta)
        recon, kl_mean, penalty = nll.mean(), kl.mean(), self.penalty()
        loss = recon + self.kl_weight * kl_mean + penalty
        if log_pi is not None:
            loss = loss + self._score_term(nll, log_pi)
        return {
            "x_hat": x_hat,
            "z": z,
            "alpha": alpha,
            "beta": beta,
            "recon": recon,
            "kl": kl_mean,
            "penalty": penalty,
            "loss": loss,
            "elbo": -(recon + kl_mean),
        }

    @staticmethod
    def _score_term(nll: Tensor, log_pi: Tensor) -> Tensor:
        """RSVI's correction ``E[f(z) d log pi]`` as a zero-valued surrogate (only its gradient counts).

        ``f`` is the per-frame negative log-likelihood (the KL is analytic and needs no correction). A
        leave-one-out batch mean of ``f`` is subtracted as a baseline: it does not depend on the frame's own
        sample, so the estimator stays unbiased, and it removes most of the score term's variance.
        """
        f = nll.detach()
        n = f.numel()
        baseline = (f.sum() - f) / (n - 1) if n > 1 else torch.zeros_like(f)
        term = ((f - baseline) * log_pi.sum(-1)).mean()
        return term - term.detach()

    @torch.no_grad()
    def posterior_mean(self, x: Tensor) -> Tensor:
        """Posterior mean activations ``E_q[z] = alpha / beta`` (no gradient).

        Shape:
            - x: ``(batch, m)``; output: ``(batch, r)``, strictly positive.
        """
        alpha, beta = self.encode(x)
        return alpha / beta

    def dictionary(self) -> Tensor:
        """The nonnegative dictionary handed on: ``max(W, 0)``, detached.

        Shape:
            - output: ``(m, r)``.
        """
        return self.W.detach().clamp_min(0.0)

    def negative_weight_stats(self) -> tuple[Tensor, Tensor]:
        """What :meth:`dictionary` clips away: :func:`negative_weight_stats` of ``W``.

        Returns:
            ``(fraction, mass)``: the fraction of entries of ``W`` that are negative, and the share of the total
            absolute weight ``sum |w_ij|`` they carry (both 0-d tensors in [0, 1], on ``W``'s device, so they
            can be logged without a host sync).
        """
        return negative_weight_stats(self.W)
