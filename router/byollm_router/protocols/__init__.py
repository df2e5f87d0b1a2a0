"""The Responses API and the Messages API on top of the router's provider adapters.

Pure translation lives in :mod:`.messages_chat` (Anthropic Messages ⇄ OpenAI chat
completions, for OpenAI-wire providers) and :mod:`.responses_messages` (OpenAI Responses ⇄
Anthropic Messages, for the Anthropic provider); :mod:`.calls` turns a request into the one
upstream call for the configured provider. Nothing here does I/O.
"""
