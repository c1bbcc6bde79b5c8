"""K VAE-NMF models trained as one stack give what K separate trainings give, model by model."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from vaenmf.data.matrix import MatrixDataModule
from vaenmf.errors import ConfigError, DataError
from vaenmf.models import VAENMF
from vaenmf.models.gamma import sample_gamma
from vaenmf.models.vae_nmf_stack import (
    CPU_CHUNK,
    StackedVAENMFResult,
    VAENMFStack,
    default_chunk_size,
    epoch_permutation,
    fit_vae_nmf_stack,
    new_vae_nmf,
    sample_gamma_stacked,
)

KW = {"hidden": (32, 32), "noise_var": 0.05}
LENGTHS = (300, 420, 260)  # 3, 4 and 3 batches of 128 per epoch, each epoch ending with a partial batch
SEEDS = (11, 12, 13)


def _data(lengths=LENGTHS, seed=0, m=10, r=4):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        W = torch.rand(m, r, generator=g)
        Z = torch._standard_gamma(torch.full((r, n), 0.7), generator=g)
        out.append(W @ Z + 0.01 * torch.rand(m, n, generator=g))
    return out


def _separate(X, seed, epochs, dtype=torch.float32, batch=128, device="cpu", **kw):
    """One model trained alone, exactly as VAENMFSystem trains it: seeded construction, MatrixDataModule's
    batches, the dictionary reset on the first batch, the default torch.optim.Adam, posterior samples from the
    global generator; returns the model and its per-epoch frame-weighted mean loss."""
    torch.manual_seed(seed)
    model = VAENMF(X.shape[0], 4, **{**KW, **kw}).to(device=device, dtype=dtype)
    loader = MatrixDataModule(X.to(dtype), batch_size=batch, seed=seed).train_dataloader()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    first, history = True, []
    for _ in range(epochs):
        total = 0.0
        for xb in loader:
            xb = xb.to(device)
            if first:
                model.reset_dictionary(xb, generator=torch.Generator(device=device).manual_seed(seed))
                first = False
            out = model(xb)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            total += float(out["loss"].detach()) * xb.shape[0]
        history.append(total / X.shape[1])
    return model, history


def _assert_same_model(stacked: VAENMF, alone: VAENMF, rtol: float) -> None:
    for (name, a), b in zip(stacked.named_parameters(), alone.parameters(), strict=True):
        scale = b.detach().abs().max().item()
        assert (a.detach() - b.detach()).abs().max().item() <= rtol * scale, name


@pytest.mark.parametrize(("dtype", "rtol"), [(torch.float64, 1e-11), (torch.float32, 2e-5)])
def test_stack_equals_separate_trainings(dtype, rtol):
    """Tolerances: the two computations differ only in rounding (batched against single products, the fused
    Adam kernel against torch.optim.Adam's), about 1e-16 (float64) or 1e-7 (float32) per operation; after the
    30 Adam steps here that grows to ~1e-14 / ~1e-7 relative. Cross-talk between models is far larger: a model
    that Adam still steps while it has no batch (momentum and weight decay move it without a gradient) differs
    by 6% after two epochs, which the independence test below catches."""
    problems = _data()
    res = fit_vae_nmf_stack(problems, 4, max_epochs=3, seeds=list(SEEDS), dtype=dtype, normalize="none", **KW)
    assert res.dictionaries.shape == (3, 10, 4)
    assert res.steps.tolist() == [9, 12, 9]  # each model's own number of Adam steps
    for k, (X, seed) in enumerate(zip(problems, SEEDS, strict=True)):
        alone, history = _separate(X, seed, 3, dtype=dtype)
        _assert_same_model(res.model(k), alone, rtol)
        torch.testing.assert_close(res.dictionaries[k], alone.dictionary(), rtol=rtol, atol=rtol * 1e-2)
        torch.testing.assert_close(
            res.history[k, :, 0].to(torch.float64),
            torch.tensor(history, dtype=torch.float64),
            rtol=1e-5,
            atol=0,
        )
        # Training moved the model far from its initialisation: the comparison is not of two starting points.
        start, _ = new_vae_nmf(10, 4, seed, **KW)
        assert (alone.encoder[0].weight - start.encoder[0].weight.to(dtype)).abs().max() > 1e-3


def test_models_are_independent_of_their_stack_mates():
    """Model 0 (3 batches per epoch) trained alone or beside a model with 8 batches per epoch: while the long
    model takes its extra steps, the short one must not move (no forward, no weight decay, no Adam step)."""
    short, long_ = _data(lengths=(300, 1000), seed=3)
    alone = fit_vae_nmf_stack([short], 4, max_epochs=2, seeds=5, dtype=torch.float64, **KW)
    paired = fit_vae_nmf_stack([short, long_], 4, max_epochs=2, seeds=[5, 6], dtype=torch.float64, **KW)
    _assert_same_model(paired.model(0), alone.model(0), 1e-12)
    assert paired.steps.tolist() == [6, 16]


def test_stack_equals_vae_nmf_system_under_the_trainer():
    pl = pytest.importorskip("pytorch_lightning")
    from vaenmf.systems.vae_nmf import VAENMFSystem

    problems = _data(lengths=(300, 200))
    res = fit_vae_nmf_stack(problems, 4, max_epochs=2, seeds=[1, 2], **KW)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    for k, X in enumerate(problems):
        pl.seed_everything(k + 1, workers=True, verbose=False)
        system = VAENMFSystem(10, 4, seed=k + 1, **KW)
        trainer = pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(system, datamodule=MatrixDataModule(X, batch_size=128, seed=k + 1))
        torch.testing.assert_close(res.dictionaries[k], system.dictionary(), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("n", [10, 300])
def test_epoch_permutation_is_the_data_modules_batch_order(n):
    X = torch.arange(n, dtype=torch.float32).reshape(1, n)
    loader = MatrixDataModule(X, batch_size=128, seed=4).train_dataloader()
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        order = torch.cat([batch[:, 0] for batch in loader]).long()
        assert torch.equal(order, epoch_permutation(g, n))


@pytest.mark.parametrize(("sampler", "boost"), [("rsvi", None), ("rsvi", 0), ("rsvi", 2), ("implicit", None)])
def test_stacked_sampler_draws_what_each_model_draws_alone(sampler, boost):
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(3, 16, 4, generator=g, dtype=torch.float64) * 3 + 0.05).requires_grad_()
    beta = (torch.rand(3, 16, 4, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    counts = [16, 9, 1]
    gens = [torch.Generator().manual_seed(100 + k) for k in range(3)]
    z = sample_gamma_stacked(alpha, beta, sampler=sampler, boost=boost, counts=counts, generators=gens)
    assert torch.isfinite(z).all()
    (z[0].sum() + 2 * z[1, :9].sum() + 3 * z[2, :1].sum()).backward()
    for k, c in enumerate(counts):
        a = alpha.detach()[k, :c].clone().requires_grad_()
        b = beta.detach()[k, :c].clone().requires_grad_()
        own = torch.Generator().manual_seed(100 + k)
        alone = sample_gamma(a, b, sampler=sampler, boost=boost, generator=own)
        ((k + 1) * alone.sum()).backward()
        torch.testing.assert_close(z[k, :c], alone.detach(), rtol=1e-14, atol=0)
        torch.testing.assert_close(alpha.grad[k, :c], a.grad, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(beta.grad[k, :c], b.grad, rtol=1e-12, atol=1e-15)
        assert torch.all(alpha.grad[k, c:] == 0)  # padding takes no part
        # ...and the model's generator is left where its own draws leave it (the next draws line up too).
        assert torch.equal(gens[k].get_state(), own.get_state())


def test_chunks_and_order_do_not_change_the_result():
    problems = _data()
    one = fit_vae_nmf_stack(problems, 4, max_epochs=2, seeds=list(SEEDS), dtype=torch.float64, **KW)
    split = fit_vae_nmf_stack(
        problems, 4, max_epochs=2, seeds=list(SEEDS), dtype=torch.float64, chunk_size=2, **KW
    )
    torch.testing.assert_close(split.dictionaries, one.dictionaries, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(split.history, one.history, rtol=1e-12, atol=1e-14)


def test_checkpoint_resume_gives_the_uninterrupted_result(tmp_path, caplog):
    problems = _data()
    kwargs = {"max_epochs": 4, "seeds": list(SEEDS), "chunk_size": 2, "checkpoint_every": 2, **KW}
    straight = fit_vae_nmf_stack(problems, 4, **kwargs)

    class Killed(Exception):
        pass

    def kill(stack, epoch, means):
        if (
            stack == 1 and epoch == 2
        ):  # the second stack dies in its third epoch, after its epoch-2 checkpoint
            raise Killed

    with pytest.raises(Killed):
        fit_vae_nmf_stack(problems, 4, checkpoint_dir=tmp_path, epoch_callback=kill, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack_0000.pt", "stack_0001.pt"]
    assert torch.load(tmp_path / "stack_0001.pt", weights_only=False)["epoch"] == 2
    seen = []
    resumed = fit_vae_nmf_stack(
        problems, 4, checkpoint_dir=tmp_path, epoch_callback=lambda s, e, m: seen.append((s, e)), **kwargs
    )
    assert seen == [(1, 2), (1, 3)]  # the finished stack is not retrained, the other resumes at epoch 2
    assert torch.equal(resumed.dictionaries, straight.dictionaries)
    assert torch.equal(resumed.history, straight.history)
    # A checkpoint of other settings is not used.
    with caplog.at_level(logging.WARNING):
        other = fit_vae_nmf_stack(problems, 4, checkpoint_dir=tmp_path, **{**kwargs, "lr": 2e-3})
    assert "other data or settings" in caplog.text
    assert not torch.equal(other.dictionaries, straight.dictionaries)


def test_posterior_is_each_models_encoder():
    problems = _data()
    res = fit_vae_nmf_stack(problems, 4, max_epochs=1, seeds=list(SEEDS), **KW)
    held_out = _data(lengths=(50, 70, 30), seed=9)
    post = res.posterior(held_out, batch_frames=32)
    for k, X in enumerate(held_out):
        alpha, beta = res.model(k).encode(X.T)
        torch.testing.assert_close(post[k][0], alpha.T.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(post[k][1], beta.T.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.decoders()[1], res.model(1).dictionary())


def test_paper_sized_encoder_and_shared_rng_train():
    problems = _data(lengths=(256, 200))
    res = fit_vae_nmf_stack(problems, 4, max_epochs=3, seeds=0, rng="shared", noise_var=0.05)
    assert res.stack.hidden == (400, 400)
    assert torch.isfinite(res.dictionaries).all()
    assert (res.history[:, -1, 0] < res.history[:, 0, 0]).all()  # the loss went down for both models
    torch.testing.assert_close(res.dictionaries.norm(dim=1), torch.ones(2, 4))


def test_bad_input_and_settings():
    problems = _data()
    with pytest.raises(DataError, match=r"rank 11 is larger .* X\[0\]"):
        fit_vae_nmf_stack(problems, 11, max_epochs=1, **KW)
    with pytest.raises(DataError, match=r"X\[1\] contains .* negative"):
        fit_vae_nmf_stack([problems[0], -problems[1]], 4, max_epochs=1, **KW)
    with pytest.raises(DataError, match=r"X\[1\] has 9 rows"):
        fit_vae_nmf_stack([problems[0], problems[1][:9]], 4, max_epochs=1, **KW)
    with pytest.raises(DataError, match="seeds has 2 entries for 3 problems"):
        fit_vae_nmf_stack(problems, 4, max_epochs=1, seeds=[1, 2], **KW)
    with pytest.raises(ConfigError, match="unknown model option"):
        fit_vae_nmf_stack(problems, 4, max_epochs=1, hiddenn=(3,))
    with pytest.raises(ConfigError, match="score_correction"):
        fit_vae_nmf_stack(problems, 4, max_epochs=1, score_correction=True, **KW)
    with pytest.raises(ConfigError, match="rng"):
        fit_vae_nmf_stack(problems, 4, max_epochs=1, rng="global", **KW)
    with pytest.raises(ConfigError, match="max_epochs"):
        fit_vae_nmf_stack(problems, 4, max_epochs=0, **KW)
    with pytest.raises(ConfigError, match="differs from model 0"):
        VAENMFStack([VAENMF(10, 4, **KW), VAENMF(10, 4, likelihood="poisson", **KW)])
    with pytest.raises(DataError, match="posterior got 2 matrices for 3 models"):
        fit_vae_nmf_stack(problems, 4, max_epochs=1, **KW).posterior(problems[:2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_stack_equals_separate_cuda_trainings():
    problems = _data(lengths=(300, 200))
    res = fit_vae_nmf_stack(problems, 4, max_epochs=2, seeds=[1, 2], device="cuda", normalize="none", **KW)
    for k, X in enumerate(problems):
        alone, _ = _separate(X, k + 1, 2, device="cuda")
        torch.testing.assert_close(res.dictionaries[k], alone.dictionary().cpu(), rtol=1e-4, atol=1e-5)


def test_worker_processes_give_the_same_result():
    problems = _data()
    kwargs = {"max_epochs": 2, "seeds": list(SEEDS), "chunk_size": 1, **KW}
    serial = fit_vae_nmf_stack(problems, 4, **kwargs)
    parallel = fit_vae_nmf_stack(problems, 4, workers=2, **kwargs)
    assert torch.equal(parallel.dictionaries, serial.dictionaries)
    assert torch.equal(parallel.history, serial.history)
    assert [t["models"] for t in parallel.timings] == [1, 1, 1]
    assert all(t["epochs_trained"] == 2 and len(t["epoch_seconds"]) == 2 for t in parallel.timings)
    with pytest.raises(ConfigError, match="epoch_callback needs workers=1"):
        fit_vae_nmf_stack(problems, 4, workers=2, epoch_callback=lambda *a: None, **kwargs)


def test_the_training_time_of_serial_stacks_is_their_sum_and_of_workers_the_slowest():
    problems = _data()
    serial = fit_vae_nmf_stack(problems, 4, max_epochs=2, seeds=list(SEEDS), chunk_size=1, **KW)
    assert len(serial.timings) == 3 and len({t["pid"] for t in serial.timings}) == 1
    spent = serial.training_time()
    # One process trains the three stacks one after the other: their epochs add up (one stack's 2 epochs
    # would be about a third of it).
    assert spent["seconds"] == pytest.approx(sum(sum(t["epoch_seconds"]) for t in serial.timings))
    assert spent["epochs"] == 2 and spent["processes"] == 1
    assert spent["per_epoch_seconds"] == pytest.approx(sum(t["epoch_seconds"][1] for t in serial.timings))

    def stack(pid, epochs, cpu, peak):
        return {"pid": pid, "epoch_seconds": epochs, "epochs_trained": len(epochs), "worker": True,
                "cpu_seconds": cpu, "peak_rss_mb": peak}  # fmt: skip

    # Two workers: A trained stacks of 3 + 1 s, B one of 5 s; the epochs took B's 5 s, not 9 s or 3 s.
    side_by_side = StackedVAENMFResult(
        dictionaries=torch.zeros(3, 10, 4),
        stack=serial.stack,
        history=serial.history,
        epochs=2,
        steps=serial.steps,
        timings=[
            stack(1, [1.0, 2.0], 3.5, 100.0),
            stack(2, [2.0, 3.0], 5.0, 300.0),
            stack(1, [0.5, 0.5], 1.0, 200.0),
        ],
    )
    # The workers' CPU (all of it: the job's own clock sees none) and their largest peak memory.
    assert side_by_side.training_time() == {
        "epochs": 2,
        "seconds": 5.0,
        "per_epoch_seconds": 3.0,
        "processes": 2,
        "worker_cpu_seconds": 9.5,
        "worker_peak_rss_mb": 300.0,
    }
    assert spent["worker_cpu_seconds"] == 0.0 and spent["worker_peak_rss_mb"] == 0.0  # no workers


@pytest.mark.parametrize(
    ("models", "workers", "sizes"),
    [
        (324, 1, [64] * 5 + [4]),  # one process: stacks of CPU_CHUNK
        (324, 2, [54] * 6),  # two: six equal stacks, three each (not 192 models against 132)
        (128, 2, [64, 64]),
        (1404, 2, [64] * 21 + [60]),  # 22 stacks, 11 each
        (3, 2, [2, 1]),
        (5, 4, [2, 2, 1]),
    ],
)
def test_default_stacks_share_the_models_evenly_between_workers(models, workers, sizes):
    size = default_chunk_size(models, workers)
    assert size <= CPU_CHUNK
    chunks = [min(size, models - i) for i in range(0, models, size)]
    assert chunks == sizes and sum(chunks) == models


class _Bar:
    """Records a tqdm bar's total and every update."""

    made: list[_Bar] = []

    def __init__(self, total=None, initial=0, **kwargs):
        self.total, self.n, self.updates = total, initial, []
        _Bar.made.append(self)

    def update(self, n=1):
        self.n += n
        self.updates.append(n)

    def close(self):
        pass


def test_worker_processes_report_every_epoch_on_one_bar(monkeypatch, tmp_path, caplog):
    """With workers the parent's one bar counts the workers' epochs (a tick per finished stack would sit still
    for many minutes on Ninapro DB1); a resumed stack's checkpointed epochs count as done, and the resume is
    logged by the parent as it happens."""
    import tqdm.auto

    from vaenmf.models import vae_nmf_stack

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    _Bar.made = []
    problems = _data()
    kwargs = {"max_epochs": 3, "seeds": list(SEEDS), "chunk_size": 1, "workers": 2, **KW}
    fit_vae_nmf_stack(problems, 4, checkpoint_dir=tmp_path, progress=True, **kwargs)
    assert [(bar.total, bar.n) for bar in _Bar.made] == [(9, 9)]  # 3 stacks x 3 epochs
    # The worker's side: one message per epoch (not one per stack), in the worker's own process.
    messages = []
    monkeypatch.setattr(vae_nmf_stack, "_EPOCHS_DONE", SimpleNamespace(put=messages.append))
    threads = torch.get_num_threads()
    try:
        task = {
            "problems": [problems[0]], "index": [0], "stack_index": 0, "stacks": 1, "rank": 4,
            "seeds": [SEEDS[0]], "max_epochs": 3, "batch_size": 128, "adam": (1e-3, 5e-4, (0.9, 0.999), 1e-8),
            "device": torch.device("cpu"), "dtype": torch.float32, "rng": "per_model", "init_from_data": True,
            "model_kwargs": dict(KW), "checkpoint": None,
        }  # fmt: skip
        vae_nmf_stack._fit_chunk(task, threads=1)
    finally:
        torch.set_num_threads(threads)
    assert messages == [("epochs", 1)] * 3
    # Every stack finished: a second call resumes each from its checkpoint at epoch 3 and trains nothing.
    _Bar.made = []
    with caplog.at_level(logging.INFO, logger="vaenmf.models.vae_nmf_stack"):
        fit_vae_nmf_stack(problems, 4, checkpoint_dir=tmp_path, progress=True, **kwargs)
    assert [(bar.total, bar.n) for bar in _Bar.made] == [(9, 9)]
    assert caplog.text.count("resuming at epoch 3") == 3


def test_a_fit_resumed_with_another_worker_count_keeps_its_stacks(tmp_path, caplog):
    """The default stack size follows the workers, but a resumed fit keeps the stacks its checkpoints hold
    (a job's CPUs may differ between attempts): killed with one process, resumed with two, and the other way."""
    problems = _data()
    kwargs = {"max_epochs": 4, "seeds": list(SEEDS), "checkpoint_every": 2, **KW}
    straight = fit_vae_nmf_stack(problems, 4, **kwargs)

    class Killed(Exception):
        pass

    def kill(stack, epoch, means):
        if epoch == 2:  # in the third epoch, after the epoch-2 checkpoint
            raise Killed

    first = tmp_path / "one_then_two"
    with pytest.raises(Killed):
        fit_vae_nmf_stack(problems, 4, checkpoint_dir=first, epoch_callback=kill, **kwargs)
    with caplog.at_level(logging.INFO, logger="vaenmf.models.vae_nmf_stack"):
        resumed = fit_vae_nmf_stack(problems, 4, checkpoint_dir=first, workers=2, **kwargs)
    assert "resuming at epoch 2" in caplog.text and "other data or settings" not in caplog.text
    assert torch.equal(resumed.dictionaries, straight.dictionaries)
    # Two processes (stacks of 2 and 1) finished, then one: the finished stacks are loaded, nothing retrained.
    second = tmp_path / "two_then_one"
    fit_vae_nmf_stack(problems, 4, checkpoint_dir=second, workers=2, **kwargs)
    assert sorted(p.name for p in second.glob("stack_*.pt")) == ["stack_0000.pt", "stack_0001.pt"]
    trained = []
    again = fit_vae_nmf_stack(
        problems, 4, checkpoint_dir=second, epoch_callback=lambda *a: trained.append(a[:2]), **kwargs
    )
    assert trained == [] and torch.equal(again.dictionaries, straight.dictionaries)


def test_retain_freed_memory_is_safe_to_call():
    from vaenmf.models.vae_nmf_stack import retain_freed_memory

    assert retain_freed_memory() in (True, False)
    x = torch.ones(1 << 20)  # large allocations still work afterwards
    assert float(x.sum()) == float(1 << 20)


_WORKER_SCRIPT = """
import sys, torch
from vaenmf.models.vae_nmf_stack import fit_vae_nmf_stack
g = torch.Generator().manual_seed(0)
problems = [torch.rand(10, 300, generator=g) for _ in range(2)]
fit_vae_nmf_stack(problems, 4, max_epochs=100000, seeds=[1, 2], chunk_size=1, workers=2, hidden=(16, 16),
                  checkpoint_dir=sys.argv[1], checkpoint_every=1)
"""


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the parent-death signal is Linux's"
)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_stack_workers_stop_with_their_job(tmp_path, sig):
    """A job killed (or stopped by Ctrl-C) while its stacks train in worker processes leaves no worker behind
    to go on writing the checkpoints that its next attempt resumes from."""
    checkpoints = tmp_path / "stacks"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT, str(checkpoints)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores it
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(checkpoints.glob("stack_*.pt"))) < 2:  # both workers are training
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the workers wrote no checkpoints within 120 s"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2  # the two stack workers (and multiprocessing's resource tracker)
        proc.send_signal(sig)
        proc.wait(timeout=30)  # Ctrl-C does not wait for the running stacks to finish
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers)
        stamps = {p: p.stat().st_mtime_ns for p in checkpoints.glob("stack_*.pt")}
        time.sleep(1.0)  # an orphan would write a checkpoint every epoch (milliseconds here)
        assert {p: p.stat().st_mtime_ns for p in checkpoints.glob("stack_*.pt")} == stamps
        if sig == signal.SIGINT:
            err = proc.stderr.read()
            assert (
                "KeyboardInterrupt" in err and err.count("Traceback") == 1
            )  # the parent's, not each worker's
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
