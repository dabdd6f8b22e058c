"""Exact k-nearest-neighbour search among unit rows by dot product, for the propagation graph.

The similarity matrix is computed in strips above the diagonal (it is symmetric) by the BLAS,
and each strip is scanned once by small compiled loops that keep a running top k per row: a
value enters only when it beats the row's current k-th best, so after the first strips nearly
every value costs one comparison. Rows of a strip and the strip's columns below it belong to
different items, so their scans run in parallel threads without sharing any row. Where the CPU
multiplies bfloat16 natively, the product runs in bfloat16 and a few spare candidates per row
are re-ranked in float32. On a GPU the similarities of blocks of rows to all rows go straight
through ``torch.topk``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import torch
from numba import njit

from metarec_core.device import cpu_bf16_faster

STRIP_ROWS = 512  # rows per strip: the product's own blocking is most efficient near this
STRIP_COLS = 8192  # columns per block of a strip, which caps its memory at 16 MB
TILE = 64  # values compared at once before any of them is offered
BF16_SPARE = 6  # a bfloat16 search keeps k + this many candidates, re-ranked in float32
GPU_MIN_ROWS = 2048  # smaller searches stay on the CPU, where they take milliseconds
GPU_BLOCK_BYTES = 1 << 28  # a GPU block of similarities (rows x all rows) holds at most 256 MB


def search_dtype() -> torch.dtype:
    """bfloat16 where this CPU multiplies it clearly faster than float32, else float32."""
    return torch.bfloat16 if cpu_bf16_faster() else torch.float32


@njit(nogil=True, cache=True)
def _offer(node, value, other, best_v, best_i, low, low_at):  # pragma: no cover - compiled
    """``other``, at similarity ``value``, replaces ``node``'s weakest kept neighbour."""
    best_v[node, low_at[node]] = value
    best_i[node, low_at[node]] = other
    m, at = best_v[node, 0], 0
    for j in range(1, best_v.shape[1]):
        if best_v[node, j] < m:
            m, at = best_v[node, j], j
    low[node], low_at[node] = m, at


@njit(nogil=True, cache=True)
def _scan_rows(s, r0, r1, row0, col0, best_v, best_i, low, low_at):  # pragma: no cover
    """Rows r0..r1 of block ``s`` (items row0 + r) take candidates from all of its columns
    (items col0 + c), never themselves."""
    m = s.shape[1]
    for r in range(r0, r1):
        node, row = row0 + r, s[r]
        for t in range(0, m, TILE):
            e, bar, hit = min(t + TILE, m), low[node], False
            for j in range(t, e):  # a tile with nothing above the bar costs one vector pass
                hit |= row[j] > bar
            if hit:
                for j in range(t, e):
                    if row[j] > low[node] and col0 + j != node:
                        _offer(node, row[j], col0 + j, best_v, best_i, low, low_at)


@njit(nogil=True, cache=True)
def _scan_cols(s, c0, c1, row0, col0, best_v, best_i, low, low_at):  # pragma: no cover
    """Columns c0..c1 of block ``s`` (items col0 + c) take candidates from all of its rows."""
    m, bars = c1 - c0, low[col0 + c0 : col0 + c1]  # a view: offers raise the bars in place
    for r in range(s.shape[0]):
        row = s[r, c0:c1]
        for t in range(0, m, TILE):
            e, hit = min(t + TILE, m), False
            for j in range(t, e):
                hit |= row[j] > bars[j]
            if hit:
                for j in range(t, e):
                    if row[j] > bars[j]:
                        _offer(col0 + c0 + j, row[j], row0 + r, best_v, best_i, low, low_at)


def _threads() -> int:
    """Threads for the scans: as many as torch computes with (at most 8)."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1, 8))


def _cuts(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi) cut into ``parts`` nearly equal non-empty ranges."""
    edges = [lo + (hi - lo) * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def nearest(
    z: np.ndarray,
    k: int,
    rows: int = STRIP_ROWS,
    cols: int = STRIP_COLS,
    device: torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows of ``z`` (N, D) by dot product: indices (N, k) and their
    exact float32 similarities (N, k), in no particular order (``k`` at most N - 1).
    ``rows``/``cols``: the CPU's strip and block sizes. ``device``: a GPU searches there when
    N is at least ``GPU_MIN_ROWS``; None or the CPU search on the CPU."""
    n = len(z)
    k = max(1, min(k, n - 1))
    z = np.ascontiguousarray(z, dtype=np.float32)
    if device is not None and device.type != "cpu" and n >= GPU_MIN_ROWS:
        return nearest_on(z, k, device)
    zb = torch.from_numpy(z).to(torch.bfloat16) if search_dtype() == torch.bfloat16 else None
    kept = k if zb is None else min(n - 1, k + BF16_SPARE)
    best_v = np.full((n, kept), -np.inf, np.float32)
    best_i = np.zeros((n, kept), np.int64)
    low = np.full(n, -np.inf, np.float32)
    low_at = np.zeros(n, np.int64)
    state = (best_v, best_i, low, low_at)
    threads = _threads()
    with ThreadPoolExecutor(threads) as pool:
        for a in range(0, n, rows):
            e = min(a + rows, n)
            for b in range(a, n, cols):
                f = min(b + cols, n)
                s = z[a:e] @ z[b:f].T if zb is None else (zb[a:e] @ zb[b:f].T).float().numpy()
                jobs = [
                    pool.submit(_scan_rows, s, r0, r1, a, b, *state)
                    for r0, r1 in _cuts(0, e - a, threads)
                ]
                # columns of the rows' own items were covered by the rows' scan
                jobs += [
                    pool.submit(_scan_cols, s, c0, c1, a, b, *state)
                    for c0, c1 in _cuts(max(e - b, 0), f - b, threads)
                ]
                for job in jobs:
                    job.result()
    if zb is None:
        return best_i, best_v
    # bfloat16 rounds the similarities (to 1/256 near 1): the spare candidates, re-ranked in
    # float32, hold the exact nearest unless more than k others lie within that rounding
    best_v = exact_values(z, best_i)
    top = np.argpartition(-best_v, k - 1, axis=1)[:, :k]
    return np.take_along_axis(best_i, top, 1), np.take_along_axis(best_v, top, 1)


@njit(nogil=True, cache=True, fastmath=True)
def _pair_dots(z, idx, out):  # pragma: no cover - compiled
    """out[i, j] = z[i] . z[idx[i, j]] in float32, without gathering the rows."""
    for i in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            other, s = idx[i, j], np.float32(0.0)
            for t in range(z.shape[1]):
                s += z[i, t] * z[other, t]
            out[i, j] = s


def exact_values(z: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(N, k) float32 dot products of each row of ``z`` (N, D) with its rows ``idx`` (N, k)."""
    out = np.empty(idx.shape, np.float32)
    _pair_dots(np.ascontiguousarray(z, dtype=np.float32), np.ascontiguousarray(idx), out)
    return out


def nearest_on(z: np.ndarray, k: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """``nearest`` computed with torch on ``device``: each block of rows is multiplied with all
    rows and ``torch.topk`` keeps its k largest, itself excluded. The chosen similarities are
    recomputed in float32 on the CPU, whatever precision the device multiplied in."""
    n = len(z)
    k = max(1, min(k, n - 1))
    z = np.ascontiguousarray(z, dtype=np.float32)
    step = max(1, min(n, GPU_BLOCK_BYTES // (4 * n)))
    idx = np.empty((n, k), np.int64)
    with torch.no_grad():
        zt = torch.from_numpy(z).to(device)
        for a in range(0, n, step):
            e = min(a + step, n)
            s = zt[a:e] @ zt.T  # (rows, N)
            own = torch.arange(e - a, device=device)
            s[own, own + a] = -torch.inf
            idx[a:e] = s.topk(k, dim=1).indices.cpu().numpy()
    return idx, exact_values(z, idx)
