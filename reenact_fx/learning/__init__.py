"""Shared machinery of the learned landmark components (FReeNet, FACEGAN, LD-Net, LSG).

Rendering needs only numpy and onnxruntime: :mod:`canonical` (one landmark frame for every learned
method), :mod:`posing` (head-pose placement, shared with ``delta``), :mod:`dataset` (landmark datasets
built from footage), :mod:`pairs` (training pairs: same-person, synthetic-identity, cross-identity)
and :mod:`runtime` (ONNX sessions and weights).  :mod:`torchkit` imports torch and is used only by
training and export code (the ``train`` extra).
"""
