"""Ray actors of the relay cluster (installed as ``chatrelay.actors``).

Relay shards hosting per-group mailboxes and the gateway actor arrive with the cluster.
"""
