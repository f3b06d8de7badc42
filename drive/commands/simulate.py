"""`drive simulate` (the owning helper's branch moves the command here)."""

from drive.eval.simulate import add_arguments, run  # noqa: F401  # moved here by the owning helper's branch
