"""A model of an artifact's tree, so that symlinks are resolved through the links in it.

A symlink is safe only if its target, followed through every link the tree holds, stays inside
the tree; checking the target as text is not enough (``a/up -> ..`` then ``b -> a/up/..``). The
same model serves archives (built member by member) and directory artifacts (built by a scan).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

MAX_HOPS = 40  # as the Linux kernel: more links than this in one lookup is a loop

Parts = tuple[str, ...]
NodeKind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True)
class Node:
    kind: NodeKind
    target: str = ""  # symlinks only


_REASONS = {
    "absolute": "has an absolute target",
    "climbs": "leaves the artifact",
    "loop": f"goes through more than {MAX_HOPS} links (a loop)",
}


class LinkEscape(Exception):
    """A symlink's target, resolved through the tree, leaves it (or loops)."""

    def __init__(self, link: Parts, kind: Literal["absolute", "climbs", "loop"]) -> None:
        self.link = link
        self.kind = kind
        self.reason = _REASONS[kind]
        super().__init__(f"{'/'.join(link)}: {self.reason}")


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a file name or link target in a wheel, or None if it can."""
    if any("\udc80" <= char <= "\udcff" for char in text):
        return "is not valid UTF-8"
    if any(char < " " or "\x7f" <= char <= "\x9f" for char in text):
        return "contains control characters"
    return None


def split_relative(text: str) -> Parts | None:
    """The components of a relative path, or None if it is absolute or climbs out with ``..``."""
    if text.startswith("/"):
        return None
    parts = tuple(part for part in text.split("/") if part not in ("", "."))
    if ".." in parts:
        return None
    return parts


class TreeModel:
    """Paths (as component tuples) of a tree, each a directory, a regular file or a symlink."""

    def __init__(self) -> None:
        self.nodes: dict[Parts, Node] = {(): Node("dir")}
        # Paths that were absent while a link was resolved, each with the links that passed
        # through it: a symlink created there later changes what those links mean, so they
        # (and only they) are checked again. Checking every link again would make an archive
        # of many soname chains quadratic.
        self._assumed: dict[Parts, set[Parts]] = {}

    def get(self, path: Parts) -> Node | None:
        return self.nodes.get(path)

    def add(self, path: Parts, node: Node) -> None:
        """Record ``path``; its parent directories are recorded too (as tar creates them)."""
        for depth in range(1, len(path)):
            self.nodes.setdefault(path[:depth], Node("dir"))
        self.nodes[path] = node

    def add_checked_link(self, path: Parts, target: str) -> None:
        """Record symlink ``path -> target``; raise LinkEscape if it, or any link, now leaves."""
        self.add(path, Node("symlink", target))
        try:
            self.check_link(path)
            for link in sorted(self._assumed.pop(path, ())):
                if link != path and link in self.nodes:
                    self.check_link(link)
        except LinkEscape:
            del self.nodes[path]
            raise

    def check_all_links(self) -> None:
        self._assumed.clear()
        for path, node in sorted(self.nodes.items()):
            if node.kind == "symlink":
                self.check_link(path)

    def check_link(self, link: Parts) -> None:
        """Resolve ``link`` through the tree as the kernel would; dangling targets are fine."""
        current = list(link[:-1])
        pending = deque([self.nodes[link].target])
        hops = 0
        while pending:
            text = pending.popleft()
            if text.startswith("/"):
                raise LinkEscape(link, "absolute")
            components = deque(text.split("/"))
            while components:
                part = components.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    if not current:
                        raise LinkEscape(link, "climbs")
                    current.pop()
                    continue
                path = (*current, part)
                node = self.nodes.get(path)
                if node is None:
                    self._assumed.setdefault(path, set()).add(link)
                elif node.kind == "symlink":
                    hops += 1
                    if hops > MAX_HOPS:
                        raise LinkEscape(link, "loop")
                    # The rest of this target continues after the link's own target.
                    pending.appendleft("/".join(components))
                    pending.appendleft(node.target)
                    break
                elif node.kind == "file" and any(c not in ("", ".") for c in components):
                    return  # a file used as a directory: the link dangles (ENOTDIR)
                current.append(part)
