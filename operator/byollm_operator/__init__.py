"""byollm operator: reconciles LLMConfig resources into per-tenant router Secrets and Deployments."""
