import pytest
import torch

from adamezo.finetune.scoring import (
    CausalLMRunner,
    TokenEncoder,
    candidate_scores,
    classification_losses,
    continuation_logprobs,
    greedy_decode,
    lm_losses,
)
from tests.finetune.helpers import Ex, tiny_llama


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer)


def naive_logprobs(model, prompt_ids, continuation_ids):
    """One unpadded sequence per candidate, no cache: the reference."""
    ids = torch.tensor([list(prompt_ids) + list(continuation_ids)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    n = len(prompt_ids)
    return torch.stack([logprobs[n - 1 + k, tok] for k, tok in enumerate(continuation_ids)])


def check_against_naive(model, encoded, result):
    for ex, per_candidate in zip(encoded, result, strict=True):
        for cont, got in zip(ex.continuations, per_candidate, strict=True):
            want = naive_logprobs(model, ex.prompt, cont)
            torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-10)


SINGLE = [
    Ex("the film was great and the plot. It was", (" great", " terrible"), 0),
    Ex("a dull mess. It was", (" great", " terrible"), 1),
    Ex("It was", (" terrible", " great"), 0),
]
MULTI = [
    Ex("the film was great. It was", (" great", " a wonderful, moving story"), 1),
    Ex("Does this mean that it is true? Yes or No?\n", ("Yes", "No", "Maybe not at all"), 2),
    Ex("a plot", (" lifeless", " great"), 0),
]


def test_single_token_candidates_cost_one_forward_pass_and_match_naive(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    encoded = [enc.for_scoring(ex) for ex in SINGLE]
    assert all(len(c) == 1 for ex in encoded for c in ex.continuations)
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    result = continuation_logprobs(runner, encoded)
    assert runner.forward_calls == 1
    check_against_naive(model, encoded, result)


def test_multi_token_candidates_share_the_prompt_cache_and_match_naive(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    encoded = [enc.for_scoring(ex) for ex in MULTI]
    assert any(len(c) > 2 for ex in encoded for c in ex.continuations)
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    result = continuation_logprobs(runner, encoded)
    assert runner.forward_calls == 2  # the prompts once, then every longer candidate at once
    check_against_naive(model, encoded, result)


def test_single_continuation_runs_as_one_sequence_and_matches_naive(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    examples = [Ex("Question: who wrote it? Answer:", target=" a writer\n"), *MULTI]
    encoded = [enc.for_lm_loss(ex) for ex in examples]
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    result = continuation_logprobs(runner, encoded)
    assert runner.forward_calls == 1
    check_against_naive(model, encoded, result)


def test_scores_are_mean_token_logprobs_and_loss_is_cross_entropy_over_them(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    encoded = [enc.for_scoring(ex) for ex in MULTI]
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    scores = candidate_scores(runner, encoded)
    for ex, s in zip(encoded, scores, strict=True):
        want = torch.stack([naive_logprobs(model, ex.prompt, c).mean() for c in ex.continuations])
        torch.testing.assert_close(s, want, rtol=0, atol=1e-10)
    loss = classification_losses(scores, [ex.label for ex in encoded]).mean()
    want = torch.stack(
        [
            torch.nn.functional.cross_entropy(s.unsqueeze(0), torch.tensor([ex.label]))
            for s, ex in zip(scores, encoded, strict=True)
        ]
    ).mean()
    torch.testing.assert_close(loss, want, rtol=0, atol=1e-12)


def test_lm_loss_is_mean_negative_logprob_of_the_gold_continuation(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    encoded = [enc.for_lm_loss(ex) for ex in MULTI]
    runner = CausalLMRunner(model, pad_id=tokenizer.pad_token_id)
    want = torch.stack(
        [-naive_logprobs(model, ex.prompt, ex.continuations[0]).mean() for ex in encoded]
    ).mean()
    torch.testing.assert_close(lm_losses(runner, encoded).mean(), want, rtol=0, atol=1e-12)


def test_continuation_tokens_follow_the_prompt_tokens_of_the_joint_text(tokenizer):
    enc = TokenEncoder(tokenizer)
    ex = enc.encode("It was", (" great", "great"), None)
    assert ex.prompt + ex.continuations[0] == tuple(tokenizer("It was great").input_ids)
    # "was" + "great" would merge differently than "was" alone; the prompt's tokens are kept.
    assert ex.continuations[1] == tuple(tokenizer("great", add_special_tokens=False).input_ids)


def test_long_prompts_lose_tokens_from_their_start(tokenizer):
    enc = TokenEncoder(tokenizer, max_length=6)
    ex = enc.encode("the film was great and the plot was terrible. It was", (" great",), None)
    full = enc.prompt_ids("the film was great and the plot was terrible. It was")
    assert ex.prompt == full[-5:]


def test_batched_greedy_decoding_matches_one_prompt_at_a_time(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    prompts = [enc.prompt_ids(p) for p in ["Question: who wrote it? Answer:", "It was", "a"]]
    stop = frozenset({tokenizer.eos_token_id})
    batched = greedy_decode(CausalLMRunner(model, pad_id=0), prompts, stop, max_new_tokens=7)
    for prompt, got in zip(prompts, batched, strict=True):
        ids = list(prompt)
        for _ in range(7):
            with torch.no_grad():
                nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(nxt)
            if nxt in stop:
                break
        assert got == ids[len(prompt) :]


def test_greedy_decoding_stops_at_the_first_stop_token(model, tokenizer):
    enc = TokenEncoder(tokenizer)
    prompts = [enc.prompt_ids("It was")]
    free = greedy_decode(CausalLMRunner(model, pad_id=0), prompts, frozenset(), 6)[0]
    assert len(free) == 6
    stopped = greedy_decode(CausalLMRunner(model, pad_id=0), prompts, frozenset({free[2]}), 6)[0]
    assert stopped == free[: free.index(free[2]) + 1]


def test_newline_ids_are_the_tokens_whose_text_holds_a_newline(tokenizer):
    ids = TokenEncoder(tokenizer).newline_ids()
    assert tokenizer("\n", add_special_tokens=False).input_ids[0] in ids
    assert all("\n" in tokenizer.decode([i]) for i in ids)
    assert tokenizer(" great", add_special_tokens=False).input_ids[0] not in ids


def test_prefix_tuned_scores_match_the_peft_models_own_forward(tokenizer):
    from adamezo.finetune.tuning import prepare_tuning

    tuned = prepare_tuning(tiny_llama(tokenizer), "prefix", prefix_tokens=3)
    tuned.wrapped.double()
    enc = TokenEncoder(tokenizer)
    encoded = [enc.for_scoring(ex) for ex in MULTI]
    runner = CausalLMRunner(tuned.forward_model, tuned.prefix, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        result = continuation_logprobs(runner, encoded)
        for ex, per_candidate in zip(encoded, result, strict=True):
            for cont, got in zip(ex.continuations, per_candidate, strict=True):
                ids = torch.tensor([list(ex.prompt) + list(cont)])
                logits = tuned.wrapped(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
                logprobs = torch.log_softmax(logits[0], -1)
                n = len(ex.prompt)
                want = torch.stack([logprobs[n - 1 + k, t] for k, t in enumerate(cont)])
                torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def tiny_gpt2(tokenizer, positions):
    """A model with learned absolute positions: a position past the last one is an error."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=32,
        n_layer=2,
        n_head=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_inputs_are_cut_to_the_models_positions_by_default(tokenizer, task):
    from adamezo.finetune.objective import build_objective
    from adamezo.finetune.tuning import TunedModel
    from adamezo.tasks import Example, get_task

    model = tiny_gpt2(tokenizer, positions=16)
    long = "the film was great and the plot was terrible " * 6  # far over 16 tokens
    examples = [
        Example(long + "It was", (" terrible", " great"), 1, ("great",), " great\n"),
        Example("It was", (" terrible", " great"), 0, ("terrible",), " terrible\n"),
    ]
    objective = build_objective(
        TunedModel("full", model, None, model), tokenizer, get_task(task), None
    )
    assert objective.encoder.max_length == 16
    # Training loss and evaluation (greedy decoding for SQuAD) run without a position error.
    assert torch.isfinite(objective.loss(examples))
    result = objective.evaluate(examples, batch_size=2)
    assert torch.isfinite(torch.tensor(result.loss))
    assert len(objective.encoder.for_lm_loss(examples[0]).prompt) < 16


# -- issue 27: a prompt longer than the limit is cut with a word, not silently ----------------


def long_and_short(n_long, n_short):
    long = Ex("the film was great " * 40 + "It was", (" terrible", " great"), 1)
    short = Ex("the film was great. It was", (" terrible", " great"), 1)
    return [long] * n_long + [short] * n_short


def test_cutting_a_prompt_warns_once_naming_the_limit(tokenizer):
    import warnings

    enc = TokenEncoder(tokenizer, max_length=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for example in long_and_short(3, 2) * 2:
            enc.for_scoring(example)
        enc.for_generation(long_and_short(1, 0)[0], 4)
    cut = [w for w in caught if "16-token limit" in str(w.message)]
    assert len(cut) == 1, [str(w.message) for w in caught]
    assert "loses tokens from its start" in str(cut[0].message)
    short = TokenEncoder(tokenizer, max_length=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short.for_scoring(long_and_short(0, 1)[0])  # fits: no warning


def test_a_survey_counts_the_prompts_over_the_limit_and_warns_once(tokenizer):
    import warnings

    enc = TokenEncoder(tokenizer, max_length=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert enc.survey(long_and_short(3, 2), "train") == 3
        enc.for_scoring(long_and_short(1, 0)[0])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "3 of 5 train prompts" in messages[0], messages
    assert "16-token limit" in messages[0]
    assert TokenEncoder(tokenizer).survey(long_and_short(3, 2), "dev") == 0  # no limit
