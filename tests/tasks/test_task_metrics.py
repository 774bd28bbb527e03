"""Metrics: accuracy over candidates; SQuAD v1.1-normalised token F1 and exact match."""

import pytest

from adamezo.tasks import Example, exact_match, normalize_answer, score_predictions, token_f1


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an  apple, a pear and the  plum ", "apple pear and plum"),
        ("Theatre's 'other' half", "theatres other half"),  # "the" only as a whole word
        ("U.S.-based", "usbased"),  # punctuation is deleted, not replaced by spaces
        ("A", ""),
    ],
)
def test_normalisation_matches_official_squad_script(text, normalised):
    assert normalize_answer(text) == normalised


def test_f1_ignores_case_articles_and_punctuation():
    assert token_f1("the Denver Broncos.", "Denver broncos") == 1.0


def test_f1_of_partial_overlap_is_harmonic_mean_of_precision_and_recall():
    # 2 shared tokens; precision 2/3, recall 2/2 → F1 = 2·(2/3)·1 / (2/3 + 1) = 0.8.
    assert token_f1("Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)


def test_f1_counts_repeated_tokens_as_a_multiset():
    # prediction x x y, reference x y y: shared min(2,1)+min(1,2) = 2; P = R = 2/3.
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)


def test_f1_is_zero_without_shared_tokens_or_for_empty_prediction():
    assert token_f1("Carolina Panthers", "Denver Broncos") == 0.0
    assert token_f1("", "Denver Broncos") == 0.0
    assert token_f1("the", "a") == 0.0  # both normalise to nothing: official v1.1 gives 0


def test_exact_match_after_normalisation():
    assert exact_match("The Broncos", "broncos!") == 1.0
    assert exact_match("Broncos win", "Broncos") == 0.0


def generation(*answers):
    return Example("Q:", (), answers=answers, target=f" {answers[0]}\n")


def test_generation_scores_take_the_best_reference_and_average_examples():
    examples = [generation("Denver Broncos", "Broncos"), generation("1945")]
    scores = score_predictions("squad", examples, [" Broncos\n", "in 1945"])
    # Example 1: "Broncos" matches the second reference exactly (F1 1, EM 1).
    # Example 2: tokens {in, 1945} vs {1945}: P 1/2, R 1 → F1 2/3; EM 0.
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert scores["exact_match"] == pytest.approx(0.5)


def test_accuracy_counts_correct_candidate_indices():
    examples = [Example("p", ("a", "b"), label=1), Example("q", ("a", "b"), label=0)]
    assert score_predictions("sst2", examples, [1, 1]) == {"accuracy": 0.5}


def test_multiple_choice_accepts_any_correct_candidate():
    example = Example("p", ("x", "y", "z"), label=0, correct=(0, 2))
    assert score_predictions("record", [example] * 3, [0, 1, 2]) == {"accuracy": 2 / 3}


def test_numpy_integer_predictions_are_accepted():
    numpy = pytest.importorskip("numpy")
    examples = [Example("p", ("a", "b"), label=1)]
    assert score_predictions("rte", examples, [numpy.int64(1)]) == {"accuracy": 1.0}


def test_prediction_count_must_match_examples():
    with pytest.raises(ValueError, match="one entry per example"):
        score_predictions("sst2", [Example("p", ("a", "b"), label=0)], [0, 1])


def test_prediction_outside_candidates_is_rejected():
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        score_predictions("sst2", [Example("p", ("a", "b"), label=0)], [2])


def test_generation_predictions_must_be_strings():
    with pytest.raises(TypeError, match="strings"):
        score_predictions("drop", [generation("3")], [3])


def test_example_label_must_index_a_candidate():
    with pytest.raises(ValueError, match="label"):
        Example("p", ("a", "b"), label=2)
