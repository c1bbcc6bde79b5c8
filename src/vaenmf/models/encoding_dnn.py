"""The encoding DNN of Kang et al. (2014): noisy spectrum frames -> NMF activations of speech and noise.

The network maps a noisy magnitude frame (with ``context`` neighbouring frames on each side) to the
concatenated activations ``[h^s; h^n]`` that the fixed speech and noise dictionaries would give for the clean
speech and the noise that were mixed; the enhancement then uses ``W^s h^s`` and ``W^n h^n`` in a Wiener-type
mask. Only the module lives here (the context stacking of its input is
:func:`vaenmf.data.features.stack_context`); training is a system's job.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaenmf.errors import DataError
from vaenmf.validation import check_choice, check_int

__all__ = ["OUTPUT_ACTIVATIONS", "EncodingDNN"]

#: Nonnegative output maps of :class:`EncodingDNN`.
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("softplus", "relu")


class EncodingDNN(nn.Module):
    """Feed-forward encoder from a (context-stacked) noisy magnitude frame to ``[h^s; h^n]``.

    Architecture (Kang et al. 2014): optional ``log1p`` input transform, then ``n_layers`` x
    (``Linear(., hidden)``, ``BatchNorm1d``, ``LeakyReLU(0.1)``), then ``Linear(hidden, 2 r)`` and a
    nonnegative output map. The default output map is softplus rather than ReLU: targets are NMF activations,
    which are positive (multiplicative updates never reach exact zero), and a ReLU output unit that falls
    below zero for every frame gets no gradient and stays dead.

    Args:
        n_features: Bins ``m`` of one frame (257 for the paper's STFT).
        rank: ``r``, the number of atoms of *each* dictionary; the output is ``2 r`` (speech then noise).
        context: Frames ``c`` on each side in the input (input width ``m (2 c + 1)``; see :func:`~vaenmf.data.features.stack_context`).
        hidden: Width of the hidden layers (400).
        n_layers: Number of hidden layers (3).
        input_transform: ``"log1p"`` or ``"none"``.
        output_activation: One of :data:`OUTPUT_ACTIVATIONS`.
        negative_slope: LeakyReLU slope (0.1).

    Shape:
        - input: ``(batch, m * (2 c + 1))`` nonnegative, e.g. ``stack_context(frames, c)``.
        - output: ``(batch, 2 r)``, nonnegative: ``[:, :r]`` speech activations, ``[:, r:]`` noise activations.

    References:
        T. G. Kang, K. Kwon, J. W. Shin, N. S. Kim, "NMF-based target source separation using deep neural
        network", IEEE Signal Processing Letters 22(2), 2014. Xie et al., sec. 3 (baseline).
    """

    def __init__(
        self,
        n_features: int,
        rank: int,
        context: int = 0,
        hidden: int = 400,
        n_layers: int = 3,
        input_transform: str = "log1p",
        output_activation: str = "softplus",
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("n_features", n_features, 1),
            ("rank", rank, 1),
            ("context", context, 0),
            ("hidden", hidden, 1),
            ("n_layers", n_layers, 0),
        ):
            check_int(value, name, minimum=low)
        check_choice(input_transform, ("log1p", "none"), "input_transform")
        check_choice(output_activation, OUTPUT_ACTIVATIONS, "output_activation")
        self.n_features, self.rank, self.context = n_features, rank, context
        self.input_dim = n_features * (2 * context + 1)
        self.input_transform = input_transform
        self.output_activation = output_activation
        layers: list[nn.Module] = []
        width = self.input_dim
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(negative_slope)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, 2 * rank)

    def forward(self, x: Tensor) -> Tensor:
        """Predict ``[h^s; h^n]`` for a batch of stacked noisy frames.

        Shape:
            - x: ``(batch, m * (2 c + 1))``; output: ``(batch, 2 r)``.

        Raises:
            DataError: If ``x`` has the wrong width.
        """
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise DataError(
                f"EncodingDNN expects (batch, {self.input_dim}) inputs ({self.n_features} bins x "
                f"{2 * self.context + 1} frames), got shape {tuple(x.shape)}"
            )
        h = torch.log1p(x) if self.input_transform == "log1p" else x
        y = self.out(self.body(h))
        return F.softplus(y) if self.output_activation == "softplus" else F.relu(y)

    def split(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Split an output ``(batch, 2 r)`` into speech and noise activations, each ``(batch, r)``."""
        return y[..., : self.rank], y[..., self.rank :]
