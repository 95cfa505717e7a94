"""Metrics: the registry of scores (:mod:`.registry`), mgbench's own registered units
(:mod:`.catalog`) and the mathematics they call: FID and FID∞ (:mod:`.frechet`),
precision/recall and density/coverage (:mod:`.knn`), multi-scale SWD (:mod:`.swd`) and per-scale
mode coverage (:mod:`.modes`). Importing this package imports nothing heavy (no torch).
"""
