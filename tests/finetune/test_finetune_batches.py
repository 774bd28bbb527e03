import pytest

from adamezo.finetune.batches import BatchOrder, shard


def test_each_epoch_visits_every_full_batch_of_examples_once():
    order = BatchOrder(10, 3, seed=0)
    epoch = [i for step in range(3) for i in order.global_batch(step)]
    assert len(set(epoch)) == 9  # 10 // 3 batches; the leftover example waits for a later epoch


def test_batches_depend_only_on_seed_and_step():
    a, b = BatchOrder(50, 4, seed=1), BatchOrder(50, 4, seed=1)
    assert [a.global_batch(s) for s in (30, 2, 17)] == [b.global_batch(s) for s in (30, 2, 17)]
    assert BatchOrder(50, 4, seed=2).global_batch(0) != a.global_batch(0)


def test_epochs_are_reshuffled():
    order = BatchOrder(40, 8, seed=0)
    assert order.global_batch(0) != order.global_batch(5)


def test_shards_partition_the_global_batch():
    batch = BatchOrder(64, 16, seed=0).global_batch(3)
    parts = [shard(batch, rank, 4) for rank in range(4)]
    assert sorted(i for part in parts for i in part) == sorted(batch)
    assert all(len(part) == 4 for part in parts)


def test_a_batch_that_does_not_split_evenly_across_ranks_is_refused():
    with pytest.raises(ValueError, match="multiple of world_size"):
        shard(list(range(10)), 0, 4)
