from adamezo.finetune.batches import BatchOrder


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
