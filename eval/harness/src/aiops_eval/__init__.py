"""The analyzer's evaluation harness: scenarios, replay, scores, cost and latency per engine.

Its own package (``eval/harness``) so the service and its image carry none of it; installed by
``make install``. ``aiops-analyzer eval`` runs :func:`aiops_eval.cli.main`. The pieces:
``scenario`` (loading), ``world``/``world_replay``/``logql`` (world scenarios: a real Prometheus
and a Loki stand-in), ``recorded``/``replay`` (query-keyed recordings and the loopback server),
``prompt_recorder`` (what the llm engine sent), ``scoring``, ``judge``, ``runner`` and ``report``.
"""
