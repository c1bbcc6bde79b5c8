"""``vaenmf-data check``: what is in the real corpora, and can each experiment run on them by the paper's protocol?

It inventories TIMIT, NOISEX-92 and Ninapro DB1 where the data configs look for them (``DATA_ROOT/timit``,
``DATA_ROOT/noisex92``, ``DATA_ROOT/ninapro_db1``, each overridable) with the same lookup functions the jobs use
(:func:`vaenmf.data.timit.scan_timit`, :func:`vaenmf.data.noisex.find_noise_file`,
:func:`vaenmf.data.ninapro.scan_ninapro_files`), so what it reports is what a job would read. It reads headers,
not samples: SPHERE ``sample_count``/``sample_rate``, RIFF chunks and ``soundfile.info``, MAT variable headers
(``whosmat``) and, for DB1, only the label variables. The full corpora take seconds.

Each problem is a :class:`Finding` of one of three levels:

- ``error``: a job of the experiment would stop, or its test scores would not be on the paper's test set
  (a missing corpus, an unreadable file a job reads, an incomplete core test set, fewer frames than a
  dictionary of the asked rank needs, a noise part shorter than the utterances mixed with it, a DB1 movement
  with no training or no held-out repetition, labels outside the exercise's range);
- ``warning``: the job runs but deviates from the protocol (1501 noise dictionary frames instead of 9000, an
  incomplete development set, a movement or repetition missing, 8 kHz audio upsampled), or a file no job reads
  is broken;
- ``note``: worth knowing, no deviation (a partial TRAIN set, files the loaders skip, duplicates).

The jobs one asks about (``check_corpora(noises=..., test_noises=..., speech_folder=...)``; ``vaenmf-data check
--noise SPEC --test-noise SPEC --speech-folder PATH``) are two more experiments, the same jobs scoring the test and
the validation split (:data:`JOB_EXPERIMENTS`). Their noises are found as the jobs find them
(:func:`vaenmf.data.noises.noisex_folder`, :func:`vaenmf.data.noises.locate_noise`: a NOISEX-92 name, a pool, a
file by path, the demo's generated factory/babble on a folder corpus without NOISEX-92), and their parts are held
to the rule ``SpeechDataModule.setup`` enforces (:func:`vaenmf.data.noises.short_noise_part`, the same message);
a folder corpus is split by the jobs' policy (:func:`vaenmf.data.splits.fraction_speaker_split`). The paper's
experiments are then checked only where their corpora are given.

Exit status of the command: 0 when every experiment can run by the protocol, 1 when there are warnings but no
errors, 2 when there is an error, 64 for a usage error.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaenmf.data.audio import AudioInfo, audio_info, check_resample, mat_variables
from vaenmf.data.folder import folder_utterances
from vaenmf.data.ninapro import (
    EXERCISE_MOVEMENTS,
    N_REPETITIONS,
    TEST_REPETITIONS,
    TRAIN_REPETITIONS,
    check_labels,
    scan_ninapro_files,
)
from vaenmf.data.noises import (
    NoiseSpec,
    locate_noise,
    noise_part_lengths,
    noisex_folder,
    parse_noise,
    short_noise_part,
)
from vaenmf.data.noisex import NOISE_FILES, list_noise_files, noise_candidates, noise_names
from vaenmf.data.splits import DEFAULT_SPEAKER_FRACTIONS, SPEAKER_PARTS, fraction_speaker_split
from vaenmf.data.timit import (
    CORE_TEST_SPEAKERS,
    CORE_TEST_SPEAKERS_BY_DIALECT,
    DEV_SPEAKERS,
    DEV_SPEAKERS_BY_DIALECT,
    TimitScan,
    TimitUtterance,
    find_timit_root,
    scan_timit,
)
from vaenmf.errors import ConfigError, VaenmfError

__all__ = ["Protocol", "Finding", "CheckReport", "check_corpora", "EXPERIMENTS", "JOB_EXPERIMENTS"]

# The speech front end (vaenmf.data.features), spelled out so that the check never imports torch (seconds of
# start-up on a busy machine); a test keeps them equal.
SAMPLE_RATE = 16000
HOP_LENGTH = 128

#: The paper's TIMIT sizes (LDC distribution).
TIMIT_TRAIN_SPEAKERS = 462
TIMIT_TRAIN_SI_SX = 3696
TIMIT_TEST_SPEAKERS = 168
#: SI + SX sentences per TIMIT speaker (3 SI, 5 SX; the 2 SA sentences are left out by the protocol).
SI_SX_PER_SPEAKER = 8
#: Every NOISEX-92 recording's name (file stem).
NOISEX92_NOISES = (
    "babble",
    "buccaneer1",
    "buccaneer2",
    "destroyerengine",
    "destroyerops",
    "f16",
    "factory1",
    "factory2",
    "hfchannel",
    "leopard",
    "m109",
    "machinegun",
    "pink",
    "volvo",
    "white",
)
#: The experiments checked, with what they read.
EXPERIMENTS = {
    "table1": "Table 1: TIMIT + NOISEX-92 factory1 and babble, one noise dictionary per noise",
    "table2": "Table 2: TIMIT + NOISEX-92 factory1 and babble pooled into one noise dictionary",
    "figure2": "Figure 2: Ninapro DB1 muscle synergies",
}
_SPEECH = ("table1", "table2")
#: The experiments of the jobs asked with ``--noise``/``--test-noise``/``--speech-folder``: one per split a job may
#: score (``eval_split``), since a noise part too short for the validation utterances stops only validation jobs.
JOB_EXPERIMENTS = {"jobs_test": "test", "jobs_validation": "validation"}
_JOBS = tuple(JOB_EXPERIMENTS)
_LEVELS = ("error", "warning", "note")
# Per-file findings of one kind shown in the text output before "... and N more" (--json lists all).
_SHOW_PER_KIND = 5


@dataclass(frozen=True)
class Protocol:
    """The sizes the paper's protocol asks for (the defaults of ``conf/data/*.yaml`` and ``conf/model``).

    Attributes:
        speech_dict_frames: Speech dictionary frames (``data.dict_speech_frames``).
        noise_dict_frames: Noise dictionary frames (``data.dict_noise_frames``; Table 2: half from each noise).
        speech_rank: Speech dictionary rank (``model.rank``).
        noise_rank: Noise dictionary rank.
        noise_train_fraction: Leading fraction of each noise for dictionaries and training mixtures.
        noise_validation_fraction: The fraction after it for the validation mixtures; the rest of each noise
            (the last 30%) is for the test mixtures.
        dict_speaker_fraction: Fraction of the TRAIN speakers whose speech makes the speech dictionary.
        synergy_rank: Muscle-synergy rank (``conf/model/nmf_synergy.yaml``).
        db1_subjects: DB1 subjects Figure 2 reads (``data.subjects``).
        db1_exercises: DB1 exercises Figure 2 reads (``data.exercises``).
        demo_noise_seconds: Length of the demo's generated factory/babble noise, which a folder-corpus job uses
            without a NOISEX-92 folder (``data.demo_noise_seconds``; ``data=speech_folder`` leaves the default).
        speaker_fractions: A folder corpus's speaker split (``data.speaker_fractions``: dictionary, training,
            validation, test).
    """

    speech_dict_frames: int = 10000
    noise_dict_frames: int = 9000
    speech_rank: int = 40
    noise_rank: int = 40
    noise_train_fraction: float = 0.6
    noise_validation_fraction: float = 0.1
    dict_speaker_fraction: float = 0.5
    synergy_rank: int = 4
    db1_subjects: tuple[int, ...] = tuple(range(1, 28))
    db1_exercises: tuple[int, ...] = (1,)
    demo_noise_seconds: float = 60.0
    speaker_fractions: tuple[float, ...] = tuple(DEFAULT_SPEAKER_FRACTIONS.values())


@dataclass
class Finding:
    """One problem or remark.

    Attributes:
        level: ``"error"``, ``"warning"`` or ``"note"`` (see the module docstring).
        corpus: ``"timit"``, ``"noisex92"``, ``"ninapro_db1"``, ``"data_root"``, ``"speech_folder"`` (the folder
            corpus asked) or ``"noise"`` (a noise the jobs asked read).
        message: What is wrong and what was expected.
        experiments: The experiments it affects (empty: none, e.g. a broken file no job reads).
        path: The file or folder concerned, if one.
        kind: A short key grouping per-file findings of the same sort (``"unreadable"``, ...).
    """

    level: str
    corpus: str
    message: str
    experiments: tuple[str, ...] = ()
    path: str | None = None
    kind: str = ""


@dataclass
class CheckReport:
    """The inventory of the corpora and the verdict per experiment (see :func:`check_corpora`).

    Attributes:
        data_root: ``DATA_ROOT``, if given.
        corpora: What was found, per corpus (``timit``, ``noisex92``, ``ninapro_db1``; ``speech_folder`` and
            ``noises`` for the jobs asked).
        findings: Every problem and remark.
        experiments: The experiments checked, name -> title (default: the paper's, :data:`EXPERIMENTS`).
    """

    data_root: str | None
    corpora: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=lambda: dict(EXPERIMENTS))

    def add(self, level: str, corpus: str, message: str, experiments: Iterable[str] = (), **kw: Any) -> None:
        """Record a :class:`Finding` (``kw``: ``path``, ``kind``)."""
        assert level in _LEVELS, level
        self.findings.append(Finding(level, corpus, message, tuple(experiments), **kw))

    def experiment(self, name: str) -> dict[str, Any]:
        """``{"name", "title", "status", "errors", "warnings"}``; status ``ok``, ``deviates`` or ``cannot run``."""
        errors = [f for f in self.findings if name in f.experiments and f.level == "error"]
        warnings = [f for f in self.findings if name in f.experiments and f.level == "warning"]
        status = "cannot run" if errors else ("deviates" if warnings else "ok")
        return {
            "name": name,
            "title": self.experiments[name],
            "status": status,
            "errors": [f.message for f in errors],
            "warnings": [f.message for f in warnings],
        }

    @property
    def exit_status(self) -> int:
        """0: every experiment by the protocol; 1: warnings only; 2: at least one error."""
        levels = {f.level for f in self.findings}
        return 2 if "error" in levels else (1 if "warning" in levels else 0)

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        return {
            "data_root": self.data_root,
            "corpora": self.corpora,
            "experiments": [self.experiment(name) for name in self.experiments],
            "findings": [asdict(f) for f in self.findings],
            "counts": {level: sum(f.level == level for f in self.findings) for level in _LEVELS},
            "exit_status": self.exit_status,
        }

    def format_text(self) -> str:
        """The human-readable report."""
        return _format_text(self)


# ----------------------------------------------------------------------------------------------------------
# Helpers


def _frames(n_samples: int) -> int:
    """STFT frames of a 16 kHz signal (``center=True``): ``1 + n // hop`` (as vaenmf.data.features.n_frames)."""
    return 1 + int(n_samples) // HOP_LENGTH


def _at_16k(info: AudioInfo) -> int:
    """Samples after resampling to 16 kHz, as a job reads them (:meth:`~vaenmf.data.audio.AudioInfo.samples_at`)."""
    return info.samples_at(SAMPLE_RATE)


def _longest(infos: dict[str, AudioInfo]) -> dict[str, Any]:
    """``{"name", "seconds", "samples"}`` of the longest utterance at 16 kHz (``{}`` for none)."""
    if not infos:
        return {}
    name = max(infos, key=lambda k: _at_16k(infos[k]))  # the first of equally long ones
    n = _at_16k(infos[name])
    return {"name": name, "seconds": round(n / SAMPLE_RATE, 3), "samples": n}


def _rel(path: Path | str, base: Path | None) -> str:
    path = Path(path)
    if base is not None:
        try:
            return str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)


def _names(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _reason(exc: Exception, path: Path) -> str:
    """An exception's message, without repeating the path when it starts with it."""
    text = str(exc)
    for prefix in (f"{path}: ", f"cannot read audio {path}: ", f"cannot read {path}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


# ----------------------------------------------------------------------------------------------------------
# TIMIT


def _check_timit(
    report: CheckReport,
    root: Path | None,
    protocol: Protocol,
    data_root: Path | None,
    speech: tuple[str, ...] = _SPEECH,
    paper: tuple[str, ...] = _SPEECH,
) -> dict:
    """Inventory TIMIT; findings that stop any speech job on it go to ``speech`` (the tables checked and the jobs
    asked on TIMIT), those about the paper's protocol (its test and development sets) to ``paper``."""
    out: dict[str, Any] = {"looked_in": str(root) if root else None, "found": False, "checked": True}
    report.corpora["timit"] = out
    if root is None:
        report.add(
            "error",
            "timit",
            "TIMIT not given: set DATA_ROOT (expects DATA_ROOT/timit) or pass --timit /path/to/timit",
            speech,
        )
        return out
    try:
        scan = scan_timit(root)
    except VaenmfError as exc:
        hint = _timit_hint(root, data_root)
        report.add("error", "timit", f"{exc}{hint}", speech, path=str(root))
        return out
    out.update(found=True, root=str(scan.root), layout=scan.layout)
    base = scan.root

    for folder in scan.speakers_without_audio:
        report.add(
            "error",
            "timit",
            f"speaker folder {folder} holds no audio (expected <UTT>.WAV files: SA1, SA2, SI<n>, SX<n>); "
            "indexing TIMIT stops there",
            speech,
            path=str(folder),
            kind="speaker without audio",
        )
    for entry in scan.unexpected:
        report.add(
            "note",
            "timit",
            f"{_rel(entry, base)}: not a TIMIT name (expected DR1..DR8/<SPEAKER>/<UTT>.WAV and .PHN/.WRD/.TXT); skipped",
            path=str(entry),
            kind="unexpected entry",
        )
    if scan.duplicates:
        out["duplicates_skipped"] = len(scan.duplicates)

    used = _timit_used(scan)
    infos: dict[Path, AudioInfo] = {}
    for u in scan.utterances:
        try:
            info = audio_info(u.path)
            check_resample(info.sample_rate, SAMPLE_RATE, str(u.path))
        except VaenmfError as exc:
            if u.path in used:
                report.add(
                    "error",
                    "timit",
                    f"{u.path}: {_reason(exc, u.path)}",
                    speech,
                    path=str(u.path),
                    kind="unreadable",
                )
            else:
                report.add(
                    "warning",
                    "timit",
                    f"{u.path}: {_reason(exc, u.path)} (no experiment reads it: "
                    f"{'an SA sentence' if u.kind == 'SA' else 'a TEST speaker outside the core and dev sets'})",
                    path=str(u.path),
                    kind="unreadable",
                )
            continue
        infos[u.path] = info

    readable = [u for u in scan.utterances if u.path in infos]
    out["sample_rates"] = {
        str(r): n for r, n in sorted(Counter(infos[u.path].sample_rate for u in readable).items())
    }
    out["formats"] = dict(sorted(Counter(infos[u.path].format for u in readable).items()))
    out["hours"] = round(sum(infos[u.path].seconds for u in readable) / 3600, 3)
    out["unreadable"] = len(scan.utterances) - len(readable)
    low = [u for u in readable if infos[u.path].sample_rate < SAMPLE_RATE and u.path in used]
    if low:
        rates = sorted({infos[u.path].sample_rate for u in low})
        report.add(
            "warning",
            "timit",
            f"{len(low)} utterances are at {', '.join(map(str, rates))} Hz (TIMIT is 16 kHz): they are upsampled "
            "and carry nothing above half their rate",
            speech,
        )

    splits: dict[str, dict[str, Any]] = {}
    for split in sorted({u.split or "(no split)" for u in scan.utterances}):
        utts = [u for u in scan.utterances if (u.split or "(no split)") == split]
        si_sx = [u for u in utts if u.kind in ("SI", "SX")]
        splits[split] = {
            "speakers": len({u.speaker for u in utts}),
            "si_sx_utterances": len(si_sx),
            "sa_utterances": len(utts) - len(si_sx),
            "si_sx_hours": round(sum(infos[u.path].seconds for u in si_sx if u.path in infos) / 3600, 3),
        }
    out["splits"] = splits

    if not scan.has_split:
        # The tables' verdict; jobs of one's own run on the four-way split, which is worth a note.
        report.add(
            "error" if paper else "note",
            "timit",
            f"{base} has no TRAIN/TEST split ({scan.layout}), so there is no core test set: jobs would split its "
            f"{len({u.speaker for u in scan.utterances})} speakers 3/8, 1/4, 1/8, 1/4 (dictionary, training, validation, test) and test on none of the paper's "
            "speakers; expected the LDC tree [TIMIT/]{TRAIN,TEST}/DR1..DR8/<SPEAKER>/<UTT>.WAV",
            paper,
            path=str(base),
        )
        pool = [u for u in scan.utterances if u.kind in ("SI", "SX")]
        train_pool, test_set, validation_set = pool, pool, pool
    else:
        train_pool = [u for u in scan.utterances if u.split == "TRAIN" and u.kind in ("SI", "SX")]
        test_set = _speaker_set(
            report, out, scan, "core_test", CORE_TEST_SPEAKERS_BY_DIALECT, infos, paper, speech
        )
        validation_set = _speaker_set(report, out, scan, "dev", DEV_SPEAKERS_BY_DIALECT, infos, paper, speech)
        n_train = len({u.speaker for u in train_pool})
        if n_train < 2:
            report.add(
                "error",
                "timit",
                f"{base}: {n_train} TRAIN speakers with SI/SX utterances; need at least 2 (the dictionary and "
                "the encoder-training speakers must differ)",
                speech,
                path=str(base),
            )
        elif n_train < TIMIT_TRAIN_SPEAKERS or len(train_pool) < TIMIT_TRAIN_SI_SX:
            report.add(
                "note",
                "timit",
                f"TRAIN has {n_train} speakers and {len(train_pool)} SI/SX utterances (the LDC corpus: "
                f"{TIMIT_TRAIN_SPEAKERS} and {TIMIT_TRAIN_SI_SX}); the encoding networks train on fewer utterances",
            )

    # Speech dictionary frames: the dictionary speakers are a seeded dict_speaker_fraction of the TRAIN
    # speakers, so their frame count is estimated from the whole pool (silent frames, dropped by the job, are
    # still counted here: headers hold no level).
    pool_frames = sum(_frames(_at_16k(infos[u.path])) for u in train_pool if u.path in infos)
    estimate = int(pool_frames * protocol.dict_speaker_fraction)
    out["speech_dictionary_frames_estimate"] = estimate
    if train_pool:
        if estimate < protocol.speech_rank:
            report.add(
                "error",
                "timit",
                f"the speech dictionary speakers give about {estimate} frames, fewer than the rank "
                f"{protocol.speech_rank} dictionary needs",
                speech,
            )
        elif estimate < protocol.speech_dict_frames:
            report.add(
                "warning",
                "timit",
                f"the speech dictionary speakers give about {estimate} frames (before silent frames are dropped) "
                f"of the {protocol.speech_dict_frames} asked",
                speech,
            )
    # Each part of a noise must hold the longest utterance mixed with it (see the noise checks). The training
    # utterances are a seeded half of the TRAIN speakers': the longest TRAIN utterance stands for them.
    out["longest_utterances"] = {
        part: _longest({u.name: infos[u.path] for u in utts if u.path in infos})
        for part, utts in (("training", train_pool), ("validation", validation_set), ("test", test_set))
    }
    for part, key in (("training", "train"), ("validation", "validation"), ("test", "test")):
        out[f"longest_{key}_utterance_s"] = out["longest_utterances"][part].get("seconds", 0.0)
    return out


def _timit_used(scan: TimitScan) -> set[Path]:
    """The utterances some experiment reads: SI/SX of TRAIN, the core test and the dev set (all SI/SX unsplit)."""
    keep = set(CORE_TEST_SPEAKERS) | set(DEV_SPEAKERS)
    return {
        u.path
        for u in scan.utterances
        if u.kind in ("SI", "SX")
        and (u.split in ("TRAIN", None) or (u.split == "TEST" and u.speaker in keep))
    }


def _speaker_set(
    report: CheckReport,
    out: dict[str, Any],
    scan: TimitScan,
    name: str,
    by_dialect: dict[str, tuple[str, ...]],
    infos: dict[Path, AudioInfo],
    paper: tuple[str, ...],
    speech: tuple[str, ...],
) -> list[TimitUtterance]:
    """Check the core test or dev set; returns its readable SI/SX utterances. Incomplete, it is a finding for the
    paper's experiments (``paper``); a TEST split without any core test speaker stops every job (``speech``)."""
    speakers = [s for group in by_dialect.values() for s in group]
    where = {s: dr for dr, group in by_dialect.items() for s in group}
    utts = [u for u in scan.utterances if u.split == "TEST" and u.speaker in where and u.kind in ("SI", "SX")]
    per_speaker = Counter(u.speaker for u in utts)
    missing = [f"TEST/{where[s]}/{s}" for s in speakers if per_speaker[s] == 0]
    short = [
        f"TEST/{where[s]}/{s} ({per_speaker[s]} of 8)"
        for s in speakers
        if 0 < per_speaker[s] < SI_SX_PER_SPEAKER
    ]
    readable = [u for u in utts if u.path in infos]
    expected = len(speakers) * SI_SX_PER_SPEAKER
    out[name] = {
        "speakers": sum(per_speaker[s] > 0 for s in speakers),
        "expected_speakers": len(speakers),
        "utterances": len(readable),
        "expected_utterances": expected,
        "complete": not missing and not short and len(readable) == expected,
        "missing_speakers": missing,
        "incomplete_speakers": short,
    }
    # timit_pools refuses a TEST split without any core test speaker: that stops every job, not only the tables.
    experiments = speech if not utts and name == "core_test" else paper
    if (missing or short) and experiments:
        what = []
        if missing:
            what.append(f"missing speakers {_names(missing)}")
        if short:
            what.append(f"speakers without all 8 SI/SX sentences: {_names(short)}")
        if name == "core_test":
            report.add(
                "error",
                "timit",
                f"core test set incomplete: {len(utts)} of {expected} SI/SX utterances; {'; '.join(what)}. The "
                "tables would not be scored on the paper's test set",
                experiments,
                kind="core test",
            )
        else:
            report.add(
                "warning",
                "timit",
                f"development set (Kaldi's 50 speakers) incomplete: {len(utts)} of {expected} SI/SX utterances; "
                f"{'; '.join(what)}. Choices made on the validation split would not be the protocol's",
                experiments,
                kind="dev set",
            )
    return readable


def _timit_hint(root: Path, data_root: Path | None) -> str:
    """Point at a sibling folder that is a TIMIT tree, when DATA_ROOT/timit is not (e.g. ``timit_sample``)."""
    parent = data_root if data_root is not None else root.parent
    if not parent.is_dir():
        return ""
    for d in sorted(parent.iterdir()):
        if d.is_dir() and d != root and "timit" in d.name.lower():
            try:
                find_timit_root(d)
            except VaenmfError:
                continue
            return f" (hint: {d} looks like TIMIT; pass --timit {d})"
    return ""


# ----------------------------------------------------------------------------------------------------------
# NOISEX-92


def _check_noisex(
    report: CheckReport,
    root: Path | None,
    protocol: Protocol,
    timit: dict,
    paper: tuple[str, ...] = _SPEECH,
    job_files: dict[Path, list[str]] | None = None,
) -> dict:
    """Inventory the NOISEX-92 folder: every noise file in it (rate, duration, parts) and the noises ``noise=`` can
    name; the paper's factory1 and babble are held to the protocol for the experiments ``paper`` (none: the tables
    are not checked). ``job_files``: the files the asked jobs read, with their labels (their findings are the job
    noise check's, :func:`_check_job_noises`)."""
    job_files = job_files or {}
    out: dict[str, Any] = {
        "looked_in": str(root) if root else None,
        "found": False,
        "checked": True,
        "files": [],
        "noises": {},
        "names": [],
    }
    report.corpora["noisex92"] = out
    if root is None:
        if paper:
            report.add(
                "error",
                "noisex92",
                "NOISEX-92 not given: set DATA_ROOT (expects DATA_ROOT/noisex92) or pass --noisex /path/to/noisex92",
                paper,
            )
        return out
    try:
        files = list_noise_files(root)
    except VaenmfError as exc:
        if paper:
            report.add("error", "noisex92", str(exc), paper, path=str(root))
        return out
    out["found"] = True
    # What noise= can name here (one name per file stem; factory is factory1).
    out["names"] = noise_names(root)
    chosen = {kind: (noise_candidates(root, stem) or [None])[0] for kind, stem in NOISE_FILES.items()}
    if not paper:
        chosen = {}
    by_path: dict[Path, dict[str, Any]] = {}
    for f in files:
        entry: dict[str, Any] = {
            "path": _rel(f, root),
            "noise": f.stem.lower() if f.stem.lower() in NOISEX92_NOISES else None,
        }
        used_by = [kind for kind, c in chosen.items() if c == f]
        entry["used_for"] = used_by + job_files.get(f, [])
        try:
            info = audio_info(f)
            check_resample(info.sample_rate, SAMPLE_RATE, str(f))
        except VaenmfError as exc:
            entry["error"] = _reason(exc, f)
            if used_by:
                report.add(
                    "error", "noisex92", f"{f}: {_reason(exc, f)}", paper, path=str(f), kind="unreadable"
                )
            elif f not in job_files:  # a file the asked jobs read is their noise check's finding
                report.add(
                    "warning",
                    "noisex92",
                    f"{f}: {_reason(exc, f)} (no experiment reads it)",
                    path=str(f),
                    kind="unreadable",
                )
            out["files"].append(entry)
            continue
        entry.update(_noise_entry(info, protocol))
        by_path[f] = entry
        out["files"].append(entry)
        if entry["noise"] is None and not entry["used_for"]:
            report.add(
                "note",
                "noisex92",
                f"{_rel(f, root)}: not a NOISEX-92 file name (babble, factory1, white, ...); no experiment reads it",
                path=str(f),
                kind="other file",
            )
    if not paper:
        return out

    for kind, stem in NOISE_FILES.items():
        path = chosen[kind]
        if path is None:
            report.add(
                "error",
                "noisex92",
                f"no NOISEX-92 {stem} noise ({kind!r}) in {root}: looked for {stem}.mat / {stem}.wav (any case) "
                "there and in its subfolders",
                paper,
                path=str(root),
            )
            continue
        others = noise_candidates(root, stem)[1:]
        out["noises"][kind] = {"file": _rel(path, root), "alternatives": [_rel(o, root) for o in others]}
        if others:
            report.add(
                "note",
                "noisex92",
                f"{kind}: several {stem} files; jobs use {_rel(path, root)} (others: {', '.join(_rel(o, root) for o in others)})",
            )
        entry = by_path.get(path)
        if entry is None:
            continue  # unreadable: already an error
        if entry["sample_rate"] < SAMPLE_RATE:
            report.add(
                "warning",
                "noisex92",
                f"{_rel(path, root)} is at {entry['sample_rate']} Hz (NOISEX-92: 19980 Hz): upsampled to 16 kHz, it "
                f"carries nothing above {entry['sample_rate'] // 2} Hz",
                paper,
            )
        # Table 1 asks for all noise frames from this one noise; Table 2 for half from each (factory the odd one).
        for experiment, asked in (
            ("table1", protocol.noise_dict_frames),
            ("table2", _pooled_share(kind, protocol.noise_dict_frames)),
        ):
            got = entry["train_frames"]
            if got < min(asked, protocol.noise_rank):
                report.add(
                    "error",
                    "noisex92",
                    f"{stem}: its training part ({entry['train_seconds']} s) gives {got} dictionary frames, fewer than "
                    f"the rank {protocol.noise_rank} noise dictionary needs",
                    (experiment,),
                )
            elif got < asked:
                report.add(
                    "warning",
                    "noisex92",
                    f"{stem}: its training part (first {protocol.noise_train_fraction:.0%}, {entry['train_seconds']} s "
                    f"at 16 kHz) gives {got} noise dictionary frames of the {asked} asked (the NOISEX-92 recording: "
                    "235 s)",
                    (experiment,),
                )
        for part, longest in (
            ("test", "longest_test_utterance_s"),
            ("validation", "longest_validation_utterance_s"),
            ("train", "longest_train_utterance_s"),
        ):
            need = timit.get(longest)
            have = entry[f"{part}_seconds"]
            if need and have < need:
                # The tables score the test split; only eval_split=validation jobs need the validation part.
                report.add(
                    "warning" if part == "validation" else "error",
                    "noisex92",
                    f"{stem}: its {part} part ({have} s) is shorter than the longest {part} utterance ({need} s), "
                    "which cannot be mixed with it; expected a longer recording (NOISEX-92: 235 s)"
                    + (" (eval_split=validation jobs would fail)" if part == "validation" else ""),
                    paper,
                )
    return out


def _noise_entry(info: AudioInfo, protocol: Protocol) -> dict[str, Any]:
    """What the check reports of a readable noise file: its header, and its three parts at 16 kHz."""
    n16 = _at_16k(info)
    # The jobs' cut (SpeechDataModule.noise_part_bounds): training, validation, test, in time order.
    parts = noise_part_lengths(n16, protocol.noise_train_fraction, protocol.noise_validation_fraction)
    return {
        "format": info.format,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "seconds": round(info.seconds, 3),
        "variable": info.variable,
        "samples_16k": n16,
        "train_frames": _frames(parts["training"]),
        "train_seconds": round(parts["training"] / SAMPLE_RATE, 3),
        "validation_seconds": round(parts["validation"] / SAMPLE_RATE, 3),
        "test_seconds": round(parts["test"] / SAMPLE_RATE, 3),
    }


def _pooled_share(kind: str, total: int) -> int:
    kinds = list(NOISE_FILES)  # factory first, as SpeechDataModule pools them
    base, extra = divmod(total, len(kinds))
    return base + (1 if kinds.index(kind) < extra else 0)


# ----------------------------------------------------------------------------------------------------------
# Ninapro DB1


def _check_ninapro(report: CheckReport, root: Path | None, protocol: Protocol) -> dict:
    out: dict[str, Any] = {"looked_in": str(root) if root else None, "found": False, "subjects": {}}
    report.corpora["ninapro_db1"] = out
    fig = ("figure2",)
    if root is None:
        report.add(
            "error",
            "ninapro_db1",
            "Ninapro DB1 not given: set DATA_ROOT (expects DATA_ROOT/ninapro_db1) or pass --ninapro /path/to/db1",
            fig,
        )
        return out
    try:
        files = scan_ninapro_files(root)
    except VaenmfError as exc:
        report.add("error", "ninapro_db1", str(exc), fig, path=str(root))
        return out
    out["found"] = True
    if not files:
        present = sorted(p.name for p in root.iterdir())[:20]
        report.add(
            "error",
            "ninapro_db1",
            f"no DB1 files in {root}: expected s<N>/S<N>_A1_E<E>.mat or flat S<N>_A1_E<E>.mat; found "
            f"{present or 'an empty folder'}",
            fig,
            path=str(root),
        )
        return out
    wanted = {(s, e) for s in protocol.db1_subjects for e in protocol.db1_exercises}
    for (subject, exercise), paths in sorted(files.items()):
        path = paths[0]
        needed = (subject, exercise) in wanted
        if len(paths) > 1:
            report.add(
                "note",
                "ninapro_db1",
                f"S{subject}_A1_E{exercise}.mat is present {len(paths)} times; jobs read {_rel(path, root)}",
            )
        summary = _db1_file(report, path, subject, exercise, protocol, needed)
        summary["path"] = _rel(path, root)
        out["subjects"].setdefault(str(subject), {})[f"E{exercise}"] = summary

    missing = sorted(wanted - set(files))
    if missing:
        on_disk = sorted({e for _, e in files})
        absent = sorted({e for _, e in missing} - set(on_disk))
        detail = (
            f"; exercise {', '.join(map(str, absent))} is asked but not on disk (found exercise "
            f"{', '.join(map(str, on_disk))})"
            if absent
            else ""
        )
        report.add(
            "error",
            "ninapro_db1",
            f"{len(missing)} of the {len(wanted)} DB1 files Figure 2 reads are missing in {root}: "
            f"{_names([f'S{s}_A1_E{e}.mat' for s, e in missing], 8)}{detail}",
            fig,
            path=str(root),
        )
    extra = sorted(set(files) - wanted)
    if extra:
        report.add(
            "note",
            "ninapro_db1",
            f"{len(extra)} DB1 files beyond the subjects {_span(protocol.db1_subjects)} and exercise(s) "
            f"{_span(protocol.db1_exercises)} Figure 2 reads: {_names([f'S{s}_A1_E{e}.mat' for s, e in extra], 6)}",
        )
    return out


def _span(values: Sequence[int]) -> str:
    values = sorted(values)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def _db1_file(
    report: CheckReport, path: Path, subject: int, exercise: int, protocol: Protocol, needed: bool
) -> dict[str, Any]:
    """Inventory one DB1 file from its variable headers and labels; findings go to ``report``."""
    import scipy.io

    fig = ("figure2",) if needed else ()
    level = "error" if needed else "warning"
    suffix = "" if needed else " (Figure 2 does not read it)"

    def problem(message: str) -> dict[str, Any]:
        report.add(level, "ninapro_db1", f"{path}: {message}{suffix}", fig, path=str(path), kind="bad file")
        return {"error": message}

    try:
        whos = {name: (tuple(shape), cls) for name, shape, cls in mat_variables(path)}
    except VaenmfError as exc:
        return problem(_reason(exc, path))
    missing = [v for v in ("emg", "restimulus", "rerepetition") if v not in whos]
    if missing:
        return problem(
            f"no variable {', '.join(repr(m) for m in missing)} (variables present: {sorted(whos)}); expected "
            "DB1's emg, stimulus/restimulus, repetition/rerepetition, glove, subject, exercise"
        )
    emg_shape = whos["emg"][0]
    n = emg_shape[0] if len(emg_shape) == 2 else -1
    lengths = {v: int(np.prod(whos[v][0])) for v in ("restimulus", "rerepetition")}
    if len(emg_shape) != 2 or any(m != n for m in lengths.values()):
        return problem(
            f"'emg' has shape {emg_shape} but 'restimulus' {lengths['restimulus']} and 'rerepetition' "
            f"{lengths['rerepetition']} samples; expected emg (N, 10) and labels (N, 1) (truncated file?)"
        )
    try:
        labels = scipy.io.loadmat(
            str(path), variable_names=["restimulus", "rerepetition", "exercise", "subject"]
        )
    except Exception as exc:  # scipy raises ValueError, OSError, zlib.error ... on damaged variables
        return problem(f"the label variables cannot be read ({type(exc).__name__}: {exc})")
    stored_ex = int(np.asarray(labels["exercise"]).reshape(-1)[0]) if "exercise" in labels else None
    stored_sub = int(np.asarray(labels["subject"]).reshape(-1)[0]) if "subject" in labels else None
    if exercise not in EXERCISE_MOVEMENTS:
        return problem(f"exercise {exercise} in the file name; DB1 has exercises 1, 2, 3")
    if stored_ex is not None and stored_ex != exercise:
        return problem(f"its 'exercise' variable says {stored_ex} but the file name says E{exercise}")
    if stored_sub is not None and stored_sub != subject:
        report.add(
            "warning" if needed else "note",
            "ninapro_db1",
            f"{path}: its 'subject' variable says {stored_sub} but the file name says S{subject}; jobs report it as "
            f"subject {stored_sub}",
            fig,
            path=str(path),
        )
    movement = np.asarray(labels["restimulus"]).reshape(-1)
    repetition = np.asarray(labels["rerepetition"]).reshape(-1)
    try:
        check_labels(path, exercise, movement, repetition)
    except VaenmfError as exc:
        return problem(_reason(exc, path))
    movement = movement.astype(np.int64)
    repetition = repetition.astype(np.int64)
    channels = emg_shape[1]
    if channels != 10:
        report.add(
            "warning" if needed else "note",
            "ninapro_db1",
            f"{path}: 'emg' has {channels} channels; DB1 has 10 Otto Bock electrodes",
            fig,
            path=str(path),
        )
    n_move = EXERCISE_MOVEMENTS[exercise]
    present = sorted(int(m) for m in np.unique(movement) if m > 0)
    reps: dict[int, list[int]] = {}
    for m in present:
        reps[m] = sorted(int(r) for r in np.unique(repetition[movement == m]) if r > 0)
    absent = [m for m in range(1, n_move + 1) if m not in reps]
    if absent:
        report.add(
            "warning" if needed else "note",
            "ninapro_db1",
            f"{path}: movements {_names([str(m) for m in absent])} of exercise {exercise} are absent (expected "
            f"1-{n_move}); Figure 2 analyses the {len(present)} present",
            fig,
            path=str(path),
        )
    for m, have in reps.items():
        train = [r for r in TRAIN_REPETITIONS if r in have]
        test = [r for r in TEST_REPETITIONS if r in have]
        n_train = int(((movement == m) & np.isin(repetition, TRAIN_REPETITIONS)).sum())
        if not train or not test or n_train < protocol.synergy_rank:
            lacking = (
                "training repetitions 1, 3, 4, 6, 7, 8, 9" if not train else "held-out repetitions 2, 5, 10"
            )
            if train and test:
                lacking = f"enough training samples ({n_train}, rank {protocol.synergy_rank} needs more)"
            report.add(
                level,
                "ninapro_db1",
                f"{path}: movement {m} has no {lacking}; its synergies cannot be fitted and scored{suffix}",
                fig,
                path=str(path),
                kind="movement",
            )
        elif len(have) < N_REPETITIONS:
            report.add(
                "warning" if needed else "note",
                "ninapro_db1",
                f"{path}: movement {m} has repetitions {have}, not all 1-{N_REPETITIONS}",
                fig,
                path=str(path),
                kind="movement",
            )
    return {
        "samples": int(n),
        "seconds": round(n / 100.0, 1),
        "channels": int(channels),
        "movements": len(present),
        "expected_movements": n_move,
        "repetitions": {str(m): len(r) for m, r in reps.items()},
    }


# ----------------------------------------------------------------------------------------------------------
# Entry point


def check_corpora(
    data_root: str | os.PathLike[str] | None = None,
    timit: str | os.PathLike[str] | None = None,
    noisex: str | os.PathLike[str] | None = None,
    ninapro: str | os.PathLike[str] | None = None,
    protocol: Protocol | None = None,
    noises: Sequence[str] = (),
    test_noises: Sequence[str] = (),
    speech_folder: str | os.PathLike[str] | None = None,
) -> CheckReport:
    """Inventory the corpora and decide, per experiment, whether it can run by the protocol.

    Without ``noises``, ``test_noises`` and ``speech_folder`` the experiments are the paper's (:data:`EXPERIMENTS`).
    With any of them, the jobs asked are checked too (:data:`JOB_EXPERIMENTS`: the same jobs scoring the test and
    the validation split): their speech corpus (``speech_folder``, else TIMIT) and every noise of their conditions,
    resolved as the jobs resolve them (:func:`~vaenmf.data.noises.noisex_folder`,
    :func:`~vaenmf.data.noises.locate_noise`); the paper's experiments are then checked only where their corpora
    are given (an explicit folder, or one that exists under ``data_root``), so that a check of one's own data does
    not fail for want of TIMIT or DB1.

    Args:
        data_root: Folder holding ``timit/``, ``noisex92/``, ``ninapro_db1/`` (``DATA_ROOT``).
        timit: TIMIT folder (default ``data_root/timit``), as ``data.timit_root``.
        noisex: NOISEX-92 folder (default ``data_root/noisex92``), as ``data.noisex_root``.
        ninapro: Ninapro DB1 folder (default ``data_root/ninapro_db1``), as ``data.root`` of ``ninapro_db1``.
        protocol: The sizes asked (default: the paper's, :class:`Protocol`).
        noises: Noise conditions of the jobs, spelled as ``noise=`` (``white``, ``pooled:white+pink``,
            ``/data/hum.flac``; :mod:`vaenmf.data.noises`); several: a sweep. None given while ``test_noises`` or
            ``speech_folder`` is: the jobs' default, ``factory``.
        test_noises: Their ``test_noise=`` conditions (mismatched evaluation; empty: tested on ``noises``).
        speech_folder: A folder corpus, one folder per speaker (``data=speech_folder data.root=...``), that the
            jobs read instead of TIMIT.

    Returns:
        The :class:`CheckReport`. Never raises for bad data: every problem is a :class:`Finding`.

    Raises:
        ConfigError: A noise condition that is not one (``pooled:white``): a usage error, as for the jobs.
    """
    protocol = protocol or Protocol()
    base = Path(data_root).expanduser() if data_root else None
    jobs = bool(noises or test_noises or speech_folder)
    conditions = _job_conditions(noises, test_noises) if jobs else None

    def where(explicit, name: str) -> Path | None:
        if explicit:
            return Path(explicit).expanduser()
        return base / name if base is not None else None

    def given(explicit, name: str) -> bool:
        return bool(explicit) or (base is not None and (base / name).exists())

    report = CheckReport(data_root=str(base) if base is not None else None)
    tables = not jobs or (given(timit, "timit") and given(noisex, "noisex92"))
    figure = not jobs or given(ninapro, "ninapro_db1")
    report.experiments = {
        name: title
        for name, title in EXPERIMENTS.items()
        if (name in _SPEECH and tables) or (name == "figure2" and figure)
    }
    corpus = "folder" if speech_folder else "timit"
    if conditions is not None:
        on = f"the folder corpus {Path(speech_folder).expanduser()}" if speech_folder else "TIMIT"
        for name, split in JOB_EXPERIMENTS.items():
            report.experiments[name] = (
                f"Your jobs, eval_split={split}: {_conditions_text(conditions)} on {on}"
            )
    if base is not None and not base.is_dir():
        report.add(
            "error",
            "data_root",
            f"DATA_ROOT {base} does not exist; expected a folder holding timit/, noisex92/ and ninapro_db1/",
            tuple(report.experiments),
            path=str(base),
        )
    paper = _SPEECH if tables else ()
    on_timit = _JOBS if jobs and corpus == "timit" else ()
    if paper or on_timit:
        timit_out = _check_timit(report, where(timit, "timit"), protocol, base, paper + on_timit, paper)
    else:
        timit_out = report.corpora["timit"] = {
            "looked_in": _shown_root(where(timit, "timit")),
            "checked": False,
        }
    speech_out = (
        _check_speech_folder(report, Path(speech_folder).expanduser(), protocol)
        if speech_folder
        else timit_out
    )
    # Named noises of the jobs come from where the jobs look: on TIMIT DATA_ROOT/noisex92 (or --noisex), on a folder
    # corpus that folder only when it exists (else factory and babble are generated).
    job_folder = noisex_folder(corpus, where(noisex, "noisex92")) if jobs else None
    job_noises = (
        _resolve_job_noises(report, conditions, job_folder, corpus, protocol)
        if conditions is not None
        else {}
    )
    noisex_root = where(noisex, "noisex92") if paper else job_folder
    if paper or noisex_root is not None:
        job_files = {
            path: entry["for"] for entry in job_noises.values() if (path := entry.get("_path")) is not None
        }
        _check_noisex(report, noisex_root, protocol, timit_out, paper, job_files)
    else:
        report.corpora["noisex92"] = {"looked_in": _shown_root(where(noisex, "noisex92")), "checked": False}
    if conditions is not None:
        _check_job_noises(report, conditions, job_noises, speech_out.get("longest_utterances", {}), protocol)
        report.corpora["noises"] = {
            label: {k: v for k, v in entry.items() if not k.startswith("_")}
            for label, entry in job_noises.items()
        }
    if figure:
        _check_ninapro(report, where(ninapro, "ninapro_db1"), protocol)
    else:
        report.corpora["ninapro_db1"] = {
            "looked_in": _shown_root(where(ninapro, "ninapro_db1")),
            "checked": False,
        }
    return report


def _shown_root(path: Path | None) -> str | None:
    return str(path) if path is not None else None


# ----------------------------------------------------------------------------------------------------------
# The jobs asked: a folder corpus and noise conditions


@dataclass(frozen=True)
class _Conditions:
    """The noise conditions of the jobs asked: ``(condition, its noises)`` for training (``noise=``) and for the
    evaluation mixtures (``test_noise=``, or the training conditions when none is given)."""

    training: tuple[tuple[str, tuple[NoiseSpec, ...]], ...]
    test: tuple[tuple[str, tuple[NoiseSpec, ...]], ...]
    mismatched: bool


def _job_conditions(noises: Sequence[str], test_noises: Sequence[str]) -> _Conditions:
    """Parse the conditions as the jobs do (:func:`~vaenmf.data.noises.parse_noise`); the jobs' default noise is
    factory. Raises ConfigError for a condition that is not one."""
    training = tuple((str(c).strip(), parse_noise(c, "--noise")) for c in (noises or ["factory"]))
    test = tuple((str(c).strip(), parse_noise(c, "--test-noise")) for c in test_noises)
    return _Conditions(training, test or training, bool(test))


def _conditions_text(conditions: _Conditions) -> str:
    text = ", ".join(f"noise={c}" for c, _ in conditions.training)
    if conditions.mismatched:
        text += "; " + ", ".join(f"test_noise={c}" for c, _ in conditions.test)
    return text


def _label(spec: NoiseSpec) -> str:
    """How a noise is spelled: its name, or its file's path."""
    return str(spec.path) if spec.path is not None else spec.name


def _resolve_job_noises(
    report: CheckReport, conditions: _Conditions, folder: Path | None, corpus: str, protocol: Protocol
) -> dict[str, dict[str, Any]]:
    """Find and read the header of every noise of the jobs' conditions, as a job would; findings for those that
    cannot be had. Returns an entry per noise (keyed by its spelling), ``_path`` and ``_spec`` kept for the checks."""
    uses: dict[str, list[str]] = {}
    specs: dict[str, NoiseSpec] = {}
    for key, group in (
        ("noise", conditions.training),
        ("test_noise", conditions.test if conditions.mismatched else ()),
    ):
        for condition, noise_specs in group:
            for spec in noise_specs:
                specs.setdefault(_label(spec), spec)
                uses.setdefault(_label(spec), []).append(f"{key}={condition}")
    # A job refuses a noise and a test noise of one name from two sources (SpeechDataModule): so does the check.
    for noise, train_specs in conditions.training:
        for test, test_specs in conditions.test if conditions.mismatched else ():
            seen: dict[str, NoiseSpec] = {}
            for spec in (*train_specs, *test_specs):
                if seen.setdefault(spec.name, spec) != spec:
                    report.add(
                        "error",
                        "noise",
                        f"noise={noise!r} and test_noise={test!r} both have a noise named {spec.name!r}, from "
                        f"{seen[spec.name].path or 'the NOISEX-92 folder'} and {spec.path or 'the NOISEX-92 folder'}; "
                        "rename one file",
                        _JOBS,
                    )
    out: dict[str, dict[str, Any]] = {}
    for label, spec in specs.items():
        entry: dict[str, Any] = {"name": spec.name, "for": uses[label], "_spec": spec}
        out[label] = entry
        try:
            if corpus == "timit" and folder is None and spec.path is None:
                raise ConfigError(
                    f"noise {spec.name!r}: jobs on TIMIT read named noises from DATA_ROOT/noisex92 or data.noisex_root, "
                    "and neither is given; set DATA_ROOT or pass --noisex /path/to/noisex92"
                )
            path = locate_noise(spec, folder, corpus, ", ".join(uses[label]))
        except VaenmfError as exc:
            entry["error"] = str(exc)
            report.add("error", "noise", str(exc), _JOBS, path=str(spec.path or folder or "") or None)
            continue
        if path is None:  # the demo's generated noise: its length is data.demo_noise_seconds
            n16 = int(round(protocol.demo_noise_seconds * SAMPLE_RATE))
            parts = noise_part_lengths(n16, protocol.noise_train_fraction, protocol.noise_validation_fraction)
            entry.update(
                file=None,
                generated=f"the demo's generated {spec.name} noise ({protocol.demo_noise_seconds:g} s, "
                "data.demo_noise_seconds): no NOISEX-92 folder",
                seconds=protocol.demo_noise_seconds,
                samples_16k=n16,
                train_frames=_frames(parts["training"]),
                train_seconds=round(parts["training"] / SAMPLE_RATE, 3),
                validation_seconds=round(parts["validation"] / SAMPLE_RATE, 3),
                test_seconds=round(parts["test"] / SAMPLE_RATE, 3),
            )
            continue
        entry.update(file=str(path), _path=path)
        try:
            info = audio_info(path)
            check_resample(info.sample_rate, SAMPLE_RATE, str(path))
        except VaenmfError as exc:
            entry["error"] = _reason(exc, path)
            report.add(
                "error", "noise", f"{path}: {_reason(exc, path)}", _JOBS, path=str(path), kind="unreadable"
            )
            continue
        entry.update(_noise_entry(info, protocol))
        if info.sample_rate < SAMPLE_RATE:
            report.add(
                "note",
                "noise",
                f"{path} is at {info.sample_rate} Hz: upsampled to 16 kHz, it carries nothing above "
                f"{info.sample_rate // 2} Hz",
            )
    return out


def _check_job_noises(
    report: CheckReport,
    conditions: _Conditions,
    noises: dict[str, dict[str, Any]],
    longest: dict[str, dict[str, Any]],
    protocol: Protocol,
) -> None:
    """The jobs' noises against what they ask: the noise dictionary frames of each condition's share, and each
    part against the longest utterance mixed with it (the rule of ``SpeechDataModule.setup``)."""
    fractions = (protocol.noise_train_fraction, protocol.noise_validation_fraction)
    for condition, specs in conditions.training:
        # The noise dictionary takes an equal share of its frames from each noise of a pool, the first the odd ones.
        base, extra = divmod(protocol.noise_dict_frames, len(specs))
        for i, spec in enumerate(specs):
            entry = noises[_label(spec)]
            if "train_frames" not in entry:
                continue  # not found or unreadable: already an error
            asked, got = base + (1 if i < extra else 0), entry["train_frames"]
            entry.setdefault("asked_frames", {})[condition] = asked
            what = (
                f"{_label(spec)}: its training part ({entry['train_seconds']} s at 16 kHz) gives {got} noise "
                f"dictionary frames"
            )
            if got < min(asked, protocol.noise_rank):
                report.add(
                    "error",
                    "noise",
                    f"{what}, fewer than the rank {protocol.noise_rank} noise dictionary needs (noise={condition})",
                    _JOBS,
                )
            elif got < asked:
                report.add("warning", "noise", f"{what} of the {asked} noise={condition} asks", _JOBS)
    uses = [("training", [s for _, specs in conditions.training for s in specs], _JOBS)]
    uses += [
        (part, [s for _, specs in conditions.test for s in specs], (f"jobs_{part}",))
        for part in ("validation", "test")
    ]
    for part, specs, experiments in uses:
        utterance = longest.get(part) or {}
        if not utterance or (part == "validation" and protocol.noise_validation_fraction == 0):
            continue  # nothing is mixed with this part (an empty split, or no validation noise)
        for label in dict.fromkeys(_label(s) for s in specs):
            entry = noises[label]
            if "samples_16k" not in entry:
                continue
            n = noise_part_lengths(entry["samples_16k"], *fractions)[part]
            if n < utterance["samples"]:
                report.add(
                    "error",
                    "noise",
                    short_noise_part(
                        entry["name"],
                        part,
                        n / SAMPLE_RATE,
                        entry["samples_16k"] / SAMPLE_RATE,
                        utterance["name"],
                        utterance["samples"] / SAMPLE_RATE,
                        fractions,
                        source=entry.get("file"),
                    ),
                    experiments,
                )


def _part_experiments(part: str | None) -> tuple[str, ...]:
    """The job experiments that read a folder-corpus part's files: a validation job reads no test speaker's, a test
    job no validation speaker's."""
    return {"validation": ("jobs_validation",), "test": ("jobs_test",)}.get(part or "", _JOBS)


def _check_speech_folder(report: CheckReport, root: Path, protocol: Protocol) -> dict:
    """Inventory a folder corpus (:mod:`vaenmf.data.folder`) from its headers: speakers and utterances per part of
    the speaker split (:func:`~vaenmf.data.splits.fraction_speaker_split`), sample rates, unreadable files."""
    out: dict[str, Any] = {"looked_in": str(root), "found": False, "checked": True}
    report.corpora["speech_folder"] = out
    try:
        files = folder_utterances(root, "--speech-folder")
    except VaenmfError as exc:
        report.add("error", "speech_folder", str(exc), _JOBS, path=str(root))
        return out
    out["found"] = True
    try:
        groups = fraction_speaker_split(list(files), protocol.speaker_fractions, f"the folder corpus {root}")
    except VaenmfError as exc:
        report.add("error", "speech_folder", str(exc), _JOBS, path=str(root))
        groups = ()
    part_of = {speaker: part for part, group in zip(SPEAKER_PARTS, groups, strict=False) for speaker in group}
    infos: dict[str, AudioInfo] = {}
    for speaker, named in files.items():
        for name, path in named.items():
            try:
                info = audio_info(path)
                check_resample(info.sample_rate, SAMPLE_RATE, str(path))
            except VaenmfError as exc:
                report.add(
                    "error",
                    "speech_folder",
                    f"{path}: {_reason(exc, path)}",
                    _part_experiments(part_of.get(speaker)),
                    path=str(path),
                    kind="unreadable",
                )
                continue
            infos[name] = info
    out["speakers"] = len(files)
    out["utterances"] = sum(len(named) for named in files.values())
    out["unreadable"] = out["utterances"] - len(infos)
    out["sample_rates"] = {
        str(r): n for r, n in sorted(Counter(i.sample_rate for i in infos.values()).items())
    }
    out["formats"] = dict(sorted(Counter(i.format for i in infos.values()).items()))
    out["hours"] = round(sum(i.seconds for i in infos.values()) / 3600, 3)
    low = sorted({i.sample_rate for i in infos.values() if i.sample_rate < SAMPLE_RATE})
    if low:
        report.add(
            "note",
            "speech_folder",
            f"{sum(i.sample_rate < SAMPLE_RATE for i in infos.values())} recordings are at {', '.join(map(str, low))} "
            "Hz: upsampled to 16 kHz, they carry nothing above half their rate",
        )
    if not groups:
        return out
    parts: dict[str, dict[str, Any]] = {}
    for part, group in zip(SPEAKER_PARTS, groups, strict=True):
        named = {name: infos[name] for speaker in group for name in files[speaker] if name in infos}
        parts[part] = {
            "speakers": list(group),
            "utterances": sum(len(files[speaker]) for speaker in group),
            "hours": round(sum(i.seconds for i in named.values()) / 3600, 3),
            "longest": _longest(named),
        }
    out["parts"] = parts
    out["longest_utterances"] = {part: parts[part]["longest"] for part in ("training", "validation", "test")}
    # Silent frames, which the jobs drop, are counted: headers hold no level.
    estimate = sum(_frames(_at_16k(infos[name])) for s in groups[0] for name in files[s] if name in infos)
    out["speech_dictionary_frames_estimate"] = estimate
    if estimate < protocol.speech_rank:
        report.add(
            "error",
            "speech_folder",
            f"the dictionary speakers' recordings give about {estimate} frames, fewer than the rank "
            f"{protocol.speech_rank} speech dictionary needs",
            _JOBS,
        )
    elif estimate < protocol.speech_dict_frames:
        report.add(
            "warning",
            "speech_folder",
            f"the dictionary speakers' recordings give about {estimate} frames (before silent frames are dropped) of "
            f"the {protocol.speech_dict_frames} asked (data.dict_speech_frames)",
            _JOBS,
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# Text output


def _format_text(report: CheckReport) -> str:
    lines: list[str] = [f"vaenmf-data check (DATA_ROOT={report.data_root or 'not set'})", ""]
    t = report.corpora.get("timit", {})
    lines.append(_looked("TIMIT", t))
    if t.get("found"):
        lines.append(f"  found {t['root']}: {t['layout']}")
        for split, s in t.get("splits", {}).items():
            lines.append(
                f"  {split}: {s['speakers']} speakers, {s['si_sx_utterances']} SI/SX utterances "
                f"({s['si_sx_hours']:.2f} h; {s['sa_utterances']} SA not used)"
            )
        for key, label in (("core_test", "core test set"), ("dev", "development set")):
            if key in t:
                c = t[key]
                state = "complete" if c["complete"] else "INCOMPLETE"
                lines.append(
                    f"  {label}: {c['speakers']}/{c['expected_speakers']} speakers, "
                    f"{c['utterances']}/{c['expected_utterances']} utterances, {state}"
                )
        rates = ", ".join(f"{r} Hz x {n}" for r, n in t.get("sample_rates", {}).items()) or "none"
        formats = ", ".join(f"{k} {n}" for k, n in t.get("formats", {}).items()) or "none"
        lines.append(f"  {t.get('hours', 0):.2f} h in all; sample rates: {rates}; files: {formats}")
        if t.get("duplicates_skipped"):
            lines.append(f"  {t['duplicates_skipped']} duplicate copies (.WAV.wav) skipped")
        if t.get("unreadable"):
            lines.append(f"  {t['unreadable']} file(s) unreadable")
        lines.append(
            f"  speech dictionary: about {t.get('speech_dictionary_frames_estimate', 0)} frames available"
        )
    lines.append("")
    if "speech_folder" in report.corpora:
        lines += _folder_lines(report.corpora["speech_folder"])

    n = report.corpora.get("noisex92", {})
    lines.append(_looked("NOISEX-92", n))
    if n.get("found"):
        if not n["files"]:
            lines.append("  no .mat or .wav files")
        width = max((len(e["path"]) for e in n["files"]), default=4)
        for e in n["files"]:
            use = f"  <- {', '.join(e['used_for'])}" if e.get("used_for") else ""
            if "error" in e:
                lines.append(f"  {e['path']:<{width}}  UNREADABLE: {e['error']}{use}")
                continue
            lines.append(
                f"  {e['path']:<{width}}  {e['format']:<6} {e['sample_rate']:>6} Hz {e['seconds']:>7.1f} s  "
                f"{e['train_frames']:>6} training frames{use}"
            )
        lines.append(
            "  (training frames: the first 60% at 16 kHz, STFT hop 128; Table 1 asks 9000, Table 2 4500 each; "
            "the next 10% makes the validation mixtures, the last 30% the test mixtures)"
        )
        if n.get("names"):
            lines.append(f"  noise= can name: {', '.join(n['names'])} (factory is factory1)")
    lines.append("")
    if "noises" in report.corpora:
        lines += _job_noise_lines(report.corpora["noises"])

    d = report.corpora.get("ninapro_db1", {})
    lines.append(_looked("Ninapro DB1", d))
    if d.get("found"):
        subjects = d.get("subjects", {})
        exercises = Counter(e for per in subjects.values() for e in per)
        lines.append(
            f"  {len(subjects)} subjects; "
            + (", ".join(f"{e}: {c} subjects" for e, c in sorted(exercises.items())) or "no files")
        )
        # Subjects with the same summary are shown as one range (27 identical lines say nothing more).
        rows: list[tuple[list[int], str]] = []
        for s in sorted(subjects, key=int):
            parts = []
            for e, info in sorted(subjects[s].items()):
                if "error" in info:
                    parts.append(f"{e} UNREADABLE")
                else:
                    reps = sorted(set(info["repetitions"].values()))
                    rep_text = "/".join(map(str, reps)) if reps else "0"
                    parts.append(
                        f"{e} {info['movements']}/{info['expected_movements']} movements x {rep_text} reps"
                    )
            text = "; ".join(parts)
            if rows and rows[-1][1] == text and rows[-1][0][-1] == int(s) - 1:
                rows[-1][0].append(int(s))
            else:
                rows.append(([int(s)], text))
        for ids, text in rows:
            label = f"S{ids[0]}" if len(ids) == 1 else f"S{ids[0]}-S{ids[-1]}"
            lines.append(f"  {label}: {text}")
    lines.append("")

    lines.append("Experiments:")
    for name in report.experiments:
        exp = report.experiment(name)
        verdict = {
            "ok": "OK (paper's protocol)",
            "deviates": "RUNS, deviates from the protocol",
            "cannot run": "CANNOT RUN",
        }
        lines.append(f"  {exp['title']}: {verdict[exp['status']]}")
        for level in ("error", "warning"):
            lines += _grouped(
                [f for f in report.findings if name in f.experiments and f.level == level], "    "
            )
    others = [f for f in report.findings if not f.experiments and f.level in ("error", "warning")]
    if others:
        lines.append("  Not read by any experiment, but broken:")
        lines += _grouped(others, "    ")
    notes = [f for f in report.findings if f.level == "note"]
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines += _grouped(notes, "  ")
    counts = Counter(f.level for f in report.findings)
    lines.append("")
    lines.append(
        f"{counts['error']} errors, {counts['warning']} warnings, {counts['note']} notes; exit status "
        f"{report.exit_status} (0: every experiment by the protocol, 1: warnings only, 2: errors)"
    )
    return "\n".join(lines)


def _looked(title: str, corpus: dict[str, Any]) -> str:
    if corpus.get("checked", True):
        return f"{title}: looked in {corpus.get('looked_in') or '(not given)'}"
    where = corpus.get("looked_in")
    return f"{title}: not checked (not given{f', no {where}' if where else ''}; no experiment asked needs it)"


def _folder_lines(f: dict[str, Any]) -> list[str]:
    """The folder corpus asked (``--speech-folder``)."""
    lines = [f"Speech folder (data=speech_folder): looked in {f['looked_in']}"]
    if f.get("found"):
        rates = ", ".join(f"{r} Hz x {n}" for r, n in f.get("sample_rates", {}).items()) or "none"
        lines.append(
            f"  {f['speakers']} speakers, {f['utterances']} recordings ({f['hours']:.2f} h); sample rates: {rates}"
            + (f"; {f['unreadable']} unreadable" if f.get("unreadable") else "")
        )
        for part, info in f.get("parts", {}).items():
            longest = info["longest"]
            tail = f", longest {longest['name']} ({longest['seconds']:.2f} s)" if longest else ""
            n = len(info["speakers"])
            lines.append(
                f"  {part}: {n} speaker{'s' if n != 1 else ''}, {info['utterances']} utterances{tail}: "
                f"{_names(info['speakers'], 6)}"
            )
        if "speech_dictionary_frames_estimate" in f:
            lines.append(
                f"  speech dictionary: about {f['speech_dictionary_frames_estimate']} frames available"
            )
    lines.append("")
    return lines


def _job_noise_lines(noises: dict[str, dict[str, Any]]) -> list[str]:
    """The noises of the jobs asked (``--noise``, ``--test-noise``)."""
    lines = ["Noises of the jobs asked:"]
    for label, e in noises.items():
        use = ", ".join(e["for"])
        if "error" in e:
            lines.append(f"  {label} ({use}): NOT AVAILABLE: {e['error']}")
            continue
        source = e["file"] if e.get("file") else e["generated"]
        head = f"{e['sample_rate']} Hz, " if "sample_rate" in e else ""
        asked = "; ".join(f"noise={c} asks {n}" for c, n in e.get("asked_frames", {}).items())
        lines.append(f"  {label} ({use}): {source}")
        lines.append(
            f"    {head}{e['seconds']:.1f} s; parts {e['train_seconds']:.1f} / {e['validation_seconds']:.1f} / "
            f"{e['test_seconds']:.1f} s; {e['train_frames']} training frames"
            + (f" ({asked})" if asked else "")
        )
    lines.append("")
    return lines


def _grouped(findings: list[Finding], indent: str) -> list[str]:
    """Findings as lines, at most a few per kind of per-file finding."""
    lines, shown = [], Counter()
    totals = Counter(f.kind for f in findings if f.kind)
    for f in findings:
        if f.kind:
            shown[f.kind] += 1
            if shown[f.kind] > _SHOW_PER_KIND:
                if shown[f.kind] == _SHOW_PER_KIND + 1:
                    rest = totals[f.kind] - _SHOW_PER_KIND
                    lines.append(
                        f"{indent}... and {rest} more of this kind ({f.kind}; --json lists them all)"
                    )
                continue
        lines.append(f"{indent}{f.level}: {f.message}")
    return lines
