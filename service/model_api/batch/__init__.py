"""`model-api batch`: score one contiguous shard of a dataset with the served model, exactly once.

Shard *i* of *n* reads its rows of the input (CSV, JSON Lines or Parquet), scores them in batches, and
commits `part-<i>-of-<n>.jsonl`, `errors-<i>-of-<n>.jsonl` and the `_SUCCESS-<i>` marker atomically
(Hadoop's convention: the marker is written last, so its presence means the shard is whole). A Kubernetes
Indexed Job runs one shard per completion index; the exit codes are what its `podFailurePolicy` acts on.

Modules: `shards` (row ranges and file names), `inputs` (readers turning rows into model inputs),
`outputs` (the atomic writer and the marker), `job` (one shard from start to marker, exit codes).
"""
