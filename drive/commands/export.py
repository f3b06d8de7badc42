"""`drive export`: write a checkpoint's stateful policy as ONNX (frames, state, dt_s) -> (steering, new state)."""

from __future__ import annotations

import argparse

from drive.commands.runs import OutRule, add_out_arguments, claim_out

OUT_RULE = OutRule(own=("policy.onnx", "config.json"))
"""Not resumable: a folder that holds files is refused unless --overwrite (then these are deleted first)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (config.json + model.safetensors)")
    parser.add_argument("--out", required=True, help="output folder for policy.onnx and config.json")
    add_out_arguments(parser, OUT_RULE)


def run(args: argparse.Namespace) -> int:
    from drive.policy.export import check_checkpoint, export_onnx

    check_checkpoint(args.checkpoint)  # a bad checkpoint leaves no output folder behind
    out = claim_out(args.out, OUT_RULE, args.overwrite)

    path = export_onnx(args.checkpoint, out)
    print(f"wrote {path} and {out / 'config.json'}")
    return 0
