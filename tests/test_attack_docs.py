"""The Python example in docs/attacks.md runs."""

import re
from pathlib import Path

from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)


def test_docs_python_example_runs(tiny_dir, tmp_path):  # noqa: F811
    text = (Path(__file__).resolve().parents[1] / "docs" / "attacks.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    data = write_media_dataset(tmp_path / "d", n=3)
    exec(compile(code, "docs/attacks.md", "exec"),
         {"MODEL": str(tiny_dir("llava")), "DATA": str(data), "CACHE": str(tmp_path / "c")})
