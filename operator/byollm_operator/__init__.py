"""byollm operator: reconciles LLMConfigs into per-tenant router Secrets and Deployments."""
