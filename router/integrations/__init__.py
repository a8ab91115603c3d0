"""Integrations with other tools. :mod:`router.integrations.litellm_proxy`: the LiteLLM proxy plugin.

Importing this package (or the plugin module) never imports litellm; the proxy's ``CustomLogger`` base
class is resolved when the proxy first asks for the handler object.
"""
