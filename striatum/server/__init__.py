"""The verb registry (``registry``) and the faces generated from it (``mcp``).

Importing this package imports nothing: the CLI takes the result documents
(``results``) from here without paying for the registry's table or the MCP SDK.
"""
