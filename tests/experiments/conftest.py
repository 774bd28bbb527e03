import pytest

from adamezo.experiments.cells import Protocol
from tests.finetune.conftest import one_thread, tiny_model_dir  # noqa: F401 (fixtures)
from tests.finetune.helpers import write_sst2


@pytest.fixture(scope="module")
def protocol(tiny_model_dir, tmp_path_factory):  # noqa: F811 (the fixture above)
    """Tiny cells: the tiny random Llama on 24 SST-2 sentences, 8 dev and 8 test."""
    data = write_sst2(tmp_path_factory.mktemp("study-data"), n_train=40, n_validation=16)
    return Protocol(
        model=str(tiny_model_dir),
        batch_size=4,
        n_train=24,
        n_dev=8,
        n_test=8,
        eval_every=2,
        max_length=None,
        data_dir=str(data),
    )
