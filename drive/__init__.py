"""drive: learn to steer from camera frames with a 19-neuron liquid time-constant NCP."""

__version__ = "0.1.0"
