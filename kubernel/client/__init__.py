"""The shared model's I/O edge: logging in to the cluster (``connect``) and the raw reads
that skip the client's model deserialisation (``raw``). Everything else in ``kubernel``
is pure; an import contract (pyproject.toml) keeps it so."""
