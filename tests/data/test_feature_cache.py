"""Features prepared once (vaenmf.data.cache): the same data with and without the cache, a changed file
invalidates its entry, and concurrent processes never read a partial entry."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import vaenmf.data.speech as speech_module
from vaenmf.data.cache import FeatureCache
from vaenmf.data.records import magnitudes
from vaenmf.data.speech import SpeechDataModule

SMALL = dict(
    demo_speakers=6,
    demo_utts_per_speaker=3,
    demo_noise_seconds=30.0,
    dict_speech_frames=800,
    dict_noise_frames=600,
    n_train_utterances=3,
    n_test_utterances=2,
    test_snrs=(0,),
)


def _noise_file(path: Path, seed: int, sr: int = 22050, seconds: float = 30.0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr)
    return path


def _everything(module: SpeechDataModule) -> dict[str, object]:
    module.setup()
    return {
        "noises": {k: v.clone() for k, v in module.noises.items()},
        "speech": module.speech_dictionary_frames(),
        "noise": module.noise_dictionary_frames(),
        "spectra": [(s.name, s.mixture, s.speech, s.noise) for s in module.training_spectra()],
        "test": [(m.name, m.mixture) for ms in module.test_mixtures().values() for m in ms],
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a["noises"].keys() == b["noises"].keys()
    for k in a["noises"]:
        assert torch.equal(a["noises"][k], b["noises"][k])
    assert torch.equal(a["speech"], b["speech"]) and torch.equal(a["noise"], b["noise"])
    assert [x[0] for x in a["spectra"]] == [x[0] for x in b["spectra"]]
    for x, y in zip(a["spectra"], b["spectra"], strict=True):
        assert all(torch.equal(p, q) for p, q in zip(x[1:], y[1:], strict=True))
    assert [x[0] for x in a["test"]] == [x[0] for x in b["test"]]
    assert all(torch.equal(x[1], y[1]) for x, y in zip(a["test"], b["test"], strict=True))


@pytest.mark.parametrize("noise", ["pooled", "file"])
def test_the_data_are_the_same_without_the_cache_cold_and_warm(tmp_path, monkeypatch, noise):
    if noise == "file":
        noise = str(_noise_file(tmp_path / "hiss.wav", 0))
    reference = _everything(SpeechDataModule(**SMALL, noise=noise))
    # The spectra are the training mixtures' magnitudes.
    plain = SpeechDataModule(**SMALL, noise=noise)
    plain.setup()
    for spectra, mix in zip(reference["spectra"], plain.training_mixtures(), strict=True):
        assert spectra[0] == mix.name and all(
            torch.equal(a, b) for a, b in zip(spectra[1:], magnitudes(mix), strict=True)
        )
    cache_dir = tmp_path / "cache"
    cold = SpeechDataModule(**SMALL, noise=noise)
    cold.use_feature_cache(cache_dir)
    _assert_same(reference, _everything(cold))
    kinds = sorted(p.name.split("-")[0] for p in cache_dir.iterdir())
    expected = ["noise"] if noise.endswith(".wav") else ["demo_noise", "demo_noise"]
    assert kinds == sorted([*expected, "speech_frames", "train_spectra"])

    # Warm: nothing is read, synthesised or transformed again.
    def forbidden(*args, **kwargs):
        raise AssertionError("computed instead of read from the cache")

    monkeypatch.setattr(speech_module, "read_audio", forbidden)
    monkeypatch.setattr(speech_module, "make_noise", forbidden)
    warm = SpeechDataModule(**SMALL, noise=noise)
    warm.use_feature_cache(cache_dir)
    warm.setup()
    monkeypatch.setattr(warm, "iter_training_mixtures", forbidden)
    warm.speech_dictionary_frames()  # demo utterances are not synthesised: the frames come from the cache
    warm.training_spectra()
    monkeypatch.undo()
    _assert_same(reference, _everything(warm))


def test_a_changed_file_invalidates_its_entry(tmp_path):
    path = _noise_file(tmp_path / "hum.wav", 0)
    cache_dir = tmp_path / "cache"
    first = SpeechDataModule(**SMALL, noise=str(path))
    first.use_feature_cache(cache_dir)
    first.setup()
    old = first.noises["hum"].clone()
    first.training_spectra()
    _noise_file(path, 1)  # another recording under the same name
    second = SpeechDataModule(**SMALL, noise=str(path))
    second.use_feature_cache(cache_dir)
    second.setup()
    fresh = SpeechDataModule(**SMALL, noise=str(path))
    fresh.setup()
    assert not torch.equal(second.noises["hum"], old) and torch.equal(
        second.noises["hum"], fresh.noises["hum"]
    )
    new_spectra = second.training_spectra()
    assert all(
        torch.equal(a.noise, b.noise) for a, b in zip(new_spectra, fresh.training_spectra(), strict=True)
    )
    names = sorted(p.name.split("-")[0] for p in cache_dir.iterdir())
    assert (
        names.count("noise") == 2 and names.count("train_spectra") == 2
    )  # the old entries are never read again


def test_a_corrupt_entry_is_recomputed(tmp_path, caplog):
    cache = FeatureCache(tmp_path)
    assert cache.get("x", {"a": 1}, lambda: torch.ones(3)).sum() == 3
    path = cache.path("x", cache.key("x", {"a": 1}))
    path.write_bytes(path.read_bytes()[:20])
    caplog.set_level(logging.WARNING, logger="vaenmf")
    assert cache.get("x", {"a": 1}, lambda: torch.full((3,), 2.0)).sum() == 6
    assert "ignoring unreadable cached features" in caplog.text
    assert cache.load("x", cache.key("x", {"a": 1})).sum() == 6  # the recomputed value replaced it


N_VALUES = 400_000  # 1.6 MB per entry: a write takes long enough for a reader to meet it half-done


def _writer(root: str, fill: int, rounds: int) -> None:
    cache = FeatureCache(root)
    key = cache.key("shared", {"entry": 1})
    for i in range(rounds):
        value = float(fill * 1000 + i)
        cache.save("shared", key, {"fill": value, "data": torch.full((N_VALUES,), value)})


def _reader(root: str, seconds: float, out: mp.Queue) -> None:
    """Read the entry's file as often as possible: every read must give a whole, consistent entry."""
    cache = FeatureCache(root)
    path = cache.path("shared", cache.key("shared", {"entry": 1}))
    seen, bad, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            value = entry["value"]
            whole = value["data"].numel() == N_VALUES and bool((value["data"] == value["fill"]).all())
        except FileNotFoundError:
            continue
        except Exception:  # a torn file: what atomic writes rule out
            whole = False
        seen += 1
        bad += not whole
    out.put((seen, bad))


def _compute_once(root: str, out: mp.Queue) -> None:
    def slow() -> torch.Tensor:
        time.sleep(0.3)
        return torch.arange(N_VALUES, dtype=torch.float32)

    out.put(float(FeatureCache(root).get("entry", {"shared": True}, slow).sum()))


def test_two_processes_writing_and_a_third_reading_never_see_a_partial_entry(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    FeatureCache(tmp_path).save("shared", FeatureCache(tmp_path).key("shared", {"entry": 1}), {
        "fill": -1.0, "data": torch.full((N_VALUES,), -1.0)})  # fmt: skip
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), k, 40)) for k in (1, 2)]
    reader = ctx.Process(target=_reader, args=(str(tmp_path), 6.0, queue))
    for p in (reader, *writers):
        p.start()
    for p in (*writers, reader):
        p.join(120)
        assert p.exitcode == 0
    seen, bad = queue.get(timeout=10)
    assert seen > 0 and bad == 0
    assert not [p for p in tmp_path.iterdir() if not p.name.endswith(".pt")]  # no temporary file left behind

    # Two jobs that need the same entry at once: both get the same value, the entry is whole.
    procs = [ctx.Process(target=_compute_once, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    sums = [queue.get(timeout=10) for _ in procs]
    cache = FeatureCache(tmp_path)
    entry = cache.load("entry", cache.key("entry", {"shared": True}))
    assert sums[0] == sums[1] == float(entry.sum())
