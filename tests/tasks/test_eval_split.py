"""``eval_split``: which mixtures a speech job scores (validation or test), and that metrics.json says which."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vaenmf.errors import ConfigError
from vaenmf.jobfile import job_identity
from vaenmf.tasks.speech import eval_split_of
from vaenmf.train import CONFIG_DIR


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_eval_split_defaults_to_test_and_is_part_of_a_speech_jobs_identity():
    cfg = _compose(["method=nmf"])
    assert cfg.eval_split == "test" and job_identity(cfg)["eval_split"] == "test"
    assert job_identity(_compose(["method=nmf", "eval_split=validation"]))["eval_split"] == "validation"
    # A job config from before the key existed scored the test split.
    old = OmegaConf.create({"task": "speech", "method": {"name": "nmf"}, "noise": "factory"})
    assert job_identity(old)["eval_split"] == "test"
    # Synergy jobs have no such split (their held-out repetitions are the test data).
    synergy = _compose(["task=synergy", "method=nmf"])
    assert "eval_split" not in synergy and "eval_split" not in job_identity(synergy)
    # The demo's validation count follows the test count (16; the smoke experiment's 3).
    assert instantiate(cfg.data).n_validation_utterances == 16
    assert instantiate(_compose(["experiment=smoke"]).data).n_validation_utterances == 3
    timit = _compose(["data=speech_timit", "data.data_root=/nowhere"]).data
    assert timit.n_validation_utterances is None and timit.noise_validation_fraction == 0.1


@pytest.mark.parametrize("value", ["dev", "train", "Test", 1])
def test_a_bad_eval_split_is_one_message_naming_the_key_and_choices(value):
    with pytest.raises(ConfigError, match=r"eval_split must be one of \['validation', 'test'\]"):
        eval_split_of(OmegaConf.create({"eval_split": value}))


def test_smoke_job_scores_the_validation_mixtures_only(tmp_path, train_cli):
    out = tmp_path / "job"
    overrides = ["experiment=smoke", "eval_split=validation", "cache_dictionaries=false"]
    result = train_cli([*overrides, f"paths.output_root={tmp_path}", f"hydra.run.dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["eval_split"] == "validation"
    # Exactly the validation mixtures of the job's data: its validation speakers, none of the test speakers.
    data = instantiate(_compose(overrides).data)
    data.setup()
    expected = [m.name for ms in data.validation_mixtures().values() for m in ms]
    assert [row["utterance"] for row in metrics["rows"]] == expected and len(expected) == 3 * 2
    assert {row["utterance"].split("_")[0] for row in metrics["rows"]} == set(data.validation_speakers)
    assert not set(data.validation_speakers) & set(data.test_speakers)
    assert "validation, SNR -5 dB" in result.stdout + result.stderr
    # NMF improves on the input at every SNR of the validation mixtures too (demo factory noise).
    for entry in metrics["summary"].values():
        assert entry["sdr"] > entry["sdr_input"] + 1.0


def test_a_bad_eval_split_fails_the_job_before_any_work(tmp_path, train_cli):
    out = tmp_path / "job"
    result = train_cli(
        ["experiment=smoke", "eval_split=dev", f"paths.output_root={tmp_path}", f"hydra.run.dir={out}"],
        tmp_path,
    )
    assert (
        result.returncode == 1
        and "eval_split must be one of ['validation', 'test'], got 'dev'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["eval_split"] == "dev"
    assert not (out / "checkpoints").exists()  # nothing was fitted
