"""What the image needs to know of an ELF file: its machine, its dynamic loader and the libraries it loads.

Implements the few parts of the System V ABI's ELF format (``elf(5)``; the generic ABI's "Program Header" and
"Dynamic Section" chapters) that decide what a binary needs at run time:

- ``e_machine`` (the EM_* number of the CPU it runs on), checked against the platform being built;
- the ``PT_INTERP`` program header, the path of the dynamic loader the kernel starts (absent: a static binary);
- the ``DT_NEEDED`` entries of the ``PT_DYNAMIC`` segment: the sonames the loader must find, offsets into the
  string table ``DT_STRTAB`` names by its virtual address (mapped to a file offset through the ``PT_LOAD``
  segments).

Written by hand: no ELF reader is among the project's dependencies (pyelftools is not), and these three fields
are a hundred lines of ``struct``; a malformed file is an :class:`ElfError` naming it, never an IndexError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from minimirror.errors import UsageError

__all__ = ["ELF_MACHINES", "ElfError", "ElfInfo", "check_machine", "read_elf"]

# ELF e_machine of each Debian architecture (the System V ABI's EM_* numbers).
ELF_MACHINES = {
    "amd64": 62, "arm64": 183, "i386": 3, "armhf": 40, "armel": 40, "ppc64el": 21, "s390x": 22,
    "riscv64": 243, "mips64el": 8, "loong64": 258,
}  # fmt: skip

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5


class ElfError(UsageError):
    """A file that is not a readable ELF object, or one built for another machine."""


@dataclass(frozen=True, slots=True)
class ElfInfo:
    """An ELF object's machine, its loader (``PT_INTERP``; None when static) and its ``DT_NEEDED`` sonames."""

    machine: int
    interpreter: str | None
    needed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Segment:
    kind: int
    offset: int
    vaddr: int
    filesz: int


def read_elf(data: bytes, name: str) -> ElfInfo:
    """The machine, loader and needed libraries of the ELF object ``data`` (``name`` is used in errors)."""
    if data[:4] != b"\x7fELF" or len(data) < 52 or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ElfError(f"{name} is not an ELF executable")
    try:
        return _read(data, data[4] == 2, "<" if data[5] == 1 else ">")
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise ElfError(f"{name} is a damaged ELF file ({exc})") from exc


def _read(data: bytes, is64: bool, endian: str) -> ElfInfo:
    machine = struct.unpack_from(f"{endian}H", data, 18)[0]
    segments = _segments(data, is64, endian)
    interpreter = next(
        (data[s.offset : s.offset + s.filesz].rstrip(b"\0").decode() for s in segments if s.kind == _PT_INTERP), None
    )
    return ElfInfo(machine, interpreter, _needed(data, segments, is64, endian))


def _segments(data: bytes, is64: bool, endian: str) -> list[_Segment]:
    if is64:
        phoff = struct.unpack_from(f"{endian}Q", data, 0x20)[0]
        phentsize, phnum = struct.unpack_from(f"{endian}HH", data, 0x36)
        layout, fields = f"{endian}IIQQQQ", (0, 2, 3, 5)  # type, flags, offset, vaddr, paddr, filesz
    else:
        phoff = struct.unpack_from(f"{endian}I", data, 0x1C)[0]
        phentsize, phnum = struct.unpack_from(f"{endian}HH", data, 0x2A)
        layout, fields = f"{endian}IIIII", (0, 1, 2, 4)  # type, offset, vaddr, paddr, filesz
    found = []
    for i in range(phnum):
        values = struct.unpack_from(layout, data, phoff + i * phentsize)
        found.append(_Segment(*(values[f] for f in fields)))
    return found


def _needed(data: bytes, segments: list[_Segment], is64: bool, endian: str) -> tuple[str, ...]:
    dynamic = next((s for s in segments if s.kind == _PT_DYNAMIC), None)
    if dynamic is None:
        return ()
    entry = struct.Struct(f"{endian}qQ" if is64 else f"{endian}iI")
    needed: list[int] = []
    strtab = None
    for offset in range(dynamic.offset, dynamic.offset + dynamic.filesz - entry.size + 1, entry.size):
        tag, value = entry.unpack_from(data, offset)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed.append(value)
        elif tag == _DT_STRTAB:
            strtab = _file_offset(segments, value)
    if not needed:
        return ()
    if strtab is None:
        raise IndexError("DT_NEEDED without a DT_STRTAB in a loaded segment")
    return tuple(_string(data, strtab + index) for index in needed)


def _file_offset(segments: list[_Segment], vaddr: int) -> int | None:
    for segment in segments:
        if segment.kind == _PT_LOAD and segment.vaddr <= vaddr < segment.vaddr + segment.filesz:
            return segment.offset + vaddr - segment.vaddr
    return None


def _string(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode()


def check_machine(info: ElfInfo, architecture: str, name: str) -> None:
    """``name`` runs on ``architecture``: a platform's manifest must not carry another platform's binary."""
    expected = ELF_MACHINES.get(architecture)
    if expected is not None and info.machine != expected:
        raise ElfError(
            f"{name} is built for ELF machine {info.machine}, not {architecture} ({expected}); "
            "the lock names the wrong .deb for this architecture"
        )
