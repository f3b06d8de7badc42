"""Export a trained policy to ONNX, and drive with the exported file (onnxruntime).

:func:`export_onnx` writes a checkpoint's stateful policy as one ONNX graph::

    (frames uint8 (B, H, W, 3) RGB, state float32 (B, S), dt_s float32 (B,)) -> (steering (B,), new_state (B, S))

with everything inside it: the per-image standardisation, the conv head, the controller (for the
LTC, its ``ode_unfolds`` fused unfolds unrolled in the plain-torch reference step of
:mod:`drive.core.ltc`, so no compiled kernel is needed by the runtime) and the output map. The
batch size is dynamic. Beside it goes ``config.json``: the policy's own config (model, frame period,
max steering angle, image size, state size, neuron labels) plus the graph's input and output names.
``dt_s`` is the time since each sample's previous frame in seconds (``frame_period_s`` is a nominal
frame); the steering is normalised (radians = steering * ``max_steer_rad``).

:class:`OnnxPolicy` runs that file with onnxruntime and implements :class:`drive.policy.protocol.Driver`,
so any rollout can drive with it. :func:`load_onnx_driver` is the ``onnx`` runtime of
:func:`drive.policy.load.load_driver` (the one loader of a checkpoint to drive): the ONNX file is
exported once into a cache folder keyed by the checkpoint's content. The closed-loop comparison of the
two runtimes drives through the one rollout and lives above the policy layer, in :mod:`drive.eval.compare`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drive.errors import UserError

ONNX_FILE = "policy.onnx"
CONFIG_FILE = "config.json"
OPSET = 17
INPUTS = ("frames", "state", "dt_s")
OUTPUTS = ("steering", "new_state")


def _export_module(policy):
    """The policy as one ``nn.Module`` of (frames, state, dt_s) -> (steering, new_state), in plain torch ops."""
    import torch

    from drive.core.controllers import LTCController
    from drive.core.ltc import reference_sequence

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, frames, state, dt_s):
            p = self.policy
            feats = p.head(frames.permute(0, 3, 1, 2).float())
            if p.controller is None:
                return feats[:, 0], state
            timespans = (dt_s / p.frame_period_s).unsqueeze(1)
            c = p.controller
            if isinstance(c, LTCController):
                states = reference_sequence(c.core, feats.unsqueeze(1), state, timespans)
                y, new_state = c.core.map_outputs(states), states[:, -1]
            else:
                y, new_state = c._forward(feats.unsqueeze(1), state, timespans)
            return y[:, 0, 0], new_state

    return Exported().eval()


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Export the policy of checkpoint folder ``checkpoint`` into folder ``out`` (``policy.onnx`` and
    ``config.json``). A checkpoint that cannot be read is a one-line :class:`UserError` naming the file.
    Returns the ONNX file's path."""
    import torch

    from drive.policy.checkpoint import load_policy

    checkpoint, out = Path(checkpoint), Path(out)
    policy = _user_errors(checkpoint, load_policy, checkpoint)
    policy = policy.float().eval()
    module = _export_module(policy)
    h, w = policy.image_height, policy.image_width
    frames = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    state = policy.initial_state(2).float()
    dt = torch.full((2,), policy.frame_period_s)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ONNX_FILE
    from drive.io import atomic_path, atomic_write_json

    with atomic_path(target) as tmp_file:  # nothing partial left behind, even by a killed export (swept later)
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python scalars, constant in this graph
            torch.onnx.export(
                module,
                (frames, state, dt),
                str(tmp_file),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS},
            )
    config = {
        "format": "drive-onnx-policy",
        "format_version": 1,
        "onnx_file": ONNX_FILE,
        "opset": OPSET,
        "inputs": {
            "frames": f"uint8 (B, {h}, {w}, 3) RGB",
            "state": f"float32 (B, {policy.state_size})",
            "dt_s": "float32 (B,) seconds since each sample's previous frame",
        },
        "outputs": {
            "steering": "float32 (B,) normalised; radians = steering * max_steer_rad",
            "new_state": f"float32 (B, {policy.state_size})",
        },
        "neuron_labels": policy.neuron_labels,
        "source_checkpoint": checkpoint.name,
        "policy": policy.config,
    }
    atomic_write_json(out / CONFIG_FILE, config)
    return target


def _user_errors(checkpoint: Path, fn, *args):
    """``fn(*args)``, with a bad checkpoint turned into a one-line :class:`UserError` naming the file."""
    try:
        return fn(*args)
    except UserError:
        raise
    except (ValueError, FileNotFoundError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if str(checkpoint) not in msg:
            msg = f"{checkpoint}: {msg}"
        raise UserError(f"--checkpoint: {msg}") from None


def check_checkpoint(checkpoint: str | os.PathLike) -> None:
    """A one-line :class:`UserError` naming the file unless ``checkpoint`` holds a readable checkpoint config."""
    from drive.policy.checkpoint import read_config

    _user_errors(Path(checkpoint), read_config, Path(checkpoint))


class OnnxPolicy:
    """An exported policy run by onnxruntime; implements :class:`drive.policy.protocol.Driver`.

    ``folder`` holds ``policy.onnx`` and ``config.json`` as written by :func:`export_onnx`. The state
    is a float32 NumPy array (B, S)."""

    def __init__(self, folder: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        file = folder / CONFIG_FILE
        try:
            config = json.loads(file.read_text())
            policy = config["policy"]
            self.model_name = str(policy["model"])
            self.max_steer_rad = float(policy["max_steer_rad"])
            self.frame_period_s = float(policy["frame_period_s"])
            self.image_height, self.image_width = int(policy["image_height"]), int(policy["image_width"])
            self.state_size = int(policy["state_size"])
            self.neuron_labels = list(config["neuron_labels"])
        except FileNotFoundError:
            raise UserError(f"{file}: not found (export a policy with `drive export`)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{file}: not an exported policy config ({type(exc).__name__}: {exc})") from None
        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 1  # batch-1 graphs of small ops: one thread is fastest
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(folder / config.get("onnx_file", ONNX_FILE)), options, providers=["CPUExecutionProvider"]
        )
        # a graph drops inputs it does not use (dt_s for discrete-time controllers, state for cnn)
        self._inputs = {i.name for i in self.session.get_inputs()}

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.state_size), dtype=np.float32)

    def step(
        self, frames, state, dt_s: Any = None, infos: Sequence[dict] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        frames = np.ascontiguousarray(np.asarray(frames, dtype=np.uint8))
        b = frames.shape[0]
        if state is None:
            state = self.initial_state(b)
        state = np.ascontiguousarray(np.asarray(state, dtype=np.float32))
        if dt_s is None:
            dt = np.full(b, self.frame_period_s, dtype=np.float32)
        else:
            dt = np.broadcast_to(np.asarray(dt_s, dtype=np.float32).reshape(-1), (b,)).copy()
        feed = {"frames": frames, "state": state, "dt_s": dt}
        steering, new_state = self.session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
        return steering, new_state

    def neuron_activity(self, state) -> np.ndarray:
        return np.asarray(state, dtype=np.float32)[:, : len(self.neuron_labels)]


DIGEST_FILE = "digest.json"
"""In a cache folder: the cache key and the SHA-256 of each cached file, written with them and checked before use."""


def _cache_key(checkpoint: Path) -> str | None:
    """The cache key of a checkpoint's ONNX export: SHA-256 of its config and weights and of the code that
    builds the exported graph (``drive/core`` and ``drive/policy``, so an export made by older code is never
    reused); None when the checkpoint's files cannot be read."""
    import hashlib

    from drive.io import hash_file

    digest = hashlib.sha256()
    try:
        for name in ("config.json", "model.safetensors"):
            hash_file(digest, checkpoint / name)
    except OSError:
        return None
    package = Path(__file__).resolve().parents[1]
    for source in sorted([*(package / "core").glob("*.py"), *(package / "policy").glob("*.py")]):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()


def _cache_root() -> Path:
    """``$DRIVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/drive``, else ``~/.cache/drive``."""
    root = (
        os.environ.get("DRIVE_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drive"
    )
    return Path(root)


def _cache_folder(checkpoint: Path) -> Path | None:
    """A per-checkpoint cache folder for its ONNX export (``<cache root>/onnx/<key prefix>``, see
    :func:`_cache_key` and :func:`_cache_root`); None when the checkpoint's files cannot be read."""
    key = _cache_key(checkpoint)
    return None if key is None else _cache_root() / "onnx" / key[:20]


def _file_digests(folder: Path) -> dict[str, str]:
    import hashlib

    from drive.io import hash_file

    return {name: hash_file(hashlib.sha256(), folder / name).hexdigest() for name in (ONNX_FILE, CONFIG_FILE)}


def _cached_policy(cache: Path, key: str) -> tuple[OnnxPolicy | None, str | None]:
    """(the cached policy, None) when ``cache`` holds this key's export and every file matches its digest;
    else (None, why not: None when there is simply nothing cached)."""
    if not cache.exists():
        return None, None
    try:
        stored = json.loads((cache / DIGEST_FILE).read_text())
    except FileNotFoundError:
        return None, f"no {DIGEST_FILE}"
    except (OSError, ValueError) as exc:
        return None, f"unreadable {DIGEST_FILE} ({type(exc).__name__})"
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None, f"{DIGEST_FILE} is for another checkpoint or code"
    try:
        found = _file_digests(cache)
    except OSError as exc:
        return None, f"cannot read {exc.filename or 'a cached file'} ({exc.strerror or exc})"
    changed = [name for name, digest in found.items() if stored.get("files", {}).get(name) != digest]
    if changed:
        return None, f"{', '.join(changed)} changed since it was cached (SHA-256 mismatch)"
    try:
        return OnnxPolicy(cache), None
    except Exception as exc:  # a file that matches its digest but does not load (e.g. another onnxruntime)
        return None, f"does not load ({one_line(exc)})"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _export_to_cache(checkpoint: Path, cache: Path, key: str) -> OnnxPolicy:
    """Export into ``cache`` atomically (built under a temporary name beside it, swept if a writer died),
    with the digest of each file."""
    from drive.io import atomic_dir, atomic_write_json

    with atomic_dir(cache) as tmp:
        export_onnx(checkpoint, tmp)
        atomic_write_json(tmp / DIGEST_FILE, {"key": key, "files": _file_digests(tmp)})
    return OnnxPolicy(cache)


def load_onnx_driver(checkpoint: str | os.PathLike) -> OnnxPolicy:
    """An :class:`OnnxPolicy` for a checkpoint folder, exported on first use into a cache folder keyed by
    the checkpoint's content (see :func:`_cache_folder`; into a temporary folder when that is not writable).
    Load checkpoints to drive with :func:`drive.policy.load.load_driver` (``runtime="onnx"`` comes here).

    A cached export is used only when its files match the SHA-256 digests stored with them
    (:data:`DIGEST_FILE`); a changed, truncated or unloadable one is exported again, with a one-line
    warning on stderr. Processes sharing the cache take turns (a lock file per key)."""
    checkpoint = Path(checkpoint)
    key = _cache_key(checkpoint)
    if key is not None:
        cache = _cache_root() / "onnx" / key[:20]
        try:
            from filelock import FileLock

            cache.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(cache.parent / f".{cache.name}.lock")):
                policy, why = _cached_policy(cache, key)
                if policy is not None:
                    return policy
                if why is not None:
                    print(f"drive: warning: ONNX cache {cache}: {why}; exporting it again", file=sys.stderr)
                return _export_to_cache(checkpoint, cache, key)
        except OSError:
            pass  # an unwritable cache: export into a temporary folder below
    tmp = tempfile.TemporaryDirectory(prefix="drive-onnx-")
    try:
        export_onnx(checkpoint, tmp.name)
        policy = OnnxPolicy(tmp.name)
    except BaseException:
        tmp.cleanup()
        raise
    policy._tmp = tmp  # removed with the policy
    return policy
