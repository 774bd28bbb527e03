"""--micro-batch-size: the same step as the whole batch at once, up to float rounding."""

import pytest
import torch

from adamezo.finetune.config import FinetuneConfig
from adamezo.finetune.loop import run_finetune
from tests.finetune.helpers import config, sentiment_data, tiny_llama


def trained_weights(tmp_path, tokenizer, name, **overrides):
    cfg = config(
        tmp_path / name,
        batch_size=16,
        steps=3,
        eval_every=3,
        eval_at_start=False,
        save_model=False,
        test=False,
        **overrides,
    )
    model = tiny_llama(tokenizer)  # float64: rounding differences stay far below the tolerance
    data = sentiment_data(n_train=32)
    result = run_finetune(cfg, model=model, tokenizer=tokenizer, data=data)
    return {n: p.detach().clone() for n, p in result.model.named_parameters()}


@pytest.mark.parametrize("optimizer", ["adamezo", "mezo", "fo-adam"])
def test_micro_batches_of_4_give_the_weights_of_one_batch_of_16(tmp_path, tokenizer, optimizer):
    whole = trained_weights(tmp_path, tokenizer, "whole", optimizer=optimizer)
    pieces = trained_weights(tmp_path, tokenizer, "pieces", optimizer=optimizer, micro_batch_size=4)
    start = {n: p.detach() for n, p in tiny_llama(tokenizer).named_parameters()}
    assert any(not torch.equal(whole[n], start[n]) for n in whole)  # the steps moved weights
    for name in whole:
        torch.testing.assert_close(pieces[name], whole[name], rtol=0, atol=1e-10)


def test_a_micro_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="micro_batch_size"):
        FinetuneConfig(micro_batch_size=0).validate()


def test_uneven_micro_batches_are_weighted_by_their_size(tmp_path, tokenizer):
    whole = trained_weights(tmp_path, tokenizer, "whole", optimizer="mezo")
    pieces = trained_weights(tmp_path, tokenizer, "pieces", optimizer="mezo", micro_batch_size=5)
    for name in whole:
        torch.testing.assert_close(pieces[name], whole[name], rtol=0, atol=1e-10)
