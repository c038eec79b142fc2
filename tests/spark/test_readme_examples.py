"""The README's quickstart runs as written (only its paths are moved under tmp_path); the
other Python snippets are excerpts (they use names the text introduces) and must compile."""

from __future__ import annotations

import re

from drivers import REPO


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_quickstart_runs(spark, tmp_path, capsys) -> None:
    code = readme_python_blocks()[0]  # the quickstart; later blocks are excerpts
    code = code.replace("/tmp/exo-lake", str(tmp_path / "lake"))
    code = code.replace("/tmp/exo-quickstart", str(tmp_path / "exo"))
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out == ["10", "WorkflowStatus.SUCCESSFUL"]
    revenue = spark.read.format("delta").load(str(tmp_path / "lake" / "revenue"))
    assert revenue.count() == 10  # the second run wrote nothing
    import exoflow_spark as xf

    assert (
        xf.get_output(
            "quickstart", task="orders", storage=str(tmp_path / "exo"), spark=spark
        ).count()
        == 10_000
    )


def test_other_snippets_compile() -> None:
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    for i, code in enumerate(blocks[1:], start=2):
        compile(code, f"README.md python block {i}", "exec")
