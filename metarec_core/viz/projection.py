"""2-D maps of item embeddings: PCA(50) + scikit-learn neighbours fed to UMAP, cached on disk.

UMAP compiles its numba kernels on the first fit in every process (tens of seconds); computing the
k-nearest-neighbour graph ourselves (PCA to 50 dims, exact sklearn search) and passing it as
``precomputed_knn`` skips UMAP's own nearest-neighbour descent, which is most of that compile time.
Finished projections are keyed by a hash of the vectors and parameters and kept as ``.npz`` files,
so the same map is instant the second time, in any process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarec_core.types import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

_MEMORY: dict[str, np.ndarray] = {}
_LOCK = threading.Lock()
_FIT_LOCK = threading.Lock()  # one UMAP fit at a time (the warm-up counts as one)
_WARM = threading.Event()


@dataclass(frozen=True)
class ProjectionParams:
    """UMAP settings. ``pca_dims`` = 0 skips the PCA step."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    pca_dims: int = 50
    n_epochs: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_neighbors < 2:
            raise ValueError("n_neighbors must be at least 2")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError("min_dist must lie in [0, 1]")


@dataclass(frozen=True)
class Projection:
    """Item coordinates on the map: ``coords[i]`` is the (x, y) of ``ids[i]``."""

    ids: np.ndarray  # (N,) str
    coords: np.ndarray  # (N, 2) float32
    cached: bool
    seconds: float

    def place(self, vectors: np.ndarray, item_vectors: np.ndarray, k: int = 10) -> np.ndarray:
        """Put extra vectors (prototypes, probes) on the map: similarity-weighted mean of the 2-D
        positions of their ``k`` most cosine-similar items. Returns (M, 2)."""
        if len(vectors) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        a = _unit(np.asarray(vectors, dtype=np.float32))  # (M, D)
        b = _unit(np.asarray(item_vectors, dtype=np.float32))  # (N, D)
        sims = a @ b.T  # (M, N)
        k = min(k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (M, k)
        w = np.take_along_axis(sims, top, axis=1)
        w = np.exp((w - w.max(axis=1, keepdims=True)) * 10.0)  # sharpen towards the closest
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("mk,mkd->md", w, self.coords[top]).astype(np.float32)

    def centroid_of(self, ids, weights=None) -> np.ndarray | None:
        """The (x, y) centre of the given items (weighted), or None when none are on the map."""
        pos = {str(i): n for n, i in enumerate(self.ids)}
        rows = [pos[str(i)] for i in ids if str(i) in pos]
        if not rows:
            return None
        w = None
        if weights is not None:
            wmap = dict(zip(map(str, ids), weights, strict=False))
            w = np.array([max(float(wmap[str(self.ids[r])]), 1e-6) for r in rows])
        return np.average(self.coords[rows], axis=0, weights=w).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def projection_key(ids: np.ndarray, vectors: np.ndarray, params: ProjectionParams) -> str:
    """A stable cache key for (ids, vectors, params)."""
    h = hashlib.sha1()
    h.update(repr(params).encode())
    h.update("\x1f".join(map(str, ids)).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()[:24]


def cached_projection(
    ids: np.ndarray, vectors: np.ndarray, params: ProjectionParams, cache_dir: Path | None
) -> np.ndarray | None:
    """The coordinates already computed for these inputs, or None."""
    key = projection_key(ids, vectors, params)
    with _LOCK:
        if key in _MEMORY:
            return _MEMORY[key]
    if cache_dir is not None:
        path = Path(cache_dir) / f"{key}.npz"
        if path.exists():
            try:
                coords = np.load(path)["coords"]
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable projection cache %s", path)
                return None
            with _LOCK:
                _MEMORY[key] = coords
            return coords
    return None


def project(
    ids,
    vectors: np.ndarray,
    params: ProjectionParams | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress = no_progress,
) -> Projection:
    """UMAP coordinates of ``vectors`` (N, D), from the cache when these inputs were seen before."""
    params = params or ProjectionParams()
    ids = np.asarray([str(i) for i in ids], dtype=object)
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
    cache = Path(cache_dir) if cache_dir is not None else None
    start = time.perf_counter()
    hit = cached_projection(ids, vectors, params, cache)
    if hit is not None:
        progress(ProgressEvent("project", 4, 4, "loaded from cache"))
        return Projection(ids, hit, True, time.perf_counter() - start)
    if not _WARM.is_set() and _FIT_LOCK.locked():
        progress(ProgressEvent("project", 0, 4, "waiting for the UMAP warm-up to finish"))
    with _FIT_LOCK:
        coords = _fit(vectors, params, progress)
    _WARM.set()
    key = projection_key(ids, vectors, params)
    with _LOCK:
        _MEMORY[key] = coords
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{key}.{uuid.uuid4().hex}.npz"
        np.savez(tmp, coords=coords)
        os.replace(tmp, cache / f"{key}.npz")
    progress(ProgressEvent("project", 4, 4, "done"))
    return Projection(ids, coords, False, time.perf_counter() - start)


def _fit(vectors: np.ndarray, params: ProjectionParams, progress: Progress) -> np.ndarray:
    n = len(vectors)
    if n < 4:  # UMAP needs a neighbourhood; tiny inputs get a PCA layout
        out = np.zeros((n, 2), dtype=np.float32)
        if n > 1:
            centred = vectors - vectors.mean(0)
            u, s, _ = np.linalg.svd(centred, full_matrices=False)
            out[:, : min(2, len(s))] = (u * s)[:, :2]
        return out
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    x = _unit(vectors)  # cosine geometry on unit rows == euclidean geometry
    dims = min(params.pca_dims, x.shape[1], n - 1)
    progress(ProgressEvent("project", 0, 4, f"PCA to {dims} dimensions"))
    if params.pca_dims and dims < x.shape[1]:
        x = PCA(n_components=dims, random_state=params.seed).fit_transform(x).astype(np.float32)
    k = min(params.n_neighbors, n - 1)
    progress(ProgressEvent("project", 1, 4, f"{k} nearest neighbours of {n} items"))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)  # self is first column
    progress(
        ProgressEvent("project", 2, 4, "UMAP layout (the first map in a session compiles, ~15 s)")
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seed disables parallelism; no transform needed
        import umap

        reducer = umap.UMAP(
            n_neighbors=k,
            n_components=2,
            min_dist=params.min_dist,
            n_epochs=params.n_epochs,
            random_state=params.seed,
            precomputed_knn=(idx, dist, None),
            init="spectral" if n > 50 else "random",
        )
        coords = reducer.fit_transform(x).astype(np.float32)
    progress(ProgressEvent("project", 3, 4, "layout done"))
    return coords


def warm_up() -> None:
    """Compile UMAP's numba kernels on a tiny input (idempotent; run it in a background thread
    when the app starts so the first real map does not pay the compile time)."""
    if _WARM.is_set():
        return
    with _FIT_LOCK:
        if _WARM.is_set():
            return
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 8)).astype(np.float32)
        try:
            _fit(x, ProjectionParams(n_neighbors=5, pca_dims=0, n_epochs=20), no_progress)
        except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
            log.warning("UMAP warm-up failed", exc_info=True)
        _WARM.set()


def start_warm_up(delay_s: float = 5.0) -> threading.Thread:
    """Run ``warm_up`` in a daemon thread after ``delay_s`` (let the first page draw first)."""

    def _run() -> None:
        time.sleep(delay_s)
        warm_up()

    t = threading.Thread(target=_run, name="umap-warm-up", daemon=True)
    t.start()
    return t
