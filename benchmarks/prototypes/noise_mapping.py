import time, math, numpy as np, numba as nb
from statistics import NormalDist
nd = NormalDist()
def table(bits):
    n = 1 << bits
    T = np.array([nd.inv_cdf((i+0.5)/n) for i in range(n)]); return (T/np.sqrt((T**2).mean())).astype(np.float32)
T12, T16 = table(12), table(16)
@nb.njit(inline='always')
def mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
@nb.njit(parallel=True)
def table4(x, base, c, T, bits):
    nq = x.size // 4
    sh = np.uint64(16 - bits); mask = np.uint64((1 << bits) - 1)
    for q in nb.prange(nq):
        h = mix(base + np.uint64(q) * np.uint64(0x9E3779B97F4A7C15))
        i = q * 4
        for l in range(4):
            x[i + l] += c * T[(h >> (np.uint64(16 * l) + sh)) & mask]
@nb.njit(parallel=True)
def boxmuller(x, base, c):
    npair = x.size // 2
    for q in nb.prange(npair):
        h = mix(base + np.uint64(q) * np.uint64(0x9E3779B97F4A7C15))
        u1 = (np.float32(h >> np.uint64(40)) + np.float32(0.5)) * np.float32(1.0 / 16777216.0)
        u2 = np.float32((h >> np.uint64(8)) & np.uint64(0xFFFFFF)) * np.float32(1.0 / 16777216.0)
        r = np.sqrt(np.float32(-2.0) * np.log(u1))
        a = np.float32(2 * math.pi) * u2
        x[2 * q] += c * r * np.cos(a)
        x[2 * q + 1] += c * r * np.sin(a)
x = np.zeros(64 * 2**20, np.float32)
def tm(f):
    f(); ts = []
    for _ in range(5):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)
n = x.size
for _ in range(2):
    r = {"table12x4": tm(lambda: table4(x, np.uint64(3), np.float32(1e-3), T12, 12)),
         "table16x4": tm(lambda: table4(x, np.uint64(3), np.float32(1e-3), T16, 16)),
         "boxmuller x2": tm(lambda: boxmuller(x, np.uint64(3), np.float32(1e-3)))}
    print({k: f"{n / v / 1e9:.2f} G/s" for k, v in r.items()})
