"""The `drive` command line: one sub-command per verb.

Each verb is a thin module ``drive/commands/<verb>.py`` exposing ``add_arguments(parser)`` and
``run(args) -> int``: it parses the flags into typed values and calls library functions. Modules are
imported only for the verb that is run, so ``drive --help`` stays fast (no torch import).

Every verb takes ``--config FILE.yaml``, its flags from a file (:mod:`drive.commands.config_file`; flags
given on the command line override it), and writes a run record (``run.json``: command line, resolved
config, code and package versions, seeds, start and end time, exit status) into its output folder, whose
one rule (resume, or refuse a non-empty folder unless ``--overwrite``) is :mod:`drive.commands.runs`.

Errors: a :class:`drive.errors.UserError` (bad path, flag value or file content) is printed as one line,
``drive VERB: error: MESSAGE``, with exit status 2. An :class:`OSError` from the system (disk full, quota,
a read-only or vanished folder) is one line naming the path, exit status 1. Ctrl-C is one line, exit
status 130 (128 + SIGINT), after the verb has written what it finished. Any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from drive import __version__
from drive.errors import UserError

#: verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": (
        "drive.commands.inspect",
        "print neurons, synapses and parameters of each controller (NCP paper, Table 2)",
    ),
    "record": ("drive.commands.record", "record expert driving (camera video + steering) into a dataset"),
    "import": (
        "drive.commands.import_",
        "import existing driving logs (video+CSV, Udacity, Sully-Chen) into a dataset",
    ),
    "train": ("drive.commands.train", "train a driver by imitation from a dataset"),
    "simulate": ("drive.commands.simulate", "drive a checkpoint closed loop and write metrics.json and a video"),
    "stress": ("drive.commands.stress", "sweep models x perturbations x levels x seeds"),
    "replay": (
        "drive.commands.replay",
        "closed loop on recorded drives: re-rendered recorded video, interventions and autonomy, under noise",
    ),
    "explain": ("drive.commands.explain", "saliency maps, attention stability and neuron traces of a checkpoint"),
    "evaluate": (
        "drive.commands.evaluate",
        "open-loop steering error of checkpoints on a recorded dataset, under camera noise",
    ),
    "suite": (
        "drive.commands.suite",
        "generalization suite: every scenarios/suite case on every test track, per model",
    ),
    "study": (
        "drive.commands.study",
        "the robustness study: train a zoo of families x seeds, stress it under camera noise, report",
    ),
    "tune": (
        "drive.commands.tune",
        "per-family tuning of the controller learning rate and epoch budget on held-out training tracks",
    ),
    "results": (
        "drive.commands.results",
        "the README's results for the shipped checkpoints: clean, noise stress, SSIM, passive vs active, suite",
    ),
    "export": (
        "drive.commands.export",
        "write a checkpoint's policy as ONNX (uint8 frames, state, dt_s -> steering, state)",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad or missing flag reported in one line (exit status 2) like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="drive", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"drive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.verb_parsers = {}  # type: ignore[attr-defined]
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        parser.verb_parsers[name] = p  # type: ignore[attr-defined]
        if name == verb:
            importlib.import_module(module).add_arguments(p)
            p.add_argument(
                "--config",
                metavar="FILE.yaml",
                default=None,
                help="take the flags from this YAML file (keys: the flag names, e.g. batch_size); "
                "flags given here override it",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in COMMANDS else None)
    if verb in COMMANDS and "-h" not in argv and "--help" not in argv:
        from drive.commands.config_file import apply_config_file, config_path

        path = config_path(argv)
        if path is not None:
            try:
                apply_config_file(parser.verb_parsers[verb], path, verb, argv)
            except UserError as exc:
                print(f"drive {verb}: error: {' '.join(str(exc).split())}", file=sys.stderr)
                return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from drive.commands import runs

    module = importlib.import_module(COMMANDS[args.command][0])
    import warnings

    command = args.command  # a warning (e.g. a checkpoint trained at another frame rate) is one line, as an error is
    formatwarning = warnings.formatwarning  # restored at the end: a library caller's warnings keep their format
    warnings.formatwarning = lambda message, *_, **__: f"drive {command}: warning: {' '.join(str(message).split())}\n"
    runs.begin(args.command, argv, args, has_rule=hasattr(module, "OUT_RULE"))
    status = 1
    try:
        status = int(module.run(args) or 0)
    except UserError as exc:  # bad user input: one clear line, no traceback; anything else is a bug
        print(f"drive {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print(f"drive {args.command}: interrupted; what was finished is written", file=sys.stderr)
        status = 130
    except OSError as exc:
        if exc.errno is None:  # not a system error (some libraries raise bare OSError): a bug, keep the traceback
            raise
        print(f"drive {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        status = 1
    finally:
        runs.finish(status)
        warnings.formatwarning = formatwarning
    return status


def os_error_line(exc: OSError) -> str:
    """One line for a system error: the path(s) it concerns and the system's words (``strerror``)."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) if paths else "(no path given)"
    return " ".join(f"{where}: {exc.strerror or exc}".split())


if __name__ == "__main__":
    raise SystemExit(main())
