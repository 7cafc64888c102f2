import os

import pytest

from lfdm.io import storage


def test_local_atomic_write_list_exists(tmp_path):
    target = str(tmp_path / "a" / "b.txt")
    assert not storage.exists(target)
    storage.write_text(target, "hello")
    assert storage.exists(target) and storage.read_text(target) == "hello"
    assert storage.listdir(str(tmp_path / "a")) == [target]
    with pytest.raises(RuntimeError):
        with storage.atomic_write(str(tmp_path / "a" / "c.txt")) as f:
            f.write(b"partial")
            raise RuntimeError("killed mid-write")
    assert not storage.exists(str(tmp_path / "a" / "c.txt"))
    assert sorted(os.listdir(tmp_path / "a")) == ["b.txt"]          # no temp file left behind
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        storage.read_bytes(str(tmp_path / "missing.bin"))
    storage.remove(str(tmp_path / "a"))
    assert not storage.exists(target)


def test_s3_uri_parsing_uses_endpoint(monkeypatch):
    fs, path = storage.filesystem("s3://bucket/x/y.parquet", endpoint="http://127.0.0.1:9")
    assert path == "bucket/x/y.parquet" and fs.type_name == "s3"
    assert storage.join("s3://b/p", "q") == "s3://b/p/q" and storage.parent("s3://b/p/q") == "s3://b/p"
