"""Every file a stage writes goes through here: complete or not at all, and the same bytes everywhere.

- `atomic(path)` hands a writer a temporary name in the target's own folder and renames it over
  the target only once the writer has finished. A failure (a full disk, a read-only folder, a
  crash) leaves the old file or none, never a truncated one; the temporary file is removed.
- `check_writable(...)` tries every folder a stage will write into before the stage starts its
  work, so that a read-only folder fails in the first second, not after an hour of training.
- `write_npz(path, **arrays)` writes an .npz that `np.load` reads, byte for byte the same under
  any Python release and any NumPy: numpy's own `savez` leaves the zip headers to the standard
  library's zipfile, whose zip64 extras changed between 3.11 patch releases, and the .npy header
  padding to NumPy, which changed between NumPy releases.
"""

import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _temporary(path: Path) -> Path:
    # The target's full name at the end, so writers that check the suffix (Keras wants `.keras`
    # and `.weights.h5`, matplotlib picks the format from it) accept the temporary name; the dot
    # hides a left-over from `ls` should the process be killed outright.
    return path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")


def _discard(temporary: Path) -> None:
    """Remove a temporary file if it is there. Never raises: on a read-only file system even
    unlinking a file that was never created fails (EROFS), and that must not hide the real error."""
    try:
        temporary.unlink(missing_ok=True)
    except OSError:
        pass


# Within all_or_nothing(): each finished temporary file and the target it will replace.
_pending: dict[Path, Path] | None = None


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """Hold back every atomic() rename until the block ends; if it fails, drop them all.

    run_stage wraps each stage in this, so a stage that fails half-way (a full disk on its third
    file) leaves every one of its outputs as it was, not a mix of old and new files.
    """
    global _pending
    if _pending is not None:  # already inside one
        yield
        return
    _pending = {}
    try:
        yield
        for path, temporary in _pending.items():
            os.replace(temporary, path)
    finally:
        for temporary in _pending.values():
            _discard(temporary)
        _pending = None


@contextmanager
def handed_over() -> Iterator[dict[Path, Path]]:
    """all_or_nothing() for a helper process of a stage: the block's finished temporary files are
    handed over (target -> temporary, in the dict yielded, once the block ends) instead of renamed.
    The stage's process adopt()s them, so they are replaced together with its own outputs, or
    dropped with them. A failed block removes them, as all_or_nothing() does."""
    global _pending
    if _pending is not None:
        raise RuntimeError("handed_over() is for a helper process, not inside all_or_nothing()")
    _pending, handed = {}, {}
    try:
        yield handed
        handed.update(_pending)
        _pending.clear()
    finally:
        for temporary in _pending.values():
            _discard(temporary)
        _pending = None


def adopt(handed: dict[Path, Path]) -> None:
    """Take a helper process's finished files (handed_over()) as if this process had written them."""
    for path, temporary in handed.items():
        path = Path(path)
        if _pending is None:
            os.replace(temporary, path)
            continue
        earlier = _pending.pop(path, None)
        if earlier is not None:
            _discard(earlier)
        _pending[path] = Path(temporary)


def copy_as_committed(source: Path, target: Path) -> None:
    """Copy a file or folder as it will be once this stage's held-back renames are done: pending
    temporary files in place of their targets, left-over temporaries skipped. (A resume checkpoint
    keeps a finished seed's outputs while the stage still runs: inside all_or_nothing() a model
    saved a minute ago exists only under its temporary name.)"""
    import shutil

    source, target = Path(source), Path(target)
    pending = {Path(path).resolve(): temporary for path, temporary in (_pending or {}).items()}
    if source.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".tmp-*"))
        for path, temporary in pending.items():
            if path.is_relative_to(source.resolve()):
                copied = target / path.relative_to(source.resolve())
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(temporary, copied)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pending.get(source.resolve(), source), target)


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; once the block ends without error it replaces `path`
    (at once, or at the end of the enclosing all_or_nothing()).

    No fsync: the aim is that an error (disk full, permission, a crash of this process) never
    leaves a mix of old and new bytes; DVC re-hashes every output anyway.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    kept = False
    try:
        yield temporary
        if _pending is not None:
            earlier = _pending.pop(path, None)
            if earlier is not None:
                _discard(earlier)
            _pending[path] = temporary
            kept = True
        else:
            os.replace(temporary, path)
    except OSError as error:
        if error.filename is None or str(error.filename) == str(temporary):
            error.filename = str(path)  # the user knows the target, not our temporary name
        raise
    finally:
        if not kept:
            _discard(temporary)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_csv(table: Any, path: Path) -> None:
    """A pandas DataFrame as CSV, without its index (how every table of the study is written)."""
    with atomic(path) as temporary:
        table.to_csv(temporary, index=False)


def save_model(network: Any, path: Path) -> None:
    """A Keras model (`.keras`) or, for a `.weights.h5` path, only its weights."""
    with atomic(path) as temporary:
        if path.name.endswith(".weights.h5"):
            network.save_weights(temporary)
        else:
            network.save(temporary)


def remove_tree(folder: Path) -> None:
    """Remove folder and everything in it, if it is there; a failure is raised, not ignored: a
    stage that reported success over stale files it could not remove would mislead."""
    import shutil

    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    else:
        Path(folder).unlink(missing_ok=True)


def remove_others(folder: Path, keep: set[Path], pattern: str = "*.json") -> None:
    """Remove the files in folder matching pattern that are not in keep (what a removed variant leaves)."""
    kept = {Path(path).name for path in keep}
    for path in sorted(Path(folder).glob(pattern)):
        if path.name not in kept and not path.name.startswith(".tmp-"):  # not a pending new file
            path.unlink()


# --- writable before the work starts ---

def _probe(folder: Path) -> None:
    """Create and remove a file in folder: the only test that sees permissions, read-only mounts,
    ACLs and root alike (os.access answers yes to root on a read-only folder)."""
    probe = folder / f".tmp-{secrets.token_hex(4)}-probe"
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as error:
        error.filename = str(folder)  # the folder is what the user must fix
        raise


def check_writable(*targets: Path) -> None:
    """Raise the OSError (naming the path) that writing to any of targets would raise.

    Each target is a file or folder the stage will write. Its nearest existing folder must take a
    new file; a target that is an existing folder must, with every folder below it (DVCLive and
    Keras write into sub-folders).
    """
    seen: set[Path] = set()
    for target in targets:
        target = Path(target)
        if target.is_dir():
            folders = [target, *(p for p in target.rglob("*") if p.is_dir())]
        else:
            folder = target.parent
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            folders = [folder]
        for folder in folders:
            if folder not in seen:
                seen.add(folder)
                _probe(folder)


# --- .npz files whose bytes depend only on the arrays ---

_DOS_DATE = (0 << 9) | (1 << 5) | 1     # 1980-01-01, the zip format's first day: no clock in the bytes
_DOS_TIME = 0
_VERSION = 20                           # "2.0": what an unzipper needs for stored members
_UNIX = 3                               # create_system: attributes are Unix modes
_MODE = 0o100644 << 16                  # a plain file, rw-r--r--
_LIMIT = 0xFFFFFFFF                     # beyond this a zip needs zip64 records: refused, not written


def npy_bytes(array: np.ndarray) -> tuple[bytes, memoryview]:
    """The .npy format 1.0 header and data of array (little-endian, C order), numpy's reader's input."""
    array = np.asarray(array)
    if array.dtype.hasobject or array.dtype.names is not None:
        raise ValueError(f"write_npz: only plain arrays are written, not {array.dtype}")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    if not array.flags.c_contiguous:
        array = array.copy(order="C")  # not np.ascontiguousarray: it makes a 0-d array 1-d
    shape = repr(tuple(int(n) for n in array.shape))  # "(5,)", "()", "(1437, 64)": as numpy writes it
    header = f"{{'descr': {array.dtype.str!r}, 'fortran_order': False, 'shape': {shape}, }}"
    # Padded with spaces and a newline so the data starts at a multiple of 64 bytes (the format's
    # alignment); numpy reads any padding.
    unpadded = 6 + 2 + 2 + len(header) + 1
    header += " " * (-unpadded % 64) + "\n"
    head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
    return head, memoryview(array.reshape(-1).view(np.uint8))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """An uncompressed .npz (a zip of .npy members, in the order given) with fixed metadata."""
    with atomic(path) as temporary, open(temporary, "wb") as out:
        central, offset = [], 0
        for key, array in arrays.items():
            name = f"{key}.npy".encode("ascii")
            head, data = npy_bytes(array)
            size = len(head) + data.nbytes
            crc = zlib.crc32(data, zlib.crc32(head))
            if size > _LIMIT or offset > _LIMIT:
                raise ValueError(f"write_npz: {path} would pass 4 GiB, which needs zip64")
            fixed = (_VERSION, 0, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(name), 0)
            out.write(struct.pack("<4sHHHHHLLLHH", b"PK\x03\x04", *fixed) + name)
            out.write(head)
            out.write(data)
            central.append(struct.pack("<4sBBHHHHHLLLHHHHHLL", b"PK\x01\x02", _VERSION, _UNIX, *fixed, 0, 0, 0,
                                       _MODE, offset) + name)
            offset += 30 + len(name) + size
        directory = b"".join(central)
        if offset > _LIMIT or len(central) > 0xFFFF:
            raise ValueError(f"write_npz: {path} would pass 4 GiB or 65,535 arrays, which needs zip64")
        out.write(directory)
        out.write(struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, len(central), len(central), len(directory),
                              offset, 0))
