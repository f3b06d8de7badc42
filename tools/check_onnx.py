"""Check an exported ONNX policy against torch over a closed-loop run (issue 10: max |delta steering| <= 1e-4).

Exports ``--checkpoint`` (default ``checkpoints/ncp19``) into a temporary folder, then drives ``--steps``
(1,000) control steps with the torch policy steering, feeding each frame and elapsed time to the
onnxruntime policy too (each keeps its own state), through the one rollout (``drive.eval.compare``).
Prints the figures; the last line is one JSON object.

    .venv/bin/python tools/check_onnx.py [--checkpoint checkpoints/ncp19] [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drive.eval.compare import closed_loop_compare
from drive.policy.export import export_onnx

TARGET = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "ncp19"))
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.checkpoint, tmp)
        result = closed_loop_compare(args.checkpoint, tmp, steps=args.steps, progress=True)
    result["checkpoint"] = Path(args.checkpoint).name
    result["target_met"] = result["max_abs_steering_diff"] <= TARGET
    print(
        f"{result['steps']} closed-loop steps: max |delta steering| {result['max_abs_steering_diff']:.3g} "
        f"(target <= {TARGET:g}: {'met' if result['target_met'] else 'MISSED'}), "
        f"max |delta state| {result['max_abs_state_diff']:.3g}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
