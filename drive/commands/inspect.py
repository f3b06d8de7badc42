"""`drive inspect`: print the neurons, synapses and trainable parameters of every controller
(:func:`drive.core.inspect.controller_table`), optionally drawing the ncp19 wiring."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from drive.commands.common import prepare_out_dir
from drive.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--in-features", type=int, default=32, help="input features per frame (default 32, the conv head's output)"
    )
    parser.add_argument("--out-features", type=int, default=1, help="outputs per frame (default 1: steering)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--plot-wiring", metavar="PNG", default=None, help="also draw the ncp19 wiring to this PNG")


def run(args: argparse.Namespace) -> int:
    if args.in_features < 1:
        raise UserError(f"--in-features must be >= 1, got {args.in_features}")
    if args.out_features < 1:
        raise UserError(f"--out-features must be >= 1, got {args.out_features}")
    if args.plot_wiring:
        png = Path(args.plot_wiring)
        if png.is_dir():
            raise UserError(f"--plot-wiring: {png}: is a folder, expected a PNG file name")
        prepare_out_dir(png.parent, "--plot-wiring")

    from drive.core.inspect import controller_table, format_table

    rows = controller_table(args.in_features, args.out_features)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"Controllers for {args.in_features} input features, {args.out_features} output(s):")
        print(format_table(rows))
    if args.plot_wiring:
        from drive.core.controllers import build_controller
        from drive.core.wirings import plot_wiring

        plot_wiring(build_controller("ncp19", args.in_features, args.out_features).wiring, args.plot_wiring)
        print(f"wiring drawn to {args.plot_wiring}")
    return 0
