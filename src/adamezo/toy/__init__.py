"""Toy landscapes: first-order Adam and the zeroth-order optimizers on 2-D test functions."""
