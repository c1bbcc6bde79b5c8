"""The muscle-synergy task: VAF bookkeeping, resumption, the CLI end to end, and its bad inputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vaenmf.errors import ConfigError
from vaenmf.models.vae_nmf import VAENMF
from vaenmf.nmf.updates import fit_activations
from vaenmf.tasks.synergy import _encoder_posterior, _previous_result, movement_fingerprint, reconstructions

# One subject, two short movements: seconds per job.
SMALL = ["task=synergy", "data=emg_demo", "data.subjects=[1]", "data.movements=[1,2]", "logger=csv",
         "torch_threads=1"]  # fmt: skip


def _rank1_vaf(metrics: dict) -> dict[str, float]:
    """What one synergy explains for free: the overall VAF of the best rank-1 nonnegative model of each of the
    job's movements, fitted to its training repetitions, on the training and the held-out repetitions (mean over
    movements, like the job's ``vaf_mean``).

    Computed here in closed form, independently of the package's NMF: for nonnegative X the best rank-1
    Euclidean fit is ``s1 u1 v1^T`` with ``u1 >= 0`` (Perron-Frobenius), and with ``w = |u1|`` fixed the
    nonnegative least-squares activation of a frame ``x`` is ``max(w.x, 0) / w.w``.
    """
    from vaenmf.data.synergy import SynergyDataModule

    data = {k: v for k, v in metrics["config"]["data"].items() if k != "_target_"}
    dm = SynergyDataModule(**data)
    dm.setup()
    out: dict[str, list[float]] = {"train": [], "test": []}
    for row in metrics["rows"]:
        subject, movement = row["subject"], row["movement"]
        X_train = dm.segment(subject, movement, "train").double().numpy()
        w = np.abs(np.linalg.svd(X_train, full_matrices=False)[0][:, 0])
        for split in out:
            X = dm.segment(subject, movement, split).double().numpy()
            h = np.maximum(w @ X, 0) / (w @ w)
            out[split].append(1 - float(((X - np.outer(w, h)) ** 2).sum() / (X**2).sum()))
    return {split: float(np.mean(values)) for split, values in out.items()}


def _residual_ratio(vaf_mean: float, rank1_vaf: float) -> float:
    """The variance a model leaves unexplained, as a fraction of what a rank-1 model leaves."""
    return (1 - vaf_mean) / (1 - rank1_vaf)


def test_nmf_synergy_job_end_to_end_and_resume(tmp_path, train_cli):
    out = tmp_path / "nmf"
    result = train_cli(
        [*SMALL, "method=nmf", f"hydra.run.dir={out}", f"paths.output_root={tmp_path}"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["task"] == "synergy" and metrics["method"] == "nmf"
    assert metrics["rank"] == 4 and metrics["config"]["dictionary"]["system"]["beta"] == 2.0
    assert (
        "noise" not in metrics and "noise" not in metrics["config"] and "activations" not in metrics["config"]
    )
    assert {(r["subject"], r["movement"]) for r in metrics["rows"]} == {(1, 1), (1, 2)}
    assert metrics["shortfalls"] == []  # every repetition of the split is there
    summary = metrics["summary"]
    assert set(summary) == {"train/fixed_w", "test/fixed_w", "synergy_recovery"}
    # Rank-4 synergies of rank-4 data: high VAF on training and held-out repetitions, true synergies found.
    assert summary["train/fixed_w"]["vaf_mean"] > 0.95 and summary["test/fixed_w"]["vaf_mean"] > 0.9
    # ... far beyond what one synergy explains on the same data (measured: rank 1 reaches 0.61 / 0.55 and leaves
    # 40-50 times the rank-4 residual; a rank-2 NMF leaves about 0.55 of rank 1's and would fail this too).
    rank1 = _rank1_vaf(metrics)
    for split in ("train", "test"):
        assert _residual_ratio(summary[f"{split}/fixed_w"]["vaf_mean"], rank1[split]) < 0.1, (split, rank1)
    assert summary["train/fixed_w"]["vaf_mean"] >= summary["test/fixed_w"]["vaf_mean"] - 0.01
    assert summary["synergy_recovery"]["min"] > 0.95
    assert len(summary["train/fixed_w"]["per_muscle_mean"]) == 10
    with np.load(out / "figure_emg.npz") as figure:
        assert figure["train/original"].shape == figure["train/fixed_w"].shape == (10, 1400)
    assert sorted(p.name for p in (out / "movements").iterdir()) == ["s1_m1.json", "s1_m2.json"]
    assert not (out / "checkpoints" / "s1_m1").exists()  # recorded movements drop their checkpoints

    # A second attempt after a kill that left the finished movements but no metrics.json (a requeued SLURM
    # job) reuses them.
    (out / "metrics.json").unlink()
    again = train_cli(
        [*SMALL, "method=nmf", f"hydra.run.dir={out}", f"paths.output_root={tmp_path}"], tmp_path
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done in a previous attempt" in again.stdout + again.stderr
    assert "synergies of" not in again.stdout + again.stderr  # nothing left to fit
    assert json.loads((out / "metrics.json").read_text())["summary"] == summary

    # A kill between the figure movement's two writes: that movement (only) is redone, and the figure drawn.
    (out / "figure_emg.npz").unlink()
    (out / "metrics.json").unlink()
    third = train_cli(
        [*SMALL, "method=nmf", f"hydra.run.dir={out}", f"paths.output_root={tmp_path}"], tmp_path
    )
    assert third.returncode == 0, third.stderr[-3000:]
    log = third.stdout + third.stderr
    assert "s1_m1: refitting to draw Figure 2" in log and "synergies of 1 movements" in log
    assert (out / "figure_emg.npz").is_file()
    assert json.loads((out / "metrics.json").read_text())["summary"] == summary


@pytest.mark.slow  # the stack and the batched updates are checked against single fits in tests/models, tests/nmf
def test_batched_and_one_at_a_time_synergies_agree(tmp_path, train_cli):
    """Issue 11: every movement of a job in one batched computation gives the per-movement fits' results."""
    summaries = {}
    for method, length in (("nmf", "dictionary.mu_iterations=200"), ("vae_nmf", "dictionary.epochs=4")):
        for batched in ("true", "false"):
            out = tmp_path / f"{method}_{batched}"
            args = [*SMALL, f"method={method}", length, f"synergy.batched={batched}", f"hydra.run.dir={out}",
                    f"paths.output_root={tmp_path}"]  # fmt: skip
            result = train_cli(args, tmp_path)
            assert result.returncode == 0, result.stderr[-3000:]
            summaries[(method, batched)] = json.loads((out / "metrics.json").read_text())
    for method in ("nmf", "vae_nmf"):
        batched, single = summaries[(method, "true")], summaries[(method, "false")]
        assert set(batched["summary"]) == set(single["summary"])
        for key, entry in batched["summary"].items():
            if "vaf_mean" in entry:
                assert entry["vaf_mean"] == pytest.approx(single["summary"][key]["vaf_mean"], abs=1e-6), key
        for a, b in zip(batched["rows"], single["rows"], strict=True):
            np.testing.assert_allclose(a["synergies"], b["synergies"], atol=1e-5)
            assert a["dictionary"].keys() == b["dictionary"].keys()


def test_results_of_other_settings_are_not_reused(tmp_path):
    path = tmp_path / "s1_m1.json"
    path.write_text(json.dumps({"fingerprint": "abc", "vaf": {}}))
    assert _previous_result(path, "abc", needs_figure=False) == {"fingerprint": "abc", "vaf": {}}
    assert _previous_result(path, "other", needs_figure=False) is None
    assert _previous_result(path, "abc", needs_figure=True) is None
    path.write_text("{broken")
    assert _previous_result(path, "abc", needs_figure=False) is None
    assert _previous_result(tmp_path / "absent.json", "abc", needs_figure=False) is None


def test_fingerprint_follows_the_settings_that_change_results():
    from hydra import compose, initialize_config_dir

    from vaenmf.train import CONFIG_DIR

    def fingerprint(*overrides: str) -> str:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return movement_fingerprint(compose("train", overrides=["experiment=fig2_vaf", *overrides]))

    base = fingerprint()
    assert fingerprint("synergy.figure_movement=3") == base  # what is drawn, not what is computed
    assert fingerprint("synergy.activation_mu_iterations=100") != base
    assert fingerprint("dictionary.mu_iterations=10") != base
    assert fingerprint("seed=1") != base


def test_posterior_reconstructions_decode_with_the_unnormalised_dictionary():
    torch.manual_seed(0)
    model = VAENMF(6, 2, noise_var=0.05)
    with torch.no_grad():
        model.W.copy_(
            torch.tensor([[2.0, -1.0], [0.5, 0.0], [0.0, 3.0], [1.0, 1.0], [-0.5, 0.2], [0.1, 0.0]])
        )
    X = torch.rand(6, 30) + 0.1
    W_fixed = torch.rand(6, 2)
    settings = OmegaConf.create({"activation_beta": 2.0, "activation_mu_iterations": 50})
    posterior = _encoder_posterior(SimpleNamespace(model=model), X)
    out = reconstructions(W_fixed, X, settings, torch.Generator().manual_seed(0), posterior=posterior)
    assert set(out) == {"fixed_w", "posterior_mean", "posterior_sample"}
    alpha, rate = model.encode(X.T)
    decoder = model.W.detach().clamp_min(0)  # max(W, 0), not the column-normalised dictionary handed on
    torch.testing.assert_close(out["posterior_mean"], ((alpha / rate) @ decoder.T).T)
    H = fit_activations(X, W_fixed, beta=2.0, n_iter=50)
    torch.testing.assert_close(out["fixed_w"], W_fixed @ H)
    # A posterior draw scatters around the posterior mean's reconstruction.
    assert out["posterior_sample"].shape == X.shape and not torch.allclose(
        out["posterior_sample"], out["posterior_mean"]
    )
    # NMF systems have no encoder: only the fixed-W reconstruction.
    assert _encoder_posterior(SimpleNamespace(), X) is None
    assert set(reconstructions(W_fixed, X, settings, torch.Generator())) == {"fixed_w"}


def test_vae_nmf_synergy_job_reports_encoder_reconstructions(tmp_path, train_cli):
    out = tmp_path / "vae"
    args = [*SMALL, "data.movements=[1]", "method=vae_nmf", "dictionary.epochs=3", f"hydra.run.dir={out}",
            f"paths.output_root={tmp_path}"]  # fmt: skip
    result = train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "vae_nmf"
    keys = set(metrics["rows"][0]["vaf"])
    assert keys == {
        f"{s}/{r}" for s in ("train", "test") for r in ("fixed_w", "posterior_mean", "posterior_sample")
    }
    # Plumbing only: after 3 epochs the synergies explain no more than one synergy does (measured: NNLS VAF
    # 0.62 / 0.55 against a rank-1 model's 0.53 / 0.56); test_vae_nmf_synergies_on_real_ninapro checks quality.
    for entry in metrics["rows"][0]["vaf"].values():
        assert np.isfinite(entry["overall"]) and len(entry["per_muscle"]) == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dictionary.rank=40"], "rank 40"),
        (["data=speech_demo"], "Use data=emg_demo or data=ninapro_db1"),
        (["method=nmf", "data.movements=[99]"], "data.movements [99] are not in subject 1"),
        (["method=nmf", "data=ninapro_db1", "paths.data_root=null"], "needs the corpus folder"),
        (["method=nmf", "data=ninapro_db1", "data.root=/nonexistent/db1"], "does not exist"),
        (
            ["synergy.workers=0"],
            "synergy.workers must be null (one per CPU of the job) or a whole number >= 1",
        ),
    ],
)
def test_bad_synergy_config_is_one_clear_error(tmp_path, args, message, train_cli):
    base = [a for a in SMALL if not a.startswith("data.movements") or "data.movements" not in " ".join(args)]
    if "data=speech_demo" in args or "data=ninapro_db1" in args:
        base = [a for a in base if not a.startswith("data.")]
    result = train_cli([*base, *args, f"hydra.run.dir={tmp_path / 'job'}"], tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["status"] == "failed"


def test_the_worker_count_is_not_part_of_a_jobs_config_hash():
    """A job folder is resumed by a rerun with another synergy.workers (the same stacks and numbers), while a
    setting that changes the result still makes it another job."""
    from vaenmf.tasks.runtime import container_hash

    job = {"seed": 0, "synergy": {"workers": 2, "activation_beta": 2.0}, "scoring_workers": None}
    assert container_hash(job) == container_hash(
        {**job, "synergy": {"workers": None, "activation_beta": 2.0}}
    )
    assert container_hash(job) != container_hash({**job, "synergy": {"workers": 2, "activation_beta": 1.0}})


def test_stack_workers_follow_the_jobs_cpus_unless_set():
    from vaenmf.tasks.synergy import stack_workers

    assert stack_workers(None, "cpu", environ={"VAENMF_JOB_CPUS": "1"}) == 1  # a local sweep of one-CPU jobs
    assert stack_workers(None, "cpu", environ={"SLURM_CPUS_PER_TASK": "4", "VAENMF_JOB_CPUS": "1"}) == 4
    assert stack_workers(None, "cuda", environ={"SLURM_CPUS_PER_TASK": "4"}) == 1  # one stack per device
    assert stack_workers(3, "cpu", environ={"SLURM_CPUS_PER_TASK": "8"}) == 3
    # Too little training to pay for spawning a worker: the job's own process, unless set.
    assert stack_workers(None, "cpu", 9_999, {"SLURM_CPUS_PER_TASK": "4"}) == 1
    assert stack_workers(None, "cpu", 10_000, {"SLURM_CPUS_PER_TASK": "4"}) == 4
    assert stack_workers(2, "cpu", 10, {"SLURM_CPUS_PER_TASK": "4"}) == 2
    for bad in (0, -1, "2", 1.5, True):
        with pytest.raises(ConfigError, match="synergy.workers"):
            stack_workers(bad, "cpu")
    with pytest.raises(ConfigError, match="on a GPU the stacks train in the job's process"):
        stack_workers(2, "cuda")


@pytest.mark.realdata
def test_synergy_job_on_real_ninapro(tmp_path, shared_data, train_cli):
    out = tmp_path / "real"
    args = ["task=synergy", "data=ninapro_db1", f"data.root={shared_data / 'ninapro_db1'}", "data.subjects=[1]",
            "data.movements=[3]", "method=nmf", "logger=csv", "torch_threads=1", f"hydra.run.dir={out}"]  # fmt: skip
    result = train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["corpus"] == "ninapro" and "synergy_recovery" not in metrics["summary"]
    assert metrics["shortfalls"] == []  # subject 1's movement 3 has all ten repetitions
    # Four synergies explain most of a recorded finger movement's EMG (the paper: over 90%), and far more than
    # one does: a rank-1 model already reaches 0.73 / 0.81 here (0.90-0.95 held out on other DB1 movements, so
    # "over 0.9" alone says little). Measured: rank 4 0.967 / 0.968, leaving 0.12 / 0.17 of rank 1's residual.
    summary = metrics["summary"]
    assert summary["train/fixed_w"]["vaf_mean"] > 0.9 and summary["test/fixed_w"]["vaf_mean"] > 0.9
    rank1 = _rank1_vaf(metrics)
    for split in ("train", "test"):
        assert _residual_ratio(summary[f"{split}/fixed_w"]["vaf_mean"], rank1[split]) < 0.5, (split, rank1)


@pytest.mark.realdata
def test_vae_nmf_synergies_on_real_ninapro(tmp_path, shared_data, train_cli):
    """VAE-NMF on recorded EMG, 20 epochs: the encoder's reconstructions already explain most of it."""
    out = tmp_path / "real_vae"
    args = ["task=synergy", "data=ninapro_db1", f"data.root={shared_data / 'ninapro_db1'}", "data.subjects=[2]",
            "data.movements=[5]", "method=vae_nmf", "dictionary.epochs=20", "logger=csv",
            f"hydra.run.dir={out}"]  # fmt: skip
    result = train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["summary"]
    # Measured: training VAF 0.980 (NNLS), 0.965 (posterior mean), 0.939 (posterior draw); held-out 0.964, 0.948,
    # 0.922. A rank-1 model of the same movement reaches 0.927 / 0.900, so "over 0.9" is no test here; as a fraction
    # of the rank-1 residual: NNLS 0.27 / 0.36, posterior mean 0.48 / 0.52, posterior draw 0.84 / 0.78 (a draw is
    # only slightly better than one synergy).
    rank1 = _rank1_vaf(metrics)
    for split in ("train", "test"):
        assert _residual_ratio(summary[f"{split}/fixed_w"]["vaf_mean"], rank1[split]) < 0.5, (split, rank1)
        assert _residual_ratio(summary[f"{split}/posterior_mean"]["vaf_mean"], rank1[split]) < 0.7, (
            split,
            rank1,
        )
        assert _residual_ratio(summary[f"{split}/posterior_sample"]["vaf_mean"], rank1[split]) < 1.0, (
            split,
            rank1,
        )
    assert summary["train/fixed_w"]["vaf_mean"] > 0.9
    assert summary["test/posterior_sample"]["vaf_mean"] < summary["test/posterior_mean"]["vaf_mean"]
