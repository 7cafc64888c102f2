"""One way to open, list, write atomically and test the existence of files by local path or s3:// URI.

S3-compatible servers: pass ``endpoint=`` or set ``LFDM_S3_ENDPOINT`` / ``AWS_ENDPOINT_URL``
(e.g. http://127.0.0.1:8333). Credentials come from the usual AWS environment variables.
Writes are atomic: a local file is written under a temporary name and renamed; an S3 object
becomes visible only when its single upload completes.
"""
from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import shutil
import tempfile
import time
import uuid
from typing import IO, Callable, Iterator, List, Optional, Tuple

import pyarrow.fs as pafs

S3_SCHEME = "s3://"
TEMP_NAME = re.compile(r"\..+\.tmp-[0-9a-f]{8}")        # atomic_write's temporary files


def is_s3(uri: str) -> bool:
    return str(uri).startswith(S3_SCHEME)


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_s3(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    uri = str(uri).rstrip("/")
    if is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(uri))


def basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def s3_endpoint(endpoint: Optional[str] = None) -> Optional[str]:
    return endpoint or os.environ.get("LFDM_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")


def filesystem(uri: str, endpoint: Optional[str] = None) -> Tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path or an s3:// URI."""
    uri = str(uri)
    if not is_s3(uri):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    endpoint = s3_endpoint(endpoint)
    kwargs = {"region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        kwargs.update(endpoint_override=host or endpoint, scheme=scheme or "http")
    return pafs.S3FileSystem(**kwargs), uri[len(S3_SCHEME):].rstrip("/")


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def listdir(uri: str) -> List[str]:
    """Full URIs of the direct children of a directory (sorted); [] when it does not exist."""
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(join(str(uri), posixpath.basename(i.path)) for i in infos)


def makedirs(uri: str) -> None:
    if not is_s3(uri):
        os.makedirs(os.path.abspath(os.path.expanduser(uri)), exist_ok=True)
    # S3 has no directories: prefixes exist once an object is written under them.


def remove(uri: str) -> None:
    """Delete a file or a directory tree; missing paths are fine."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def open_read(uri: str) -> IO[bytes]:
    fs, path = filesystem(uri)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no such file: {uri}") from exc
    except OSError as exc:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no such file: {uri}") from exc
        raise


def read_bytes(uri: str) -> bytes:
    with open_read(uri) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


@contextlib.contextmanager
def atomic_write(uri: str) -> Iterator[IO[bytes]]:
    """Yield a binary file; the destination appears only if the block exits without error."""
    uri = str(uri)
    if not is_s3(uri):
        path = os.path.abspath(os.path.expanduser(uri))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    buffer = tempfile.SpooledTemporaryFile(max_size=64 * 2**20)
    try:
        yield buffer
        buffer.seek(0)
        fs, path = filesystem(uri)
        with fs.open_output_stream(path) as out:
            shutil.copyfileobj(buffer, out, length=8 * 2**20)
    finally:
        buffer.close()


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_write(uri) as f:
        f.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def remove_stale_temp_files(uri: str, older_than_s: float) -> int:
    """Delete the temporary files of atomic writes (``.NAME.tmp-XXXXXXXX``) in the local folder ``uri`` last
    modified more than ``older_than_s`` ago: what a writer killed between writing and renaming left. Returns how
    many. S3 writes leave no temporary object (a single upload appears whole or not at all): nothing to do there."""
    cutoff = time.time() - older_than_s
    return _remove_temp_files(uri, lambda path: os.path.getmtime(path) < cutoff)


def remove_superseded_temp_files(uri: str) -> int:
    """Delete, whatever their age, the temporary files of atomic writes in the local folder ``uri`` whose
    destination exists: a writer killed before its rename whose work a retry then finished. Call it once a job's
    outputs are all written; a live writer of a finished file would only have rewritten it. Returns how many."""
    def destination(path: str) -> str:
        folder, name = os.path.split(path)
        return os.path.join(folder, name[1:name.rindex(".tmp-")])
    return _remove_temp_files(uri, lambda path: os.path.exists(destination(path)))


def _remove_temp_files(uri: str, doomed: Callable[[str], bool]) -> int:
    """Delete the atomic-write temporary files of the local folder ``uri`` for which ``doomed(path)``; S3: none."""
    if is_s3(uri):
        return 0
    folder = os.path.abspath(os.path.expanduser(uri))
    if not os.path.isdir(folder):
        return 0
    removed = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if TEMP_NAME.fullmatch(name) and doomed(path):
            try:
                os.remove(path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def append_text(uri: str, text: str) -> None:
    """Append to a text file: in place on a local disk; S3 objects cannot be appended to, so there the
    object is rewritten whole (callers batch their appends). A crash mid-append can leave a partial last line."""
    if is_s3(uri):
        write_text(uri, (read_text(uri) if exists(uri) else "") + text)
        return
    path = os.path.abspath(os.path.expanduser(uri))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def bytes_io(uri: str) -> io.BytesIO:
    return io.BytesIO(read_bytes(uri))


# Parquet and CSV go through pyarrow.fs paths so Arrow owns every buffer. Handing Arrow's threaded
# readers Python-owned memory (io.BytesIO, pa.BufferReader(bytes)) lets a pool thread release a
# Python object during interpreter shutdown, which aborts the process
# ("terminate called without an active exception").
def read_parquet(uri: str, columns: Optional[List[str]] = None):
    import pyarrow.parquet as pq
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such file: {uri}")
    return pq.read_table(path, filesystem=fs, columns=columns)


def write_parquet(table, uri: str) -> None:
    """Atomic: a local file is renamed into place; an S3 object appears when its upload completes."""
    import pyarrow.parquet as pq
    fs, path = filesystem(uri)
    if is_s3(uri):
        pq.write_table(table, path, filesystem=fs)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_csv(uri: str):
    import pyarrow.csv as pacsv
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return pacsv.read_csv(stream)
