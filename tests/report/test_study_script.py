"""scripts/study.py: the command always ends with what makes it a study (the validation split, or the held-out
repetitions), nothing can override that, and a sweep that saw test data cannot become a study's table."""

from __future__ import annotations

import importlib.util
import json
import shlex
import time

import pytest
from test_study import KEY, WEIGHT, _config, _sweep, _synergy_job, _synergy_sweep

from vaenmf.train import REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("study", REPO_ROOT / "scripts" / "study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def script():
    return _script()


def test_the_script_runs_the_multirun_and_writes_the_table(script, tmp_path, make_job, snr_summary, capsys):
    out = tmp_path / "study"
    assert (
        script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--seeds", "0,1", "--dry-run"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"-m method=vae_nmf noise=factory {KEY}=gaussian,poisson seed=0,1 logger=csv" in printed
    assert printed.strip().endswith("eval_split=validation")  # last: nothing after it can change it
    _sweep(out, make_job, snr_summary)
    argv = [
        "--out",
        str(out),
        "--vary",
        f"{KEY}=gaussian,poisson",
        "--seeds",
        "0,1",
        "--noise",
        "factory,babble",
    ]
    assert script.main([*argv, "--table-only", "--reference", "default"]) == 0
    md = (out / "table.md").read_text()
    assert md.startswith(f"# Study: method=vae_nmf, varying {KEY} [validation split]")
    assert "Scored on: the VALIDATION split" in md
    # gaussian is conf/'s current default and the reference; the other row is compared with it.
    assert "| validation | gaussian | yes | 5.50 [3.38, 7.62] |" in md and "4/4 ok" in md
    assert f"Current default (conf/): {KEY}=gaussian (marked)" in md
    assert "| reference |" in md and "| -2.00 [" in md
    record = json.loads((out / "table.json").read_text())
    assert record["eval_splits"] == ["validation"] and record["reference"] == {KEY: "gaussian"}
    assert record["default"] == {KEY: "gaussian"} and record["expected_jobs"] == record["n_jobs_ok"] == 8
    assert record["grid"][-1] == "eval_split=validation"
    assert record["rows"][0]["values"] == {KEY: "gaussian"} and record["rows"][0]["is_default"]
    with pytest.raises(SystemExit):
        script.main(["--out", str(out)])  # no varied key


def test_the_command_ends_with_the_split_or_the_heldout_repetitions(script, tmp_path):
    speech = script.hydra_command(
        script.parse_args(
            ["--out", str(tmp_path), "--vary", f"{KEY}=gaussian", "--jobs", "2", "--noise", "babble"]
        )
    )
    assert (
        speech[-1] == "eval_split=validation" and "launcher=parallel" in speech and "noise=babble" in speech
    )
    assert sum("eval_split" in item for item in speech) == 1
    synergy = script.hydra_command(
        script.parse_args(["--out", str(tmp_path), "--task", "synergy", "--vary", f"{WEIGHT}=1,1e4"])
    )
    assert synergy[-3:] == [
        "task=synergy",
        "data.train_repetitions=[1,3,4,6,7]",
        "data.test_repetitions=[8,9]",
    ]
    assert not any("eval_split" in item or item.startswith("noise=") for item in synergy)
    assert (
        script.expected_jobs(
            script.parse_args(["--out", "x", "--vary", "a=1,2,3", "--vary", "b=x,y", "--seeds", "0,1"])
        )
        == 12
    )


SPELLINGS = [
    "eval_split=test",
    "eval_split=validation",
    "+eval_split=test",
    "++eval_split=test",
    "~eval_split",
    "~eval_split=test",
    "data.eval_split=test",
    "++data.eval_split=test",
    " eval_split=test",
    "EVAL_SPLIT=test",
    "eval_split@_global_=test",
    "task=synergy",
    "task=speech",
    "+task=speech",
    "task@_global_=speech",
    "experiment=table1",
    "+experiment=fig2_vaf",
    "data.train_repetitions=[1,2,3]",
    "++data.train_repetitions=[1,2,3]",
    "data.test_repetitions=[2,5,10]",
    "+data.test_repetitions=[2,5,10]",
    "~data.test_repetitions",
    "data/test_repetitions=[2]",
]


@pytest.mark.parametrize("task", ["speech", "synergy"])
@pytest.mark.parametrize("option", ["--set", "--vary"])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_spelling_of_the_split_task_or_repetitions_is_accepted(
    script, tmp_path, capsys, task, option, spelling
):
    with pytest.raises(SystemExit) as exc:
        script.main(
            ["--out", str(tmp_path), "--task", task, "--vary", f"{WEIGHT}=1", option, spelling, "--dry-run"]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert (
        "scored on the validation split only" if task == "speech" else "held-out training repetitions only"
    ) in err
    assert "cannot be set" in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "method=dnmf"], "set method with --method"),
        (["--vary", "seed=0,1"], "set seed with --seeds"),
        (["--set", "a=1,2"], "use --vary"),
        (["--method", "nmff"], "no conf/method/nmff.yaml"),
        (["--seeds", "0,x"], "comma-separated integers"),
        (["--reference", f"{WEIGHT}=5"], "not among the values studied"),
        (["--reference", "dictionary.rank=5"], "does not vary"),
        (["--vary", "dictionary.rank=20,40", "--reference", f"{WEIGHT}=1"], "no value for dictionary.rank"),
        (["--reference", "default", "--reference", f"{WEIGHT}=1"], "stands alone"),
        (["--task", "synergy", "--noise", "babble"], "speech setting"),
        (["--task", "synergy", "--extra", "dictionaries"], "speech setting"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(script, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(tmp_path), "--vary", f"{WEIGHT}=1,1e4", *args, "--dry-run"])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_the_script_refuses_a_table_of_jobs_scored_on_the_test_split(
    script, tmp_path, make_job, snr_summary, capsys
):
    """An older sweep (no eval_split recorded: scored on test) cannot become a study's table."""
    out = tmp_path / "study"
    _sweep(out, make_job, snr_summary, eval_split=None)
    assert script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--table-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scored on the test split" in err and "eval_split=validation" in err
    assert not (out / "table.md").exists()


def test_one_test_job_among_validation_jobs_refuses_the_table(
    script, tmp_path, make_job, snr_summary, capsys
):
    out = tmp_path / "study"
    _sweep(out, make_job, snr_summary)
    make_job(
        out / "sweep",
        "t",
        "vae_nmf",
        "factory",
        0,
        snr_summary(9.0),
        config=_config("poisson"),
        eval_split="test",
    )
    assert script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--table-only"]) == 2
    assert "1 job(s) of this study were scored on the test split" in capsys.readouterr().err
    assert not (out / "table.md").exists() and not (out / "table.json").exists()


def test_the_script_refuses_a_synergy_table_that_saw_a_test_repetition(script, tmp_path, capsys):
    out = tmp_path / "study"
    argv = [
        "--out",
        str(out),
        "--task",
        "synergy",
        "--vary",
        f"{WEIGHT}=1,1e4",
        "--seeds",
        "0,1",
        "--table-only",
    ]
    _synergy_sweep(out / "sweep")
    assert script.main([*argv, "--reference", "default"]) == 0
    md = (out / "table.md").read_text()
    assert "HELD-OUT TRAINING REPETITIONS" in md and "repetitions [8, 9] (fit on [1, 3, 4, 6, 7])" in md
    assert "| yes |" in md and "| reference |" in md  # conf/'s weight 1e4 is the default and the reference
    _synergy_job(out / "sweep", "z", 1, 1e3, [0.9] * 4, train=(1, 3, 4, 6, 7), held=(2, 5, 10))
    (out / "table.md").unlink()
    assert script.main(argv) == 2
    assert "saw the test repetitions [2, 5, 10]" in capsys.readouterr().err
    assert not (out / "table.md").exists()


def test_a_folder_of_another_grid_is_refused(script, tmp_path, capsys, monkeypatch):
    ran = []
    monkeypatch.setattr(
        script.subprocess, "run", lambda *a, **k: ran.append(a) or type("R", (), {"returncode": 0})
    )
    monkeypatch.setattr(script, "write_table", lambda args: [])
    out = tmp_path / "study"
    assert (
        script.main(["--out", str(out), "--method", "nmf", "--vary", "dictionary.mu_iterations=100,200"]) == 0
    )
    assert json.loads((out / "study.json").read_text())["grid"][-1] == "eval_split=validation"
    # The same grid resumes, whatever the launcher; another one is refused before anything runs.
    assert (
        script.main(
            [
                "--out",
                str(out),
                "--method",
                "nmf",
                "--vary",
                "dictionary.mu_iterations=100,200",
                "--jobs",
                "2",
            ]
        )
        == 0
    )
    assert len(ran) == 2
    argv = [
        "--out",
        str(out),
        "--method",
        "nmf",
        "--vary",
        "dictionary.mu_iterations=100,200",
        "--seeds",
        "0,1",
    ]
    assert script.main(argv) == 2
    assert "holds a study of another grid" in capsys.readouterr().err and len(ran) == 2


@pytest.mark.slow
def test_a_real_study_end_to_end(script, tmp_path, monkeypatch):
    """Two NMF jobs on tiny demo data, scored on the validation split, and their table."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    out = tmp_path / "study"
    start = time.perf_counter()
    argv = [
        "--out", str(out), "--method", "nmf", "--cache", str(tmp_path / "cache"),
        "--vary", "dictionary.mu_iterations=10,20", "--reference", "dictionary.mu_iterations=20",
        "--set", "data.dict_speech_frames=1500", "--set", "data.dict_noise_frames=1200",
        "--set", "data.n_train_utterances=4", "--set", "data.n_validation_utterances=2",
        "--set", "scoring_workers=0",
    ]  # fmt: skip
    assert script.main(argv) == 0, shlex.join(argv)
    record = json.loads((out / "table.json").read_text())
    assert record["eval_splits"] == ["validation"] and record["n_jobs_ok"] == record["expected_jobs"] == 2
    ten, twenty = record["rows"]
    assert ten["values"] == {"dictionary.mu_iterations": 10} and twenty["is_reference"]
    assert ten["difference"]["status"] == "ok"
    for job in (out / "sweep").glob("*/metrics.json"):
        data = json.loads(job.read_text())
        assert data["eval_split"] == "validation" and {r["speech_utterance"] for r in data["rows"]}
    assert time.perf_counter() - start < 600
