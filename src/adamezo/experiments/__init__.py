"""Experiments over many fine-tuning runs: cells (one run each) with stable ids, the lr grid
rule over finished cells, cells shared by any number of workers as trials of an Optuna study,
tests by replay, and the statistics a comparison over seeds may claim.

The modules, top to bottom (``lint-imports`` checks the order; modules of one layer import none
of each other): ``workers`` (cells as trials of a shared queue); ``runner`` (one cell: trained,
resumed, tested by replay or evaluated zero-shot, then published); ``replay_testing``; ``store``
(a cell's published files, what they say, and :func:`~adamezo.experiments.store.matching`
records) and ``aggregate`` (seeds, paired differences, the claim rule); ``cells`` (what a cell is
and its id), ``lr_choice`` (the tuned lr and the grids' growth) and ``outputs`` (plots, a
generated block of a Markdown page).
"""
