"""Driving policies: perception heads, the policy module (frames -> steering) and its checkpoints."""

from drive.policy.checkpoint import load_policy, save_checkpoint
from drive.policy.model import DrivingPolicy, build_policy
from drive.policy.perception import MODEL_NAMES

__all__ = ["DrivingPolicy", "MODEL_NAMES", "build_policy", "load_policy", "save_checkpoint"]
