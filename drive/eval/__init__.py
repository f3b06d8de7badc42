"""Closed-loop evaluation: drive checkpoints in simulation, inject noise, measure, explain.

- :mod:`drive.eval.perturb`: where noise enters (camera, frame timing, physical), seeded;
- :mod:`drive.eval.metrics`: per-episode and aggregate driving figures;
- :mod:`drive.eval.simulate`: ``drive simulate``, the closed loop itself;
- :mod:`drive.eval.video`: the composed evaluation video;
- :mod:`drive.eval.stress`: ``drive stress``, models × perturbations × levels × seeds;
- :mod:`drive.eval.explain`: ``drive explain``, VisualBackProp saliency, SSIM, neuron traces.
"""
