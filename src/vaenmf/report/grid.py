"""The expected grid of a speech report: which table a noise condition belongs to, which cells must exist.

A table's cells are the paper's columns (``NMF``, ``DNMF``, ``DNN``, ``VAE-NMF``, :data:`PAPER_COLUMNS`); a job fills
the column its ``metrics.json`` names (``paper_column``, from ``conf/method/``). The ablation lists every method
(``method``, the name of its ``conf/method/`` file). An expected entry is ``(key, noise)`` with ``key`` a paper
column or a method name: an expected entry without a job is marked ``missing``, not silently left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from vaenmf.errors import ConfigError
from vaenmf.report.jobs import Job
from vaenmf.report.paper import PAPER_COLUMNS

__all__ = [
    "TABLE_NOISES",
    "table_of_noise",
    "table_of",
    "is_speech",
    "default_expect",
    "parse_expect",
    "matches",
]

#: Table -> the noise conditions averaged in it.
TABLE_NOISES: dict[str, tuple[str, ...]] = {"table1": ("factory", "babble"), "table2": ("pooled",)}

Expected = set[tuple[str, str]]


def table_of_noise(noise: str | None) -> str | None:
    """The table a noise condition belongs to (``table1``/``table2``), or None."""
    for table, noises in TABLE_NOISES.items():
        if noise in noises:
            return table
    return None


def table_of(job: Job) -> str | None:
    """The paper's table a job belongs to: that of its noise, when it was tested on the noise it was trained on;
    None for every other condition (another noise, a pool of others, a mismatched-noise job)."""
    return table_of_noise(job.noise) if job.test_noise is None else None


def is_speech(job: Job) -> bool:
    """A speech-enhancement job (by its task, or for a crashed job without one, by its noise condition)."""
    return job.task == "speech" or (job.task is None and table_of_noise(job.noise) is not None)


def matches(job: Job, key: str) -> bool:
    """Whether ``job`` fills the column or is the method ``key``."""
    return job.paper_column == key if key in PAPER_COLUMNS else job.method == key


def default_expect(tables: Iterable[str]) -> Expected:
    """The paper's four columns for every noise of the given tables."""
    return {(column, noise) for t in tables for column in PAPER_COLUMNS for noise in TABLE_NOISES[t]}


def parse_expect(spec: str, tables: Iterable[str] | None = None) -> Expected:
    """Parse ``--expect``: comma-separated ``KEY[:NOISE]``, ``KEY`` a paper column or a method name.

    ``vae_nmf_mu:factory`` expects that method's job with factory noise (one per seed); ``NMF`` (or ``nmf``)
    expects every noise of ``tables`` (default: both tables' noises).

    Raises:
        ConfigError: If an item is not of that form or names an unknown noise.
    """
    noises_all = [n for t in (tables or TABLE_NOISES) for n in TABLE_NOISES[t]]
    out: Expected = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (1, 2) or not all(parts):
            raise ConfigError(
                f"--expect item {item!r} is not KEY[:NOISE] with KEY a paper column ({', '.join(PAPER_COLUMNS)}) "
                "or a method name (e.g. vae_nmf_mu:factory)"
            )
        if len(parts) == 2:
            if table_of_noise(parts[1]) is None:
                known = ", ".join(n for ns in TABLE_NOISES.values() for n in ns)
                raise ConfigError(
                    f"--expect item {item!r}: unknown noise {parts[1]!r}; expected one of {known}"
                )
            out.add((parts[0], parts[1]))
        else:
            out |= {(parts[0], n) for n in noises_all}
    return out
