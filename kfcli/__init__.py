"""kfcli: the command line and Python library for WeChat Customer Service (微信客服) on WeCom.

The library lives in `kfcli.core` (`from kfcli.core import KfClient`); the CLI in `kfcli.cli`.
"""

__version__ = "0.1.0"
