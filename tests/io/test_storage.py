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


def test_temp_files_of_killed_writers_are_removed_when_stale_or_superseded(tmp_path):
    import time
    storage.write_text(str(tmp_path / "done.npz"), "whole")
    killed = {".done.npz.tmp-0123abcd": 0, ".open.npz.tmp-89abcdef": 0, ".old.npz.tmp-00000000": 3600}
    for name, age in killed.items():
        (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (time.time() - age, time.time() - age))
    (tmp_path / "notes.tmp-0123abcd").write_text("not a temp file of atomic_write")
    # a fresh temp file of an unfinished output may belong to a live writer: only the superseded one goes
    assert storage.remove_superseded_temp_files(str(tmp_path)) == 1
    assert sorted(os.listdir(tmp_path)) == [".old.npz.tmp-00000000", ".open.npz.tmp-89abcdef", "done.npz",
                                            "notes.tmp-0123abcd"]
    assert storage.remove_stale_temp_files(str(tmp_path), older_than_s=60) == 1
    assert sorted(os.listdir(tmp_path)) == [".open.npz.tmp-89abcdef", "done.npz", "notes.tmp-0123abcd"]
    assert storage.read_text(str(tmp_path / "done.npz")) == "whole"


def test_s3_uri_parsing_uses_endpoint(monkeypatch):
    fs, path = storage.filesystem("s3://bucket/x/y.parquet", endpoint="http://127.0.0.1:9")
    assert path == "bucket/x/y.parquet" and fs.type_name == "s3"
    assert storage.join("s3://b/p", "q") == "s3://b/p/q" and storage.parent("s3://b/p/q") == "s3://b/p"
