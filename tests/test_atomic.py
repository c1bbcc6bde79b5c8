"""The atomic writers: content, file mode under the umask, clean failure, and no partial file for a reader."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import vaenmf
from vaenmf.atomic import (
    save_figure_atomic,
    save_npz_atomic,
    save_torch_atomic,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def test_content_of_every_writer(tmp_path):
    assert write_text_atomic(tmp_path / "a.md", "h\u00e9 | x\n") == tmp_path / "a.md"
    assert (tmp_path / "a.md").read_bytes() == "h\u00e9 | x\n".encode()

    obj = {"nan": math.nan, "np": [np.float32(1.5), np.int64(3)], "array": np.arange(3), "path": Path("/x")}
    write_json_atomic(tmp_path / "sub" / "m.json", obj)  # the folder is created
    text = (tmp_path / "sub" / "m.json").read_text()
    assert text.endswith("}\n") and '\n  "np": [\n' in text  # indent 2, final newline
    back = json.loads(text)
    assert math.isnan(back["nan"]) and back["np"] == [1.5, 3] and back["array"] == [0, 1, 2]
    assert back["path"] == "/x"

    W = torch.rand(4, 3)
    save_torch_atomic(tmp_path / "W.pt", W)
    assert torch.equal(torch.load(tmp_path / "W.pt", weights_only=True), W)

    arrays = {"train/fixed_w": np.random.default_rng(0).random((3, 5)), "sample_rate": np.array(100.0)}
    save_npz_atomic(tmp_path / "f.npz", arrays)
    with np.load(tmp_path / "f.npz") as loaded:
        assert sorted(loaded.files) == sorted(arrays)
        np.testing.assert_array_equal(loaded["train/fixed_w"], arrays["train/fixed_w"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure_atomic(tmp_path / "fig.png", fig, dpi=50)
    save_figure_atomic(tmp_path / "fig.pdf", fig)
    plt.close(fig)
    assert (tmp_path / "fig.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "fig.pdf").read_bytes().startswith(b"%PDF")
    # Nothing but the targets is left in the folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "W.pt",
        "a.md",
        "f.npz",
        "fig.pdf",
        "fig.png",
        "sub",
    ]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.json"]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_mode_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    for path in (
        write_text_atomic(tmp_path / "t.csv", "a,b\n"),
        write_json_atomic(tmp_path / "m.json", {"a": 1}),
        save_torch_atomic(tmp_path / "W.pt", torch.ones(2)),
        save_npz_atomic(tmp_path / "f.npz", {"x": np.ones(2)}),
    ):
        assert path.stat().st_mode & 0o777 == mode, path
    # Replacing an existing file gives it the umask's mode too, not the old file's.
    (tmp_path / "t.csv").chmod(0o600)
    assert write_text_atomic(tmp_path / "t.csv", "c\n").stat().st_mode & 0o777 == mode


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "m.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(target, "half written \udcff")  # fails inside the write, after the temp file exists
    with pytest.raises(Exception, match="pickle"):
        save_torch_atomic(target, lambda: None)  # a lambda cannot be pickled
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_interrupt_removes_the_temporary(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "t.md", "x")
    assert list(tmp_path.iterdir()) == []


_WRITER = """
import sys, time
from vaenmf.atomic import write_json_atomic

path, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
version = 0
while time.monotonic() < deadline:
    version += 1
    write_json_atomic(path, {"version": version, "payload": [version] * 300_000})
print(version)
"""


def test_a_reader_in_another_process_never_sees_a_partial_file(tmp_path):
    """One process rewrites a ~2 MB JSON file in a loop; this one reads and parses it meanwhile."""
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"version": 0, "payload": [0] * 300_000})
    env = {**os.environ, "PYTHONPATH": str(Path(vaenmf.__file__).resolve().parents[1])}
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_WRITER), str(target), "4"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    reads, versions = 0, set()
    try:
        while writer.poll() is None:
            data = json.loads(target.read_text())  # a partial file would not parse (or fail the checks below)
            assert len(data["payload"]) == 300_000
            assert set(data["payload"]) == {data["version"]}
            versions.add(data["version"])
            reads += 1
            time.sleep(0.001)
    finally:
        if writer.poll() is None:  # a failed check above: do not leave the writer running
            writer.kill()
    out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    assert int(out) >= 2, "the writer should have rewritten the file several times"
    assert reads >= 5 and len(versions) >= 2, (reads, versions)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
