"""Reading an archive's members safely, without I/O beyond the local archive file.

Every member name is checked before anything is read: an absolute path, a `..` segment, a backslash or
a drive letter (zip-slip) refuses the whole archive, as do links, devices and duplicate names — nothing
is written outside the version's own names, and nothing is expanded halfway. Directory entries and the
junk of desktop archivers (`__MACOSX/`, `.DS_Store`, `Thumbs.db`) are skipped and counted. Declared
sizes are held to a per-member and a total limit (zipfile and tarfile read no more than a member's
header declares, and zipfile checks each member's size and CRC as it ends), and a zip member that would
expand more than `MAX_RATIO` times is refused as a bomb.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from forge_contracts.activities.dataset import FILE_NAME_PATTERN

MAX_RATIO = 200
"""A zip member may expand at most this many times its compressed size (past 1 MiB)."""
JUNK = re.compile(r"(^|/)(__MACOSX/.*|\.DS_Store|Thumbs\.db|desktop\.ini)$")
_NAME = re.compile(FILE_NAME_PATTERN)


class BadArchive(ValueError):
    """The archive cannot be expanded (corrupt, unsafe or too large): the reason is for the user."""


@dataclass(frozen=True)
class Member:
    name: str
    """Its name in the version (the archive's path, under the requested prefix)."""
    size_bytes: int
    """What the archive's header claims (checked as it is read)."""


@dataclass
class Listing:
    members: list[Member]
    skipped: int
    total_bytes: int


def member_name(raw: str, prefix: str) -> str:
    """The version file name of an archive member, or BadArchive for an unsafe or unusable name."""
    if "\\" in raw or raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise BadArchive(f"the member {raw!r} has an absolute or Windows path: refused (zip-slip)")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadArchive(f"the member {raw!r} climbs out of the archive with '..': refused (zip-slip)")
    name = "/".join([*filter(None, prefix.strip("/").split("/")), *parts])
    if not _NAME.match(name) or len(name) > 1000:
        raise BadArchive(
            f"the member {raw!r} cannot be a file name: each path segment must start with a letter or"
            " digit and use only letters, digits, '.', '_' and '-', and the name must end in its kind"
            " (.jsonl, .png, ...)"
        )
    return name


class Archive:
    """A zip or tar (optionally gzip, bzip2 or xz compressed) archive in a local file."""

    def __init__(self, path: Path, *, max_member_bytes: int, max_total_bytes: int, max_members: int) -> None:
        self.path = path
        self.max_member_bytes, self.max_total_bytes, self.max_members = (
            max_member_bytes,
            max_total_bytes,
            max_members,
        )
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._by_name: dict[str, zipfile.ZipInfo | tarfile.TarInfo] = {}
        try:
            if zipfile.is_zipfile(path):
                self._zip = zipfile.ZipFile(path)
            else:
                self._tar = tarfile.open(path, mode="r:*")
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
            raise BadArchive(f"not a readable zip or tar archive ({error})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def listing(self, prefix: str = "") -> Listing:
        """Every member to expand, checked (names, kinds, sizes), in archive order."""
        members: list[Member] = []
        skipped = total = 0
        try:
            entries = self._entries()
            for raw, entry, size, is_dir in entries:
                if is_dir or JUNK.search(raw):
                    skipped += 1
                    continue
                name = member_name(raw, prefix)
                if name in self._by_name:
                    raise BadArchive(f"the archive holds {raw!r} twice")
                if size > self.max_member_bytes:
                    raise BadArchive(f"the member {raw!r} is {size} bytes, more than {self.max_member_bytes}")
                total += size
                if total > self.max_total_bytes:
                    raise BadArchive(f"the archive expands to more than {self.max_total_bytes} bytes")
                if len(members) >= self.max_members:
                    raise BadArchive(f"the archive holds more than {self.max_members} files")
                self._by_name[name] = entry
                members.append(Member(name, size))
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as error:
            raise BadArchive(f"the archive is corrupt ({error})") from None
        if not members:
            raise BadArchive("the archive holds no files")
        return Listing(members, skipped, total)

    def _entries(self) -> Iterator[tuple[str, zipfile.ZipInfo | tarfile.TarInfo, int, bool]]:
        if self._zip is not None:
            for info in self._zip.infolist():
                if info.flag_bits & 0x1:
                    raise BadArchive(f"the member {info.filename!r} is encrypted")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise BadArchive(f"the member {info.filename!r} is a symbolic link: refused")
                ratio = info.file_size // max(info.compress_size, 1)
                if info.file_size > 1024**2 and ratio > MAX_RATIO:
                    raise BadArchive(
                        f"the member {info.filename!r} would expand {ratio} times: refused as a zip bomb"
                    )
                yield info.filename, info, info.file_size, info.is_dir()
            return
        assert self._tar is not None
        for member in self._tar:
            if member.issym() or member.islnk():
                raise BadArchive(f"the member {member.name!r} is a link: refused")
            if not (member.isfile() or member.isdir()):
                raise BadArchive(f"the member {member.name!r} is a device or special file: refused")
            yield member.name, member, member.size, member.isdir()

    @contextmanager
    def open(self, member: Member) -> Iterator[IO[bytes]]:
        """The member's bytes (read them with `read_counted`)."""
        entry = self._by_name[member.name]
        try:
            if isinstance(entry, zipfile.ZipInfo):
                assert self._zip is not None
                with self._zip.open(entry) as stream:
                    yield stream
            else:
                assert self._tar is not None
                stream = self._tar.extractfile(entry)
                if stream is None:
                    raise BadArchive(f"the member {member.name!r} cannot be read")
                with stream:
                    yield stream
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
            raise BadArchive(f"the member {member.name!r} is corrupt ({error})") from None
