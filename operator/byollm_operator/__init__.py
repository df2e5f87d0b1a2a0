"""byollm operator: reconciles LLMConfigs into per-tenant router Secrets and Deployments.

Public surface: the ``byollm-operator`` console script (:mod:`~byollm_operator.main`) and
its settings (:mod:`~byollm_operator.settings`). ``builders`` (pure: spec in, manifests
out), ``reconcile``, ``conditions`` and ``handlers`` (thin kopf triggers) are internal.
"""

__all__ = ["main", "settings"]
