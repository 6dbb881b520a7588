"""Evaluation harness: recorded alert scenarios, scored answers, cost and latency per engine.

``aiops-analyzer eval`` runs :func:`aiops_analyzer.evaluation.cli.main`; the pieces are
``scenario`` (loading), ``recorded``/``replay`` (loopback Prometheus and Loki), ``prompt_recorder``
(what the llm engine sent), ``scoring``, ``judge``, ``runner`` and ``report``.
"""
