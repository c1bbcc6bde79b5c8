"""The paper's published Tables 1 and 2 as data."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vaenmf.report.paper import (
    PAPER_COLUMNS,
    PAPER_METRICS,
    PAPER_ROWS,
    PAPER_SNRS,
    PAPER_TABLES,
    paper_value,
)


def test_structure():
    assert set(PAPER_TABLES) == {"table1", "table2"}
    for table in PAPER_TABLES.values():
        assert tuple(table) == PAPER_COLUMNS
        for column in table.values():
            assert tuple(column) == PAPER_ROWS
            for row in column.values():
                assert tuple(row) == PAPER_METRICS
                assert all(isinstance(v, float) for v in row.values())


def test_spot_values():
    assert PAPER_TABLES["table1"]["NMF"]["-5"]["sdr"] == 2.90
    assert PAPER_TABLES["table1"]["VAE-NMF"]["-5"]["sdr"] == 5.85
    assert PAPER_TABLES["table1"]["DNN"]["10"]["pesq"] == 3.21
    assert PAPER_TABLES["table1"]["DNMF"]["Aver"]["sar"] == 13.48
    assert PAPER_TABLES["table2"]["DNN"]["10"]["sir"] == 20.63
    assert PAPER_TABLES["table2"]["VAE-NMF"]["Aver"]["pesq"] == 2.59
    assert PAPER_TABLES["table2"]["NMF"]["0"]["sar"] == 9.87
    assert paper_value("table2", "DNMF", "5", "pesq") == 2.62
    assert paper_value("table3", "DNMF", "5", "pesq") is None


@pytest.mark.parametrize("table", ["table1", "table2"])
def test_aver_rows_are_means_of_snr_rows(table):
    # Every "Aver" cell is the mean of the four SNR rows to within 0.01. (Table 1 DNN SDR: the mean is
    # 11.3475, printed 11.34 -- a rounding slip in the paper, still within 0.01; the value is kept as printed.)
    for column in PAPER_COLUMNS:
        for metric in PAPER_METRICS:
            mean = np.mean([PAPER_TABLES[table][column][snr][metric] for snr in PAPER_SNRS])
            assert PAPER_TABLES[table][column]["Aver"][metric] == pytest.approx(mean, abs=0.01), (
                column,
                metric,
            )


def test_matches_paper_markdown(repo_root):
    """Every number equals the paper's markdown (skipped when the paper is not next to the repository)."""
    path = repo_root.parent / "shared" / "paper" / "vae-nmf-paper.md"
    if not path.is_file():
        pytest.skip(f"paper not found at {path}")
    text = path.read_text()
    for table, title in (("table1", "Table 1:"), ("table2", "Table 2:")):
        lines = text[text.index(title) :].splitlines()
        rows = [line.split("\t") for line in lines if re.match(r"^(-5|0|5|10|Aver)\t", line)][:5]
        assert [r[0] for r in rows] == list(PAPER_ROWS)
        for r in rows:
            values = [float(v) for v in r[1:] if v.strip()]
            ours = [PAPER_TABLES[table][c][r[0]][m] for c in PAPER_COLUMNS for m in PAPER_METRICS]
            assert values == ours, (table, r[0])
