"""The `drive` command line: one sub-command per verb.

Each verb lives in the module that does the work; that module exposes
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the verb
that is run, so ``drive --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from drive import __version__

#: verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("drive.core.inspect", "print neurons, synapses and parameters of each controller (NCP paper, Table 2)"),
    "record": ("drive.data.recorder", "record expert driving (camera video + steering) into a dataset"),
    "import": ("drive.data.importers", "import existing driving logs (video+CSV, Udacity, Sully-Chen) into a dataset"),
    "train": ("drive.train.loop", "train a driver by imitation from a dataset"),
    "simulate": ("drive.eval.simulate", "drive a checkpoint closed loop and write metrics.json and a video"),
    "stress": ("drive.eval.stress", "sweep models x perturbations x levels x seeds"),
    "explain": ("drive.eval.explain", "saliency maps, attention stability and neuron traces of a checkpoint"),
    "export": ("drive.commands.export", "write a checkpoint's policy as ONNX (uint8 frames, state, dt_s -> steering, state)"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drive", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"drive {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:  # user errors: one clear line, no traceback
        print(f"drive {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
