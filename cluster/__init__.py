"""The cluster shell (installed as ``chatrelay.cluster``): gRPC gateway servicer,
registry, message log, placement and the ``up`` bootstrap.
"""
