"""byollm development tools, for a source checkout only (never in an image): the local
control plane (:mod:`~byollm_dev.controlplane`), ``byollm dev`` (:mod:`~byollm_dev.dev`)
and the generators of committed files (:mod:`~byollm_dev.generate`)."""

__all__ = ["controlplane", "dev", "generate"]
