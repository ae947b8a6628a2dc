"""Which files a chat takes as attachments: the rules, pure (docs/agent-workspace.md,
"Attachments").

A file is taken when all hold:

- the widget's design allows attachments (`design.attachments.enabled`, the admin's
  switch, as Omnichannel's chat widget has one for file attachments);
- its size is 1 byte to the design's `max_kb` (at most 5,120 KB: Dataverse's default
  `Organization.MaxUploadFileSize` for notes, so every file fits the note it becomes);
- its extension is one of the design's `types` and never one of `BLOCKED_EXTENSIONS`
  (Dataverse's default `Organization.BlockedAttachments` list, which it refuses for notes
  too: "Files and images overview", learn.microsoft.com/power-apps/developer/data-platform/
  files-images-overview);
- the content type the browser declared is not an executable or script type
  (`BLOCKED_TYPES`), and the first bytes are not an executable's (Windows PE `MZ`, ELF,
  Mach-O, a `#!` script), whatever the name says.

The stored type is the one the extension gives (`TYPES`), never the browser's, so a file
named `.png` is served as an image and nothing else; only `PREVIEW_TYPES` are shown inline.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "BLOCKED_EXTENSIONS",
    "BLOCKED_TYPES",
    "DEFAULT_TYPES",
    "MAX_ATTACHMENT_KB",
    "MAX_ATTACHMENTS_PER_CHAT",
    "MAX_NAME_CHARS",
    "PREVIEW_TYPES",
    "TYPES",
    "AttachmentRefused",
    "check_file",
    "check_types",
    "extension_of",
]

MAX_ATTACHMENT_KB = 5120
# Each file becomes a note written with the chat's activity; this bounds that write.
MAX_ATTACHMENTS_PER_CHAT = 10
MAX_NAME_CHARS = 255  # annotation.filename

# Dataverse's default Organization.BlockedAttachments (lower case, no dot).
BLOCKED_EXTENSIONS = frozenset(
    "ade adp app asa ashx asmx asp bas bat cdx cer chm class cmd com config cpl crt csh dll "
    "exe fxp hlp hta htr htw ida idc idq inf ins isp its jar js jse ksh lnk mad maf mag mam "
    "maq mar mas mat mau mav maw mda mdb mde mdt mdw mdz msc msh msh1 msh1xml msh2 msh2xml "
    "mshxml msi msp mst ops pcd pif prf prg printer pst reg rem scf scr sct shb shs shtm "
    "shtml soap stm tmp url vb vbe vbs vsmacros vss vst vsw ws wsc wsf wsh svg".split()
)
# Content types of programs and scripts, refused whatever the extension.
BLOCKED_TYPES = frozenset(
    {
        "application/x-msdownload",
        "application/x-msdos-program",
        "application/x-ms-installer",
        "application/x-msi",
        "application/x-executable",
        "application/x-elf",
        "application/x-mach-binary",
        "application/x-sh",
        "application/x-csh",
        "application/x-bat",
        "application/vnd.microsoft.portable-executable",
        "application/java-archive",
        "application/x-java-archive",
        "application/javascript",
        "application/ecmascript",
        "application/hta",
        "application/x-httpd-php",
        "text/javascript",
        "text/ecmascript",
        "text/html",
        "image/svg+xml",
    }
)
# What an extension is served as. Only these may be allowed by an admin.
TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "csv": "text/csv",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "zip": "application/zip",
}
DEFAULT_TYPES = ("jpg", "jpeg", "png", "gif", "webp", "pdf", "txt", "docx", "xlsx")
PREVIEW_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Executables' first bytes: PE ("MZ"), ELF, Mach-O (both byte orders, fat), a script.
_EXECUTABLE_STARTS = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")


class AttachmentRefused(ValueError):
    """A file the chat does not take; the message says why, for the person who sent it."""


def extension_of(name: str) -> str:
    """The lower-case extension after the last dot ("" when there is none)."""
    _, dot, extension = name.rpartition(".")
    return extension.lower() if dot else ""


def _clean_name(name: str) -> str:
    # A path a browser may send (C:\fakepath\x.png) is cut to its last part; control
    # characters and quotes go, as they would break a Content-Disposition header.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in name if not unicodedata.category(ch).startswith("C") and ch not in "\"'`<>"
    ).strip()
    return name[:MAX_NAME_CHARS]


def check_file(
    name: str,
    declared_type: str,
    data: bytes,
    *,
    enabled: bool,
    max_kb: int,
    types: tuple[str, ...],
) -> tuple[str, str]:
    """The file's clean name and its content type; AttachmentRefused when not taken."""
    if not enabled:
        raise AttachmentRefused("This chat does not take attachments.")
    clean = _clean_name(name)
    extension = extension_of(clean)
    if not clean or not extension:
        raise AttachmentRefused("The file needs a name with an extension, like photo.png.")
    if (
        extension in BLOCKED_EXTENSIONS
        or declared_type.split(";")[0].strip().lower() in BLOCKED_TYPES
    ):
        raise AttachmentRefused("Programs and scripts cannot be sent.")
    if extension not in types or extension not in TYPES:
        raise AttachmentRefused(f"Only these files can be sent: {', '.join(types)}.")
    if not data:
        raise AttachmentRefused("The file is empty.")
    if len(data) > min(max_kb, MAX_ATTACHMENT_KB) * 1024:
        raise AttachmentRefused(f"The file is larger than {min(max_kb, MAX_ATTACHMENT_KB)} KB.")
    if data.startswith(_EXECUTABLE_STARTS):
        raise AttachmentRefused("Programs and scripts cannot be sent.")
    return clean, TYPES[extension]


def check_types(types: tuple[str, ...]) -> tuple[str, ...]:
    """An admin's list of extensions, lower case; ValueError for one that may not be."""
    cleaned = tuple(dict.fromkeys(t.strip().lower().lstrip(".") for t in types if t.strip()))
    for extension in cleaned:
        if not _EXTENSION.fullmatch(extension) or extension in BLOCKED_EXTENSIONS:
            raise ValueError(f"{extension!r} files cannot be allowed")
        if extension not in TYPES:
            raise ValueError(f"{extension!r} is not one of {', '.join(sorted(TYPES))}")
    return cleaned
