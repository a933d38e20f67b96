"""minidense.files: a write interrupted or failed never leaves half a file."""

import pytest

from minidense.files import atomic_write


def test_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")

    def half_then_full_disk(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_then_full_disk)
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
