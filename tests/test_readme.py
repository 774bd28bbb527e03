"""The README's code examples run as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_own_training_loop_example_runs_and_lowers_the_loss():
    namespace: dict = {}
    exec(_python_block_after("## Use AdaMeZO in your own training loop"), namespace)
    mse = namespace["torch"].nn.functional.mse_loss
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    assert namespace["opt"].num_updates == 500
    assert mse(model(x), y).item() < 0.2 * y.var().item()


def test_replay_example_rebuilds_the_weights_bitwise():
    namespace: dict = {}
    exec(_python_block_after("### Share a fine-tune as its log"), namespace)
    assert len(namespace["log"]) == 50
