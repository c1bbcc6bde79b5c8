"""scripts/studies.py (`make studies`): every study of the README, each run through study.py's functions; none of
them can score the test split or a test repetition; complete studies are skipped."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from vaenmf.train import REPO_ROOT

#: The Ninapro protocol's test repetitions (Figure 2), which no study may fit on or score.
TEST_REPETITIONS = {2, 5, 10}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def studies():
    return _load("studies")


def _key_value(item: str) -> tuple[str, str, list[str]]:
    """(key as Hydra reads it, its value text, the values it sweeps) of one override."""
    override = OverridesParser.create().parse_override(item)
    key = str(override.key_or_group).replace("/", ".")
    values = (
        [str(v) for v in override.sweep_string_iterator()]
        if override.is_sweep_override()
        else [str(override.get_value_element_as_str())]
    )
    return key, item.split("=", 1)[1] if "=" in item else "", values


def _repetitions(text: str) -> set[int]:
    return {int(v) for v in text.strip("[] ").split(",") if v.strip()}


def test_every_study_covers_the_readme_and_runs_through_study_py(studies):
    assert [s.name for s in studies.STUDIES] == [
        "vae_likelihood_sampler",
        "vae_likelihood_sampler_dnn",
        "vae_noise_var",
        "vae_noise_var_dnn",
        "vae_penalty_speech",
        "vae_penalty_synergy",
        "dnmf_beta_mask",
        "dnmf_iterations",
        "drnn_epochs",
        "nmf_mu_iterations",
        "nmf_mu_iterations_dnmf",
    ]
    source = (REPO_ROOT / "scripts" / "studies.py").read_text()
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and ast.get_docstring(node) is not None
    }
    strings = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]
    # The command, its checks and the table are study.py's; studies.py builds no command of its own.
    assert not any(
        word in text for text in strings for word in ("vaenmf.train", "eval_split", "repetitions=")
    )
    assert "subprocess" not in source
    assert "study.run(" in source and "study.hydra_command(" in source and "study.parse_args(" in source


@pytest.mark.parametrize("seeds", ["0", "0,1,2"])
def test_no_study_can_score_the_test_split_or_a_test_repetition(studies, tmp_path, seeds):
    """For every study: its command ends with the split (speech) or the repetitions (synergy), and nothing in it
    sets eval_split but that last override, nor fits on or scores repetition 2, 5 or 10."""
    study = studies.study
    for spec in studies.STUDIES:
        args = studies.study_args(spec, tmp_path, seeds=seeds, jobs=2)
        command = study.hydra_command(args)
        last = list(study.LAST_OVERRIDES[spec.task])
        assert command[-len(last) :] == last, spec.name
        overrides = [_key_value(item) for item in command[4:]]
        splits = [
            (i, value) for i, (key, value, _) in enumerate(overrides) if key.split(".")[-1] == "eval_split"
        ]
        tasks = [value for key, value, _ in overrides if key == "task"]
        if spec.task == "speech":
            assert splits == [(len(overrides) - 1, "validation")], spec.name
            assert tasks == [] and not any("repetitions" in key for key, _, _ in overrides), spec.name
        else:
            assert splits == [] and tasks == ["synergy"], spec.name
            fitted = [_repetitions(v) for key, v, _ in overrides if key.split(".")[-1] == "train_repetitions"]
            scored = [_repetitions(v) for key, v, _ in overrides if key.split(".")[-1] == "test_repetitions"]
            assert fitted == [{1, 3, 4, 6, 7}] and scored == [{8, 9}], spec.name
            assert not (fitted[0] | scored[0]) & TEST_REPETITIONS and not fitted[0] & scored[0]
        assert all(values == ["validation"] for key, _, values in overrides if "split" in key), spec.name
        assert not any(key.split(".")[0] == "experiment" for key, _, _ in overrides), spec.name
        # What the study itself varies and fixes is none of that.
        for item in [*args.vary, *args.set]:
            assert study.protected(item) is None, (spec.name, item)


def test_every_current_default_is_in_its_grid(studies, tmp_path):
    """Each table marks the current default and compares every row with it: conf/'s value must be a grid value."""
    for spec in studies.STUDIES:
        args = studies.study_args(spec, tmp_path)
        reference = studies.study.reference_of(args)
        assert set(reference) == set(studies.study.varied_keys(args)), spec.name
    assert studies.study.reference_of(studies.study_args(studies.BY_NAME["dnmf_beta_mask"], tmp_path)) == {
        "reconstruction.system.beta": "2",
        "activations.mask_power": "2",
    }


@pytest.mark.parametrize("bad", ["eval_split=test", "+data.test_repetitions=[2,5,10]", "task=synergy"])
def test_studies_refuses_an_override_that_would_score_test_data(studies, tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        studies.main(["--out", str(tmp_path), "--only", "nmf_mu_iterations", "--set", bad, "--dry-run"])
    assert exc.value.code == 2 and "cannot be set" in capsys.readouterr().err


def test_list_only_and_dry_run(studies, tmp_path, capsys):
    assert studies.main(["--list", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for spec in studies.STUDIES:
        assert f"{spec.name}: {spec.what}" in listed
    assert "current default (the reference row): network.epochs=100" in listed
    assert "held-out training repetitions 8, 9 (fit on 1, 3, 4, 6, 7)" in listed
    with pytest.raises(SystemExit) as exc:
        studies.main(["--only", "nmf_mu_iterations,nope", "--dry-run"])
    assert exc.value.code == 2 and "unknown study 'nope'" in capsys.readouterr().err
    only = "nmf_mu_iterations,vae_penalty_synergy"
    assert studies.main(["--out", str(tmp_path), "--only", only, "--dry-run", "--seeds", "0,1"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("===")]
    assert len(printed) == 2
    assert printed[0].startswith("=== nmf_mu_iterations (to run): vaenmf.train -m method=nmf noise=factory")
    assert "seed=0,1" in printed[0] and printed[0].endswith("eval_split=validation")
    assert printed[1].endswith("data.train_repetitions=[1,3,4,6,7] data.test_repetitions=[8,9]")
    assert not (tmp_path / "nmf_mu_iterations").exists()  # a dry run writes nothing


def test_a_complete_study_is_skipped_and_an_incomplete_one_run(studies, tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(studies.study, "run", lambda args: ran.append(args.out.name) or 0)
    spec = studies.BY_NAME["nmf_mu_iterations"]
    args = studies.study_args(spec, tmp_path)
    folder = tmp_path / spec.name
    folder.mkdir()
    (values,) = (item.split("=", 1)[1].split(",") for item in spec.vary)  # one varied key: one row per value
    rows = [{"status": "ok", "n_jobs_ok": 1} for _ in values]
    record = {"grid": studies.study.grid_record(args), "n_jobs_ok": len(values), "rows": rows}
    (folder / "table.json").write_text(json.dumps(record))
    assert studies.main(["--out", str(tmp_path), "--only", spec.name]) == 0
    assert ran == [] and "complete: skipped" in capsys.readouterr().out
    record["rows"][1]["status"] = "incomplete"
    record["n_jobs_ok"] = len(values) - 1
    (folder / "table.json").write_text(json.dumps(record))
    assert studies.main(["--out", str(tmp_path), "--only", spec.name]) == 0
    assert ran == [spec.name]
    # Another grid (more seeds) is refused before anything runs, and so is a failed or refused study reported.
    (folder / "study.json").write_text(json.dumps({"grid": record["grid"]}))
    with pytest.raises(SystemExit) as exc:
        studies.main(["--out", str(tmp_path), "--only", spec.name, "--seeds", "0,1"])
    assert exc.value.code == 2 and "another grid" in capsys.readouterr().err and ran == [spec.name]
    monkeypatch.setattr(studies.study, "run", lambda args: 2)
    assert studies.main(["--out", str(tmp_path), "--only", spec.name]) == 1
    assert f"{spec.name}: refused" in capsys.readouterr().out
