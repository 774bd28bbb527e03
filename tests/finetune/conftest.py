import pytest
import torch

from adamezo.tasks import sources
from tests.finetune.helpers import tiny_llama, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices gain nothing from threads, and on a busy machine OpenMP's spinning threads
    make each tiny matmul take tens of milliseconds; restored after each module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Llama and its tokenizer saved as a model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer, dtype=torch.float32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def no_hub(monkeypatch):
    """Data loading never touches the network: the hub probe says unreachable."""
    monkeypatch.setattr(sources, "hub_reachable", lambda *args, **kwargs: False)
    monkeypatch.delenv(sources.DATA_ENV, raising=False)
