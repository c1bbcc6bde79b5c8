"""Embedded demo corpora: synthetic speech, babble and factory noise (DESIGN.md section 6).

They let ``make reproduce`` run the whole speech study with no download. They are not meant to sound
natural, only to have the structure that matters for NMF-based enhancement:

- speech (source-filter synthesis): voiced segments are a Rosenberg glottal pulse train (derivative, i.e.
  with lip radiation) whose pitch moves smoothly (declination, slow intonation, accents) through a cascade
  of 4 formant resonators (2nd-order IIR, Klatt style); fricatives and plosive bursts are band-pass
  filtered noise; words are separated by near-silent pauses (a -60 dB noise floor, never exact zeros);
  syllables have attack/decay envelopes. Each speaker has a mean pitch (male ~90-140 Hz, female
  ~170-250 Hz), a vocal-tract scale factor, a speaking rate, a breathiness and their own perturbed set of
  ten vowels, so speakers are spectrally distinct and a dictionary learned on some does not trivially fit
  unseen ones.
- babble, made as NOISEX-92's was recorded (100 people in a canteen, one microphone): a crowd of 40-60
  talkers of the same synthesiser whose voices lie outside every target speaker's range of pitch, of
  vocal-tract scale and of speaking rate (:data:`BABBLE_VOICES`), each speaking 25-35% of the time in turns
  of 1.5-4 s (about 15 at once; every turn synthesised once, no waveform repeats), level-normalised per
  talker, heard through a reverberant room: direct sound falling off as 1/r (2-10 m) plus the diffuse
  reverberation (RT60 0.5-0.8 s, faster decay at high frequencies) of 8 places in the room. So it is
  speech-like in its long-term spectrum but not confusable with one talker: its 4 Hz envelope modulation
  (the syllable rhythm; band-passed 2-8 Hz broadband envelope, std / mean) is 0.12, within the 0.11-0.14
  of the NOISEX-92 babble excerpts, where one talker (synthetic or TIMIT) has 0.7-0.8 and the earlier
  demo babble of 6-8 dry talkers had 0.24.
- factory: three machines (fundamentals ~40-70, ~95-140 and ~230-330 Hz, each with all harmonics to
  5 kHz, a housing resonance, slow amplitude modulation and tiny speed wobble), a periodic hammer plus
  random impacts (decaying noise bursts through metallic resonances) and broadband coloured noise up to
  8 kHz.

Everything is deterministic given the seed (numpy ``SeedSequence`` streams, so utterance ``j`` of speaker
``i`` does not depend on how many utterances are generated) and at 16 kHz. The speech of a default demo
corpus (10 speakers x 12 utterances) is synthesised in about a second of CPU time, 125 s of factory noise in
half a second, 125 s of babble in about 4 s (its ~2000 turns); a noise is generated once per process and
shared by the jobs of a sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.signal as sps
import torch

from vaenmf.errors import ConfigError
from vaenmf.validation import as_int

__all__ = [
    "SYNTH_SAMPLE_RATE",
    "NOISE_KINDS",
    "Vowel",
    "SpeakerProfile",
    "Utterance",
    "BABBLE_VOICES",
    "TARGET_VOICES",
    "VoiceRanges",
    "make_babble_talkers",
    "make_speakers",
    "DICTIONARY_VOICE_INDEX",
    "dictionary_voice_name",
    "make_dictionary_voices",
    "pitch_strata",
    "speaker_name",
    "room_impulse_response",
    "synth_utterance",
    "make_speech_corpus",
    "make_utterance",
    "make_noise",
]

SYNTH_SAMPLE_RATE = 16000
NOISE_KINDS = ("babble", "factory")

# Distinct seed streams, so that e.g. the babble talkers never coincide with the demo speakers.
_STREAM_SPEAKER = 1
_STREAM_UTTERANCE = 2
_STREAM_BABBLE = 3
_STREAM_FACTORY = 4
_STREAM_BABBLE_TALKER = 5
_STREAM_ROOM = 6
_STREAM_DICTIONARY_VOICE = 7
#: Where the utterance streams of :func:`make_dictionary_voices` start (far above any demo speaker index).
DICTIONARY_VOICE_INDEX = 10_000

# Peterson & Barney (1952) average male formants F1-F3 (Hz) of ten American English vowels, with a typical
# F4; speakers perturb and scale these.
_BASE_VOWELS = (
    (270, 2290, 3010, 3600),  # i
    (390, 1990, 2550, 3500),  # I
    (530, 1840, 2480, 3500),  # E
    (660, 1720, 2410, 3400),  # ae
    (730, 1090, 2440, 3400),  # a
    (570, 840, 2410, 3300),  # o (open)
    (440, 1020, 2240, 3300),  # U
    (300, 870, 2240, 3300),  # u
    (640, 1190, 2390, 3400),  # ^
    (490, 1350, 1690, 3300),  # r-coloured
)
_BASE_BANDWIDTHS = (70.0, 100.0, 140.0, 200.0)
# A nasal-like murmur: low F1, damped upper formants.
_NASAL = (250, 1100, 2300, 3400)
_NASAL_BANDWIDTHS = (100.0, 250.0, 300.0, 350.0)


@dataclass(frozen=True)
class Vowel:
    """Formant frequencies and bandwidths (Hz) of one vowel of one speaker."""

    formants: tuple[float, ...]
    bandwidths: tuple[float, ...]


@dataclass(frozen=True)
class SpeakerProfile:
    """Parameters of one synthetic speaker.

    Attributes:
        name: Speaker id, e.g. ``"M00"`` or ``"F01"`` (babble talkers: ``"B00"`` ...).
        gender: ``"M"`` or ``"F"``.
        f0_mean: Mean pitch in Hz.
        f0_range: Intonation range in semitones (peak-to-peak of the slow pitch movement).
        formant_scale: Vocal-tract scale factor applied to all formants (shorter tract -> higher formants).
        vowels: This speaker's vowel set.
        rate: Syllables per second.
        open_quotient: Rosenberg open phase as a fraction of the pitch period (sets the spectral tilt).
        breathiness: Level of aspiration noise mixed into voiced excitation (0-1).
        fricative_shift: Frequency scale for this speaker's fricative bands.
    """

    name: str
    gender: str
    f0_mean: float
    f0_range: float
    formant_scale: float
    vowels: tuple[Vowel, ...]
    rate: float
    open_quotient: float
    breathiness: float
    fricative_shift: float


@dataclass
class Utterance:
    """One synthetic utterance.

    Shape:
        - wave: ``(time,)``, float32, peak 0.5.
    """

    speaker: str
    name: str
    wave: torch.Tensor
    sr: int = SYNTH_SAMPLE_RATE


def stream_rng(seed: int, *stream: int) -> np.random.Generator:
    """A generator for one named stream of randomness (``SeedSequence`` keyed by the seed and the stream ids), so
    changing how much one stream draws never reshuffles another."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(s) for s in stream]]))


@dataclass(frozen=True)
class VoiceRanges:
    """Where a synthetic voice's pitch, vocal-tract scale and speaking rate are drawn from (uniformly).

    Attributes:
        f0: Mean pitch range in Hz.
        formant_scale: Vocal-tract scale factor range.
        rate: Speaking rate range in syllables per second.
    """

    f0: tuple[float, float]
    formant_scale: tuple[float, float]
    rate: tuple[float, float]


#: The target (demo corpus) speakers: adult male and female voices at a moderate rate.
TARGET_VOICES = {
    "M": VoiceRanges(f0=(90.0, 140.0), formant_scale=(0.93, 1.05), rate=(3.5, 5.5)),
    "F": VoiceRanges(f0=(170.0, 250.0), formant_scale=(1.12, 1.25), rate=(3.5, 5.5)),
}
#: The babble talkers: the voices around and between the target speakers' (a very deep male group, a group
#: between the male and female ranges, a high group), none inside a target range of pitch or of formant scale,
#: each talking more slowly or faster than any target speaker (a canteen crowd).
BABBLE_VOICES = (
    ("M", VoiceRanges(f0=(65.0, 88.0), formant_scale=(0.85, 0.925), rate=(2.6, 3.4))),
    ("M", VoiceRanges(f0=(142.0, 168.0), formant_scale=(1.055, 1.115), rate=(5.6, 7.0))),
    ("F", VoiceRanges(f0=(255.0, 320.0), formant_scale=(1.26, 1.36), rate=(5.6, 7.0))),
    ("F", VoiceRanges(f0=(142.0, 168.0), formant_scale=(1.055, 1.115), rate=(2.6, 3.4))),
)


def _make_speaker(
    rng: np.random.Generator,
    name: str,
    gender: str,
    voice: VoiceRanges | None = None,
    stratum: tuple[int, int] | None = None,
) -> SpeakerProfile:
    voice = voice or TARGET_VOICES[gender]
    # The draw order is the original one, so the target speakers are what they always were.
    f0 = rng.uniform(*voice.f0)
    if stratum is not None:
        # Stratum k of n: the same uniform draw, mapped into the k-th of n equal parts of the pitch range.
        k, n = stratum
        lo, hi = voice.f0
        f0 = lo + (k + (f0 - lo) / (hi - lo)) * (hi - lo) / n
    scale = rng.uniform(*voice.formant_scale)
    vowels = []
    for base in _BASE_VOWELS:
        # Per-speaker, per-vowel perturbation (dialect/idiolect), on top of the tract scale.
        jitter = rng.normal(1.0, 0.05, size=4)
        formants = np.asarray(base, dtype=float) * scale * jitter
        formants = np.sort(np.clip(formants, 200.0, 5200.0))
        for k in range(1, 4):  # keep formants apart so the resonators stay distinct
            formants[k] = max(formants[k], formants[k - 1] + 150.0)
        bw = np.asarray(_BASE_BANDWIDTHS) * rng.uniform(0.8, 1.3, size=4)
        vowels.append(Vowel(tuple(float(f) for f in formants), tuple(float(b) for b in bw)))
    return SpeakerProfile(
        name=name,
        gender=gender,
        f0_mean=float(f0),
        f0_range=float(rng.uniform(3.0, 7.0)),
        formant_scale=float(scale),
        vowels=tuple(vowels),
        rate=float(rng.uniform(*voice.rate)),
        open_quotient=float(rng.uniform(0.45, 0.7)),
        breathiness=float(rng.uniform(0.02, 0.12) if gender == "M" else rng.uniform(0.06, 0.2)),
        fricative_shift=float(scale * rng.uniform(0.9, 1.1)),
    )


def speaker_name(index: int) -> str:
    """The demo name of speaker ``index``: ``M00``, ``F01``, ``M02``, ... (even indices male)."""
    return f"{'M' if index % 2 == 0 else 'F'}{index:02d}"


def pitch_strata(names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Stratum ``(k, n)`` of each speaker, per gender (the name's first letter) in the given order: the ``k``-th
    of the gender's ``n`` speakers draws its mean pitch in the ``k``-th of ``n`` equal parts of the gender's
    range (for the ``strata`` of :func:`make_speakers` and :func:`make_dictionary_voices`)."""
    by_gender: dict[str, list[str]] = {}
    for name in names:
        by_gender.setdefault(name[0].upper(), []).append(name)
    return {name: (k, len(group)) for group in by_gender.values() for k, name in enumerate(group)}


def make_speakers(
    n_speakers: int,
    seed: int = 0,
    prefix: str | None = None,
    strata: Mapping[str, tuple[int, int]] | None = None,
) -> list[SpeakerProfile]:
    """Create ``n_speakers`` distinct speakers, alternating male (even index) and female (odd index).

    Speaker ``i`` depends only on ``(seed, i, prefix)`` and its stratum, not on ``n_speakers``.

    Args:
        n_speakers: Number of speakers.
        seed: Random seed.
        prefix: Name prefix; default names are ``M00``, ``F01``, ``M02``, ... (:func:`speaker_name`); with a
            prefix ``B`` they are ``B00``, ``B01``, ... and drawn from a separate random stream.
        strata: Speaker name -> ``(k, n)``: its mean pitch is drawn in the ``k``-th of ``n`` equal parts of its
            gender's range instead of over the whole range (stratified sampling; :func:`pitch_strata`). The demo's
            dictionary speakers are drawn so, as a dictionary learnt from TIMIT's 231 speakers covers the voices
            it meets: with a handful of uniform draws a test voice can fall outside all of them (seed 0's four
            uniform dictionary voices had 134, 134, 238 and 241 Hz, its test voices 100 and 208 Hz). Speakers
            not in it (and strata with ``n`` = 1) are uniform over the range.

    Returns:
        The speaker profiles.
    """
    as_int(n_speakers, "n_speakers", minimum=0)
    stream = _STREAM_SPEAKER if prefix is None else _STREAM_BABBLE
    strata = strata or {}
    speakers = []
    for i in range(int(n_speakers)):
        gender = "M" if i % 2 == 0 else "F"
        rng = stream_rng(seed, stream, i)
        name = speaker_name(i) if prefix is None else f"{prefix}{i:02d}"
        speakers.append(_make_speaker(rng, name, gender, stratum=_stratum(strata.get(name))))
    return speakers


def make_dictionary_voices(
    n_voices: int, seed: int = 0, strata: Mapping[str, tuple[int, int]] | None = None
) -> list[SpeakerProfile]:
    """Further demo voices for the speech dictionary only: ``MX00``, ``FX01``, ... (alternating male, female).

    Voice ``j`` depends only on ``(seed, j)`` and its stratum, drawn from a stream of its own, so adding them
    changes no other speaker. Their utterances are ``make_utterance(voice, DICTIONARY_VOICE_INDEX + j, ...)``.

    Args:
        n_voices: Number of voices.
        seed: Random seed.
        strata: As for :func:`make_speakers` (by name).
    """
    as_int(n_voices, "n_voices", minimum=0)
    strata = strata or {}
    voices = []
    for j in range(int(n_voices)):
        gender = "M" if j % 2 == 0 else "F"
        name = dictionary_voice_name(j)
        rng = stream_rng(seed, _STREAM_DICTIONARY_VOICE, j)
        voices.append(_make_speaker(rng, name, gender, stratum=_stratum(strata.get(name))))
    return voices


def dictionary_voice_name(index: int) -> str:
    """The name of :func:`make_dictionary_voices`' voice ``index``: ``MX00``, ``FX01``, ..."""
    return f"{'M' if index % 2 == 0 else 'F'}X{index:02d}"


def _stratum(stratum: tuple[int, int] | None) -> tuple[int, int] | None:
    return stratum if stratum is not None and stratum[1] > 1 else None


def make_babble_talkers(n_talkers: int, seed: int = 0) -> list[SpeakerProfile]:
    """The babble crowd: ``n_talkers`` voices of :data:`BABBLE_VOICES` (cycling through its groups).

    Talker ``i`` depends only on ``(seed, i)``; names are ``B00``, ``B01``, ... Their pitch, vocal-tract scale
    and speaking rate all lie outside the ranges of the target speakers (:data:`TARGET_VOICES`).
    """
    as_int(n_talkers, "n_talkers", minimum=0)
    talkers = []
    for i in range(int(n_talkers)):
        gender, voice = BABBLE_VOICES[i % len(BABBLE_VOICES)]
        talkers.append(_make_speaker(stream_rng(seed, _STREAM_BABBLE_TALKER, i), f"B{i:02d}", gender, voice))
    return talkers


# --------------------------------------------------------------------------------------------------------
# Filters


@lru_cache(maxsize=4096)
def _resonator_sos(formants: tuple[float, ...], bandwidths: tuple[float, ...], sr: int) -> np.ndarray:
    """Cascade of 2nd-order resonators with unit DC gain (Klatt 1980), one SOS row each (cached, as the band
    filters below: callers must not modify it)."""
    rows = []
    nyq = sr / 2.0
    for f, b in zip(formants, bandwidths, strict=True):
        f = min(f, 0.95 * nyq)
        r = np.exp(-np.pi * b / sr)
        c1 = -2.0 * r * np.cos(2.0 * np.pi * f / sr)
        c2 = r * r
        rows.append([1.0 + c1 + c2, 0.0, 0.0, 1.0, c1, c2])
    return np.asarray(rows)


@lru_cache(maxsize=256)
def _bandpass_sos(lo: float, hi: float, sr: int, order: int = 4) -> np.ndarray:
    nyq = sr / 2.0
    lo = max(lo, 20.0)
    hi = min(hi, 0.98 * nyq)
    return sps.butter(order, [lo / nyq, hi / nyq], btype="band", output="sos")


@lru_cache(maxsize=64)
def _lowpass_sos(fc: float, sr: int, order: int = 2) -> np.ndarray:
    return sps.butter(order, fc / (sr / 2.0), btype="low", output="sos")


@lru_cache(maxsize=64)
def _highpass_sos(fc: float, sr: int, order: int = 2) -> np.ndarray:
    return sps.butter(order, fc / (sr / 2.0), btype="high", output="sos")


def _round_band(x: float) -> float:
    # Quantise band edges so the lru_cache above is actually hit across speakers.
    return float(round(x / 50.0) * 50.0)


# --------------------------------------------------------------------------------------------------------
# Speech


@lru_cache(maxsize=4096)
def _ramp(length: int, rising: bool) -> np.ndarray:
    # Cached (read-only): the babble synthesises thousands of segments, with a few thousand distinct lengths.
    if rising:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)
    else:
        ramp = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, length + 1) / length)
    ramp.flags.writeable = False
    return ramp


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    attack = min(attack, n // 2)
    release = min(release, n - attack)
    if attack > 0:
        env[:attack] = _ramp(attack, True)
    if release > 0:
        env[n - release :] = _ramp(release, False)
    return env


def _pitch_contour(
    n: int, speaker: SpeakerProfile, rng: np.random.Generator, sr: int, step: int = 1
) -> np.ndarray:
    """Sample-rate f0 contour: declination + slow intonation, in semitones around the speaker's mean.

    ``step > 1`` evaluates it every ``step`` samples and interpolates linearly in between (the contour moves
    over tenths of a second, so 2 ms steps change it by a fraction of a cent), for the babble's thousands of
    utterances; it draws the same random numbers.
    """
    if step > 1:
        coarse = np.minimum(np.arange(0, n + step, step), n - 1)
        t = coarse / sr
        ramp = 1.5 - 3.0 * coarse / max(n - 1, 1)
    else:
        t = np.arange(n) / sr
        ramp = np.linspace(1.5, -1.5, n)
    dur = max(n / sr, 1e-3)
    semis = ramp * (speaker.f0_range / 6.0)  # declination
    for _ in range(2):
        freq = rng.uniform(0.4, 1.8)
        semis += (speaker.f0_range / 4.0) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    # A couple of pitch accents (Gaussian bumps).
    for _ in range(int(rng.integers(1, 4))):
        centre = rng.uniform(0.1, 0.9) * dur
        width = rng.uniform(0.08, 0.2)
        semis += rng.uniform(1.0, 3.0) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    f0 = np.clip(speaker.f0_mean * 2.0 ** (semis / 12.0), 60.0, 450.0)
    return np.interp(np.arange(n), coarse, f0) if step > 1 else f0


def _voiced(
    f0: np.ndarray,
    vowel: Vowel,
    speaker: SpeakerProfile,
    rng: np.random.Generator,
    sr: int,
    amp: float,
) -> np.ndarray:
    """A voiced segment: Rosenberg pulse derivative + aspiration, through the formant cascade."""
    n = f0.size
    phase = (np.cumsum(f0) / sr + rng.uniform()) % 1.0
    tp = speaker.open_quotient * 0.62
    tn = speaker.open_quotient * 0.38
    # Rosenberg (1971) glottal flow: rising half cosine, falling quarter cosine, then closed. Each cosine is
    # evaluated only where it applies (the same values as evaluating both everywhere, at half the cost).
    g = np.zeros(n)
    rising = phase < tp
    falling = ~rising & (phase < tp + tn)
    g[rising] = 0.5 - 0.5 * np.cos(np.pi * phase[rising] / tp)
    g[falling] = np.cos(0.5 * np.pi * (phase[falling] - tp) / tn)
    excitation = np.diff(g, prepend=g[0])  # lip radiation ~ differentiation
    excitation /= np.sqrt(np.mean(excitation**2)) + 1e-12
    # Aspiration noise, gated by the open phase as in real breathy voice.
    excitation += speaker.breathiness * rng.standard_normal(n) * (0.3 + g)
    tail = int(0.02 * sr)  # let the resonators ring out instead of cutting them
    padded = np.concatenate(
        [
            excitation * _envelope(n, int(rng.uniform(0.015, 0.04) * sr), int(rng.uniform(0.03, 0.07) * sr)),
            np.zeros(tail),
        ]
    )
    out = sps.sosfilt(_resonator_sos(vowel.formants, vowel.bandwidths, sr), padded)
    rms = np.sqrt(np.mean(out[:n] ** 2)) + 1e-12
    return out * (amp / rms)


def _fricative(
    n: int, kind: str, speaker: SpeakerProfile, rng: np.random.Generator, sr: int, amp: float
) -> np.ndarray:
    k = speaker.fricative_shift
    bands = {
        "s": (4000.0 * k, 7800.0),
        "sh": (2000.0 * k, 5500.0 * k),
        "f": (1200.0, 7800.0),
        "h": (500.0 * k, 3500.0 * k),
    }
    lo, hi = bands[kind]
    noise = rng.standard_normal(n)
    out = sps.sosfilt(_bandpass_sos(_round_band(lo), _round_band(hi), sr), noise)
    out *= _envelope(n, int(0.2 * n), int(0.3 * n))
    rms = np.sqrt(np.mean(out**2)) + 1e-12
    return out * (amp / rms)


def _burst(n: int, speaker: SpeakerProfile, rng: np.random.Generator, sr: int, amp: float) -> np.ndarray:
    lo = rng.uniform(800.0, 2500.0) * speaker.fricative_shift
    out = sps.sosfilt(_bandpass_sos(_round_band(lo), _round_band(lo * 3.0), sr), rng.standard_normal(n))
    out *= np.exp(-np.arange(n) / (0.25 * n + 1))
    rms = np.sqrt(np.mean(out**2)) + 1e-12
    return out * (amp / rms)


def synth_utterance(
    speaker: SpeakerProfile,
    rng: np.random.Generator,
    duration_s: float | None = None,
    sr: int = SYNTH_SAMPLE_RATE,
    peak: float | None = 0.5,
    contour_step: int = 1,
) -> np.ndarray:
    """Synthesise one utterance of ``speaker``.

    The utterance is a sequence of words of 1-3 syllables (optional fricative/plosive/nasal onset, a voiced
    vowel nucleus, optional fricative coda), separated by short gaps or near-silent pauses, with 80-200 ms
    of near silence at both ends (as TIMIT's ``h#``).

    Args:
        speaker: Speaker profile (see :func:`make_speakers`).
        rng: numpy random generator (all randomness is drawn from it).
        duration_s: Approximate duration; drawn from U(1.5, 3.0) s when None.
        sr: Sample rate in Hz.
        peak: Peak-normalise to this value (None: leave the level as synthesised, RMS about 0.1).
        contour_step: Evaluate the pitch contour every this many samples and interpolate (1: exactly; the
            babble uses 32, 2 ms at 16 kHz).

    Returns:
        The waveform, float32 numpy array.

    Shape:
        - output: ``(time,)``.
    """
    if duration_s is None:
        duration_s = float(rng.uniform(1.5, 3.0))
    n_total = int(duration_s * sr)
    lead = int(rng.uniform(0.08, 0.2) * sr)
    trail = int(rng.uniform(0.08, 0.2) * sr)
    # 2 s of slack: the last word may run past n_total by up to one syllable (< 0.6 s) plus a pause.
    f0 = _pitch_contour(n_total + 2 * sr, speaker, rng, sr, contour_step)
    out = np.zeros(n_total + 2 * sr)
    pos = lead
    level = 0.1
    syll = 1.0 / speaker.rate
    while pos < n_total - trail - int(0.1 * sr):
        # Words of 1-3 syllables, fewer when close to the target duration.
        room = max(1, int((n_total - trail - pos) / (syll * sr)))
        n_syll = min(int(rng.integers(1, 4)), room)
        for s in range(n_syll):
            stress = 1.0 if (s == 0) else rng.uniform(0.5, 0.85)
            onset = rng.choice(["none", "fric", "plosive", "nasal", "h"], p=[0.3, 0.25, 0.2, 0.15, 0.1])
            if onset == "fric":
                n = int(rng.uniform(0.06, 0.14) * sr)
                kind = str(rng.choice(["s", "sh", "f"]))
                out[pos : pos + n] += _fricative(n, kind, speaker, rng, sr, level * rng.uniform(0.2, 0.45))
                pos += n
            elif onset == "plosive":
                pos += int(rng.uniform(0.03, 0.06) * sr)  # closure: silence
                n = int(rng.uniform(0.008, 0.02) * sr)
                out[pos : pos + n] += _burst(n, speaker, rng, sr, level * rng.uniform(0.5, 1.0))
                pos += n
            elif onset == "h":
                n = int(rng.uniform(0.04, 0.08) * sr)
                out[pos : pos + n] += _fricative(n, "h", speaker, rng, sr, level * 0.2)
                pos += n
            elif onset == "nasal":
                n = int(rng.uniform(0.04, 0.08) * sr)
                nasal = Vowel(tuple(f * speaker.formant_scale for f in _NASAL), _NASAL_BANDWIDTHS)
                seg = _voiced(f0[pos : pos + n], nasal, speaker, rng, sr, level * 0.35)
                out[pos : pos + seg.size] += seg
                pos += n
            # Vowel nucleus; its length follows the speaking rate, stressed syllables are longer.
            n = int(syll * rng.uniform(0.45, 0.8) * (1.0 + 0.3 * stress) * sr)
            vowel = speaker.vowels[int(rng.integers(len(speaker.vowels)))]
            seg = _voiced(f0[pos : pos + n], vowel, speaker, rng, sr, level * stress)
            out[pos : pos + seg.size] += seg
            pos += n
            if rng.uniform() < 0.2:
                n = int(rng.uniform(0.05, 0.12) * sr)
                kind = str(rng.choice(["s", "sh", "f"]))
                out[pos : pos + n] += _fricative(n, kind, speaker, rng, sr, level * rng.uniform(0.15, 0.35))
                pos += n
            pos += int(rng.uniform(0.0, 0.03) * sr)
        # Between words: usually a short gap, sometimes a real pause.
        pos += int((rng.uniform(0.08, 0.3) if rng.uniform() < 0.3 else rng.uniform(0.01, 0.05)) * sr)
    end = min(max(pos, n_total - trail) + trail, out.size)
    wave = out[:end]
    # Recording noise floor ~60 dB below the speech level: pauses are near-silent, never digital zeros
    # (which would be unlike any real recording and degenerate under log/IS costs).
    wave = wave + level * 1e-3 * rng.standard_normal(wave.size)
    if peak is not None:
        wave = wave * (peak / (np.max(np.abs(wave)) + 1e-12))
    return wave.astype(np.float32)


def make_speech_corpus(
    n_speakers: int, utts_per_speaker: int, seed: int = 0, sr: int = SYNTH_SAMPLE_RATE
) -> list[Utterance]:
    """The demo speech corpus: ``n_speakers`` x ``utts_per_speaker`` utterances of 1.5-3 s at 16 kHz.

    Utterance names are ``<speaker>_u<j>`` (e.g. ``F01_u03``). Utterance ``j`` of speaker ``i`` depends only
    on ``(seed, i, j)``. Each utterance is peak-normalised to 0.5.

    Args:
        n_speakers: Number of speakers (alternating male/female).
        utts_per_speaker: Utterances per speaker.
        seed: Random seed.
        sr: Sample rate in Hz.

    Returns:
        Utterances, ordered by speaker then utterance index.
    """
    as_int(n_speakers, "n_speakers", minimum=1)
    as_int(utts_per_speaker, "utts_per_speaker", minimum=1)
    return [
        make_utterance(speaker, i, j, seed, sr)
        for i, speaker in enumerate(make_speakers(n_speakers, seed))
        for j in range(int(utts_per_speaker))
    ]


def make_utterance(
    speaker: SpeakerProfile, speaker_index: int, utt_index: int, seed: int = 0, sr: int = SYNTH_SAMPLE_RATE
) -> Utterance:
    """Utterance ``utt_index`` of speaker ``speaker_index`` of the demo corpus, alone.

    ``make_utterance(make_speakers(n, seed)[i], i, j, seed)`` equals entry ``(i, j)`` of
    :func:`make_speech_corpus` with the same seed, so callers can synthesise only the utterances they use.
    """
    wave = synth_utterance(speaker, stream_rng(seed, _STREAM_UTTERANCE, speaker_index, utt_index), sr=sr)
    return Utterance(speaker.name, f"{speaker.name}_u{utt_index:02d}", torch.from_numpy(wave), sr)


# --------------------------------------------------------------------------------------------------------
# Noise


def room_impulse_response(rng: np.random.Generator, rt60: float, sr: int) -> np.ndarray:
    """A synthetic room impulse response without its direct path: early reflections, then a diffuse tail.

    The tail is Gaussian noise whose envelope decays by 60 dB in ``rt60`` seconds, faster at high
    frequencies (four bands, from 1.15 x ``rt60`` below 500 Hz to 0.6 x ``rt60`` above 4 kHz: air and wall
    absorption), starting 5-15 ms after the direct sound, with 4-8 discrete early reflections before 40 ms. It
    is cut 1.1 x ``rt60`` after the onset (the tail is then 66 dB down).

    Args:
        rng: numpy random generator.
        rt60: Reverberation time in seconds.
        sr: Sample rate in Hz.

    Returns:
        The response, unit energy, float64.

    Shape:
        - output: ``(round(1.1 * rt60 * sr) + onset,)``.

    References:
        Sabine's exponential decay of a diffuse sound field; Jot & Chaigne (1991), "Digital delay networks for
        designing artificial reverberators" (frequency-dependent decay of a noise tail).
    """
    onset = int(rng.uniform(0.005, 0.015) * sr)
    length = int(round(1.1 * rt60 * sr))
    t = np.arange(length) / sr
    tail = np.zeros(length)
    nyq = sr / 2.0
    for (lo, hi), factor in zip(
        ((20.0, 500.0), (500.0, 1500.0), (1500.0, 4000.0), (4000.0, 0.98 * nyq)),
        (1.15, 1.0, 0.8, 0.6),
        strict=True,
    ):
        if lo >= 0.98 * nyq:
            continue
        band = sps.sosfilt(_bandpass_sos(lo, min(hi, 0.98 * nyq), sr, 2), rng.standard_normal(length))
        tail += band * np.exp(-6.91 * t / (rt60 * factor))
    rir = np.concatenate([np.zeros(onset), tail])
    for _ in range(int(rng.integers(4, 9))):
        where = int(rng.uniform(0.002, 0.04) * sr)
        rir[where] += rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.8) * np.abs(tail[:64]).max()
    return rir / (np.sqrt(np.sum(rir**2)) + 1e-12)


def _talker_turns(
    talker: SpeakerProfile, n: int, rng: np.random.Generator, sr: int, duty: float
) -> list[tuple[int, np.ndarray]]:
    """One babble talker's dry speech over ``n`` samples, as turns ``(start, waveform)`` inside ``[0, n)``.

    Turns last 1.5-4 s; the silences between them are exponential, so that the talker speaks about ``duty``
    of the time. Every turn is synthesised once: no waveform repeats anywhere in the recording.
    """
    turns = []
    pos = -int(rng.uniform(0.0, 4.0) * sr)  # already mid-conversation when the recording starts
    mean_gap = 2.75 * (1.0 - duty) / duty  # 2.75 s: the mean turn
    while pos < n:
        wave = synth_utterance(
            talker, rng, duration_s=float(rng.uniform(1.5, 4.0)), sr=sr, peak=None, contour_step=32
        )
        lo, hi = max(pos, 0), min(pos + wave.size, n)
        if hi > lo:
            turns.append((lo, wave[lo - pos : hi - pos]))
        pos += wave.size + int(rng.exponential(mean_gap) * sr)
    return turns


def _babble(n: int, rng: np.random.Generator, seed: int, sr: int) -> np.ndarray:
    """Babble recorded as NOISEX-92's was: a crowd talking at once in a reverberant room, one microphone.

    40-60 talkers (:func:`make_babble_talkers`) each speak 25-35% of the time, in turns (so about 15 at
    once); each talker's speech is level-normalised while speaking, then given a vocal effort of +-3 dB. At
    the microphone, a talker's direct sound falls off with distance (2-10 m, so 1/r), while the reverberant
    field (RT60 0.5-0.8 s) has the same level for all: beyond the critical distance (about 1.5 m in a 500 m^3
    canteen at RT60 0.6 s) the reverberation dominates, as in a canteen. The talkers stand in 8 places, each
    with its own impulse response, so that no one response's spectral fine structure colours the whole crowd.
    (The direct sound's travel time is left out: it only delays one independent talker against another.)
    """
    n_talkers = int(rng.integers(40, 61))
    talkers = make_babble_talkers(n_talkers, seed)
    rt60 = float(rng.uniform(0.5, 0.8))
    critical_distance = float(rng.uniform(1.2, 1.8))
    n_places = 8
    dry = np.zeros((n_places, n))
    direct = np.zeros(n)
    for i, talker in enumerate(talkers):
        trng = stream_rng(seed, _STREAM_BABBLE, 1000 + i)
        turns = _talker_turns(talker, n, trng, sr, duty=float(trng.uniform(0.25, 0.35)))
        energy = sum(float(np.square(w).sum()) for _, w in turns)
        rms = np.sqrt(energy / max(sum(w.size for _, w in turns), 1))
        gain = 10.0 ** (trng.uniform(-3.0, 3.0) / 20.0) / (rms + 1e-12)
        # Direct-to-reverberant energy ratio (critical_distance / distance)^2.
        direct_gain = gain * critical_distance / float(trng.uniform(2.0, 10.0))
        place = dry[i % n_places]
        for start, wave in turns:
            place[start : start + wave.size] += gain * wave
            direct[start : start + wave.size] += direct_gain * wave
    out = direct
    for p in range(n_places):
        rir = room_impulse_response(stream_rng(seed, _STREAM_ROOM, p), rt60, sr)
        out += sps.oaconvolve(dry[p], rir)[:n]
    return out


def _factory(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    table_size = 8192
    machinery = np.zeros(n)
    for lo, hi in ((40.0, 70.0), (95.0, 140.0), (230.0, 330.0)):
        f0 = rng.uniform(lo, hi)
        k = np.arange(1, int(5000.0 / f0) + 1)
        # Harmonic amplitudes: power-law roll-off, random per-harmonic level, a housing resonance.
        res_f = rng.uniform(600.0, 3000.0)
        amps = (
            k ** (-rng.uniform(0.4, 1.0))
            * rng.lognormal(0.0, 0.5, size=k.size)
            * (1.0 + 3.0 * np.exp(-0.5 * ((k * f0 - res_f) / 250.0) ** 2))
        )
        spectrum = np.zeros(table_size // 2 + 1, dtype=complex)
        spectrum[k] = amps * np.exp(1j * rng.uniform(0, 2 * np.pi, size=k.size))
        table = np.fft.irfft(spectrum, n=table_size)
        table /= np.sqrt(np.mean(table**2)) + 1e-12
        # Wavetable oscillator with a tiny slow speed wobble (machines are not crystal clocks).
        wobble = 1.0 + 0.003 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
        phase = (np.cumsum(f0 * wobble) / sr + rng.uniform()) % 1.0
        idx = phase * table_size
        i0 = idx.astype(np.int64)
        frac = idx - i0
        wave = table[i0] * (1.0 - frac) + table[(i0 + 1) % table_size] * frac
        am = 1.0 + rng.uniform(0.15, 0.35) * np.sin(
            2 * np.pi * rng.uniform(0.3, 2.0) * t + rng.uniform(0, 2 * np.pi)
        )
        machinery += wave * am * rng.uniform(0.6, 1.0)
    machinery /= np.sqrt(np.mean(machinery**2)) + 1e-12

    # Impacts: a periodic hammer plus random (Poisson) hits, decaying noise bursts through metallic resonances.
    excitation = np.zeros(n + sr)
    period = rng.uniform(0.4, 0.9)
    hammer = np.arange(rng.uniform(0.0, period), n / sr, period)
    hammer = hammer + rng.normal(0.0, 0.01 * period, size=hammer.size)
    random_hits = np.sort(rng.uniform(0.0, n / sr, size=rng.poisson(1.5 * n / sr)))
    times = [(h, rng.uniform(0.8, 1.2)) for h in hammer] + [(h, rng.uniform(0.2, 0.7)) for h in random_hits]
    for when, gain in times:
        start = max(int(when * sr), 0)
        length = int(rng.uniform(0.02, 0.06) * sr)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.2 * length)) * gain
        excitation[start : start + length] += burst
    excitation = excitation[:n]
    rings = [
        (rng.uniform(900.0, 1800.0), 60.0),
        (rng.uniform(2000.0, 3500.0), 90.0),
        (rng.uniform(4000.0, 6000.0), 150.0),
    ]
    impacts = np.zeros(n)
    for f, b in rings:
        impacts += sps.sosfilt(_resonator_sos((f,), (b,), sr), excitation) * rng.uniform(0.5, 1.0)
    impacts += 0.3 * sps.sosfilt(_highpass_sos(300.0, sr), excitation)
    impacts /= np.sqrt(np.mean(impacts**2)) + 1e-12

    # Broadband coloured noise: a low-passed rumble plus a flat hiss up to 8 kHz.
    rumble = sps.sosfilt(_lowpass_sos(float(round(rng.uniform(800.0, 1500.0))), sr), rng.standard_normal(n))
    rumble /= np.sqrt(np.mean(rumble**2)) + 1e-12
    hiss = sps.sosfilt(_highpass_sos(2000.0, sr, 1), rng.standard_normal(n))
    hiss /= np.sqrt(np.mean(hiss**2)) + 1e-12
    broadband = 0.8 * rumble + 0.5 * hiss
    return machinery + 0.5 * impacts + 0.7 * broadband


def make_noise(kind: str, duration_s: float, seed: int = 0, sr: int = SYNTH_SAMPLE_RATE) -> torch.Tensor:
    """A demo noise recording.

    Generated once per process for each ``(kind, duration, seed, sr)`` (a sweep's jobs share it) and returned
    as a fresh tensor each time, so a caller may modify its copy.

    Args:
        kind: ``"babble"`` (a crowd of 40-60 synthetic talkers in a reverberant room, see :func:`_babble`) or
            ``"factory"`` (machinery harmonics, impacts and broadband noise).
        duration_s: Duration in seconds.
        seed: Random seed (the two kinds use separate streams).
        sr: Sample rate in Hz.

    Returns:
        The noise, float32, peak-normalised to 0.5.

    Shape:
        - output: ``(round(duration_s * sr),)``.

    Raises:
        ConfigError: If ``kind`` is unknown or ``duration_s`` is not positive.
    """
    if kind not in NOISE_KINDS:
        raise ConfigError(f"unknown demo noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    if not duration_s > 0:
        raise ConfigError(f"noise duration must be positive, got {duration_s!r} s")
    n = int(round(float(duration_s) * sr))
    return torch.from_numpy(_noise(kind, n, int(seed), int(sr)).copy())


@lru_cache(maxsize=4)
def _noise(kind: str, n: int, seed: int, sr: int) -> np.ndarray:
    # Cached (read-only): the babble costs seconds, and the jobs of a sweep (Hydra's basic launcher runs them
    # in one process) ask for the same one; four entries are at most 80 MB (235 s at 19.98 kHz each).
    if kind == "babble":
        wave = _babble(n, stream_rng(seed, _STREAM_BABBLE), seed, sr)
    else:
        wave = _factory(n, stream_rng(seed, _STREAM_FACTORY), sr)
    wave = (wave * (0.5 / (np.max(np.abs(wave)) + 1e-12))).astype(np.float32)
    wave.flags.writeable = False
    return wave
