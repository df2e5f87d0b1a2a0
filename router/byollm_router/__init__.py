"""byollm router: the per-tenant data plane between a tenant's agent and its LLM provider.

Public surface: :mod:`~byollm_router.contract` (the environment the router reads, shared
with the operator), :mod:`~byollm_router.forbidden` (where no router may connect, shared
with the CRD and the NetworkPolicy), ``byollm_router.app.create_app`` and the
``byollm-router`` console script (:mod:`~byollm_router.main`). Every other module is an
implementation detail. This package never imports kopf or the Kubernetes client (its
image stays small), and importing it imports nothing else: the operator and the SDK
import the contract without the server's dependencies.
"""

__all__ = ["app", "contract", "forbidden", "main"]
