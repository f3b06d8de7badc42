"""Evaluation: drive checkpoints closed loop and open loop, inject noise, measure, explain. One job per module:

- :mod:`drive.eval.perturb`: where noise enters (camera, frame timing, physical), seeded; the ``--perturb`` specs;
- :mod:`drive.eval.rollout`: the closed loop, one episode (env -> perturbation -> driver -> action);
- :mod:`drive.eval.metrics`: the figures: closed-loop per episode and aggregate, open-loop steering error;
- :mod:`drive.eval.stats`: the statistics: bootstrap intervals (one-stage of a mean, two-stage over training
  seeds then conditions), paired tests, Holm, family comparisons, rank agreement;
- :mod:`drive.eval.video`: the composed evaluation videos (closed loop and the open-loop overlay);
- :mod:`drive.eval.simulate`: ``drive simulate``, several closed-loop episodes, the expert's reference, ``metrics.json``;
- :mod:`drive.eval.sweep`: what the sweeps share: model identity, the resume key and stored results, the
  per-process driver cache, the worker pool;
- :mod:`drive.eval.backends`: where a stress sweep's cells run (local processes, a Ray cluster);
- :mod:`drive.eval.stress`: ``drive stress``, models × perturbations × levels × seeds, its results and statistics;
- :mod:`drive.eval.suite`: ``drive suite``, the generalization suite on the test tracks;
- :mod:`drive.eval.open_loop`: the open-loop replay, a driver's steering predicted over recorded episodes;
- :mod:`drive.eval.evaluate`: ``drive evaluate``, the open-loop test on a dataset (plans, resumes, writes results);
- :mod:`drive.eval.explain`: ``drive explain``, VisualBackProp saliency, SSIM, neuron traces;
- :mod:`drive.eval.compare`: the exported ONNX policy against its torch original, closed loop.
"""
