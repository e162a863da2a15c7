"""Evaluation harness: the seeds' metric tables and plots, for any method, in one run.

``reenact-fx eval --manifest PAIRS.yaml --methods default,NAME,... --out DIR`` renders every pair of a
manifest with every method (a preset name or path, ``default``, and the two reference baselines
``baseline.still`` and ``baseline.driver``), re-tracks each output and writes ``DIR/results.json``,
``DIR/summary.md`` and PNG plots.  Modules:

- :mod:`.metrics`  pure functions on landmark arrays, images and embeddings (csim, psim, ed, lsim,
  ssim, jitter, face rate), with their exact definitions;
- :mod:`.identity` dlib's ResNet face embedding placed by mediapipe landmarks (loaded lazily, once);
- :mod:`.harness`  manifest parsing and validation, running pairs x methods, results.json, summary.md;
- :mod:`.plots`    matplotlib (Agg canvas, no pyplot state): bars, traces, jitter, contact sheets.

The core (``reenact_fx`` outside this package) never imports it.
"""
