"""Bad arguments raise ValueError/TypeError naming the argument and its allowed range."""

import pytest
import torch

import adamezo


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


CASES = [
    (adamezo.MeZO, {"lr": -1.0}, ValueError, r"lr must be >= 0"),
    (adamezo.MeZO, {"lr": "1e-3"}, TypeError, r"lr must be a real number"),
    (adamezo.MeZO, {"lr": float("nan")}, ValueError, r"lr must be finite and >= 0, got nan"),
    (adamezo.MeZO, {"lr": float("inf")}, ValueError, r"lr must be finite and >= 0, got inf"),
    (adamezo.AdaMeZO, {"eps": float("inf")}, ValueError, r"eps must be finite and > 0, got inf"),
    (adamezo.MeZO, {"perturbation_scale": 0.0}, ValueError, r"perturbation_scale must be > 0"),
    (adamezo.AdaMeZO, {"perturbation_scale": -1e-3}, ValueError, r"perturbation_scale must be > 0"),
    (adamezo.MeZO, {"weight_decay": -0.1}, ValueError, r"weight_decay must be >= 0"),
    (adamezo.MeZO, {"seed": -1}, ValueError, r"seed must be an int in \[0, "),
    (adamezo.MeZO, {"seed": 1.0}, TypeError, r"seed must be an int"),
    (adamezo.MeZO, {"nonfinite": "ignore"}, ValueError, r"nonfinite must be one of"),
    (adamezo.MeZO, {"chunk_size": 0}, ValueError, r"chunk_size must be an int >= 1"),
    (adamezo.MeZO, {"kernel": "cuda-magic"}, ValueError, r"kernel must be 'auto' or one of"),
    (adamezo.MeZO, {"kernel": 3}, TypeError, r"kernel must be"),
    (adamezo.AdaMeZO, {"betas": (1.1, 0.9)}, ValueError, r"betas\[0\] must be in \[0, 1\]"),
    (adamezo.AdaMeZO, {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be in \[0, 1\]"),
    (adamezo.AdaMeZO, {"betas": (0.9,)}, TypeError, r"betas must be a tuple of 2 floats"),
    (adamezo.AdaMeZO, {"horizon": 0}, ValueError, r"horizon must be an int >= 1"),
    (adamezo.AdaMeZO, {"horizon": 2.5}, TypeError, r"horizon must be an int"),
    (adamezo.AdaMeZO, {"eps": -1e-8}, ValueError, r"eps must be > 0"),
    (adamezo.AdaMeZO, {"eps": 0.0}, ValueError, r"eps must be > 0"),
    (adamezo.AdaMeZO, {"gain": -1.0}, ValueError, r"gain must be >= 0"),
    (adamezo.AdaMeZO, {"normalize": "yes"}, TypeError, r"normalize must be a bool"),
    (adamezo.AdaMeZO, {"warmup_steps": -1}, ValueError, r"warmup_steps must be an int >= 0"),
    (
        adamezo.AdaMeZO,
        {"preset": "paper"},
        ValueError,
        r"preset must be one of 'reference', got 'paper'",
    ),
    (adamezo.ZOAdam, {"betas": (0.9, 2.0)}, ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (adamezo.ZOAdam, {"betas": (1.0, 0.999)}, ValueError, r"betas\[0\] must be in \[0, 1\)"),
    (adamezo.ZOAdam, {"betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (adamezo.ZOAdam, {"eps": 0.0}, ValueError, r"eps must be > 0"),
    (adamezo.MEAZO, {"beta": 1.0}, ValueError, r"beta must be in \[0, 1\)"),
    (adamezo.MEAZO, {"eps": 0.0}, ValueError, r"eps must be > 0"),
    (
        adamezo.HiZOO,
        {"hessian_smoothing": 1.0},
        ValueError,
        r"hessian_smoothing must be in \[0, 1\)",
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "message"), CASES)
def test_invalid_hyperparameter_is_rejected_with_its_name_and_range(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(params(), **kwargs)


def test_mezo_switch_rejects_a_schedule_that_is_neither_sequence_nor_callable():
    with pytest.raises(TypeError, match="norm_schedule must be a sequence"):
        adamezo.MeZOSwitch(params(), 0.1)


def test_mezo_switch_rejects_a_negative_scheduled_norm():
    p = params()
    opt = adamezo.MeZOSwitch(p, [-0.1])
    with pytest.raises(ValueError, match=r"norm_schedule\[0\] must be >= 0"):
        opt.step(lambda: p[0].sum())


def test_empty_params_are_rejected():
    with pytest.raises(ValueError, match="params must hold at least one tensor"):
        adamezo.AdaMeZO([])


def test_a_bare_tensor_instead_of_an_iterable_is_rejected():
    with pytest.raises(TypeError, match="wrap it in a list"):
        adamezo.AdaMeZO(torch.nn.Parameter(torch.zeros(3)))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_floating_point_params_are_rejected(dtype):
    with pytest.raises(TypeError, match="floating-point"):
        adamezo.MeZO([torch.zeros(3, dtype=dtype)])


def test_non_contiguous_params_are_rejected():
    with pytest.raises(ValueError, match="contiguous"):
        adamezo.MeZO([torch.zeros(4, 3).t()])


def test_a_bad_lr_in_a_param_group_is_rejected():
    with pytest.raises(ValueError, match="lr must be >= 0"):
        adamezo.AdaMeZO([{"params": params(), "lr": -1.0}])


@pytest.mark.parametrize("option", ["horizon", "perturbation_scale", "seed"])
def test_optimizer_wide_options_cannot_be_set_per_group(option):
    with pytest.raises(ValueError, match=f"{option} is one value for the whole optimizer"):
        adamezo.AdaMeZO([{"params": params(), option: 1}])


def test_add_param_group_checks_the_new_group():
    opt = adamezo.AdaMeZO(params())
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        opt.add_param_group({"params": params(), "betas": (2.0, 0.9)})
    assert len(opt.param_groups) == 1


def test_the_same_tensor_twice_in_params_is_refused():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="same tensor twice"):
        adamezo.MeZO([w, w])
    with pytest.raises(ValueError, match="same tensor twice"):
        adamezo.MeZO([{"params": [w]}, {"params": [w], "lr": 1e-3}])


def test_two_tensors_sharing_storage_are_refused():
    base = torch.zeros(10)
    a, b = base[:6].requires_grad_(), base[4:].requires_grad_()
    with pytest.raises(ValueError, match="share storage"):
        adamezo.MeZO([a, b])
    # Disjoint views of one buffer are distinct memory: accepted.
    adamezo.MeZO([base[:5].requires_grad_(), base[5:].requires_grad_()])


def test_tied_weights_listed_once_by_the_model_are_accepted():
    model = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    model[1].weight = model[0].weight
    adamezo.MeZO(model.parameters())


def test_an_infinite_lr_on_the_command_line_is_called_not_finite(capsys):
    from adamezo.cli import main

    assert main(["finetune", "--lr", "inf", "--steps", "1"]) == 2
    assert "lr must be finite and >= 0, got inf" in capsys.readouterr().err


def test_version_prints_the_package_version(capsys):
    from adamezo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"adamezo {adamezo.__version__}"
