"""Where benchmarks and training scripts look for the real data."""

from __future__ import annotations

from watchpost.settings import PROJECT_ROOT, default_data_dir


def test_the_data_dir_follows_watchpost_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("WATCHPOST_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path.resolve()
    monkeypatch.delenv("WATCHPOST_DATA_DIR")
    assert default_data_dir() == (PROJECT_ROOT.parent / "shared" / "data").resolve()
