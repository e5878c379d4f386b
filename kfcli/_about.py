"""What `kfcli --version` says: the release, the store schema this build writes, and, when
kfcli runs from a git checkout, the commit. Read without importing the store or running git:
`--version` is answered before anything else is imported (kfcli.__main__)."""

from __future__ import annotations

import os

#: The store schema this kfcli writes (kfcli.core.store.base.SCHEMA_VERSION is this one).
STORE_SCHEMA = 7


def commit() -> str | None:
    """The checked-out commit (12 hex digits) when kfcli runs from a git checkout (a worktree
    included); None for an installed package."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dot_git = os.path.join(top, ".git")
    try:
        if os.path.isfile(dot_git):  # a worktree: "gitdir: PATH"
            with open(dot_git, encoding="utf-8") as f:
                line = f.read().strip()
            if not line.startswith("gitdir:"):
                return None
            gitdir = os.path.join(top, line.partition(":")[2].strip())
        elif os.path.isdir(dot_git):
            gitdir = dot_git
        else:
            return None
        common = gitdir
        if os.path.isfile(os.path.join(gitdir, "commondir")):
            with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
                common = os.path.join(gitdir, f.read().strip())
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head[:12] or None
        ref = head.partition(":")[2].strip()
        for base in (gitdir, common):
            path = os.path.join(base, ref)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    return f.read().strip()[:12] or None
        with open(os.path.join(common, "packed-refs"), encoding="utf-8") as f:
            for line in f:
                sha, _, name = line.strip().partition(" ")
                if name == ref:
                    return sha[:12]
    except OSError:
        return None
    return None


def version_line() -> str:
    from kfcli import __version__

    at = commit()
    return (f"kfcli {__version__} (store schema {STORE_SCHEMA}"
            + (f", commit {at}" if at else "") + ")")
