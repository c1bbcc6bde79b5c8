"""The job record ``metrics.json``: what identifies a job, shared by the tasks that write it and the report.

Every job writes one ``metrics.json`` (the source of truth for the tables). Its identity keys say what the job
ran in the paper's language: the ``task``, the ``method`` (a column of the paper's tables or an ablation row, as
named in ``conf/method/``), the paper column it fills (``paper_column``, null for an ablation row), the
``components`` it composed (dictionary learner, activation estimator, DNMF reconstruction bases, network),
and for speech jobs the ``noise`` condition (:mod:`vaenmf.data.noises`), the ``test_noise`` condition when the job
was tested on another one than it was trained on (mismatched-noise evaluation; absent otherwise, and in files
written before the key existed) and the ``eval_split`` scored (``validation`` or ``test``: the report keeps the two
apart).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

#: Version of the metrics.json layout. 2: jobs are named by ``method`` (conf/method/) with ``paper_column`` and
#: ``components``; version 1 (no ``schema`` key) named them by ``model`` and ``separator``.
SCHEMA_VERSION = 2
#: Config groups a method composes, in the order a job builds them.
COMPONENT_GROUPS = ("dictionary", "reconstruction", "activations", "network")


def job_identity(cfg: DictConfig) -> dict[str, Any]:
    """The identity keys of a job's ``metrics.json`` from its composed config.

    Args:
        cfg: The job's config (``task``, ``method``, the component groups, ``noise`` for speech).

    Returns:
        ``schema``, ``task``, ``method``, ``paper_column``, ``components`` and, for speech jobs, ``noise``,
        ``test_noise`` (only when set and not the same as ``noise``) and ``eval_split`` (``test`` when the config
        has no such key, as in jobs run before it existed).
    """
    method = cfg.get("method") or {}
    identity: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "task": str(cfg.get("task")),
        "method": str(method.get("name", "unknown")),
        "paper_column": method.get("paper_column"),
        "components": {
            group: str(cfg[group].get("name", group)) for group in COMPONENT_GROUPS if group in cfg
        },
    }
    if "noise" in cfg:
        identity["noise"] = str(cfg.noise)
    if identity["task"] == "speech":
        test_noise = cfg.get("test_noise")
        if test_noise is not None and str(test_noise).strip() != str(cfg.get("noise", "")).strip():
            identity["test_noise"] = str(test_noise).strip()
        identity["eval_split"] = str(cfg.get("eval_split", "test"))
    return identity
