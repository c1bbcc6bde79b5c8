"""The speech-enhancement data module: dictionary frames, training, validation and test mixtures.

One :class:`SpeechDataModule` serves every method (NMF, DNMF, DRNN, VAE-NMF), so they all see the same
speakers, noise segments and SNRs. It reads TIMIT + NOISEX-92 (``corpus="timit"``), a user's own corpus of
one folder per speaker (``corpus="folder"``, :mod:`vaenmf.data.folder`), or generates the embedded demo corpora
(``corpus="demo"``, no download), and everything it draws is deterministic given ``seed``. The noise condition
(``noise``; ``test_noise`` for mismatched-noise evaluation) is any of :mod:`vaenmf.data.noises`: the paper's
factory, babble and pooled, any NOISEX-92 noise by name, a pool of them, or a noise file by path.

Splits (DESIGN.md section 4):

- speakers are disjoint between the four uses: dictionary speakers (speech dictionary frames),
  encoder-training speakers (training mixtures for the encoding DNN / DRNN / DNMF), validation speakers and
  test speakers; the policy (TIMIT: Kaldi's 50-speaker development set for validation, the core test set for
  test; the demo: 1/2, 1/4, 1/4 of ``demo_speakers`` plus ``demo_validation_speakers`` voices of their own; a
  folder corpus: its sorted speakers dealt by ``speaker_fractions``) is :mod:`vaenmf.data.splits`;
- each noise is split by time into three disjoint parts: the first ``noise_train_fraction`` (60%) feeds the
  noise dictionary and the training mixtures, the next ``noise_validation_fraction`` (10%) the validation
  mixtures, the rest (the last 30%) the test mixtures, so no test noise sample is ever seen in training or
  validation, and no validation sample in training;
- validation mixtures are made exactly like test mixtures (every utterance at every SNR of ``test_snrs``,
  noise scaled over the utterance, one noise segment per utterance and noise shared by its SNRs) from their
  own seed stream, so the test mixtures are the same whether or how large the validation split is. Which
  of the two a job scores is the task's ``eval_split`` (:meth:`SpeechDataModule.evaluation_mixtures`).

Materialised data (dictionary frames, mixtures) is computed on first request and cached; ``setup()``
itself only plans (who goes where, which noise), loads/generates the noises and refuses a noise part shorter
than the longest utterance it is to be mixed with (from the files' headers; :meth:`SpeechDataModule.evaluate_on`);
utterances are read (TIMIT, folder) or synthesised (demo) when first needed. With the demo defaults (125 s of each noise), setup takes
about 0.8 s of CPU time for factory noise and 3.7 s for babble (a crowd of talkers is synthesised), and
nothing for the later jobs of a sweep, which share the generated noise; dictionary frames, training and
test mixtures another 0.7 s, the validation mixtures 0.15 s.

Speech dictionary frames: near-silent frames (more than ``silence_threshold_db`` = 40 dB below the loudest
frame of their utterance: pauses, TIMIT's leading/trailing ``h#``) are dropped before the random pick
(:mod:`vaenmf.data.frames`). Noise dictionary frames: none dropped. Mixtures whose peak would exceed 0.99 are scaled down as a whole
(speech, noise and mixture together; SNR unchanged; recorded in ``Mixture.scale``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytorch_lightning as pl
import torch

from vaenmf.data.audio import NOISEX_SAMPLE_RATE, audio_info, read_audio
from vaenmf.data.cache import FeatureCache
from vaenmf.data.features import SAMPLE_RATE, magnitude
from vaenmf.data.frames import drop_silent_frames, select_frames
from vaenmf.data.mixing import mix_at_snr, random_noise_segment
from vaenmf.data.noises import (
    NOISE_PARTS,
    NoiseSpec,
    locate_noise,
    noise_split_points,
    noise_stream,
    noisex_folder,
    parse_noise,
    short_noise_part,
)
from vaenmf.data.records import Mixture, SpeechItem, TrainingSpectra, magnitudes
from vaenmf.data.shortfalls import shortfall
from vaenmf.data.splits import (
    DEFAULT_SPEAKER_FRACTIONS,
    SPEAKER_PARTS,
    SpeakerPools,
    balanced_subset,
    folder_pools,
    partition_by_speaker,
    three_way_speaker_split,
    timit_pools,
)
from vaenmf.data.stamps import file_stamp
from vaenmf.data.synthetic import (
    DICTIONARY_VOICE_INDEX,
    dictionary_voice_name,
    make_dictionary_voices,
    make_noise,
    make_speakers,
    make_utterance,
    pitch_strata,
    speaker_name,
    stream_rng,
)
from vaenmf.data.timit import CORE_TEST_SPEAKERS, CORE_TEST_UTTERANCES, DEV_UTTERANCES, TRAIN_SPEAKERS
from vaenmf.errors import ConfigError, DataError
from vaenmf.validation import as_int, check_choice, check_int, check_number, check_number_list

__all__ = ["EVAL_SPLITS", "SpeechDataModule", "noise_split_points"]

T = TypeVar("T")

log = logging.getLogger(__name__)

CORPORA = ("demo", "timit", "folder")
#: The splits a job can score (the task's ``eval_split``): validation for every choice, test for the tables.
EVAL_SPLITS = ("validation", "test")

# Seed streams (see stream_rng): each use of randomness gets its own, so changing one size does not reshuffle the rest.
_S_SPLIT, _S_SUBSET, _S_DICT_SPEECH, _S_DICT_NOISE, _S_TRAIN_MIX, _S_TEST_MIX, _S_VALIDATION_MIX = range(
    10, 17
)
_EVAL_STREAMS = {"validation": _S_VALIDATION_MIX, "test": _S_TEST_MIX}
# How noise_sources names the demo's generated noises ("demo:factory(seed=0)").
_GENERATED = "demo:"
# Peak the mixture may reach before speech, noise and mixture are scaled down together.
_MAX_PEAK = 0.99


def _snr_tag(snr: float) -> str:
    return f"{snr:+g}dB"


class SpeechDataModule(pl.LightningDataModule):
    """Speech + noise data for the enhancement experiments (Tables 1 and 2).

    Args:
        corpus: ``"demo"`` (generated, no download), ``"timit"`` (TIMIT + NOISEX-92) or ``"folder"`` (a user's
            corpus, one folder per speaker under ``root``: :mod:`vaenmf.data.folder`).
        data_root: Folder with ``timit/`` and ``noisex92/`` subfolders (corpus ``"timit"``; corpus ``"folder"``:
            where ``noisex92/`` is looked for).
        timit_root: TIMIT folder (overrides ``data_root/timit``).
        noisex_root: NOISEX-92 folder (overrides ``data_root/noisex92``; the demo corpus reads named noises other
            than factory and babble from it).
        noise: The noise condition the dictionaries and networks are trained on (:mod:`vaenmf.data.noises`):
            ``"factory"``, ``"babble"``, ``"pooled"`` (both; Table 2), a NOISEX-92 name (``"white"``), a pool
            (``"pooled:white+pink"``) or an audio file's path.
        test_noise: The condition the validation and test mixtures use (mismatched-noise evaluation); None: the
            same as ``noise``.
        root: The folder corpus (corpus ``"folder"``).
        speaker_fractions: Corpus ``"folder"``: the fractions of its speakers for the dictionary, training,
            validation and test parts (:func:`~vaenmf.data.splits.fraction_speaker_split`; a mapping with those
            keys, or four numbers; None: 3/8, 1/4, 1/8, 1/4).
        dict_speech_frames: Speech dictionary frames (paper: 10000); fewer when the dictionary speakers have
            fewer non-silent frames.
        dict_noise_frames: Noise dictionary frames (paper: 9000; pooled: half from each noise); fewer when
            the training part of the noise is shorter.
        n_train_utterances: Encoder-training utterances (None: all of the training speakers' SI+SX).
        n_test_utterances: Test utterances (None: all; TIMIT: the 192 of the core test set), chosen round
            robin over the test speakers.
        n_validation_utterances: Validation utterances (None: all; TIMIT: the 400 of the development set),
            chosen round robin over the validation speakers.
        train_snrs: SNRs (dB) drawn uniformly for training mixtures.
        test_snrs: SNRs (dB) every test and every validation utterance is mixed at.
        noise_train_fraction: Leading fraction of each noise for the noise dictionary and the training
            mixtures (DESIGN.md: 0.6).
        noise_validation_fraction: The fraction after it for the validation mixtures (DESIGN.md: 0.1); the
            rest of the noise is for the test mixtures. 0: no validation noise (the test part then starts
            where the training part ends; validation mixtures are refused).
        seed: Seed of every random choice (and of the demo corpora).
        demo_speakers: Demo corpus speakers for the dictionary, training and test parts (>= 3; split 1/2
            dictionary, 1/4 training, 1/4 test).
        demo_extra_dictionary_speakers: Further demo voices for the speech dictionary only (``MX00``, ``FX01``,
            ...; a random stream of their own, so that the other parts stay the same voices): with the
            ``demo_speakers``' half,
            6 dictionary voices, which give the protocol's 10000 frames (4 gave 9892) and span each gender's
            range of pitch (:func:`~vaenmf.data.synthetic.pitch_strata`).
        demo_validation_speakers: Further demo speakers, the validation speakers (>= 1). Speaker ``i`` of the
            demo corpus depends only on the seed and ``i``, so they are other voices than the
            ``demo_speakers``, and the other three parts are the same whatever their number.
        demo_utts_per_speaker: Demo utterances per speaker.
        demo_noise_seconds: Duration of each demo noise.
        silence_threshold_db: Speech dictionary frames more than this many dB below the utterance's loudest
            frame are dropped (None: keep all).
        mixtures_per_train_utterance: Training mixtures per training utterance (each with its own SNR and
            noise segment; pooled: the noise kind alternates).
        dict_speaker_fraction: TIMIT: fraction of the TRAIN speakers used for the speech dictionary; the
            others provide the training mixtures.
    """

    def __init__(
        self,
        corpus: str = "demo",
        data_root: str | None = None,
        timit_root: str | None = None,
        noisex_root: str | None = None,
        noise: str = "factory",
        dict_speech_frames: int = 10000,
        dict_noise_frames: int = 9000,
        n_train_utterances: int | None = None,
        n_test_utterances: int | None = None,
        train_snrs: Sequence[float] = (-5, 0, 5, 10, 15, 20),
        test_snrs: Sequence[float] = (-5, 0, 5, 10),
        noise_train_fraction: float = 0.6,
        seed: int = 0,
        demo_speakers: int = 8,
        demo_validation_speakers: int = 2,
        demo_extra_dictionary_speakers: int = 2,
        n_validation_utterances: int | None = None,
        noise_validation_fraction: float = 0.1,
        demo_utts_per_speaker: int = 8,
        demo_noise_seconds: float = 60.0,
        silence_threshold_db: float | None = 40.0,
        mixtures_per_train_utterance: int = 1,
        dict_speaker_fraction: float = 0.5,
        test_noise: str | None = None,
        root: str | None = None,
        speaker_fractions: Mapping[str, float] | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.corpus = check_choice(corpus, CORPORA, "data.corpus")
        self.noise_specs = parse_noise(noise, "noise")
        self.noise = str(noise).strip()
        self.test_noise = None if test_noise is None else str(test_noise).strip()
        self.test_noise_specs = (
            parse_noise(test_noise, "test_noise") if test_noise is not None else self.noise_specs
        )
        self.root = root
        self.speaker_fractions = _speaker_fractions(speaker_fractions)
        self.noise_train_fraction = check_number(
            noise_train_fraction, "data.noise_train_fraction", above=0, below=1
        )
        self.noise_validation_fraction = check_number(
            noise_validation_fraction, "data.noise_validation_fraction", at_least=0, below=1
        )
        if self.noise_train_fraction + self.noise_validation_fraction >= 1:
            raise ConfigError(
                f"data.noise_train_fraction + data.noise_validation_fraction must be below 1 (the rest of each "
                f"noise is the test part), got {self.noise_train_fraction} + {self.noise_validation_fraction}"
            )
        self.dict_speaker_fraction = check_number(
            dict_speaker_fraction, "data.dict_speaker_fraction", above=0, below=1
        )
        self.demo_noise_seconds = check_number(demo_noise_seconds, "data.demo_noise_seconds", above=0)
        #: The noises the dictionaries and training mixtures use, and those the evaluation mixtures use.
        self.noise_kinds: tuple[str, ...] = tuple(spec.name for spec in self.noise_specs)
        self.eval_kinds: tuple[str, ...] = tuple(spec.name for spec in self.test_noise_specs)
        specs: dict[str, NoiseSpec] = {}
        for spec in (*self.noise_specs, *self.test_noise_specs):
            if specs.setdefault(spec.name, spec) != spec:
                raise ConfigError(
                    f"noise={self.noise!r} and test_noise={self.test_noise!r} both have a noise named {spec.name!r}, "
                    f"from {specs[spec.name].path or 'the corpus'} and {spec.path or 'the corpus'}; rename one file"
                )
        self._noise_specs = specs
        self.data_root = data_root
        self.timit_root = timit_root
        self.noisex_root = noisex_root
        self.dict_speech_frames = as_int(dict_speech_frames, "data.dict_speech_frames", minimum=1)
        self.dict_noise_frames = as_int(dict_noise_frames, "data.dict_noise_frames", minimum=1)
        self.n_train_utterances = as_int(
            n_train_utterances, "data.n_train_utterances", minimum=1, allow_none=True
        )
        self.n_test_utterances = as_int(
            n_test_utterances, "data.n_test_utterances", minimum=1, allow_none=True
        )
        self.n_validation_utterances = as_int(
            n_validation_utterances, "data.n_validation_utterances", minimum=1, allow_none=True
        )
        self.train_snrs = check_number_list(train_snrs, "data.train_snrs", hint="SNRs in dB")
        self.test_snrs = check_number_list(test_snrs, "data.test_snrs", hint="SNRs in dB")
        self.seed = int(seed)
        self.demo_speakers = int(demo_speakers)
        self.demo_utts_per_speaker = int(demo_utts_per_speaker)
        self.demo_validation_speakers = as_int(
            demo_validation_speakers, "data.demo_validation_speakers", minimum=1
        )
        self.demo_extra_dictionary_speakers = as_int(
            demo_extra_dictionary_speakers, "data.demo_extra_dictionary_speakers", minimum=0
        )
        self.silence_threshold_db = None if silence_threshold_db is None else float(silence_threshold_db)
        # None: the default, one mixture per training utterance.
        self.mixtures_per_train_utterance = (
            as_int(
                mixtures_per_train_utterance, "data.mixtures_per_train_utterance", minimum=1, allow_none=True
            )
            or 1
        )
        self.sr = SAMPLE_RATE
        # The splits whose noise parts setup() holds against their utterances (evaluate_on narrows them).
        self._eval_splits: tuple[str, ...] = EVAL_SPLITS
        self._feature_cache: FeatureCache | None = None
        self._ready = False
        self._cache: dict[str, object] = {}

    # ----------------------------------------------------------------------------------------------------
    # Setup

    def _roots(self) -> tuple[Path, Path]:
        base = Path(self.data_root).expanduser() if self.data_root else None
        timit = Path(self.timit_root).expanduser() if self.timit_root else (base / "timit" if base else None)
        noisex = (
            Path(self.noisex_root).expanduser() if self.noisex_root else (base / "noisex92" if base else None)
        )
        if timit is None or noisex is None:
            raise ConfigError(
                "data.corpus=timit needs data.data_root (a folder with timit/ and noisex92/) or both "
                "data.timit_root and data.noisex_root (or DATA_ROOT in the environment)"
            )
        return timit, noisex

    def use_feature_cache(self, root: str | Path | None) -> None:
        """Keep the resampled noise files, the speech dictionary frames and the training spectrograms in a
        :class:`~vaenmf.data.cache.FeatureCache` at ``root`` (None: compute them in every job); call before
        :meth:`setup`. The data are the same either way."""
        self._feature_cache = FeatureCache(root) if root is not None else None

    def evaluate_on(self, split: str) -> None:
        """Say which split the caller scores (``validation`` or ``test``, the task's ``eval_split``); call before
        :meth:`setup`.

        :meth:`setup` refuses a noise part shorter than the longest utterance mixed with it, before anything is
        drawn or fitted: the training part always, and the evaluation part of each split that may be scored, by
        default both (a job chooses at run time). A job scoring the test split is not refused over a validation
        part it never mixes (its mixtures and numbers are the same either way).

        Raises:
            ConfigError: If ``split`` is neither.
        """
        self._eval_splits = (check_choice(split, EVAL_SPLITS, "eval_split"),)

    def _cached(self, kind: str, parts: dict[str, object], compute: Callable[[], T]) -> T:
        """``compute()``, through the feature cache when there is one (keyed by ``kind`` and ``parts``)."""
        cache = self._feature_cache
        return compute() if cache is None else cache.get(kind, parts, compute)

    def _item_stamp(self, item: SpeechItem) -> list[object]:
        """What an utterance is: its file's stamp, or for the demo corpus its name, the seed and sample rate."""
        if item.path is not None:
            return [item.name, *file_stamp(item.path)]
        return [
            item.name,
            "demo",
            self.seed,
            self.sr,
            self.demo_speakers,
            self.demo_validation_speakers,
            self.demo_extra_dictionary_speakers,
        ]

    def _read_noise(self, path: Path) -> tuple[torch.Tensor, list[object]]:
        """A noise file at the pipeline rate (through the feature cache, keyed by the file's stamp), and the stamp."""
        stamp: list[object] = list(file_stamp(path))
        wave = self._cached(
            "noise",
            {"file": stamp, "sr": self.sr, "mat_sample_rate": NOISEX_SAMPLE_RATE},
            lambda: read_audio(path, target_sr=self.sr)[0],
        )
        return wave, stamp

    def _noisex_folder(self) -> Path | None:
        """Where named noises are read from: ``noisex_root``, else (TIMIT, folder) ``data_root/noisex92``; None for
        the demo without ``noisex_root`` (it generates factory and babble)."""
        if self.corpus == "timit":
            return self._roots()[1]  # data_root/noisex92, or a message asking for the roots
        return noisex_folder(self.corpus, self.noisex_root, self.data_root)

    def _load_noises(self) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, list[object]]]:
        """Every noise of ``noise`` and ``test_noise`` at the pipeline rate, where each came from, and what each is
        (its file's stamp, or the demo generator's kind, duration and seed: for the keys of cached features)."""
        folder = self._noisex_folder()
        noises: dict[str, torch.Tensor] = {}
        sources: dict[str, str] = {}
        stamps: dict[str, list[object]] = {}
        condition = f"noise={self.noise!r}" + (f", test_noise={self.test_noise!r}" if self.test_noise else "")
        for name, spec in self._noise_specs.items():
            path = locate_noise(spec, folder, self.corpus, condition)
            if path is not None:
                noises[name], stamps[name] = self._read_noise(path)
                sources[name] = str(path.resolve() if spec.path is not None else path)
            else:
                if self.corpus != "demo":
                    log.warning(
                        "noise %s: no NOISEX-92 folder (data.noisex_root) given; using the demo's generated %s noise",
                        name,
                        name,
                    )
                noises[name] = self._cached(
                    "demo_noise",
                    {"name": name, "seconds": self.demo_noise_seconds, "seed": self.seed, "sr": self.sr},
                    functools.partial(make_noise, name, self.demo_noise_seconds, self.seed),
                )
                sources[name] = f"{_GENERATED}{name}(seed={self.seed})"
                stamps[name] = [sources[name], self.demo_noise_seconds, self.sr]
        return noises, sources, stamps

    def setup(self, stage: str | None = None) -> None:
        """Plan the splits and load/generate the noise (and demo speech). Idempotent; deterministic."""
        if self._ready:
            return
        if self.corpus == "demo":
            check_int(self.demo_utts_per_speaker, "data.demo_utts_per_speaker", minimum=1)
            # Speaker i depends only on (seed, i): the validation speakers are the indices after
            # demo_speakers, so the dictionary, training and test speakers do not depend on their number.
            # The extra dictionary voices are drawn from a stream of their own (make_dictionary_voices), so
            # adding them changed none of the training, validation and test voices; all dictionary voices
            # together span each gender's range of pitch (pitch_strata).
            n_main, n_val = self.demo_speakers, self.demo_validation_speakers
            dict_spk, train_spk, test_spk = three_way_speaker_split([speaker_name(i) for i in range(n_main)])
            extra_names = [dictionary_voice_name(j) for j in range(self.demo_extra_dictionary_speakers)]
            dict_spk = [*dict_spk, *extra_names]
            strata = pitch_strata(dict_spk)
            speakers = make_speakers(n_main + n_val, self.seed, strata=strata)
            voices = [(i, spk) for i, spk in enumerate(speakers)] + [
                (DICTIONARY_VOICE_INDEX + j, spk)
                for j, spk in enumerate(make_dictionary_voices(len(extra_names), self.seed, strata))
            ]
            items = [
                SpeechItem(
                    spk.name,
                    f"{spk.name}_u{j:02d}",
                    synth=functools.partial(make_utterance, spk, i, j, self.seed, self.sr),
                )
                for i, spk in voices
                for j in range(self.demo_utts_per_speaker)
            ]
            validation_spk = [spk.name for spk in speakers[n_main:]]
            groups = (dict_spk, train_spk, validation_spk, test_spk)
            pools = SpeakerPools(*partition_by_speaker(items, *groups))
        else:
            if self.corpus == "timit":
                timit_root, _ = self._roots()
                pools = timit_pools(timit_root, self.dict_speaker_fraction, stream_rng(self.seed, _S_SPLIT))
            else:
                if not self.root:
                    raise ConfigError(
                        "data=speech_folder needs data.root=/path/to/speech: a folder with one folder per speaker "
                        "holding their recordings (wav, flac, ...; any sample rate)"
                    )
                pools = folder_pools(Path(self.root), self.speaker_fractions)
            groups = tuple(
                sorted({it.speaker for it in part})
                for part in (pools.dictionary, pools.training, pools.validation, pools.test)
            )
        noises, self.noise_sources, self._noise_stamps = self._load_noises()

        self.dictionary_speakers, self.train_speakers, self.validation_speakers, self.test_speakers = (
            list(g) for g in groups
        )
        overlap = {s for i, a in enumerate(groups) for b in groups[i + 1 :] for s in set(a) & set(b)}
        assert not overlap, f"speaker splits overlap: {sorted(overlap)}"  # by construction

        self._dict_items = pools.dictionary
        for key, asked, pool in (
            ("n_test_utterances", self.n_test_utterances, pools.test),
            ("n_validation_utterances", self.n_validation_utterances, pools.validation),
            ("n_train_utterances", self.n_train_utterances, pools.training),
        ):
            # An explicit count the split cannot meet is refused, not quietly lowered to what there is.
            if asked is not None and asked > len(pool) and (pool or key != "n_validation_utterances"):
                raise DataError(
                    f"data.{key}={asked} asks for more utterances than the {key[2:-11]} split has "
                    f"({len(pool)}, from {len({it.speaker for it in pool})} speakers); lower it, or set it to "
                    "null for all of them"
                )
        self._train_items = balanced_subset(
            pools.training, self.n_train_utterances, stream_rng(self.seed, _S_SUBSET)
        )
        # Evaluation utterances are picked without randomness (round robin from each speaker's first).
        self._eval_items = {
            "validation": balanced_subset(pools.validation, self.n_validation_utterances, None),
            "test": balanced_subset(pools.test, self.n_test_utterances, None),
        }
        self._test_items = self._eval_items["test"]
        if not self._dict_items or not self._train_items or not self._test_items:
            raise DataError(
                f"empty split: {len(self._dict_items)} dictionary, {len(self._train_items)} training and "
                f"{len(self._test_items)} test utterances"
            )
        self._shortfalls = self._corpus_shortfalls(pools)

        self.noises = noises
        self.noise_bounds: dict[str, tuple[int, int]] = {}
        for k, wave in noises.items():
            n = wave.numel()
            a, b = noise_split_points(n, self.noise_train_fraction, self.noise_validation_fraction)
            if a < 1 or b >= n:
                raise DataError(f"the {k} noise ({n} samples) is too short to split")
            self.noise_bounds[k] = (a, b)
        #: End of the training part of each noise (samples).
        self.noise_split = {k: a for k, (a, _) in self.noise_bounds.items()}
        self._check_noise_lengths()
        self._cache.clear()
        self._ready = True

    def _check_noise_lengths(self) -> None:
        """Refuse a noise part shorter than the longest utterance mixed with it, before anything is drawn or fitted
        (:meth:`_mix` would refuse it at the first such mixture, after the dictionaries are fitted).

        The training part is held against the training utterances, the validation and test parts against the
        utterances of the splits that may be scored (:meth:`evaluate_on`). Utterance lengths come from the files'
        headers at the pipeline's rate, no samples are read. A demo utterance has no length until it is
        synthesised, so the demo corpus is not checked here: its noises (``demo_noise_seconds``, 125 s in
        ``data=speech_demo``) are long enough by construction, and :meth:`_mix` still refuses one that is not.

        Raises:
            DataError: Naming the noise, its file, the part, the longest utterance and what to change
                (:func:`~vaenmf.data.noises.short_noise_part`).
        """
        uses = [("training", self.noise_kinds, self._train_items)]
        uses += [(split, self.eval_kinds, self._eval_items[split]) for split in self._eval_splits]
        for part, kinds, items in uses:
            if part == "validation" and self.noise_validation_fraction == 0:
                continue  # no validation noise: validation mixtures are refused with their own message
            longest = _longest_utterance(items, self.sr)
            if longest is None:
                continue  # an empty split (mixes nothing), or demo utterances
            utterance, n_speech = longest
            for kind in kinds:
                lo, hi = self._part_bounds(kind, part)
                if n_speech > hi - lo:
                    source = self.noise_sources[kind]
                    message = short_noise_part(
                        kind,
                        part,
                        (hi - lo) / self.sr,
                        self.noises[kind].numel() / self.sr,
                        utterance,
                        n_speech / self.sr,
                        (self.noise_train_fraction, self.noise_validation_fraction),
                        source=None if source.startswith(_GENERATED) else source,
                    )
                    if part in EVAL_SPLITS and len(self._eval_splits) > 1:
                        other = next(s for s in EVAL_SPLITS if s != part)
                        message += (
                            f"; to score only the {other} split, call evaluate_on({other!r}) before setup() (a job "
                            f"does: eval_split={other})"
                        )
                    raise DataError(message)

    def _corpus_shortfalls(self, pools: SpeakerPools) -> dict[str, list[dict[str, object]]]:
        """What the corpus gives fewer of than the job asks (:mod:`vaenmf.data.shortfalls`), by where it counts:
        ``corpus`` (every job), ``test`` and ``validation`` (a job scoring that split); the dictionary frames are
        added under ``frames`` when they are drawn."""
        out: dict[str, list[dict[str, object]]] = {"corpus": [], "test": [], "validation": [], "frames": []}
        if self.corpus != "timit":
            return out  # the demo's and a folder's sizes are the config's: explicit counts are met or refused
        root = str(self._roots()[0])
        has_core = any(it.speaker.upper() in CORE_TEST_SPEAKERS for it in pools.test)
        for split, asked, where, count in (
            ("test", CORE_TEST_UTTERANCES, "TIMIT core test set", self.n_test_utterances),
            ("validation", DEV_UTTERANCES, "TIMIT development set", self.n_validation_utterances),
        ):
            got = len(self._eval_items[split])
            if count is None and got < asked:
                if split == "test" and not has_core:
                    where = "no TIMIT core test set: speakers of the copy's own"
                out[split].append(shortfall(f"{split} utterances", asked, got, where, source=root))
        speakers = {it.speaker for it in (*pools.dictionary, *pools.training)}
        if len(speakers) < TRAIN_SPEAKERS:
            out["corpus"].append(
                shortfall(
                    "dictionary and training speakers",
                    TRAIN_SPEAKERS,
                    len(speakers),
                    "TIMIT TRAIN",
                    source=root,
                )
            )
        return out

    def shortfalls(self, eval_split: str | None = None) -> list[dict[str, object]]:
        """Everything the job asked for and the data gave fewer of, so far (:mod:`vaenmf.data.shortfalls`).

        The corpus-level shortfalls (TIMIT: fewer TRAIN speakers than the 462), those of the dictionary frames
        drawn so far (:meth:`speech_dictionary_frames`, :meth:`noise_dictionary_frames`: a job that fits no
        dictionary has none) and those of the scored split.

        Args:
            eval_split: The split the job scores (``validation``/``test``), or None for neither.

        Returns:
            Entries ``{"what", "asked", "got", "unit", "where", ...}``, empty when nothing fell short.
        """
        self._check_ready()
        parts = self._shortfalls
        split = parts.get(eval_split, []) if eval_split is not None else []
        return [*parts["corpus"], *split, *parts["frames"]]

    def _check_ready(self) -> None:
        if not self._ready:
            raise RuntimeError("SpeechDataModule.setup() must be called before requesting data")

    # ----------------------------------------------------------------------------------------------------
    # Noise parts

    #: The parts of each noise, in time order (see :meth:`noise_part_bounds`).
    NOISE_PARTS = NOISE_PARTS

    def noise_part_bounds(self, kind: str, part: str) -> tuple[int, int]:
        """Sample range ``[lo, hi)`` of a part of a noise: the first ``noise_train_fraction`` is the
        ``"training"`` part, the next ``noise_validation_fraction`` the ``"validation"`` part, the rest the
        ``"test"`` part (disjoint and in this order)."""
        self._check_ready()
        return self._part_bounds(kind, part)

    def _part_bounds(self, kind: str, part: str) -> tuple[int, int]:
        check_choice(part, self.NOISE_PARTS, "noise part")
        if kind not in self.noise_bounds:
            raise ConfigError(f"noise {kind!r} is not part of this data module (noise={self.noise!r})")
        a, b = self.noise_bounds[kind]
        return {"training": (0, a), "validation": (a, b), "test": (b, self.noises[kind].numel())}[part]

    def noise_train_part(self, kind: str) -> torch.Tensor:
        """The training part (first ``noise_train_fraction``) of a noise.

        Shape:
            - output: ``(noise_split[kind],)``.
        """
        lo, hi = self.noise_part_bounds(kind, "training")
        return self.noises[kind][lo:hi]

    def noise_validation_part(self, kind: str) -> torch.Tensor:
        """The validation part (the next ``noise_validation_fraction``) of a noise.

        Shape:
            - output: ``(hi - lo,)`` with ``(lo, hi) = noise_part_bounds(kind, "validation")``.
        """
        lo, hi = self.noise_part_bounds(kind, "validation")
        return self.noises[kind][lo:hi]

    def noise_test_part(self, kind: str) -> torch.Tensor:
        """The test part (the rest, after the validation part) of a noise.

        Shape:
            - output: ``(hi - lo,)`` with ``(lo, hi) = noise_part_bounds(kind, "test")``.
        """
        lo, hi = self.noise_part_bounds(kind, "test")
        return self.noises[kind][lo:hi]

    # ----------------------------------------------------------------------------------------------------
    # Dictionary frames

    def speech_dictionary_frames(self) -> torch.Tensor:
        """Magnitude frames of the dictionary speakers' speech.

        The dictionary utterances are visited in a seeded random order; each one's near-silent frames are
        dropped (see :func:`drop_silent_frames`), and utterances are added until ``dict_speech_frames``
        frames are collected; then exactly that many are picked at random (in time order). When the
        dictionary speakers have fewer non-silent frames, all are returned (and a message is logged).

        Shape:
            - output: ``(257, min(dict_speech_frames, available))``, float32, nonnegative.
        """
        self._check_ready()
        if "speech_frames" not in self._cache:
            X = self._cached(
                "speech_frames",
                {
                    "items": [self._item_stamp(it) for it in self._dict_items],
                    "frames": self.dict_speech_frames,
                    "silence_threshold_db": self.silence_threshold_db,
                    "seed": self.seed,
                },
                self._draw_speech_frames,
            )
            if X.shape[1] < self.dict_speech_frames:
                log.warning(
                    "speech dictionary: only %d non-silent frames available (asked %d)",
                    X.shape[1],
                    self.dict_speech_frames,
                )
                self._shortfalls["frames"].insert(
                    0,
                    shortfall(
                        "speech dictionary",
                        self.dict_speech_frames,
                        X.shape[1],
                        "dictionary speakers",
                        "frames",
                    ),
                )
            self._cache["speech_frames"] = X
        return self._cache["speech_frames"]  # type: ignore[return-value]

    def _draw_speech_frames(self) -> torch.Tensor:
        rng = stream_rng(self.seed, _S_DICT_SPEECH)
        order = rng.permutation(len(self._dict_items))
        mats, total = [], 0
        for i in order:
            mag = drop_silent_frames(magnitude(self._dict_items[i].load()), self.silence_threshold_db)
            mats.append(mag)
            total += mag.shape[1]
            if total >= self.dict_speech_frames:
                break
        return select_frames(torch.cat(mats, dim=1), self.dict_speech_frames, rng)

    def noise_dictionary_frames(self, kind: str | None = None) -> torch.Tensor:
        """Magnitude frames of the training part of the noise(s).

        Frames are picked at random (seeded, in time order) from the STFT of the training part only; the
        test part never contributes, not even through the STFT's padding. Pooled: half of
        ``dict_noise_frames`` from each noise (4500 + 4500 by default; factory gets the odd frame), factory
        frames first. No frame is dropped: noise has no pauses.

        Args:
            kind: Only this noise's frames (pooled: its half); None: all, concatenated.

        Shape:
            - output: ``(257, min(dict_noise_frames, available))``, float32, nonnegative.
        """
        self._check_ready()
        if kind is not None and kind not in self.noise_kinds:
            raise ConfigError(f"noise {kind!r} is not part of this data module (noise={self.noise!r})")
        if "noise_frames" not in self._cache:
            counts = self._noise_frame_counts()
            per_kind = {}
            for k in self.noise_kinds:
                mag = magnitude(self.noise_train_part(k))
                # Seed stream keyed by the noise, so babble frames are the same alone and pooled.
                X = select_frames(mag, counts[k], stream_rng(self.seed, _S_DICT_NOISE, noise_stream(k)))
                if X.shape[1] < counts[k]:
                    log.warning(
                        "%s noise dictionary: only %d frames in the training part (asked %d)",
                        k,
                        X.shape[1],
                        counts[k],
                    )
                    self._shortfalls["frames"].append(
                        shortfall(
                            "noise dictionary",
                            counts[k],
                            X.shape[1],
                            k,
                            "frames",
                            source=self.noise_sources[k],
                        )
                    )
                per_kind[k] = X
            self._cache["noise_frames_by_kind"] = per_kind
            self._cache["noise_frames"] = torch.cat([per_kind[k] for k in self.noise_kinds], dim=1)
        if kind is not None:
            return self._cache["noise_frames_by_kind"][kind]  # type: ignore[index]
        return self._cache["noise_frames"]  # type: ignore[return-value]

    def _noise_frame_counts(self) -> dict[str, int]:
        k = len(self.noise_kinds)
        base, extra = divmod(self.dict_noise_frames, k)
        return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(self.noise_kinds)}

    # ----------------------------------------------------------------------------------------------------
    # Mixtures

    def _mix(
        self,
        item: SpeechItem,
        speech: torch.Tensor,
        kind: str,
        snr: float,
        rng: np.random.Generator,
        part: str,
    ) -> Mixture:
        noise = self.noises[kind]
        lo, hi = self.noise_part_bounds(kind, part)
        if speech.numel() > hi - lo:
            raise DataError(
                f"the {part} part of the {kind} noise ({(hi - lo) / self.sr:.2f} s) is shorter than utterance "
                f"{item.name} ({speech.numel() / self.sr:.2f} s); use a longer noise (demo_noise_seconds) or "
                "change noise_train_fraction / noise_validation_fraction"
            )
        offset = lo + random_noise_segment(hi - lo, speech.numel(), rng)
        mixture, scaled = mix_at_snr(speech, noise, snr, offset=offset)
        # Keep |mixture| <= 1 (a waveform contract, and PESQ/wav writing expect it) by scaling all three
        # signals together, which preserves both the SNR and mixture = speech + noise.
        peak = float(np.abs(mixture.numpy()).max())
        scale = 1.0
        if peak > _MAX_PEAK:
            scale = _MAX_PEAK / peak
            # numpy, not torch: torch's thread pool makes these small element-wise ops slow on busy CPUs.
            speech, scaled, mixture = (
                torch.from_numpy(x.numpy() * np.float32(scale)) for x in (speech, scaled, mixture)
            )
        return Mixture(
            name=f"{item.name}_{kind}_{_snr_tag(snr)}",
            snr=float(snr),
            noise_kind=kind,
            speech=speech.to(torch.float32),
            noise=scaled.to(torch.float32),
            mixture=mixture.to(torch.float32),
            sr=self.sr,
            speaker=item.speaker,
            utterance=item.name,
            noise_offset=int(offset),
            scale=scale,
        )

    def iter_training_mixtures(self) -> Iterator[Mixture]:
        """Yield the training mixtures one at a time (same order and content as :meth:`training_mixtures`)."""
        self._check_ready()
        snr_rng = stream_rng(self.seed, _S_TRAIN_MIX)
        k = 0
        for i, item in enumerate(self._train_items):
            speech = item.load()
            for r in range(self.mixtures_per_train_utterance):
                kind = self.noise_kinds[k % len(self.noise_kinds)]
                snr = float(snr_rng.choice(self.train_snrs))
                rng = stream_rng(self.seed, _S_TRAIN_MIX, i, r)
                yield self._mix(item, speech, kind, snr, rng, "training")
                k += 1

    def training_mixtures(self) -> list[Mixture]:
        """Mixtures of the encoder-training utterances (cached).

        Each training utterance is mixed ``mixtures_per_train_utterance`` times (default once) at an SNR drawn
        uniformly from ``train_snrs``, with a noise segment at a random offset in the training part of the
        noise; pooled: the noise kind alternates factory, babble, factory, ...

        Returns:
            Mixtures in a fixed order.
        """
        if "train" not in self._cache:
            self._cache["train"] = list(self.iter_training_mixtures())
        return self._cache["train"]  # type: ignore[return-value]

    def training_spectra(self) -> list[TrainingSpectra]:
        """The magnitude spectrograms of the training mixtures and their parts (cached, also on disk with
        :meth:`use_feature_cache`): what :meth:`training_mixtures` gives, transformed, without the waveforms.

        The same values as ``magnitudes(m)`` of each of :meth:`training_mixtures`, in the same order.

        Returns:
            One :class:`~vaenmf.data.records.TrainingSpectra` per training mixture.
        """
        self._check_ready()
        if "train_spectra" not in self._cache:
            parts = {
                "items": [self._item_stamp(it) for it in self._train_items],
                "noises": {k: self._noise_stamps[k] for k in self.noise_kinds},
                "bounds": {k: list(self.noise_part_bounds(k, "training")) for k in self.noise_kinds},
                "train_snrs": list(self.train_snrs),
                "mixtures_per_train_utterance": self.mixtures_per_train_utterance,
                "seed": self.seed,
            }
            packed = self._cached("train_spectra", parts, self._pack_training_spectra)
            self._cache["train_spectra"] = [
                TrainingSpectra(name, *(packed[part][i] for part in ("mixture", "speech", "noise")))
                for i, name in enumerate(packed["names"])
            ]
        return self._cache["train_spectra"]  # type: ignore[return-value]

    def _pack_training_spectra(self) -> dict[str, list]:
        packed: dict[str, list] = {"names": [], "mixture": [], "speech": [], "noise": []}
        for mix in self.iter_training_mixtures():
            packed["names"].append(mix.name)
            for part, mag in zip(("mixture", "speech", "noise"), magnitudes(mix), strict=True):
                packed[part].append(mag)
        return packed

    def iter_evaluation_mixtures(self, split: str = "test") -> Iterator[tuple[float, Mixture]]:
        """Yield ``(snr, mixture)`` pairs of the validation or the test split one at a time, without caching
        (same content as :meth:`evaluation_mixtures`).

        Args:
            split: ``"validation"`` or ``"test"``.

        Raises:
            ConfigError: If ``split`` is neither, or the validation split is empty (no validation speakers,
                or ``noise_validation_fraction`` 0).
        """
        self._check_ready()
        items = self._evaluation_items(split)
        stream = _EVAL_STREAMS[split]
        for i, item in enumerate(items):
            speech = item.load()
            for kind in self.eval_kinds:
                for snr in self.test_snrs:
                    # One noise offset per (utterance, noise), shared by all SNRs, so the SNR curve compares like
                    # with like; keyed by the noise's name, so a babble-only run and a pooled run evaluate on the
                    # same babble mixtures. Each split has its own stream: the test draws never depend on the
                    # validation split.
                    rng = stream_rng(self.seed, stream, i, noise_stream(kind))
                    yield snr, self._mix(item, speech, kind, snr, rng, split)

    def _evaluation_items(self, split: str) -> list[SpeechItem]:
        check_choice(split, EVAL_SPLITS, "eval_split")
        items = self._eval_items[split]
        if split == "validation":
            if not items:
                raise ConfigError(
                    "eval_split=validation: this data has no validation speakers (TIMIT: none of the 50 "
                    "development-set speakers under TEST/); use eval_split=test or a complete corpus"
                )
            if self.noise_validation_fraction == 0:
                raise ConfigError(
                    "eval_split=validation: data.noise_validation_fraction is 0, so no noise is set aside for "
                    "validation mixtures; set it (DESIGN.md: 0.1)"
                )
        return items

    def evaluation_mixtures(self, split: str = "test") -> dict[float, list[Mixture]]:
        """Mixtures of the validation or the test split keyed by SNR (cached).

        Every utterance of the split is mixed at every SNR of ``test_snrs`` with a segment from the split's
        part of the noise (pooled: with each noise, so every list holds both kinds; see ``Mixture.noise_kind``).

        Args:
            split: ``"validation"`` or ``"test"`` (the task's ``eval_split``).

        Returns:
            ``{snr: [Mixture, ...]}`` in the order of ``test_snrs``; keys are ints when the SNRs are whole.
        """
        if split not in self._cache:
            out: dict[float, list[Mixture]] = {_key(s): [] for s in self.test_snrs}
            for snr, mix in self.iter_evaluation_mixtures(split):
                out[_key(snr)].append(mix)
            self._cache[split] = out
        return self._cache[split]  # type: ignore[return-value]

    def iter_test_mixtures(self) -> Iterator[tuple[float, Mixture]]:
        """Yield ``(snr, mixture)`` pairs of the test split one at a time (:meth:`iter_evaluation_mixtures`)."""
        return self.iter_evaluation_mixtures("test")

    def test_mixtures(self) -> dict[float, list[Mixture]]:
        """Test mixtures keyed by SNR (cached; :meth:`evaluation_mixtures` of ``"test"``)."""
        return self.evaluation_mixtures("test")

    def validation_mixtures(self) -> dict[float, list[Mixture]]:
        """Validation mixtures keyed by SNR (cached; :meth:`evaluation_mixtures` of ``"validation"``)."""
        return self.evaluation_mixtures("validation")

    # ----------------------------------------------------------------------------------------------------
    # Introspection

    @property
    def test_utterances(self) -> list[str]:
        """Names of the test utterances."""
        self._check_ready()
        return [it.name for it in self._test_items]

    @property
    def validation_utterances(self) -> list[str]:
        """Names of the validation utterances."""
        self._check_ready()
        return [it.name for it in self._eval_items["validation"]]

    @property
    def train_utterances(self) -> list[str]:
        """Names of the encoder-training utterances."""
        self._check_ready()
        return [it.name for it in self._train_items]

    def summary(self) -> dict[str, object]:
        """Plain-dict description of the data (for metrics.json and logs)."""
        self._check_ready()
        out: dict[str, object] = {
            "corpus": self.corpus,
            "noise": self.noise,
            "test_noise": self.test_noise,
            "seed": self.seed,
            "sample_rate": self.sr,
            "dictionary_speakers": self.dictionary_speakers,
            "train_speakers": self.train_speakers,
            "validation_speakers": self.validation_speakers,
            "test_speakers": self.test_speakers,
            "n_dictionary_utterances": len(self._dict_items),
            "n_train_utterances": len(self._train_items),
            "n_validation_utterances": len(self._eval_items["validation"]),
            "n_test_utterances": len(self._test_items),
            "train_snrs": list(self.train_snrs),
            "test_snrs": list(self.test_snrs),
            "noise_seconds": {k: v.numel() / self.sr for k, v in self.noises.items()},
            "noise_train_seconds": {k: s / self.sr for k, s in self.noise_split.items()},
            # Sample ranges [lo, hi) of each part of each noise, at the pipeline's rate.
            "noise_parts": {
                k: {part: list(self.noise_part_bounds(k, part)) for part in self.NOISE_PARTS}
                for k in self.noises
            },
            "noise_sources": dict(self.noise_sources),
        }
        if "speech_frames" in self._cache:
            out["dict_speech_frames"] = int(self.speech_dictionary_frames().shape[1])
        if "noise_frames" in self._cache:
            out["dict_noise_frames"] = int(self.noise_dictionary_frames().shape[1])
        return out


def _longest_utterance(items: Sequence[SpeechItem], sr: int) -> tuple[str, int] | None:
    """The longest of the utterances read from files and its samples at ``sr``, from the headers alone; None when
    there is none (an empty split, or synthesised demo utterances, whose length only synthesis tells).

    Raises:
        AudioReadError: A file whose header cannot be read (the job would fail reading it).
    """
    lengths = [(audio_info(it.path).samples_at(sr), it.name) for it in items if it.path is not None]
    if not lengths:
        return None
    n, name = max(lengths, key=lambda x: x[0])  # the first of equally long ones
    return name, n


def _speaker_fractions(value: Mapping[str, float] | Sequence[float] | None) -> list[float]:
    """``data.speaker_fractions`` as four numbers (dictionary, training, validation, test)."""
    if value is None:
        return list(DEFAULT_SPEAKER_FRACTIONS.values())
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(SPEAKER_PARTS))
        if unknown:
            raise ConfigError(
                f"data.speaker_fractions has unknown parts {unknown}; expected {list(SPEAKER_PARTS)}"
            )
        values = [value.get(part, 0.0) for part in SPEAKER_PARTS]
    else:
        values = list(value)
        if len(values) != len(SPEAKER_PARTS):
            raise ConfigError(
                f"data.speaker_fractions must give {len(SPEAKER_PARTS)} fractions ({', '.join(SPEAKER_PARTS)}), "
                f"got {values}"
            )
    return [
        check_number(v, f"data.speaker_fractions.{part}", at_least=0, below=1.000001)
        for part, v in zip(SPEAKER_PARTS, values, strict=True)
    ]


def _key(snr: float) -> float:
    return int(snr) if float(snr).is_integer() else float(snr)
