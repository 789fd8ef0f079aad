"""ELF files: reading facts, editing RUNPATH, and checking the dependency closure."""

from wheelyard.elf.closure import (
    MANYLINUX_SYSTEM_LIBS,
    ClosureReport,
    ShippedElf,
    check_closure,
    plan_runpaths,
    platform_tag,
)
from wheelyard.elf.names import check_names, check_shadowing
from wheelyard.elf.read import ElfInfo, read_elf
from wheelyard.elf.rpath import set_runpath

__all__ = [
    "MANYLINUX_SYSTEM_LIBS",
    "ClosureReport",
    "ElfInfo",
    "ShippedElf",
    "check_closure",
    "check_names",
    "check_shadowing",
    "plan_runpaths",
    "platform_tag",
    "read_elf",
    "set_runpath",
]
