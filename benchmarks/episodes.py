"""Meta-training episodes sampled straight from DuckDB (store table or Parquet), batch by batch.

An episode is one user's first ``k`` interactions in order (the support) and the next distinct
items that are not in the support (the query), the same split the cold-start protocol uses. The
sampler never loads the interaction table into pandas: it keeps only the list of eligible users
(one GROUP BY) and, per batch, fetches the rows of the sampled users with one SQL query that also
does the support/query split, so memory stays flat whether the log has 100k or 10M rows.

It serves the scale benchmark (``bench_scale``: episode throughput from a 10M-row log); the
cold-start trainer samples its own episodes in memory (``coldstart.episodes``). Use::

    sampler = EpisodeSampler.from_store(store, "beauty", item_ids=catalogue, cfg=EpisodeConfig(k_support=3))
    for batch in sampler.batches(n_batches=1000):   # EpisodeBatch of padded index arrays
        support = torch.as_tensor(batch.support)    # (B, K) item indices, -1 = padding
        ...

``EpisodeConfig.rank``/``world_size`` give each data-parallel worker a disjoint share of the
users.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from metarec_core.data.schema import table_ref
from metarec_core.errors import ValidationError


@dataclass(frozen=True)
class EpisodeConfig:
    """How episodes are cut and batched.

    Attributes:
        k_support: interactions in the support set (the user's first k, in order).
        n_query: at most this many query items (later distinct items not in the support).
        min_query: users with fewer than k_support + min_query interactions are not sampled.
        horizon: query items come from the first ``horizon`` interactions of a user (0 means
            k_support + 4 * n_query), so a heavy user costs no more than a light one.
        batch_users: users per batch (one SQL query per batch).
        block_users: 0 shuffles all users; otherwise users are shuffled within contiguous blocks
            of this many (in user_id order) and the blocks are shuffled, so a batch covers a
            narrow user_id range and reads only a few row groups of a table sorted by user
            (the store's interactions are). Every user still comes once per epoch.
        seed: sampling order is a function of (seed, rank, epoch).
        rank, world_size: data-parallel sharding of the users (disjoint shares per rank).
    """

    k_support: int = 3
    n_query: int = 20
    min_query: int = 1
    horizon: int = 0
    batch_users: int = 256
    block_users: int = 0
    seed: int = 0
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.k_support < 1 or self.n_query < 1 or self.min_query < 1:
            raise ValidationError("episodes: k_support, n_query and min_query must be >= 1")
        if self.batch_users < 1 or self.block_users < 0:
            raise ValidationError("episodes: batch_users must be >= 1 and block_users >= 0")
        if self.horizon == 0:
            object.__setattr__(self, "horizon", self.k_support + 4 * self.n_query)
        if self.horizon <= self.k_support:
            raise ValidationError("episodes: horizon must exceed k_support")
        if not 0 <= self.rank < self.world_size:
            raise ValidationError(
                f"episodes: rank {self.rank} outside world_size {self.world_size}"
            )


@dataclass(frozen=True)
class Episode:
    """One user's episode as item indices into the sampler's ``item_ids``."""

    user_id: str
    support: np.ndarray  # (k,) int64
    query: np.ndarray  # (q,) int64, disjoint from support


@dataclass(frozen=True)
class EpisodeBatch:
    """Episodes of several users as padded arrays (ready for ``torch.as_tensor``)."""

    user_ids: list[str]
    support: np.ndarray  # (B, K) int64 item indices, -1 where padded
    query: np.ndarray  # (B, Q) int64 item indices, -1 where padded

    @property
    def support_mask(self) -> np.ndarray:  # (B, K) bool
        return self.support >= 0

    @property
    def query_mask(self) -> np.ndarray:  # (B, Q) bool
        return self.query >= 0

    def __len__(self) -> int:
        return len(self.user_ids)

    def episodes(self) -> list[Episode]:
        """The batch as a list of unpadded episodes."""
        return [
            Episode(u, s[s >= 0], q[q >= 0])
            for u, s, q in zip(self.user_ids, self.support, self.query, strict=True)
        ]


_BATCH_SQL = """
WITH b AS (SELECT unnest(?::VARCHAR[]) AS user_id),
r AS (
    SELECT x.user_id, x.item_id, x.position AS rn
    FROM {rel} x SEMI JOIN b ON x.user_id = b.user_id
    WHERE x.user_id BETWEEN ? AND ?  -- lets a table sorted by user skip most row groups
      AND x.position < ?             -- only the horizon, however long the history
),
s AS (SELECT user_id, item_id, rn FROM r WHERE rn < ?),
q AS (
    SELECT r.user_id, r.item_id, min(r.rn) AS rn FROM r
    ANTI JOIN s ON s.user_id = r.user_id AND s.item_id = r.item_id
    WHERE r.rn >= ?
    GROUP BY r.user_id, r.item_id
    QUALIFY row_number() OVER (PARTITION BY r.user_id ORDER BY min(r.rn)) <= ?
),
both_sets AS (
    SELECT user_id, item_id, rn, true AS is_support FROM s
    UNION ALL SELECT user_id, item_id, rn, false FROM q
)
SELECT x.user_id, m.idx, x.is_support,
       (row_number() OVER (PARTITION BY x.user_id, x.is_support ORDER BY x.rn) - 1) AS slot
FROM both_sets x JOIN _episode_items m ON m.item_id = x.item_id
"""


class EpisodeSampler:
    """Samples batches of episodes from a DuckDB relation with user_id, item_id, position.

    ``position`` must be the 0-based order within the user (the store's canonical column), so
    the support is simply ``position < k`` and no window over a user's history is needed.

    Args:
        con: a DuckDB connection (or cursor) that can read ``relation``; the sampler uses its own
            cursor of it.
        relation: a table expression, e.g. ``"beauty".interactions`` or a view name.
        item_ids: the catalogue order the trainer uses (index i = item_ids[i]); items outside it
            are dropped from episodes. None: every item of the relation, sorted.
        cfg: episode shape, batch size, seed and sharding.
        users: restrict sampling to these users (e.g. the warm users of a split).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        item_ids: Sequence[str] | None = None,
        cfg: EpisodeConfig | None = None,
        users: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg or EpisodeConfig()
        self.relation = relation
        self._cur = con.cursor()
        if item_ids is None:
            rows = self._cur.execute(
                f"SELECT DISTINCT item_id::VARCHAR FROM {relation} ORDER BY 1"
            ).fetchall()
            item_ids = [r[0] for r in rows]
        self.item_ids = [str(i) for i in item_ids]
        index = pa.table(
            {
                "item_id": pa.array(self.item_ids, pa.string()),
                "idx": pa.array(np.arange(len(self.item_ids), dtype=np.int64)),
            }
        )
        self._cur.register("_episode_items", index)
        self.user_ids = self._eligible_users(users)
        if len(self.user_ids) == 0:
            raise ValidationError(
                f"episodes: no user has at least {self.cfg.k_support + self.cfg.min_query} "
                "interactions"
            )

    # ---- constructors --------------------------------------------------------------------
    @classmethod
    def from_store(
        cls,
        store,
        dataset: str,
        item_ids: Sequence[str] | None = None,
        cfg: EpisodeConfig | None = None,
        users: Sequence[str] | None = None,
    ) -> EpisodeSampler:
        """Sample from a dataset of a ``metarec_core.data.store.Store`` (its own cursor)."""
        real = store._resolve(dataset)
        if item_ids is None:
            cur = store.cursor()
            try:
                rows = cur.execute(
                    f"SELECT item_id FROM {table_ref(real, 'items')} ORDER BY item_id"
                ).fetchall()
            finally:
                cur.close()
            item_ids = [r[0] for r in rows]
        return cls(store.cursor(), table_ref(real, "interactions"), item_ids, cfg, users)

    @classmethod
    def from_parquet(
        cls,
        path_or_glob: str,
        item_ids: Sequence[str] | None = None,
        cfg: EpisodeConfig | None = None,
        users: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> EpisodeSampler:
        """Sample straight from Parquet files (a glob or hive-partitioned folder; also s3://
        and https:// paths once DuckDB's httpfs extension is loaded on the connection)."""
        con = duckdb.connect()
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        literal = "'" + str(path_or_glob).replace("'", "''") + "'"  # views take no parameters
        con.execute(
            "CREATE VIEW episode_source AS SELECT user_id::VARCHAR AS user_id, "
            "item_id::VARCHAR AS item_id, position "
            f"FROM read_parquet({literal}, hive_partitioning = true)"
        )
        return cls(con, "episode_source", item_ids, cfg, users)

    # ---- sampling ------------------------------------------------------------------------
    def _eligible_users(self, users: Sequence[str] | None) -> np.ndarray:
        need = self.cfg.k_support + self.cfg.min_query
        rows = self._cur.execute(
            f"SELECT user_id::VARCHAR FROM {self.relation} GROUP BY user_id "
            "HAVING count(*) >= ? ORDER BY user_id",
            [need],
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=object)
        if users is not None:
            ids = ids[np.isin(ids, np.array([str(u) for u in users], dtype=object))]
        return ids[self.cfg.rank :: self.cfg.world_size]  # this worker's share

    @property
    def n_users(self) -> int:
        """Users this sampler (this rank) draws from."""
        return len(self.user_ids)

    def fetch(self, user_ids: Sequence[str]) -> EpisodeBatch:
        """Episodes of exactly these users (those left without a query item are dropped)."""
        k, nq = self.cfg.k_support, self.cfg.n_query
        wanted = [str(u) for u in user_ids]
        if not wanted:
            return EpisodeBatch([], np.zeros((0, k), np.int64), np.zeros((0, nq), np.int64))
        params = [wanted, min(wanted), max(wanted), self.cfg.horizon, k, k, nq]
        res = self._cur.execute(_BATCH_SQL.format(rel=self.relation), params).fetchnumpy()
        users = np.asarray(res["user_id"], dtype=object)
        is_sup = np.asarray(res["is_support"], dtype=bool)
        has_query = set(users[~is_sup].tolist())
        order = [u for u in dict.fromkeys(wanted) if u in has_query]
        row_of = {u: i for i, u in enumerate(order)}
        keep = np.fromiter((u in row_of for u in users), dtype=bool, count=len(users))
        rows = np.fromiter((row_of.get(u, -1) for u in users), dtype=np.int64, count=len(users))
        idx = np.asarray(res["idx"], dtype=np.int64)
        slot = np.asarray(res["slot"], dtype=np.int64)
        support = np.full((len(order), k), -1, dtype=np.int64)
        query = np.full((len(order), nq), -1, dtype=np.int64)
        s, q = keep & is_sup, keep & ~is_sup
        support[rows[s], slot[s]] = idx[s]
        query[rows[q], slot[q]] = idx[q]
        return EpisodeBatch(order, support, query)

    def epoch(self, epoch: int = 0) -> Iterator[EpisodeBatch]:
        """Every user of this rank once, in a shuffled order fixed by (seed, rank, epoch)."""
        rng = np.random.default_rng([self.cfg.seed, self.cfg.rank, epoch])
        n, block = len(self.user_ids), self.cfg.block_users
        if block and block < n:
            starts = rng.permutation(np.arange(0, n, block))
            perm = np.concatenate([s + rng.permutation(min(block, n - s)) for s in starts])
        else:
            perm = rng.permutation(n)
        bs = self.cfg.batch_users
        for start in range(0, len(perm), bs):
            batch = self.fetch(self.user_ids[perm[start : start + bs]].tolist())
            if len(batch):
                yield batch

    def batches(self, n_batches: int | None = None) -> Iterator[EpisodeBatch]:
        """Batches epoch after epoch (forever when ``n_batches`` is None)."""
        done, epoch = 0, 0
        while n_batches is None or done < n_batches:
            for batch in self.epoch(epoch):
                yield batch
                done += 1
                if n_batches is not None and done >= n_batches:
                    return
            epoch += 1

    def close(self) -> None:
        self._cur.close()


def prefetch(batches: Iterator[EpisodeBatch], depth: int = 2) -> Iterator[EpisodeBatch]:
    """Run ``batches`` in a background thread, ``depth`` ahead (DuckDB releases the GIL).

    When the consumer stops early (``break``, an exception, ``close()``), the worker finishes the
    batch it is fetching and ends before this generator returns, so the sampler's cursor is free
    for the next epoch.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    end, stop = object(), threading.Event()

    def put(x: object) -> bool:
        while not stop.is_set():
            try:
                box.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(exc)
        put(end)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while (item := box.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
