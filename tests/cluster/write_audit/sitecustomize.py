"""Test-only: record which SLURM rank writes a job's ``config.yaml`` and ``metrics.json``.

The DDP cluster test puts this folder first on ``PYTHONPATH`` and sets ``VAENMF_TEST_WRITE_LOG``; every Python
process of the job then appends ``start <rank>`` once, and ``<rank> <event> <path>`` for every open-for-writing
and rename of those files (including the temporary file of an atomic write), using Python's audit hooks. Without
``VAENMF_TEST_WRITE_LOG`` it does nothing.
"""

import os
import sys

_LOG = os.environ.get("VAENMF_TEST_WRITE_LOG")
_NAMES = ("config.yaml", "metrics.json")

if _LOG:
    _RANK = os.environ.get("SLURM_PROCID", "-")
    _FD = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_FD, f"start {_RANK} {os.getpid()}\n".encode())

    def _watched(path) -> bool:
        name = os.path.basename(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) else ""
        return name in _NAMES or any(name.startswith(f".{n}.") for n in _NAMES)

    def _hook(event, args):
        if event == "open" and _watched(args[0]):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
            )
            if writing:
                os.write(_FD, f"{_RANK} open {os.fsdecode(args[0])}\n".encode())
        elif event == "os.rename" and (_watched(args[0]) or _watched(args[1])):
            os.write(_FD, f"{_RANK} rename {os.fsdecode(args[1])}\n".encode())

    sys.addaudithook(_hook)
