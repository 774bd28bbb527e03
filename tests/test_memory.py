"""Memory: MeZO-shaped optimizers and AdaMeZO allocate only bounded chunks, never a model-sized
z, m or v; ZO-Adam and HiZOO hold the model-sized buffers that make them baselines."""

import pytest
import torch

import adamezo
from adamezo.allocations import LargestAllocation
from tests.zo_reference import build

SIZE = 1 << 17
CHUNK = 1 << 12


def _largest_allocation(name, kernel, **options):
    param = torch.nn.Parameter(torch.randn(SIZE))
    opt = build(name, [param], chunk_size=CHUNK, kernel=kernel, **options)
    closure = lambda: (param * param).mean()  # noqa: E731 — the loss itself allocates SIZE
    opt.step(closure)  # state is created on the first step; measure a later one
    with LargestAllocation() as seen:
        opt.step(lambda: torch.zeros(()))
    return seen.elements


@pytest.mark.parametrize("name", ["MeZO", "AdaMeZO", "MEAZO", "MeZOSwitch"])
def test_memory_free_optimizers_allocate_only_chunks_with_the_torch_kernel(name):
    options = {"horizon": 10} if name == "AdaMeZO" else {}
    assert _largest_allocation(name, "torch", **options) <= 4 * CHUNK


@pytest.mark.parametrize("name", ["MeZO", "AdaMeZO"])
def test_memory_free_optimizers_allocate_no_large_tensor_with_the_default_kernel(name):
    assert _largest_allocation(name, "auto") <= 4 * CHUNK


@pytest.mark.parametrize(
    ("name", "buffers"), [("ZOAdam", 2), ("HiZOO", 1), ("AdaMeZO", 0), ("MeZO", 0)]
)
def test_model_sized_state_buffers_per_optimizer(name, buffers):
    param = torch.nn.Parameter(torch.randn(1000))
    opt = build(name, [param])
    opt.step(lambda: param.square().sum())
    held = [
        v for v in opt.state[param].values() if isinstance(v, torch.Tensor) and v.numel() == 1000
    ]
    assert len(held) == buffers


def _peak_rss_growth_during(fn):
    """Bytes by which the process's peak resident set grew while ``fn`` ran (Linux only)."""

    def read(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident set
    start = read("VmRSS:")
    fn()
    return read("VmHWM:") - start


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["auto", "torch"])
def test_adamezo_step_on_a_large_tensor_does_not_grow_resident_memory_by_its_size(kernel):
    try:
        open("/proc/self/clear_refs", "w").close()
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak resident set")
    size = 25_000_000  # 100 MB in float32; a full z, m or v would add as much again
    param = torch.nn.Parameter(torch.zeros(size))
    opt = adamezo.AdaMeZO([param], horizon=10, kernel=kernel, chunk_size=1 << 18)
    opt.step(lambda: torch.zeros(()))
    growth = _peak_rss_growth_during(lambda: opt.step(lambda: torch.zeros(())))
    assert growth < 0.25 * size * 4, f"peak RSS grew by {growth / 1e6:.0f} MB"


def _largest_allocation_on(params, name):
    opt = build(name, params, chunk_size=CHUNK, kernel="torch")
    opt.step(lambda: sum((p * p).mean() for p in params))
    with LargestAllocation() as seen:
        opt.step(lambda: torch.zeros(()))
    return seen.elements


@pytest.mark.parametrize("name", ["FZOO", "LOZO", "LOZO-M", "ZOMuon"])
def test_the_new_methods_allocate_only_chunks_and_small_factors(name):
    # A 1024 × 128 matrix (SIZE elements) and a SIZE-long vector: a direction or an update as
    # large as either would show here. LOZO-M's momentum of a vector is as large as the vector
    # (its state, by design: one-dimensional tensors are biases and norms), so its vector is short.
    vector = 1000 if name == "LOZO-M" else SIZE
    params = [torch.nn.Parameter(torch.randn(1024, 128)), torch.nn.Parameter(torch.randn(vector))]
    assert _largest_allocation_on(params, name) <= 4 * CHUNK


def test_lozo_m_holds_an_m_by_r_factor_per_matrix_and_the_vectors_momentum_only():
    params = [
        torch.nn.Parameter(torch.randn(300, 40)),
        torch.nn.Parameter(torch.randn(20, 2, 5)),
        torch.nn.Parameter(torch.randn(40)),
    ]
    opt = adamezo.LOZO(params, rank=3, momentum=0.9)
    for _ in range(2):
        opt.step(lambda: sum((p * p).mean() for p in params))
    held = sum(v.numel() for s in opt.state.values() for v in s.values())
    assert held == 300 * 3 + 20 * 3 + 40


@pytest.mark.parametrize("name", ["FZOO", "LOZO"])
def test_fzoo_and_lozo_hold_no_tensor_state(name):
    params = [torch.nn.Parameter(torch.randn(30, 40)), torch.nn.Parameter(torch.randn(40))]
    opt = build(name, params)
    opt.step(lambda: sum((p * p).mean() for p in params))
    assert not any(opt.state[p] for p in params)


def test_zo_muon_keeps_an_r_by_r_triangle_per_matrix_and_never_p():
    params = [
        torch.nn.Parameter(torch.randn(300, 40)),
        torch.nn.Parameter(torch.randn(5, 2, 5)),  # fewer rows than r: r' = 5
        torch.nn.Parameter(torch.randn(40)),
    ]
    opt = adamezo.ZOMuon(params, rank=8, queries=2)
    for _ in range(2):
        opt.step(lambda: sum((p * p).mean() for p in params))
    assert not any(opt.state[p] for p in params)
    assert opt.cache_bytes == (8 * 8 + 5 * 5) * 4
