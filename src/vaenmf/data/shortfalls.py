"""What the data fell short of: the record a job keeps when a corpus gives less than the job asked for.

A job asks for sizes (10000 speech and 9000 noise dictionary frames, the 192 utterances of the TIMIT core test
set, twelve DB1 movements of exercise 1 with seven training and three held-out repetitions each, ...). When the
corpus gives less, the job still runs, on what there is, and records each shortfall in its ``metrics.json``
(``shortfalls``: a list of the entries made here), so that the report's table headings can say so and a short
run is never mistaken for the paper's protocol.

What "asked" means:

- an explicit size in the config (``data.dict_speech_frames``, ``data.dict_noise_frames``, ``data.n_*_utterances``
  given as numbers, ``data.train_repetitions`` ...) is what was asked, on every corpus, the demo included (its
  defaults are the paper's sizes: 10000 and 9000 frames);
- a size left to the corpus (``n_test_utterances: null``: "all of them") asks for what the paper's corpus has:
  TIMIT's core test set (192 utterances), its development set (400) and its 462 TRAIN speakers; the demo and a
  folder corpus have no such protocol size, so "all of them" is never short there;
- DB1 with ``data.movements: null`` asks for every movement of the exercises read (E1: 12, E2: 17, E3: 23); the
  demo EMG asks for its own ``demo_movements``.

An explicit count the data cannot meet at all (``n_test_utterances=500``) is refused before any work instead
(:class:`~vaenmf.data.speech.SpeechDataModule`); a shortfall is what the job could still run with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SHORT_PREFIX", "shortfall", "shortfall_text", "parse_shortfalls", "summarise_shortfalls"]

#: How the report's heading line of shortfalls starts.
SHORT_PREFIX = "SHORT of the protocol"
#: The keys of one entry (``unit`` and ``source`` are optional).
KEYS = ("what", "asked", "got", "unit", "where", "source")


def shortfall(
    what: str, asked: int, got: int, where: str, unit: str = "", source: str | None = None
) -> dict[str, Any]:
    """One entry of ``metrics.json``'s ``shortfalls``.

    Args:
        what: What fell short, as a noun phrase (``"noise dictionary"``, ``"test utterances"``).
        asked: How many the job asked for.
        got: How many the data gave (fewer than ``asked``).
        where: The part of the data concerned, short enough for a table heading (``"factory"``,
            ``"TIMIT core test set"``, ``"subject 3"``).
        unit: What is counted, when ``what`` does not say it (``"frames"``).
        source: The file or folder it came from, when there is one.

    Returns:
        ``{"what", "asked", "got", "unit", "where"}`` and ``"source"`` when given.
    """
    entry: dict[str, Any] = {"what": str(what), "asked": int(asked), "got": int(got), "unit": str(unit)}
    entry["where"] = str(where)
    if source is not None:
        entry["source"] = str(source)
    return entry


def shortfall_text(entry: Mapping[str, Any]) -> str:
    """``noise dictionary 1501 of 9000 frames (factory)``."""
    unit = f" {entry['unit']}" if entry.get("unit") else ""
    where = f" ({entry['where']})" if entry.get("where") else ""
    return f"{entry.get('what', '?')} {entry.get('got', '?')} of {entry.get('asked', '?')}{unit}{where}"


def parse_shortfalls(raw: Any) -> list[dict[str, Any]]:
    """The well-formed entries of a ``metrics.json``'s ``shortfalls`` (absent, as in older files: none)."""
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        if isinstance(item, Mapping) and "what" in item and "asked" in item and "got" in item:
            out.append({key: item[key] for key in KEYS if key in item})
    return out


def summarise_shortfalls(per_job: Iterable[Iterable[Mapping[str, Any]]]) -> str:
    """One heading line for the shortfalls of several jobs, or ``""`` when none fell short.

    Entries are merged by their text; an entry not shared by every job says how many had it
    (``... (factory; 3 of 8 jobs)``).

    Args:
        per_job: Each job's ``shortfalls`` (empty for a job that fell short of nothing).
    """
    jobs = [list(entries) for entries in per_job]
    counts: dict[str, int] = {}
    for entries in jobs:
        for text in dict.fromkeys(shortfall_text(e) for e in entries):
            counts[text] = counts.get(text, 0) + 1
    if not counts:
        return ""
    parts = [text if n == len(jobs) else f"{text} [{n} of {len(jobs)} jobs]" for text, n in counts.items()]
    return f"{SHORT_PREFIX}: " + "; ".join(parts)
