import pytest

from adamezo.rules import adamezo_coefficients, bias_correction, ema, truncated_ema_weights


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.7, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_normalized_weights_sum_to_one(beta, n):
    assert sum(truncated_ema_weights(beta, n)) == pytest.approx(1.0, rel=1e-12)


def test_normalized_weights_decay_geometrically_from_the_newest():
    w = truncated_ema_weights(0.5, 3)
    assert w == pytest.approx((4 / 7, 2 / 7, 1 / 7))


def test_raw_weights_are_powers_with_zero_to_the_zero_equal_one():
    assert truncated_ema_weights(0.0, 3, normalize=False) == (1.0, 0.0, 0.0)
    assert truncated_ema_weights(0.5, 3, normalize=False) == (1.0, 0.5, 0.25)


def test_beta_zero_keeps_only_the_newest_term_when_normalized():
    assert truncated_ema_weights(0.0, 4) == (1.0, 0.0, 0.0, 0.0)


def test_zero_second_beta_means_no_second_moment():
    m, v = adamezo_coefficients([2.0, -1.0], (0.5, 0.0))
    assert v is None
    assert m == pytest.approx((2 * 2 / 3, -1 / 3))


def test_second_moment_coefficients_square_the_projected_gradients():
    _, v = adamezo_coefficients([2.0, -1.0], (0.5, 0.5))
    assert v == pytest.approx((4 * 2 / 3, 1 / 3))


def test_ema_and_bias_correction():
    assert ema(1.0, 3.0, 0.25) == pytest.approx(2.5)
    assert bias_correction(0.9, 0) == pytest.approx(0.1)
    assert bias_correction(0.9, 1) == pytest.approx(0.19)


def test_weights_need_at_least_one_term():
    with pytest.raises(ValueError, match="n must be >= 1"):
        truncated_ema_weights(0.5, 0)
