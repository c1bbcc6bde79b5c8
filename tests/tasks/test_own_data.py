"""Your own data from the command line: other NOISEX-92 noises, a noise file, a speaker-folder corpus and
mismatched-noise evaluation, recorded in metrics.json and labelled by the report; the job folder's config hash
leaves the defaults' hash as it was; bad input is one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from vaenmf.data.synthetic import make_speakers, synth_utterance
from vaenmf.report.cli import main as report_main
from vaenmf.tasks.inputs import input_stamps
from vaenmf.tasks.jobdir import JobDirectory, config_differences
from vaenmf.tasks.runtime import config_hash, config_record, container_hash
from vaenmf.train import CONFIG_DIR


def _compose(overrides: list[str]):
    """The job's config, its output folder set (outside a Hydra run ``${hydra:runtime.output_dir}`` is unset)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, "paths.output_dir=/job"])


def _own_data(root: Path) -> tuple[Path, Path, Path]:
    """A speaker-folder corpus (8 speakers x 4 utterances, WAV at 22.05 kHz), a 40 s hum at 44.1 kHz (FLAC) and a
    NOISEX-92-like folder with white.wav and pink.flac."""
    rng = np.random.default_rng(2)
    speech = root / "speech"
    for i, voice in enumerate(make_speakers(8, seed=11)):
        (speech / f"talker{i}").mkdir(parents=True)
        for j in range(4):
            wave = np.asarray(synth_utterance(voice, rng, duration_s=1.5), dtype=np.float64)
            wave = np.interp(np.arange(0, wave.size, 16000 / 22050), np.arange(wave.size), wave)
            sf.write(speech / f"talker{i}" / f"take{j}.wav", wave.astype(np.float32), 22050)
    t = np.arange(44100 * 40) / 44100
    hum = root / "hum.flac"
    sf.write(
        hum,
        (0.2 * np.sin(2 * np.pi * 120 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32),
        44100,
    )
    noisex = root / "noisex92"
    noisex.mkdir()
    sf.write(noisex / "white.wav", (0.1 * rng.standard_normal(22050 * 40)).astype(np.float32), 22050)
    sf.write(noisex / "pink.flac", (0.1 * rng.standard_normal(8000 * 40)).astype(np.float32), 8000)
    return speech, hum, noisex


def test_the_new_keys_leave_the_defaults_hash_and_folders_as_they_were(tmp_path):
    cfg = _compose(["experiment=smoke"])
    record = config_record(cfg)
    assert record["test_noise"] is None and record["data"]["test_noise"] is None
    # A job recorded before the keys existed has the same hash: its folder is continued, not refused.
    old = {k: v for k, v in record.items() if k != "test_noise"}
    old["data"] = {k: v for k, v in record["data"].items() if k != "test_noise"}
    assert container_hash(old) == container_hash(record) == config_hash(cfg)
    folder = JobDirectory(tmp_path / "job")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "metrics.json").write_text(
        json.dumps({"status": "ok", "config": old, "git_commit": "c"})
    )
    assert folder.previous_result(record, "c", input_stamps={})["status"] == "ok"
    # A mismatched job is another config: another hash, and the folder says which keys differ.
    mismatched = config_record(_compose(["experiment=smoke", "test_noise=babble"]))
    assert container_hash(mismatched) != container_hash(record)
    assert config_differences(old, mismatched) == [
        'data.test_noise: (absent) -> "babble"',
        'test_noise: (absent) -> "babble"',
    ]
    # Other noises are other configs too.
    assert config_hash(_compose(["experiment=smoke", "noise=pooled:white+pink"])) != config_hash(cfg)


def test_a_changed_own_file_reruns_the_job(tmp_path):
    hum = tmp_path / "hum.wav"
    sf.write(hum, np.zeros(1600, np.float32), 16000)
    cfg = _compose(["experiment=smoke", f"noise={hum}"])
    stamps = input_stamps(cfg)
    assert list(stamps) == [f"noise:{hum}"]
    assert input_stamps(_compose(["experiment=smoke"])) == {}  # the paper's corpora are not stamped
    (tmp_path / "job").mkdir()
    record = config_record(cfg)
    done = {"status": "ok", "config": record, "git_commit": "c", "input_stamps": stamps}
    (tmp_path / "job" / "metrics.json").write_text(json.dumps(done))
    folder = JobDirectory(tmp_path / "job")
    assert folder.previous_result(record, "c", stamps) is not None
    sf.write(hum, np.ones(1600, np.float32) * 0.1, 16000)
    assert input_stamps(cfg) != stamps and folder.previous_result(record, "c", input_stamps(cfg)) is None


def test_own_noise_file_speaker_folders_and_mismatched_noise_end_to_end(tmp_path, train_cli):
    speech, hum, noisex = _own_data(tmp_path / "mine")
    sweep = tmp_path / "sweep"
    jobs = {
        "mismatched": ["test_noise=babble"],
        "own": ["data=speech_folder", f"data.root={speech}", f"noise={hum}"],
    }
    for name, overrides in jobs.items():
        args = [
            "experiment=smoke",
            *overrides,
            f"paths.output_root={tmp_path}",
            f"hydra.run.dir={sweep / name}",
        ]
        result = train_cli(args, tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    metrics = {name: json.loads((sweep / name / "metrics.json").read_text()) for name in jobs}
    mismatched = metrics["mismatched"]
    assert (mismatched["noise"], mismatched["test_noise"]) == ("factory", "babble")
    assert {r["noise"] for r in mismatched["rows"]} == {"babble"}
    own = metrics["own"]
    assert own["corpus"] == "folder" and own["noise"] == str(hum) and "test_noise" not in own
    assert {r["noise"] for r in own["rows"]} == {"hum"}
    assert {r["speech_utterance"].split("_")[0] for r in own["rows"]} == {"talker2", "talker6"}
    assert list(own["input_stamps"]) == [f"noise:{hum}", "data.root"]
    # A pure tone plus a little hiss is easy: NMF gains a lot on it.
    assert own["summary"]["0"]["sdr"] > own["summary"]["0"]["sdr_input"] + 5

    out = tmp_path / "report"
    assert report_main([str(sweep), "--out", str(out)]) == 0
    text = (out / "conditions.md").read_text()
    assert "## factory -> babble: trained on factory, tested on babble (mismatched noise)" in text
    assert f"## {hum}: noise {hum}" in text and "- Corpus: folder\n" in text
    assert not (out / "table1.md").exists()  # neither job belongs to the paper's tables


def test_a_sweep_over_noisex_noises_and_a_pool(tmp_path, train_cli):
    _, _, noisex = _own_data(tmp_path / "mine")
    args = ["-m", "experiment=smoke", "noise=white,pooled:white+pink", f"+data.noisex_root={noisex}",
            "data.test_snrs=[0]", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    result = train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").rglob("metrics.json"))]
    assert [m["noise"] for m in metrics] == ["white", "pooled:white+pink"]
    assert {r["noise"] for r in metrics[1]["rows"]} == {"white", "pink"}
    assert metrics[1]["dictionaries"]["noise"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["noise=/no/such/noise.wav"],
            "noise file /no/such/noise.wav does not exist (noise='/no/such/noise.wav')",
        ),
        (
            ["noise=traffic"],
            "noise 'traffic': the demo corpus (data=speech_demo) generates only factory and babble",
        ),
        (["noise=pooled:white"], "noise='pooled:white': a pool needs two or more noises joined by '+'"),
        (["test_noise=/no/x.flac"], "noise file /no/x.flac does not exist"),
        (["data=speech_folder"], "data=speech_folder needs data.root=/path/to/speech"),
        (["data=speech_folder", "data.root=/no/speech"], "data.root=/no/speech: no such folder"),
    ],
)
def test_bad_own_data_is_one_line_before_any_work(tmp_path, train_cli, args, message):
    out = tmp_path / "job"
    result = train_cli(
        ["experiment=smoke", *args, f"paths.output_root={tmp_path}", f"hydra.run.dir={out}"], tmp_path
    )
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (out / "checkpoints").exists()  # nothing was fitted


def test_a_noise_too_short_for_the_test_utterances_is_one_line_before_any_work(tmp_path, train_cli):
    # 4 speakers of one 1.5 s recording; a 4 s noise, whose test part (the last 30%: 1.2 s) holds none of them.
    # The job reads the recordings' headers only: the message comes before any dictionary is fitted.
    rng = np.random.default_rng(0)
    for i in range(4):
        (tmp_path / "speech" / f"s{i}").mkdir(parents=True)
        sf.write(tmp_path / "speech" / f"s{i}" / "a.wav", 0.1 * rng.standard_normal(24000), 16000)
    noise = tmp_path / "short.wav"
    sf.write(noise, 0.1 * rng.standard_normal(64000), 16000)
    out = tmp_path / "job"
    args = ["experiment=smoke", "data=speech_folder", f"data.root={tmp_path / 'speech'}", f"noise={noise}",
            "data.n_test_utterances=null", "data.n_train_utterances=null",
            f"paths.output_root={tmp_path}", f"hydra.run.dir={out}"]  # fmt: skip
    result = train_cli(args, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (
        f"the test part of the short noise ({noise}) (1.20 s: 30% of its 4.00 s) is shorter than utterance s"
        in result.stderr
    )
    assert "_a (1.50 s), the longest of the test utterances" in result.stderr
    assert not (out / "checkpoints").exists()  # nothing was fitted
