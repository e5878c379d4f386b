"""The Typer command line: one module per command group, each thin (parse -> core -> render).

Nothing here imports `requests`, rich tables or the sandbox at import time.
"""
