"""Studies that choose a default: rows by the varied keys' values, aggregated like table cells."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from vaenmf.errors import DataError
from vaenmf.report.jobs import load_jobs
from vaenmf.report.study import study_rows
from vaenmf.train import REPO_ROOT

KEY = "dictionary.system.likelihood"


def _config(likelihood: str, sampler: str = "rsvi") -> dict:
    return {"dictionary": {"system": {"likelihood": likelihood, "sampler": sampler}}}


def _script():
    spec = importlib.util.spec_from_file_location("study", REPO_ROOT / "scripts" / "study.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _sweep(tmp_path, make_job, snr_summary, eval_split="validation"):
    root = tmp_path / "sweep"
    k = 0
    for likelihood, base in (("gaussian", 4.0), ("poisson", 2.0)):
        for seed in (0, 1):
            for noise, off in (("factory", 0.0), ("babble", 2.0)):
                job = make_job(
                    root,
                    str(k),
                    "vae_nmf",
                    noise,
                    seed,
                    snr_summary(base + off + seed),
                    config=_config(likelihood),
                    eval_split=eval_split,
                )
                data = json.loads((job / "metrics.json").read_text())
                data["dictionaries"] = {"speech": {"neg_mass": 0.01 * (1 + seed)}}
                data["wall_time_s"] = 10.0
                (job / "metrics.json").write_text(json.dumps(data))
                k += 1
    return root


def test_rows_are_the_varied_values_aggregated_over_noises_and_seeds(tmp_path, make_job, snr_summary):
    jobs = load_jobs([_sweep(tmp_path, make_job, snr_summary)])
    rows = study_rows(jobs, [KEY], extras=["dictionaries.speech.neg_mass"])
    assert [r.values[KEY] for r in rows] == ["gaussian", "poisson"]
    gaussian = rows[0]
    # sdr at -5: seed 0 (4 + 6) / 2 = 5, seed 1 6: mean 5.5, std over seeds sqrt(0.5).
    cell = gaussian.cells[("SDR", "-5")]
    assert cell.ours == pytest.approx(5.5) and cell.std == pytest.approx(math.sqrt(0.5)) and cell.n_seeds == 2
    # Its interval: seed means 5 and 6 (B = 0.5), 4 utterances per seed with variance 5/3 (conftest offsets):
    # SE^2 = 0.5 / 2 + 2 * (5/3) / (2 * 4) = 2/3; df = (2/3)^2 / (0.25^2 / 1 + 2 * (5/24)^2 / 3) = 384/79;
    # t(0.975, 384/79) = 2.59289.
    assert cell.ci.se == pytest.approx(math.sqrt(2 / 3))
    assert cell.ci.df == pytest.approx(384 / 79)
    assert cell.ci.lo == pytest.approx(5.5 - 2.59289 * math.sqrt(2 / 3), abs=1e-4)
    assert gaussian.eval_split == "validation"
    assert rows[1].cells[("SDR", "Aver")].ours == pytest.approx(3.5 + 1.5)
    assert gaussian.extras["dictionaries.speech.neg_mass"] == pytest.approx(0.015)
    assert gaussian.status == "ok" and len(gaussian.jobs) == 4


def test_a_failed_job_marks_its_row(tmp_path, make_job, snr_summary):
    root = _sweep(tmp_path, make_job, snr_summary)
    make_job(
        root,
        "x",
        "vae_nmf",
        "factory",
        2,
        status="failed",
        config=_config("poisson"),
        eval_split="validation",
    )
    rows = study_rows(load_jobs([root]), [KEY])
    poisson = rows[1]
    assert poisson.status == "incomplete"
    assert poisson.cells[("SDR", "-5")].status == "partial"  # seed 2 has no finished job


def test_jobs_without_the_keys_are_an_error(tmp_path, make_job, snr_summary):
    make_job(tmp_path, "0", "nmf", "factory", 0, snr_summary(1.0))
    with pytest.raises(DataError, match="records the varied keys"):
        study_rows(load_jobs([tmp_path]), [KEY])


def test_rows_of_two_splits_are_never_mixed(tmp_path, make_job, snr_summary):
    root = _sweep(tmp_path, make_job, snr_summary)
    make_job(
        root, "t", "vae_nmf", "factory", 0, snr_summary(100.0), config=_config("gaussian"), eval_split="test"
    )
    rows = study_rows(load_jobs([root]), [KEY])
    assert [(r.eval_split, r.values[KEY]) for r in rows] == [
        ("test", "gaussian"),
        ("validation", "gaussian"),
        ("validation", "poisson"),
    ]
    assert rows[1].cells[("SDR", "-5")].ours == pytest.approx(5.5)  # the test job is not averaged in
    with pytest.raises(DataError, match="scored on the test split .* validation split only"):
        study_rows(load_jobs([root]), [KEY], require_split="validation")


def test_the_script_runs_the_multirun_and_writes_the_table(tmp_path, make_job, snr_summary, capsys):
    script = _script()
    out = tmp_path / "study"
    assert (
        script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--seeds", "0,1", "--dry-run"])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"-m method=vae_nmf noise=factory {KEY}=gaussian,poisson seed=0,1 logger=csv" in printed
    assert printed.strip().endswith("eval_split=validation")  # last: nothing after it can change it
    _sweep(out, make_job, snr_summary)
    assert script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--table-only"]) == 0
    md = (out / "table.md").read_text()
    assert md.startswith(f"# Study: method=vae_nmf, varying {KEY} [validation split]")
    assert "Scored on: the VALIDATION split" in md
    assert "| validation | gaussian | 5.50 [3.38, 7.62] |" in md and "4/4 ok" in md
    record = json.loads((out / "table.json").read_text())
    assert record["eval_splits"] == ["validation"]
    assert (
        record["rows"][0]["values"] == {KEY: "gaussian"} and record["rows"][0]["eval_split"] == "validation"
    )
    with pytest.raises(SystemExit):
        script.main(["--out", str(out)])  # no varied key


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "eval_split=test"],
        ["--set", "+eval_split=test"],
        ["--set", "++eval_split=validation"],
        ["--set", "data.eval_split=test"],
        ["--vary", "eval_split=validation,test"],
    ],
)
def test_the_script_cannot_be_told_to_score_the_test_split(tmp_path, capsys, args):
    script = _script()
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(tmp_path), "--vary", f"{KEY}=gaussian", *args, "--dry-run"])
    assert exc.value.code == 2
    assert "scored on the validation split only" in capsys.readouterr().err


def test_the_script_refuses_a_table_of_jobs_scored_on_the_test_split(tmp_path, make_job, snr_summary, capsys):
    """An older sweep (no eval_split recorded: scored on test) cannot become a study's table."""
    script = _script()
    out = tmp_path / "study"
    _sweep(out, make_job, snr_summary, eval_split=None)
    assert script.main(["--out", str(out), "--vary", f"{KEY}=gaussian,poisson", "--table-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scored on the test split" in err and "eval_split=validation" in err
    assert not (out / "table.md").exists()
