"""``vaenmf-data``: commands about the real corpora.

``vaenmf-data check [DATA_ROOT]`` inventories TIMIT, NOISEX-92 and Ninapro DB1 and says, for Table 1, Table 2 and
Figure 2, whether each can run by the paper's protocol (see :mod:`vaenmf.data.check`); with ``--noise``,
``--test-noise`` or ``--speech-folder`` it also checks the jobs those options describe, read as the jobs read them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from vaenmf.data.check import Protocol, check_corpora
from vaenmf.errors import ConfigError

__all__ = ["main"]

#: Exit status for a command-line usage error (BSD sysexits EX_USAGE), apart from the check's 0/1/2.
EXIT_USAGE = 64


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2, which is the check's "errors" status
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` or ``"1-27"`` (or a mix: ``"1-3,7"``) as a tuple of ints."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out += list(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,3 or 1-27, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return tuple(out)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaenmf-data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser(
        "check",
        help="can each experiment run on the corpora under DATA_ROOT?",
        description=(
            "Inventory TIMIT, NOISEX-92 and Ninapro DB1 (headers only: seconds on the full corpora) and say, per "
            "experiment, whether it can run by the paper's protocol and, if not, exactly what is missing. With "
            "--noise, --test-noise or --speech-folder, also check the jobs they describe (scoring the test and the "
            "validation split); the paper's experiments are then checked only where their corpora are given."
        ),
        epilog=(
            "Exit status: 0 every experiment can run by the protocol; 1 warnings only (jobs run but deviate, or "
            "a file no job reads is broken); 2 at least one error (a job would stop, or the tables would not be "
            f"on the paper's test set); {EXIT_USAGE} usage error."
        ),
    )
    check.add_argument(
        "data_root",
        nargs="?",
        default=None,
        help="folder holding timit/, noisex92/, ninapro_db1/ (default: the DATA_ROOT environment variable)",
    )
    check.add_argument("--timit", help="TIMIT folder (default DATA_ROOT/timit; as data.timit_root)")
    check.add_argument("--noisex", help="NOISEX-92 folder (default DATA_ROOT/noisex92; as data.noisex_root)")
    check.add_argument("--ninapro", help="Ninapro DB1 folder (default DATA_ROOT/ninapro_db1; as data.root)")
    check.add_argument(
        "--subjects",
        type=_int_list,
        default=Protocol.db1_subjects,
        help="DB1 subjects Figure 2 reads (default 1-27)",
    )
    check.add_argument(
        "--exercises",
        type=_int_list,
        default=Protocol.db1_exercises,
        help="DB1 exercises Figure 2 reads (default 1)",
    )
    check.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="SPEC",
        help="check the jobs of this noise condition, spelled as the jobs' noise=: factory, babble, pooled, any "
        "NOISEX-92 name (white, f16, ...), pooled:white+pink, or an audio file's path; repeat for a sweep",
    )
    check.add_argument(
        "--test-noise",
        action="append",
        default=[],
        metavar="SPEC",
        help="their test_noise= (mismatched evaluation; same spellings; repeatable)",
    )
    check.add_argument(
        "--speech-folder",
        metavar="PATH",
        help="check jobs on this folder corpus (data=speech_folder data.root=PATH: one folder per speaker) "
        "instead of TIMIT",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vaenmf-data``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "check":
        bad = [e for e in args.exercises if e not in (1, 2, 3)]
        if bad:
            print(
                f"vaenmf-data check: --exercises must be among 1, 2, 3 (Ninapro DB1), got {bad}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        data_root = args.data_root or os.environ.get("DATA_ROOT") or None
        protocol = Protocol(db1_subjects=tuple(args.subjects), db1_exercises=tuple(args.exercises))
        try:
            report = check_corpora(
                data_root,
                args.timit,
                args.noisex,
                args.ninapro,
                protocol,
                noises=args.noise,
                test_noises=args.test_noise,
                speech_folder=args.speech_folder,
            )
        except (
            ConfigError
        ) as exc:  # a noise spelling that is none (pooled:white): the job would refuse it too
            print(f"vaenmf-data check: {exc}", file=sys.stderr)
            return EXIT_USAGE
        text = json.dumps(report.to_dict(), indent=2) if args.json else report.format_text()
        try:
            print(text, flush=True)
        except BrokenPipeError:
            # `vaenmf-data check | head`: the reader left; say nothing more (no traceback), keep the status.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return report.exit_status
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
