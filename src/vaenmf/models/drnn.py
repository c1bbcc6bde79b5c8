"""The deep recurrent neural network (DRNN) of Huang et al. (2014) for monaural speech separation.

The network reads the noisy magnitude spectrogram of an utterance frame by frame (each frame with its neighbours
as context), has ReLU hidden layers one of which is recurrent over time, and ends in two linear outputs whose
magnitudes form a soft time-frequency mask that splits the noisy frame into a speech and a noise estimate. The
mask is part of the network, so the loss is taken on the masked magnitudes (joint optimisation of mask and
network). Only the module and the loss live here; training is a system's job.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaenmf.data.features import stack_context
from vaenmf.errors import ConfigError, DataError
from vaenmf.validation import check_choice, check_int, check_number

__all__ = ["INPUT_TRANSFORMS", "DRNN", "discriminative_loss", "stack_context_batch"]

#: Input transforms of :class:`DRNN` (applied to the context-stacked noisy magnitudes).
INPUT_TRANSFORMS: tuple[str, ...] = ("log1p", "none")


def stack_context_batch(x: Tensor, context: int) -> Tensor:
    """:func:`~vaenmf.data.features.stack_context` applied to every sequence of a batch at once.

    Frame ``t`` of sequence ``b`` becomes ``[x_{b,t-c}, ..., x_{b,t}, ..., x_{b,t+c}]`` (oldest first) with the
    edge frames of each sequence replicated, exactly as :func:`stack_context` does for one utterance. The
    sequences are laid side by side along the feature axis so that one call stacks them all.

    Args:
        x: A batch of frame sequences in time order.
        context: Frames ``c >= 0`` on each side.

    Shape:
        - x: ``(B, T, F)``; output: ``(B, T, F (2 c + 1))``.

    Raises:
        DataError: If ``x`` is not a nonempty 3-D tensor.
    """
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"expected a nonempty (batch, time, bins) tensor, got shape {tuple(x.shape)}")
    B, T, n_bins = x.shape
    width = 2 * int(context) + 1
    stacked = stack_context(x.transpose(0, 1).reshape(T, B * n_bins), context)  # (T, width * B * F)
    return stacked.reshape(T, width, B, n_bins).permute(2, 0, 1, 3).reshape(B, T, width * n_bins)


class DRNN(nn.Module):
    """Deep recurrent network with a soft time-frequency masking layer (Huang et al. 2014).

    Architecture: the noisy magnitude frame ``x_t`` with ``context`` frames on each side (3 frames for the
    default ``context=1``), an input transform (``log1p`` by default: linear magnitudes span several orders of
    magnitude), ``n_layers`` ReLU hidden layers of width ``hidden``, of which layer ``recurrent_layer``
    (1-based, Huang et al.'s "DRNN-k") is an Elman recurrent layer ``h_t = relu(U z_t + V h_{t-1} + b)`` run
    over the frames in time order from ``h_0 = 0``, then two linear outputs ``a1, a2`` (``F`` each) and the
    masking layer

        ``y1 = |a1| / (|a1| + |a2|) * x_t``,   ``y2 = |a2| / (|a1| + |a2|) * x_t``

    on the centre noisy frame ``x_t`` (linear magnitude, not the transformed input). The ``eps`` that keeps the
    ratio defined is split evenly between the two numerators, ``m1 = (|a1| + eps/2) / (|a1| + |a2| + eps)``, and
    ``y2 = x_t - y1``: the two masks then sum to one (``y1 + y2 = x_t`` to rounding), both lie in ``[0, 1]``,
    and the undefined ``0/0`` case gives ``1/2`` each instead of favouring one source.

    The recurrence is causal: outputs at frame ``t`` depend on input frames up to ``t + context`` only.

    Args:
        n_features: Bins ``F`` of one frame (257 for the paper's STFT).
        hidden: Width of every hidden layer.
        n_layers: Number of hidden layers (>= 1).
        recurrent_layer: Which hidden layer (1..``n_layers``) has the temporal recurrence.
        context: Frames on each side of the input (1: the paper's 3-frame input).
        input_transform: One of :data:`INPUT_TRANSFORMS`.
        eps: Keeps the mask defined where ``|a1| + |a2| = 0``.

    Shape:
        - input: ``(B, T, F)`` nonnegative noisy magnitudes, ``B`` sequences of ``T`` frames in time order.
        - output: ``(y1, y2)``, each ``(B, T, F)``, nonnegative, ``y1 + y2 = input``: speech and noise estimates.

    References:
        P.-S. Huang, M. Kim, M. Hasegawa-Johnson, P. Smaragdis, "Deep learning for monaural speech separation",
        Proc. ICASSP 2014: sec. 2 (deep recurrent network, recurrence at one hidden layer), sec. 3 (the soft
        time-frequency masking layer, jointly optimised with the network; equation numbers not checked against
        the paper). Extended in IEEE/ACM TASLP 23(12), 2015. DESIGN.md section 5.
    """

    def __init__(
        self,
        n_features: int,
        hidden: int = 300,
        n_layers: int = 3,
        recurrent_layer: int = 2,
        context: int = 1,
        input_transform: str = "log1p",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("n_features", n_features, 1),
            ("hidden", hidden, 1),
            ("n_layers", n_layers, 1),
            ("recurrent_layer", recurrent_layer, 1),
            ("context", context, 0),
        ):
            check_int(value, name, minimum=low)
        if recurrent_layer > n_layers:
            raise ConfigError(
                f"recurrent_layer must be one of the hidden layers 1..{n_layers}, got {recurrent_layer}"
            )
        check_choice(input_transform, INPUT_TRANSFORMS, "input_transform")
        check_number(eps, "eps", above=0)
        self.n_features, self.context = n_features, context
        self.recurrent_layer = recurrent_layer
        self.input_transform = input_transform
        self.eps = float(eps)
        self.input_dim = n_features * (2 * context + 1)
        # Feed-forward layers before and after the recurrent one; nn.RNN with a ReLU is exactly the Elman layer
        # h_t = relu(W_ih z_t + b_ih + W_hh h_{t-1} + b_hh), with its time loop in C++ (cuDNN on a GPU).
        self.pre = nn.ModuleList()
        width = self.input_dim
        for _ in range(recurrent_layer - 1):
            self.pre.append(nn.Linear(width, hidden))
            width = hidden
        self.rnn = nn.RNN(width, hidden, num_layers=1, nonlinearity="relu", batch_first=True)
        self.post = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers - recurrent_layer))
        self.out = nn.Linear(hidden, 2 * n_features)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Speech and noise magnitude estimates of a batch of noisy magnitude sequences.

        Shape:
            - x: ``(B, T, F)``; outputs ``y1, y2``: ``(B, T, F)`` each.

        Raises:
            DataError: If ``x`` is not ``(B, T, n_features)``.
        """
        if x.ndim != 3 or x.shape[-1] != self.n_features:
            raise DataError(
                f"DRNN expects (batch, time, {self.n_features}) noisy magnitudes, got shape {tuple(x.shape)}"
            )
        z = stack_context_batch(x, self.context)
        h = torch.log1p(z) if self.input_transform == "log1p" else z
        for layer in self.pre:
            h = F.relu(layer(h))
        h, _ = self.rnn(h)
        for layer in self.post:
            h = F.relu(layer(h))
        a1, a2 = self.out(h).split(self.n_features, dim=-1)
        return self.mask(a1, a2, x)

    def mask(self, a1: Tensor, a2: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """The soft time-frequency masking layer: split ``x`` in the proportions ``|a1| : |a2|``.

        Shape:
            - a1, a2, x: the same shape; outputs ``y1, y2``: that shape.
        """
        m1, m2 = a1.abs(), a2.abs()
        speech_mask = (m1 + 0.5 * self.eps) / (m1 + m2 + self.eps)
        y1 = speech_mask * x
        return y1, x - y1

    @torch.no_grad()
    def separate(self, mixture_mag: Tensor) -> Tensor:
        """Speech estimate of one utterance, run as one sequence.

        Shape:
            - mixture_mag: ``(F, T)`` (the task's layout); output: ``(F, T)``.
        """
        if mixture_mag.ndim != 2:
            raise DataError(f"expected one (bins, frames) spectrogram, got shape {tuple(mixture_mag.shape)}")
        y1, _ = self(mixture_mag.T.unsqueeze(0))
        return y1[0].T


def discriminative_loss(
    y1: Tensor, y2: Tensor, speech: Tensor, noise: Tensor, gamma: float = 0.05, reduction: str = "sum"
) -> Tensor:
    """The discriminative training objective of the DRNN.

    ``J = 1/2 (||y1 - s||^2 + ||y2 - n||^2 - gamma (||y1 - n||^2 + ||y2 - s||^2))``: fit each estimate to its
    own source and push it away from the other one. ``gamma = 0`` gives the plain squared error.

    Args:
        y1, y2: Speech and noise estimates (the DRNN's outputs).
        speech, noise: The clean speech magnitude ``s`` and the magnitude of the noise that was mixed ``n``.
        gamma: Weight of the discriminative term (0.05 by default, in ``[0, 1)``).
        reduction: ``"sum"`` (the formula above, over every element) or ``"mean"`` (the same divided by the
            number of elements, so that the value does not scale with batch size or sequence length).

    Shape:
        All four tensors the same shape, e.g. ``(B, T, F)``; output: a scalar.

    References:
        Huang, Kim, Hasegawa-Johnson, Smaragdis, ICASSP 2014, sec. 3 (discriminative training). DESIGN.md sec. 5.
    """
    if not (y1.shape == y2.shape == speech.shape == noise.shape):
        raise DataError(
            "y1, y2, speech and noise must have the same shape, got "
            f"{tuple(y1.shape)}, {tuple(y2.shape)}, {tuple(speech.shape)}, {tuple(noise.shape)}"
        )
    check_choice(reduction, ("sum", "mean"), "reduction")
    own = (y1 - speech).square().sum() + (y2 - noise).square().sum()
    other = (y1 - noise).square().sum() + (y2 - speech).square().sum()
    loss = 0.5 * (own - gamma * other)
    return loss / y1.numel() if reduction == "mean" else loss
