"""The MeZO task suite: prompts, data sources, the sampling protocol and the metrics.

>>> from adamezo.tasks import load_task_data, score_predictions
>>> data = load_task_data("sst2", "/path/to/data", seed=0)   # doctest: +SKIP
>>> data.train[0].prompt, data.train[0].candidates             # doctest: +SKIP
('… It was', (' terrible', ' great'))
"""

from adamezo.tasks.base import (
    Example,
    HubSource,
    HubSpec,
    Kind,
    MalformedDataError,
    Metric,
    Split,
    Task,
)
from adamezo.tasks.custom import CustomTask, OwnDataError, load_own_data, task_data_from_rows
from adamezo.tasks.metrics import (
    exact_match,
    normalize_answer,
    score_predictions,
    token_f1,
)
from adamezo.tasks.registry import get_task, list_tasks
from adamezo.tasks.sampling import TaskData, load_task_data
from adamezo.tasks.sources import DATA_ENV, DataNotFoundError

__all__ = [
    "DATA_ENV",
    "CustomTask",
    "DataNotFoundError",
    "Example",
    "HubSource",
    "HubSpec",
    "Kind",
    "MalformedDataError",
    "Metric",
    "OwnDataError",
    "Split",
    "Task",
    "TaskData",
    "exact_match",
    "get_task",
    "list_tasks",
    "load_own_data",
    "load_task_data",
    "normalize_answer",
    "score_predictions",
    "task_data_from_rows",
    "token_f1",
]
