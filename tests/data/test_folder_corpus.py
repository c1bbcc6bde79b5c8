"""A user's own speech corpus: one folder per speaker (``data=speech_folder``), any audio format and rate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vaenmf.data.folder import index_speaker_folders
from vaenmf.data.speech import SpeechDataModule
from vaenmf.data.splits import fraction_speaker_split
from vaenmf.data.synthetic import make_speakers, synth_utterance
from vaenmf.errors import ConfigError, CorpusLayoutError, DataError

SMALL = dict(
    corpus="folder",
    demo_noise_seconds=40.0,  # the demo's generated factory noise: no NOISEX-92 folder given
    dict_speech_frames=600,
    dict_noise_frames=400,
    test_snrs=(0,),
)


def _corpus(root: Path, n_speakers: int = 8, per_speaker: int = 3) -> Path:
    """Speaker folders of synthetic speech: WAV at 22.05 kHz, FLAC at 8 kHz in a subfolder, a transcript."""
    rng = np.random.default_rng(1)
    for i, voice in enumerate(make_speakers(n_speakers, seed=7)):
        folder = root / f"spk{i:02d}"
        for j in range(per_speaker):
            wave = np.asarray(synth_utterance(voice, rng, duration_s=1.2), dtype=np.float32)
            if j % 2:
                (folder / "takes").mkdir(parents=True, exist_ok=True)
                sf.write(folder / "takes" / f"u{j}.FLAC", wave[::2], 8000)  # any case, any depth
            else:
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(
                    folder / f"u{j}.wav",
                    np.interp(np.arange(0, wave.size, 16000 / 22050), np.arange(wave.size), wave).astype(
                        np.float32
                    ),
                    22050,
                )
        (folder / "notes.txt").write_text("not audio")
    return root


def test_the_split_policy_is_sorted_dealt_and_seed_free():
    speakers = [f"s{i}" for i in range(8)]
    parts = fraction_speaker_split(speakers[::-1], [0.375, 0.25, 0.125, 0.25])
    assert parts == (["s0", "s3", "s7"], ["s1", "s5"], ["s4"], ["s2", "s6"])
    for n in range(4, 40):
        parts = fraction_speaker_split([f"{i:03d}" for i in range(n)], [0.375, 0.25, 0.125, 0.25])
        assert sorted(sum(parts, [])) == [f"{i:03d}" for i in range(n)] and all(parts)
        assert abs(len(parts[3]) - n / 4) <= 1
    assert fraction_speaker_split(["a", "b", "c"], [0.5, 0.25, 0, 0.25]) == (["a"], ["b"], [], ["c"])


def test_a_folder_corpus_end_to_end(tmp_path):
    root = _corpus(tmp_path / "speech")
    module = SpeechDataModule(**SMALL, root=str(root), seed=0)
    module.setup()
    assert module.dictionary_speakers == ["spk00", "spk03", "spk07"]
    assert (module.train_speakers, module.validation_speakers) == (["spk01", "spk05"], ["spk04"])
    assert module.test_speakers == ["spk02", "spk06"]
    assert sorted(module.test_utterances) == [
        f"spk0{s}_{u}" for s in (2, 6) for u in ("takes_u1", "u0", "u2")
    ]
    # Every file is read at 16 kHz: 1.2 s of speech from 22.05 kHz WAV and from 8 kHz FLAC.
    files = {it.name: it.path for it in module._test_items}
    for m in (m for ms in module.test_mixtures().values() for m in ms):
        info = sf.info(files[m.utterance])
        assert info.samplerate in (8000, 22050) and m.sr == 16000
        assert abs(m.speech.numel() - info.duration * 16000) <= 2
    assert module.speech_dictionary_frames().shape[0] == 257
    assert module.noise_sources == {"factory": "demo:factory(seed=0)"}
    assert len(module.validation_mixtures()[0]) == 3
    # Another seed: the same speakers in each part (the fits and mixtures change, not the test set).
    other = SpeechDataModule(**SMALL, root=str(root), seed=1)
    other.setup()
    assert (
        other.test_speakers == module.test_speakers
        and other.dictionary_speakers == module.dictionary_speakers
    )
    assert module.summary()["corpus"] == "folder"


@pytest.mark.parametrize(
    ("fractions", "speakers"),
    [
        ({"dictionary": 0.5, "training": 0.25, "validation": 0.0, "test": 0.25}, ([0, 3], [1], [], [2])),
        ([0.25, 0.25, 0.25, 0.25], ([0], [1], [2], [3])),
    ],
)
def test_speaker_fractions_are_configuration(tmp_path, fractions, speakers):
    root = _corpus(tmp_path / "speech", n_speakers=4, per_speaker=1)
    module = SpeechDataModule(**SMALL, root=str(root), speaker_fractions=fractions)
    module.setup()
    got = (
        module.dictionary_speakers,
        module.train_speakers,
        module.validation_speakers,
        module.test_speakers,
    )
    assert got == tuple([f"spk{i:02d}" for i in part] for part in speakers)


def test_a_generated_noise_too_short_for_the_recordings_is_refused_at_setup(tmp_path):
    # 5 s of the demo's factory noise (no NOISEX-92 folder): a 0.5 s validation part, shorter than every recording.
    root = _corpus(tmp_path / "speech", n_speakers=4, per_speaker=1)
    module = SpeechDataModule(
        **{**SMALL, "demo_noise_seconds": 5.0}, root=str(root), speaker_fractions=[0.25] * 4
    )
    with pytest.raises(DataError, match=r"^the validation part of the factory noise \(0.50 s: 10% of its 5.00 s\) is "
                       r"shorter than utterance spk02_u0 \(1.\d\d s\).* use a longer generated noise "
                       r"\(data.demo_noise_seconds, now 5\), or give the validation part a larger share"):  # fmt: skip
        module.setup()


def test_bad_folder_corpora_are_one_message_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match="data=speech_folder needs data.root="):
        SpeechDataModule(**SMALL).setup()
    with pytest.raises(CorpusLayoutError, match=f"data.root={tmp_path / 'nope'}: no such folder"):
        SpeechDataModule(**SMALL, root=str(tmp_path / "nope")).setup()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusLayoutError, match="has no speaker folders; expected one folder per speaker"):
        index_speaker_folders(empty)
    flat = tmp_path / "flat"
    flat.mkdir()
    sf.write(flat / "a.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(CorpusLayoutError, match=r"holds audio files directly \(a.wav\)"):
        index_speaker_folders(flat)

    root = _corpus(tmp_path / "speech", n_speakers=5, per_speaker=1)
    (root / "spk09").mkdir()
    (root / "spk09" / "readme.md").write_text("x")
    with pytest.raises(
        CorpusLayoutError, match=f"speaker folder {root / 'spk09'} holds no audio files .* found"
    ):
        SpeechDataModule(**SMALL, root=str(root)).setup()
    (root / "spk09" / "readme.md").unlink()
    (root / "spk09").rmdir()
    shutil.rmtree(root / "spk03")
    shutil.rmtree(root / "spk04")
    with pytest.raises(
        ConfigError, match=r"has 3 speakers \(spk00, spk01, spk02\); the speaker split needs at least 4"
    ):
        SpeechDataModule(**SMALL, root=str(root)).setup()
    # Without a validation part three speakers are enough.
    SpeechDataModule(**SMALL, root=str(root), speaker_fractions=[0.5, 0.25, 0, 0.25]).setup()
    with pytest.raises(ConfigError, match="must be nonnegative and sum to 1"):
        SpeechDataModule(**SMALL, root=str(root), speaker_fractions=[0.5, 0.5, 0.5, 0]).setup()
    with pytest.raises(ConfigError, match="unknown parts"):
        SpeechDataModule(**SMALL, root=str(root), speaker_fractions={"train": 1.0})
    with pytest.raises(ConfigError, match="must give 4 fractions"):
        SpeechDataModule(**SMALL, root=str(root), speaker_fractions=[0.5, 0.5])


@pytest.mark.realdata
def test_the_nltk_timit_sample_as_a_folder_corpus(shared_data):
    # Its layout is one folder per speaker (dr1-fvmh0/sa1.wav ...: SPHERE files with a .wav suffix).
    module = SpeechDataModule(
        **{**SMALL, "n_test_utterances": 4}, root=str(shared_data / "timit_sample"), noise="babble",
        noisex_root=str(shared_data / "noisex92" / "jonboley_22k05_20s"),
    )  # fmt: skip
    module.evaluate_on("test")  # the excerpt's 2 s validation part holds no sample utterance; not scored here
    module.setup()
    parts = (
        module.dictionary_speakers,
        module.train_speakers,
        module.validation_speakers,
        module.test_speakers,
    )
    assert tuple(len(p) for p in parts) == (6, 4, 2, 4)
    assert all(s.startswith("dr") for p in parts for s in p)
    assert module.noise_sources["babble"].endswith("jonboley_22k05_20s/babble.wav")
    mixtures = module.test_mixtures()[0]
    assert len(mixtures) == 4 and all(m.speech.abs().max() > 0.01 for m in mixtures)
