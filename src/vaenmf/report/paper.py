"""The paper's published numbers (Xie et al., Tables 1 and 2), as data.

``PAPER_TABLES[table][column][snr][metric]``: ``table`` is ``"table1"`` (a noise dictionary and encoder per noise
type, scores averaged over factory and babble) or ``"table2"`` (one model trained on pooled noise); ``column`` is
the paper's column (``"NMF"``, ``"DNMF"``, ``"DNN"``, ``"VAE-NMF"``); ``snr`` is ``"-5"``, ``"0"``, ``"5"``,
``"10"`` (dB) or ``"Aver"``; ``metric`` is ``"sdr"``, ``"sir"``, ``"sar"`` (dB) or ``"pesq"`` (raw narrow-band
P.862 MOS). Every number is copied from ``paper/vae-nmf-paper.md``.

The paper's "Aver" rows are the means of the four SNR rows, rounded to two decimals, except one cell that is
rounded the other way: Table 1, DNN, SDR: (5.83 + 9.68 + 13.12 + 16.76) / 4 = 11.3475, printed 11.34 (11.35
expected). Two further cells sit exactly on a rounding tie (Table 2 DNMF SAR 13.135 -> 13.14 and VAE-NMF SAR
13.205 -> 13.21). The published values are kept as printed.

References:
    Xie, Li, Wang, Xu, Mengersen. "A variational autoencoder-based nonnegative matrix factorisation model for
    deep dictionary learning", Tables 1 and 2.
"""

from __future__ import annotations

__all__ = [
    "PAPER_TABLES",
    "PAPER_COLUMNS",
    "PAPER_SNRS",
    "PAPER_ROWS",
    "PAPER_METRICS",
    "TABLE_TITLES",
    "paper_value",
]

PAPER_COLUMNS: tuple[str, ...] = ("NMF", "DNMF", "DNN", "VAE-NMF")
PAPER_SNRS: tuple[str, ...] = ("-5", "0", "5", "10")
PAPER_ROWS: tuple[str, ...] = (*PAPER_SNRS, "Aver")
PAPER_METRICS: tuple[str, ...] = ("sdr", "sir", "sar", "pesq")

TABLE_TITLES: dict[str, str] = {
    "table1": "Table 1: speech enhancement, models trained separately for factory and babble noise "
    "(scores averaged over the two noise types)",
    "table2": "Table 2: speech enhancement, models trained on pooled factory and babble noise",
}

# Rows as printed in the paper: for each SNR row, (SDR, SIR, SAR, PESQ) of NMF, DNMF, DNN, VAE-NMF.
# fmt: off
_RAW: dict[str, dict[str, tuple[float, ...]]] = {
    "table1": {
        "-5": (2.90, 5.65, 8.62, 1.98, 4.62, 8.56, 8.85, 2.03, 5.83, 10.49, 8.41, 2.03, 5.85, 10.61, 8.57, 2.05),
        "0": (7.15, 10.17, 11.56, 2.33, 8.28, 11.66, 12.15, 2.42, 9.68, 13.92, 12.31, 2.56, 9.73, 13.96, 12.40, 2.42),
        "5": (11.14, 15.38, 13.63, 2.72, 11.87, 15.55, 14.92, 2.73, 13.12, 17.45, 15.41, 2.84, 13.37, 17.52, 15.48,
              2.85),
        "10": (14.25, 19.62, 15.82, 2.96, 15.08, 18.82, 17.99, 2.99, 16.76, 19.14, 19.30, 3.21, 16.94, 19.57, 19.36,
               3.16),
        # DNN SDR: the mean of the SNR rows is 11.3475 (printed 11.34); kept as printed.
        "Aver": (8.86, 12.71, 12.41, 2.50, 9.96, 13.65, 13.48, 2.54, 11.34, 15.25, 13.86, 2.66, 11.47, 15.42, 13.95,
                 2.62),
    },
    "table2": {
        "-5": (1.95, 5.36, 7.10, 1.89, 3.94, 7.46, 8.74, 1.96, 5.45, 9.57, 7.52, 2.12, 5.73, 11.71, 7.80, 2.00),
        "0": (6.02, 9.91, 9.87, 2.13, 7.72, 11.01, 11.83, 2.32, 9.47, 13.40, 12.21, 2.52, 9.65, 14.32, 11.66, 2.42),
        "5": (9.64, 14.90, 11.93, 2.52, 11.35, 14.86, 14.65, 2.62, 13.23, 17.16, 15.07, 2.81, 13.27, 18.16, 15.15,
              2.83),
        "10": (12.39, 19.37, 13.82, 2.85, 14.60, 18.45, 17.32, 2.93, 16.84, 20.63, 18.39, 3.04, 16.82, 21.41, 18.21,
               3.12),
        "Aver": (7.50, 12.39, 10.68, 2.35, 9.40, 12.95, 13.14, 2.46, 11.25, 15.19, 13.30, 2.62, 11.37, 16.40, 13.21,
                 2.59),
    },
}
# fmt: on


def _build() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    tables: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for table, rows in _RAW.items():
        tables[table] = {col: {row: {} for row in PAPER_ROWS} for col in PAPER_COLUMNS}
        for row, values in rows.items():
            assert len(values) == len(PAPER_COLUMNS) * len(PAPER_METRICS), (table, row)
            for i, value in enumerate(values):
                col = PAPER_COLUMNS[i // len(PAPER_METRICS)]
                metric = PAPER_METRICS[i % len(PAPER_METRICS)]
                tables[table][col][row][metric] = value
    return tables


#: table -> paper column -> SNR row -> metric -> published value.
PAPER_TABLES: dict[str, dict[str, dict[str, dict[str, float]]]] = _build()


def paper_value(table: str, column: str, row: str, metric: str) -> float | None:
    """The published value of one cell, or None when the paper has no such cell."""
    return PAPER_TABLES.get(table, {}).get(column, {}).get(row, {}).get(metric)
