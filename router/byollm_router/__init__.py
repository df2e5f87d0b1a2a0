"""byollm router: the per-tenant data plane between a tenant's agent and its LLM provider.

The router must never import kopf or the Kubernetes client: its image stays small and it
reads nothing but its environment (see :mod:`byollm_router.contract`).
"""
